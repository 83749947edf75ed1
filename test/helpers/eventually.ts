// Waiting in a test for something that happens on its own time (a process
// dies, an endpoint registers), failing with what was awaited.
import assert from "node:assert/strict";
import { pollUntil } from "../../src/core/backoff.js";

/** Options of {@link eventually}. */
export interface EventuallyOptions {
  /** What is awaited, for the failure message, e.g. "the grandchild to die". */
  what: string;
  /** @default 10_000 */
  timeoutMs?: number;
  /** Pause between checks. @default 50 */
  intervalMs?: number;
}

/** Resolves once `check` returns true; fails the test after `timeoutMs`. */
export async function eventually(check: () => boolean | Promise<boolean>, options: EventuallyOptions): Promise<void> {
  const { what, timeoutMs = 10_000, intervalMs = 50 } = options;
  const held = await pollUntil(check, { initialMs: intervalMs, factor: 1, jitter: 0, timeoutMs });
  if (!held) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
