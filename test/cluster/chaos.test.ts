// The chaos soak, bounded (about a minute of chaos): a WorkerPool of 2,000
// tasks and 50 jobs while fault injection drops 5% of Heartbeats and
// Reconciles and a worker daemon is SIGKILLed every 10 s (and replaced):
// every pool result comes back exactly once, every job succeeds, and no job's
// task ever ran two attempts at once. bench/soak.ts runs the same for longer.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chaosProblems, chaosSummary, runChaos } from "../helpers/chaos.js";

test("chaos: 2,000 pool tasks and 50 jobs through dropped RPCs and a worker SIGKILLed every 10 s", { timeout: 420_000 }, async (t) => {
  const report = await runChaos({ durationMs: 45_000, poolTasks: 2_000, jobs: 50, killEveryMs: 10_000, dropProbability: 0.05, log: (line) => t.diagnostic(line) });
  t.diagnostic(chaosSummary(report));
  assert.deepEqual(chaosProblems(report), []);
  assert.ok(report.kills >= 4, `${report.kills} kills`);
  assert.equal(report.maxOverlapMs, 0);
});
