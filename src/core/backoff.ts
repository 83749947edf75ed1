// The one retry and backoff helper: exponential delays with jitter, sleeps
// that an AbortSignal cuts short, retrying a call, and polling a condition
// that has no event to wait for.
import { setTimeout as delay } from "node:timers/promises";
import { FlusterError } from "./errors.js";

/** How delays grow between attempts. */
export interface BackoffOptions {
  /** Delay before the second attempt, in milliseconds. @default 100 */
  initialMs?: number;
  /** Largest delay, in milliseconds. @default 5000 */
  maxMs?: number;
  /** Growth of the delay per attempt. @default 2 */
  factor?: number;
  /**
   * Spread, as a fraction of the delay: each delay is cut by up to this much
   * at random, so many clients retrying together do not stay in step. 0 for
   * none. @default 0.2
   */
  jitter?: number;
}

/**
 * The delay after attempt `attempt` (0-based): `initialMs · factor^attempt`,
 * capped at `maxMs`, less up to `jitter` of it at random. `random` is for tests.
 */
export function backoffDelay(attempt: number, options: BackoffOptions = {}, random: () => number = Math.random): number {
  const { initialMs = 100, maxMs = 5_000, factor = 2, jitter = 0.2 } = options;
  const base = Math.min(maxMs, initialMs * factor ** Math.max(0, attempt));
  return Math.round(base * (1 - jitter * random()));
}

/** Resolves after `ms`; rejects with a `cancelled` FlusterError when `signal` aborts first. */
export async function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  try {
    await delay(ms, undefined, signal ? { signal } : {});
  } catch (err) {
    throw FlusterError.from(err);
  }
}

/** Options of {@link retry}. */
export interface RetryOptions extends BackoffOptions {
  /** Attempts in all, the first included. @default Infinity */
  attempts?: number;
  /** Stops retrying (rejecting with `cancelled`) when aborted. */
  signal?: AbortSignal;
  /** Whether an error is worth another attempt; errors it refuses are thrown at once. @default every error */
  retryIf?: (err: unknown, attempt: number) => boolean;
  /** Called before each wait, e.g. to log progress on a long wait. */
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
}

/**
 * Calls `fn` until it resolves, waiting with backoff between failures; the
 * last error is thrown when attempts run out or `retryIf` says no. `fn` gets
 * the attempt number (0-based).
 */
export async function retry<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const attempts = options.attempts ?? Infinity;
  for (let attempt = 0; ; attempt++) {
    if (options.signal?.aborted) throw FlusterError.from(options.signal.reason);
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt + 1 >= attempts || options.signal?.aborted || (options.retryIf && !options.retryIf(err, attempt))) throw err;
      const wait = backoffDelay(attempt, options);
      options.onRetry?.(err, attempt, wait);
      await sleep(wait, options.signal);
    }
  }
}

/**
 * Reads the stream `open()` returns and opens it again after a failure, with
 * backoff (a watch over a connection that drops). The backoff starts over
 * once a value arrives; `attempts` counts failures in a row.
 */
export async function* retryStream<T>(open: () => AsyncIterable<T>, options: RetryOptions = {}): AsyncGenerator<T> {
  const attempts = options.attempts ?? Infinity;
  for (let failures = 0; ; ) {
    if (options.signal?.aborted) throw FlusterError.from(options.signal.reason);
    try {
      for await (const value of open()) {
        failures = 0;
        yield value;
      }
      return;
    } catch (err) {
      const failure = failures++;
      if (failures >= attempts || options.signal?.aborted || (options.retryIf && !options.retryIf(err, failure))) throw err;
      const wait = backoffDelay(failure, options);
      options.onRetry?.(err, failure, wait);
      await sleep(wait, options.signal);
    }
  }
}

/**
 * Checks `condition` until it holds or `timeoutMs` passes, with backoff
 * between checks; resolves to whether it held. For states that announce no
 * change (a process that is not our child exiting); where an event or a
 * stream exists, wait on that instead.
 */
export async function pollUntil(condition: () => boolean | Promise<boolean>, options: BackoffOptions & { timeoutMs: number; signal?: AbortSignal }): Promise<boolean> {
  const deadline = Date.now() + options.timeoutMs;
  for (let attempt = 0; ; attempt++) {
    if (await condition()) return true;
    const left = deadline - Date.now();
    if (left <= 0) return false;
    await sleep(Math.min(left, backoffDelay(attempt, options)), options.signal);
  }
}
