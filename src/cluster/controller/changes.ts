// The controller's change feed for live views (WatchCluster, the dashboard):
// the store's revision now, then after each committed change, with bursts
// folded into one message and a message at least every `keepaliveMs`, so a
// view that shows ages ("seen 3 s ago") stays right without asking.
import { once } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import type { StateStore } from "./store.js";

/** One message of the feed. */
export interface ClusterRevision {
  /** The store's revision: equal revisions mean nothing changed. */
  revision: number;
  /** The controller's clock (epoch ms) when it was sent. */
  time: number;
}

/** Options of {@link watchRevisions}. */
export interface WatchRevisionsOptions {
  /** Fewest milliseconds between two messages. @default 250 */
  minIntervalMs?: number;
  /** Most milliseconds between two messages, changed or not. @default 5000 */
  keepaliveMs?: number;
  /** The clock. @default Date.now */
  now?: () => number;
}

/** The smallest `minIntervalMs` a caller may ask for: a view needs no more than 20 re-reads a second. */
export const MIN_WATCH_INTERVAL_MS = 50;

/** Yields the store's revision now and after every change, until `signal` aborts (the iteration then ends). */
export async function* watchRevisions(store: StateStore, signal: AbortSignal, options: WatchRevisionsOptions = {}): AsyncGenerator<ClusterRevision> {
  const minIntervalMs = Math.max(options.minIntervalMs ?? 250, MIN_WATCH_INTERVAL_MS);
  const keepaliveMs = Math.max(options.keepaliveMs ?? 5000, minIntervalMs);
  const now = options.now ?? Date.now;
  while (!signal.aborted) {
    const sentAt = now();
    const sent = store.revision;
    yield { revision: sent, time: sentAt };
    try {
      // Wait for a change (or the keepalive), then for the rest of the interval, so a burst folds into one message.
      if (store.revision === sent) await commitOrTimeout(store, keepaliveMs, signal);
      const rest = sentAt + minIntervalMs - now();
      if (rest > 0) await sleep(rest, undefined, { signal });
    } catch (err) {
      if (signal.aborted) return;
      throw err;
    }
  }
}

/** Resolves at the store's next commit or after `ms`, whichever comes first; rejects when `signal` aborts. */
async function commitOrTimeout(store: StateStore, ms: number, signal: AbortSignal): Promise<void> {
  const settled = new AbortController();
  const either = AbortSignal.any([signal, settled.signal]);
  try {
    // Both reject once `settled` aborts; the race has handled the loser's rejection.
    await Promise.race([once(store.commits, "commit", { signal: either }), sleep(ms, undefined, { signal: either })]);
  } finally {
    settled.abort();
  }
}
