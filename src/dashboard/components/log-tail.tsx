// A job's live log tail: StreamJobLogs with follow, stdout and stderr as they
// are printed, a "follow" toggle that keeps the newest line in view; the
// stream stops when the component goes (leaving the page).
import { useEffect, useRef, useState } from "preact/hooks";
import { LogStream, type LogEntry } from "../../rpc/gen/fluster/cluster/v1/types_pb.js";
import { describeFailure, isCanceled, refusalOf } from "../api.js";
import { useSession } from "../session.js";
import { ErrorState } from "./states.js";

/** Entries kept at most; older ones are dropped from the view. */
const MAX_ENTRIES = 5_000;

/** Props of {@link LogTail}. */
export interface LogTailProps {
  jobId: string;
}

type StreamState = "streaming" | "ended" | "failed";

export function LogTail({ jobId }: LogTailProps) {
  const session = useSession();
  const [entries, setEntries] = useState<readonly LogEntry[]>([]);
  const [state, setState] = useState<StreamState>("streaming");
  const [error, setError] = useState<string | undefined>(undefined);
  const [follow, setFollow] = useState(true);
  const [attempt, setAttempt] = useState(0);
  const pre = useRef<HTMLPreElement>(null);

  useEffect(() => {
    const abort = new AbortController();
    setEntries([]);
    setState("streaming");
    setError(undefined);
    (async () => {
      try {
        for await (const res of session.client.streamJobLogs({ jobId, follow: true }, { signal: abort.signal })) {
          setEntries((last) => [...last, ...res.entries].slice(-MAX_ENTRIES));
        }
        setState("ended");
      } catch (err) {
        if (abort.signal.aborted || isCanceled(err)) return;
        const refusal = refusalOf(err);
        if (refusal) return session.refused(refusal);
        setError(describeFailure("StreamJobLogs", err));
        setState("failed");
      }
    })();
    return () => abort.abort();
    // The session's client changes only with a new sign-in, which remounts the page anyway.
  }, [jobId, attempt, session.client]);

  useEffect(() => {
    if (follow && pre.current) pre.current.scrollTop = pre.current.scrollHeight;
  }, [entries, follow]);

  // Scrolling up to read stops following; the checkbox turns it back on.
  const onScroll = () => {
    const el = pre.current;
    if (el && follow && el.scrollHeight - el.scrollTop - el.clientHeight > 24) setFollow(false);
  };

  return (
    <section aria-labelledby="logs-heading">
      <div class="section-head">
        <h2 id="logs-heading">Logs</h2>
        <label>
          <input type="checkbox" checked={follow} onChange={(e) => setFollow(e.currentTarget.checked)} /> follow
        </label>
        <span class="muted small">{state === "streaming" ? "streaming…" : state === "ended" ? "end of log (the job is finished)" : ""}</span>
        {state === "failed" && (
          <button type="button" onClick={() => setAttempt((n) => n + 1)}>
            retry
          </button>
        )}
      </div>
      {error && <ErrorState message={error} />}
      <pre class="logs" ref={pre} data-testid="logs" tabIndex={0} onScroll={onScroll}>
        {entries.length === 0 && <span class="muted">{state === "streaming" ? "no output yet" : "no output"}</span>}
        {entries.map((e, i) => (
          <span key={i} class={e.stream === LogStream.STDERR ? "stderr" : "stdout"} title={`task ${e.taskIndex}, attempt ${e.attemptId}`}>
            {e.data}
          </span>
        ))}
      </pre>
    </section>
  );
}
