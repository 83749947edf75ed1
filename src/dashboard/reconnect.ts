// How long the live feed waits before it reconnects: a pure function of the
// failures in a row. (src/core/backoff.ts is the server side's; it imports
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
