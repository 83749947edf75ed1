// Waiting in a test for something that happens on its own time (a process
// dies, an endpoint registers), failing with what was awaited.
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";

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
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}
