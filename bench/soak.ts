// The chaos soak, long (test/cluster/chaos.test.ts runs it for about a
// minute): a WorkerPool working through tasks and command jobs launched all
// along, on a LocalCluster that drops a share of Heartbeats, Reconciles and
// RunTask answers, while a worker daemon is SIGKILLed (and replaced) at a
// fixed period. Prints a summary and every property that did not hold; exits
// 1 if any did not.
// The pool's tasks (200 ms each) come at a steady rate the pool can keep up
// with: its 3 workers run at most 30 tasks/s with no faults (2 batches in
// flight each, a batch's tasks one after another), about 22/s while a worker
// dies every 10 s. The test's own rate (2,000 in 45 s, 44/s) builds a backlog
// that only its 2-minute wind-down clears; over 10 minutes it could not be.
//   node --import tsx bench/soak.ts [--minutes 10] [--kill-every 10] [--drop 0.05] [--task-rate 15]
// (npm run bench:soak -- --minutes 2)
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import { chaosProblems, chaosSummary, runChaos } from "../test/helpers/chaos.js";
import { machine } from "./stats.js";

const { values } = parseArgs({
  options: {
    minutes: { type: "string", default: "10" },
    "kill-every": { type: "string", default: "10" },
    drop: { type: "string", default: "0.05" },
    "task-rate": { type: "string", default: "15" },
  },
});
const minutes = Number(values.minutes);
const killEverySeconds = Number(values["kill-every"]);
const drop = Number(values.drop);
const taskRate = Number(values["task-rate"]);
if (!(minutes > 0) || !(killEverySeconds > 0) || !(drop >= 0 && drop <= 1) || !(taskRate > 0)) {
  console.error("usage: bench/soak.ts [--minutes N > 0] [--kill-every SECONDS > 0] [--drop P in 0..1] [--task-rate TASKS/S > 0]");
  process.exit(2);
}
const durationMs = minutes * 60_000;
// Jobs at the test's rate (50 in 45 s); pool tasks at --task-rate (see the header).
const poolTasks = Math.round((taskRate * durationMs) / 1000);
const jobs = Math.round((50 * durationMs) / 45_000);
console.log(`soak: ${minutes} min, ${poolTasks} pool tasks, ${jobs} jobs, a worker SIGKILLed every ${killEverySeconds}s, ${drop * 100}% of Heartbeats, Reconciles and RunTask answers dropped`);
console.log(`machine: ${machine()}; load ${loadavg().map((l) => l.toFixed(1)).join(" ")}`);
const report = await runChaos({ durationMs, poolTasks, jobs, killEveryMs: killEverySeconds * 1000, dropProbability: drop, log: (line) => console.log(line) });
console.log(chaosSummary(report));
const problems = chaosProblems(report);
for (const p of problems) console.log(`PROBLEM: ${p}`);
console.log(problems.length === 0 ? "soak: every result once, every job succeeded, no overlap" : `soak: ${problems.length} problem(s)`);
process.exit(problems.length === 0 ? 0 : 1);
