// The heartbeat files the cancellation tests' tasks append to (beat-<i>,
// every 25 ms while they run): waiting until they stop growing shows that
// every task writing them has stopped.
import { isDeepStrictEqual } from "node:util";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { eventually } from "./eventually.js";

/** Sizes of the beat files in `dir`, by name. */
export function beatSizes(dir: string): Record<string, number> {
  const sizes: Record<string, number> = {};
  for (const name of readdirSync(dir).filter((f) => f.startsWith("beat-")).sort()) sizes[name] = statSync(join(dir, name)).size;
  return sizes;
}

/** Resolves once no beat file in `dir` grows for 150 ms (six beats); fails the test after 10 s. */
export async function stopsBeating(dir: string, what = "every task to stop beating"): Promise<void> {
  let last = beatSizes(dir);
  await eventually(
    async () => {
      await delay(150);
      const now = beatSizes(dir);
      const still = isDeepStrictEqual(now, last);
      last = now;
      return still;
    },
    { what, timeoutMs: 10_000, intervalMs: 1 },
  );
}
