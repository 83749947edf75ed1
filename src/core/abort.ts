// AbortSignal helpers every layer shares: checking a `signal` option up
// front, and racing a promise against a signal without leaking a listener.
import { ValidationError } from "./errors.js";

/** Checks an optional `signal` option: undefined, or an AbortSignal; throws a ValidationError naming `field` otherwise. */
export function checkSignal(value: unknown, field = "signal"): AbortSignal | undefined {
  if (value === undefined || value instanceof AbortSignal) return value;
  throw new ValidationError(field, `must be an AbortSignal (e.g. new AbortController().signal), got ${value === null ? "null" : typeof value}`);
}

/**
 * Calls `listener` once when `signal` aborts (at once, synchronously, when it
 * already has). Returns what removes the listener: call it when the work the
 * signal guards has settled, so long-lived signals collect no listeners.
 */
export function onAbort(signal: AbortSignal | undefined, listener: (reason: unknown) => void): () => void {
  if (!signal) return () => undefined;
  if (signal.aborted) {
    listener(signal.reason);
    return () => undefined;
  }
  const handler = () => listener(signal.reason);
  signal.addEventListener("abort", handler, { once: true });
  return () => signal.removeEventListener("abort", handler);
}

/**
 * `promise`, or a rejection with `signal.reason` as soon as `signal` aborts,
 * whichever comes first (an aborted signal rejects at once). The listener is
 * removed when either settles; a later rejection of `promise` is observed, so
 * it is never unhandled.
 */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) {
    promise.catch(() => undefined);
    return Promise.reject(signal.reason as Error);
  }
  return new Promise<T>((resolve, reject) => {
    const dispose = onAbort(signal, reject);
    promise.then(
      (value) => {
        dispose();
        resolve(value);
      },
      (err: unknown) => {
        dispose();
        reject(err);
      },
    );
  });
}
