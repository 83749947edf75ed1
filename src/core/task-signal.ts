// The AbortSignal of the task running now: how task code learns that whoever
// started it gave up (a WorkerPool task, a sync job-context task, a Zephyr shard).
import { AsyncLocalStorage } from "node:async_hooks";

const current = new AsyncLocalStorage<AbortSignal>();
/** What code outside any task gets: a signal that never aborts. */
const NEVER = new AbortController().signal;

/**
 * The signal of the task this code runs in: it aborts when the caller aborts
 * the task (`WorkerPool.map(fn, items, { signal })`, `ctx.withOptions({ signal })`,
 * `execute(ds, { signal })`). A task that checks it (`taskSignal().throwIfAborted()`,
 * or passes it on to `fetch`, timers, streams) stops early; one that ignores
 * it runs to the end and its result is dropped. Outside a task, and on
 * backends that cancel by stopping the thread or process (threads, a task
 * job on a cluster), it is a signal that never aborts.
 */
export function taskSignal(): AbortSignal {
  return current.getStore() ?? NEVER;
}

/** Runs `fn` with `signal` as what {@link taskSignal} returns inside it (and in what it awaits). */
export function runWithTaskSignal<T>(signal: AbortSignal, fn: () => T): T {
  return current.run(signal, fn);
}
