// The threads job context against Piscina used directly, measured in the same
// run: the same trivial task on the same number of threads, many in flight.
// Rounds alternate between the two so a noisy neighbour hurts both alike.
//   node --import tsx bench/job-threads.bench.ts [--threads 2] [--tasks 20000] [--rounds 5]
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Piscina } from "piscina";
import { createJobContext } from "../src/job/index.js";
import { square } from "./pool-tasks.js";
import { machine, printTable, summarize } from "./stats.js";

const { values } = parseArgs({
  options: { threads: { type: "string", default: "2" }, tasks: { type: "string", default: "20000" }, rounds: { type: "string", default: "5" } },
});
const threads = Number(values.threads);
const taskCount = Number(values.tasks);
const rounds = Number(values.rounds);

/** Tasks per second with every task submitted at once. */
async function rate(submit: (i: number) => PromiseLike<unknown>): Promise<number> {
  const start = performance.now();
  await Promise.all(Array.from({ length: taskCount }, (_, i) => submit(i)));
  return taskCount / ((performance.now() - start) / 1000);
}

console.log(`machine: ${machine()}; ${threads} threads; ${taskCount} tasks per round; ${rounds} rounds`);

const piscina = new Piscina({ filename: fileURLToPath(new URL("./servers/piscina-square.mjs", import.meta.url)), minThreads: threads, maxThreads: threads });
const ctx = createJobContext("threads", { maxWorkers: threads });
// Warm-up: threads started, modules loaded, JIT warm.
await rate((i) => piscina.run(i));
await rate((i) => ctx.run(square, i));

const piscinaRates: number[] = [];
const contextRates: number[] = [];
for (let r = 0; r < rounds; r++) {
  piscinaRates.push(await rate((i) => piscina.run(i)));
  contextRates.push(await rate((i) => ctx.run(square, i)));
}
await piscina.destroy();
await ctx.close();

const raw = summarize(piscinaRates);
const ours = summarize(contextRates);
printTable([
  { measure: `Piscina directly, ${threads} threads`, "median tasks/s": Math.round(raw.median), "mean tasks/s": Math.round(raw.mean) },
  { measure: `threads job context, ${threads} threads`, "median tasks/s": Math.round(ours.median), "mean tasks/s": Math.round(ours.mean) },
]);
const ratio = ours.median / raw.median;
console.log(`\nthreads context / Piscina (median of ${rounds} rounds): ${ratio.toFixed(2)}× — target ≥ 0.7: ${ratio >= 0.7 ? "met" : "NOT met"}`);
