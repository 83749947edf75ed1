// A job's log as one stream that survives drops: StreamJobLogs with follow,
// opened again with backoff after a failure, from a little before the last
// entry seen; entries already delivered are skipped.
import { Code, ConnectError } from "@connectrpc/connect";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { LogEntry } from "../rpc/gen/fluster/cluster/v1/types_pb.js";
import { describeFailure, refusalOf, type ControllerClient, type Refusal } from "./api.js";
import { reconnectDelayMs, sleep } from "./reconnect.js";

/** How far before the last entry seen a resumed stream starts (tasks' entries interleave out of order by a little). */
export const RESUME_MARGIN_MS = 5_000;
/** Delivered entries remembered (to skip on resume) beyond which older ones are forgotten. */
const SEEN_LIMIT = 10_000;
/** Failures that another try cannot mend. */
const FINAL_CODES: ReadonlySet<Code> = new Set([Code.NotFound, Code.InvalidArgument, Code.PermissionDenied, Code.FailedPrecondition]);

/** What {@link followJobLogs} reports. */
export interface JobLogHandlers {
  /** Entries not delivered before, in the order the controller sent them. */
  onEntries(entries: LogEntry[]): void;
  /** The stream dropped (the message names the RPC and why); it is opened again after a backoff. */
  onReconnecting(message: string): void;
  /** The stream is opened again after a drop. */
  onResumed(): void;
  /** The job is finished and its whole log was delivered. */
  onEnded(): void;
  /** The stream failed for good (an unknown job, …). */
  onFailed(message: string): void;
  /** The controller refused the token. */
  onRefused(refusal: Refusal): void;
}

/** Identifies an entry across streams: its attempt, stream and byte offset. */
export function entryKey(entry: LogEntry): string {
  return `${entry.attemptId}/${entry.stream}/${entry.offset}`;
}

/** Follows the job's log until it ends, fails for good, is refused, or `signal` aborts. */
export async function followJobLogs(client: ControllerClient, jobId: string, handlers: JobLogHandlers, signal: AbortSignal): Promise<void> {
  /** Entry key → its time (ms), to skip what a resumed stream sends again. */
  const seen = new Map<string, number>();
  let latestMs: number | undefined;
  let failures = 0;
  while (!signal.aborted) {
    const since = latestMs === undefined ? undefined : timestampFromDate(new Date(latestMs - RESUME_MARGIN_MS));
    try {
      for await (const res of client.streamJobLogs({ jobId, follow: true, ...(since ? { since } : {}) }, { signal })) {
        failures = 0;
        const fresh: LogEntry[] = [];
        for (const entry of res.entries) {
          const key = entryKey(entry);
          if (seen.has(key)) continue;
          const ms = entry.time ? timestampDate(entry.time).getTime() : (latestMs ?? 0);
          seen.set(key, ms);
          latestMs = Math.max(latestMs ?? ms, ms);
          fresh.push(entry);
        }
        if (seen.size > SEEN_LIMIT && latestMs !== undefined) {
          for (const [key, ms] of seen) if (ms < latestMs - RESUME_MARGIN_MS) seen.delete(key);
        }
        if (fresh.length > 0) handlers.onEntries(fresh);
      }
      handlers.onEnded();
      return;
    } catch (err) {
      if (signal.aborted) return;
      const refusal = refusalOf(err);
      if (refusal) return handlers.onRefused(refusal);
      const message = describeFailure("StreamJobLogs", err);
      if (FINAL_CODES.has(ConnectError.from(err).code)) return handlers.onFailed(message);
      handlers.onReconnecting(message);
      await sleep(reconnectDelayMs(failures++), signal);
      if (!signal.aborted) handlers.onResumed();
    }
  }
}
