// The RPC fuzzer at length: the cases of test/cluster/fuzz.test.ts (every RPC
// of ControllerService and WorkerService; well-typed messages over HTTP/2 and
// HTTP/1.1, random bytes, random JSON) by the hundred thousand against one bed
// of real servers. Prints cases/s, the answers per code, and every failure
// (an internal/unknown answer, or a server that stopped answering).
// Run: node --import tsx bench/fuzz.ts [--cases 100000] [--seed N] [--concurrency 4]
import { parseArgs } from "node:util";
import fc from "fast-check";
import { acceptable, createFuzzSender, describeCase, illTypedCase, startFuzzBed, wellTypedCase, type FuzzCase } from "../test/helpers/fuzz.js";
import { machine, printTable } from "./stats.js";

const { values } = parseArgs({
  options: {
    cases: { type: "string", default: "100000" },
    seed: { type: "string" },
    concurrency: { type: "string", default: "4" },
  },
});
const total = Number(values.cases);
const seed = values.seed === undefined ? Date.now() % 2 ** 31 : Number(values.seed);
const concurrency = Math.max(1, Number(values.concurrency));
// Same mix as the test: 5 of 12 over HTTP/2, 7 of 12 over HTTP/1.1 or ill-typed.
const cases = fc.oneof({ weight: 5, arbitrary: wellTypedCase(["h2"]) }, { weight: 4, arbitrary: wellTypedCase(["h1-json", "h1-binary"]) }, { weight: 3, arbitrary: illTypedCase() });

console.log(`fuzz: ${total} cases, seed ${seed}, ${concurrency} at a time, on ${machine()}`);
const bed = await startFuzzBed();
const sender = createFuzzSender(bed);
const byCode = new Map<string, number>();
const failures: string[] = [];
let sent = 0;
const started = performance.now();
let lastReport = started;
const stream = fc.sample(cases, { numRuns: total, seed })[Symbol.iterator]();
const next = (): FuzzCase | undefined => {
  const item = stream.next();
  return item.done ? undefined : item.value;
};
try {
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let c = next(); c !== undefined; c = next()) {
        const outcome = await sender.send(c);
        const key = `${c.target}.${c.method.name} ${outcome.ok ? "ok" : outcome.code}`;
        byCode.set(key, (byCode.get(key) ?? 0) + 1);
        if (!acceptable(outcome)) failures.push(`${describeCase(c)}\n  → ${outcome.ok ? "ok" : `${outcome.code}: ${outcome.message}`}`);
        sent++;
        const now = performance.now();
        if (now - lastReport > 10_000) {
          lastReport = now;
          console.log(`  ${sent} cases, ${Math.round((sent * 1000) / (now - started))}/s, ${failures.length} failure(s)`);
        }
      }
    }),
  );
  await bed.healthCheck();
} finally {
  sender.close();
}
const seconds = (performance.now() - started) / 1000;
const integrity = await bed.shutdown();
const rows = [...byCode.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([key, count]) => ({ "method answer": key, cases: count }));
printTable(rows);
console.log(`${sent} cases in ${seconds.toFixed(1)} s: ${Math.round(sent / seconds)} cases/s; database integrity: ${integrity}`);
if (failures.length > 0) {
  console.log(`${failures.length} failure(s):`);
  for (const failure of failures.slice(0, 50)) console.log(failure);
  process.exitCode = 1;
} else if (integrity !== "ok") {
  process.exitCode = 1;
} else {
  console.log("no failures");
}
