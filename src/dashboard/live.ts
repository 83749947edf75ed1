// The live feed: one WatchCluster server stream that says when the cluster's
// state changed (its revision) and the controller's clock. It reconnects with
// backoff when the stream drops or falls silent, and stops when refused.
import { refusalOf, type ControllerClient, type Refusal } from "./api.js";
import { dateOf } from "./format.js";
import { reconnectDelayMs, sleep } from "./reconnect.js";

/** Fewest milliseconds between two messages the controller sends. */
export const MIN_INTERVAL_MS = 250;
/** The controller sends at least every 5 s; a stream silent for this long is dead. */
export const SILENCE_MS = 15_000;

/** What the feed reports. */
export interface FeedHandlers {
  /** A message: the state revision and the controller's clock. */
  onMessage(revision: bigint, time: Date): void;
  /** The stream dropped; the feed waits, then reconnects. */
  onDisconnected(): void;
  /** The controller refused the token; the feed stops. */
  onRefused(refusal: Refusal): void;
}

/** Follows WatchCluster until `signal` aborts or the controller refuses the token. */
export async function followCluster(client: ControllerClient, handlers: FeedHandlers, signal: AbortSignal): Promise<void> {
  let failures = 0;
  while (!signal.aborted) {
    const attempt = new AbortController();
    const stop = () => attempt.abort();
    signal.addEventListener("abort", stop);
    let silence: ReturnType<typeof setTimeout> | undefined;
    const arm = () => {
      clearTimeout(silence);
      silence = setTimeout(stop, SILENCE_MS);
    };
    try {
      arm();
      for await (const message of client.watchCluster({ minIntervalMs: MIN_INTERVAL_MS }, { signal: attempt.signal })) {
        arm();
        failures = 0;
        handlers.onMessage(message.revision, dateOf(message.time) ?? new Date());
      }
    } catch (err) {
      const refusal = signal.aborted ? undefined : refusalOf(err);
      if (refusal) {
        handlers.onRefused(refusal);
        return;
      }
    } finally {
      clearTimeout(silence);
      signal.removeEventListener("abort", stop);
    }
    if (signal.aborted) return;
    handlers.onDisconnected();
    await sleep(reconnectDelayMs(failures++), signal);
  }
}
