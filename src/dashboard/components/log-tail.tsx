// A job's live log tail: stdout and stderr as they are printed (job-logs.ts
// follows the stream), a "follow" toggle that keeps the newest line in view;
// the stream stops when the component goes (leaving the page).
import { useEffect, useRef, useState } from "preact/hooks";
import { LogStream, type LogEntry } from "../../rpc/gen/fluster/cluster/v1/types_pb.js";
import { followJobLogs } from "../job-logs.js";
import { useSession } from "../session.js";
import { ErrorState } from "./states.js";

/** Entries kept at most; older ones are dropped from the view. */
const MAX_ENTRIES = 5_000;

/** Props of {@link LogTail}. */
export interface LogTailProps {
  jobId: string;
}

type StreamState = "streaming" | "reconnecting" | "ended" | "failed";

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
    void followJobLogs(
      session.client,
      jobId,
      {
        onEntries: (fresh) => {
          setEntries((last) => [...last, ...fresh].slice(-MAX_ENTRIES));
          setState("streaming");
          setError(undefined);
        },
        onReconnecting: (message) => {
          setState("reconnecting");
          setError(message);
        },
        onResumed: () => {
          setState("streaming");
          setError(undefined);
        },
        onEnded: () => {
          setState("ended");
          setError(undefined);
        },
        onFailed: (message) => {
          setState("failed");
          setError(message);
        },
        onRefused: session.refused,
      },
      abort.signal,
    );
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
        <span class="muted small" data-testid="log-state">
          {state === "streaming" ? "streaming…" : state === "reconnecting" ? "reconnecting…" : state === "ended" ? "end of log (the job is finished)" : ""}
        </span>
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
