// How long the live feed and the log tail wait before they reconnect: a pure
// function of the failures in a row, and a sleep that an abort ends early. (src/core/backoff.ts is the server side's; it imports
// node:timers, which a browser bundle cannot.)

/** The first wait, in milliseconds. */
export const RECONNECT_INITIAL_MS = 500;
/** The longest wait, in milliseconds. */
export const RECONNECT_MAX_MS = 10_000;

/**
 * Milliseconds to wait before reconnect number `failures` (0-based): 0.5 s
 * doubling up to 10 s, each within ±20 % at random so that many tabs do not
 * reconnect in step. `random` (in [0, 1)) is for tests.
 */
export function reconnectDelayMs(failures: number, random: () => number = Math.random): number {
  const base = Math.min(RECONNECT_MAX_MS, RECONNECT_INITIAL_MS * 2 ** Math.min(Math.max(0, failures), 10));
  return Math.round(base * (0.8 + 0.4 * random()));
}

/** Resolves after `ms`, or as soon as `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}
