// Runs an example program (examples/*/main.ts) as a user would, and finds
// what the run left behind.
import type { TestContext } from "node:test";
import { randomUUID } from "node:crypto";
import { cleanEnv, killAll, runNode, survivors, type NodeResult } from "./processes.js";

/** How an example run ended. */
export interface ExampleResult extends NodeResult {
  /** Pids of the run's processes still alive after it exited (worker daemons, tasks); [] when it cleaned up. */
  leftovers: number[];
}

/** Options of {@link runExample}. */
export interface RunExampleOptions {
  /** A run still going after this long is stopped as a user would (Ctrl-C), then for good. @default 50_000 */
  timeoutMs?: number;
  /** Presses Ctrl-C once stdout matches this. */
  interruptOn?: RegExp;
}

/**
 * Runs `node --import tsx <main> ...args` from the repository root with a
 * clean environment (no cluster address: the example starts its own) and a
 * marker variable that its worker daemons inherit. After it exits, its
 * leftovers are the processes carrying the marker or its cluster address
 * (tasks), given a short grace; the test's end SIGKILLs any.
 */
export async function runExample(t: TestContext, main: string, args: string[], options: RunExampleOptions = {}): Promise<ExampleResult> {
  const marker = randomUUID();
  const result = await runNode(["--import", "tsx", main, ...args], {
    env: cleanEnv({ EXAMPLE_TEST_RUN: marker }),
    timeoutMs: options.timeoutMs ?? 50_000,
    timeoutSignal: "SIGINT",
    ...(options.interruptOn ? { interruptOn: options.interruptOn } : {}),
  });
  // Every example announces its cluster on this line (examples/shared/run.ts).
  const address = /cluster: LocalCluster at (\S+)/.exec(result.stdout)?.[1];
  const leftovers = await survivors([`EXAMPLE_TEST_RUN=${marker}`, ...(address ? [`FLUSTER_CLUSTER_ADDRESS=${address}`] : [])]);
  t.after(() => killAll(leftovers));
  return { ...result, leftovers };
}
