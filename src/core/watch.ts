// Change events as an async iterable of snapshots: the one way Fluster turns
// "something changed" into a stream (WatchJob, endpoint watches, log follow).
import { on, type EventEmitter } from "node:events";

/**
 * Yields `snapshot()` now and again after each `event` on `emitter`, until
 * `signal` aborts (the iteration then just ends) or `done(value)` holds for a
 * value it yielded. `snapshot()` answers `undefined` when nothing changed
 * since the last value: events that pile up while the consumer is busy fold
 * into one snapshot, so a slow watcher sees the latest state, not every step.
 */
export async function* watchSnapshots<T>(
  emitter: EventEmitter,
  event: string,
  signal: AbortSignal,
  snapshot: () => T | undefined,
  done: (value: T) => boolean = () => false,
): AsyncGenerator<T> {
  if (signal.aborted) return;
  // Subscribe before the first snapshot, so no change falls in between.
  const changes = on(emitter, event, { signal });
  try {
    const first = snapshot();
    if (first !== undefined) {
      yield first;
      if (done(first)) return;
    }
    for await (const _ of changes) {
      const value = snapshot();
      if (value === undefined) continue;
      yield value;
      if (done(value)) return;
    }
  } catch (err) {
    if (!signal.aborted) throw err;
  } finally {
    await changes.return?.();
  }
}
