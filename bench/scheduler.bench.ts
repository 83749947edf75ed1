// Times one scheduling pass over a large simulated cluster (100,000 pending
// tasks, 10,000 workers) against the 1 s target, and a small one for reference.
// Run: node --import tsx bench/scheduler.bench.ts
import { createHash } from "node:crypto";
import { performance } from "node:perf_hooks";
import type { Constraint, Priority } from "../src/core/job.js";
import { rng } from "./stats.js";
import { CPU_SHAPES, GPU_SHAPES, REGIONS, TPU_SHAPES, pick } from "./fleet.js";
import { schedule, type PendingJob, type RunningAttempt, type SchedulerWorker, type TaskDemand } from "../src/cluster/controller/scheduler/index.js";

const GiB = 1024 ** 3;
const TARGET_MS = 1000;
/** Issue 14: a pass that also chooses preemptions, median over the timed passes. */
const PREEMPT_TARGET_MS = 1500;
const TIMED_PASSES = 7;


/** `scale` multiplies cpu and memory; `busy` is the average share already in use. */
function makeWorkers(count: number, random: () => number, scale = 1, busy = 0.25): SchedulerWorker[] {
  const workers: SchedulerWorker[] = [];
  for (let i = 0; i < count; i++) {
    const region = pick(random, REGIONS);
    const attributes: Record<string, string> = {
      region,
      zone: `${region}-${pick(random, ["a", "b", "c"])}`,
      preemptible: random() < 0.15 ? "true" : "false",
      rack: String(1 + Math.floor(random() * 40)),
      tier: random() < 0.5 ? "ssd" : "hdd",
    };
    const kind = random();
    let capacity: SchedulerWorker["capacity"];
    if (kind < 0.7) {
      const [cpu, mem] = pick(random, CPU_SHAPES);
      capacity = { cpu: cpu * scale, memory: mem * scale * GiB, disk: pick(random, [100, 500, 1000]) * GiB, deviceType: "cpu", deviceVariant: "", deviceCount: 0 };
    } else if (kind < 0.9) {
      const [variant, gpus, cpu, mem] = pick(random, GPU_SHAPES);
      capacity = { cpu, memory: mem * GiB, disk: 1000 * GiB, deviceType: "gpu", deviceVariant: variant, deviceCount: gpus };
    } else {
      const [variant, chips] = pick(random, TPU_SHAPES);
      capacity = { cpu: 96, memory: 384 * GiB, disk: 500 * GiB, deviceType: "tpu", deviceVariant: variant, deviceCount: chips };
    }
    attributes["device-type"] = capacity.deviceType;
    if (capacity.deviceVariant) attributes["device-variant"] = capacity.deviceVariant;
    const share = random() * 2 * busy;
    const used = {
      cpu: Math.floor(capacity.cpu * share),
      memory: Math.floor(capacity.memory * share),
      disk: 0,
      deviceCount: Math.floor(capacity.deviceCount * share),
    };
    workers.push({ workerId: `w-${String(i).padStart(5, "0")}`, capacity, used, attributes });
  }
  return workers;
}

const CONSTRAINT_MENU: ReadonlyArray<readonly Constraint[]> = [
  [{ key: "region", op: "eq", value: "us-east1" }],
  [{ key: "zone", op: "in", values: ["us-west1-a", "us-west1-b"] }],
  [{ key: "rack", op: "ge", value: 20 }],
  [{ key: "tier", op: "eq", value: "ssd", preferred: true }],
  [{ key: "region", op: "ne", value: "asia-east1" }, { key: "zone", op: "eq", value: "europe-west4-a", preferred: true }],
  [{ key: "gpu-driver", op: "not_exists" }],
];

function makeDemand(random: () => number): { demand: TaskDemand; tasks?: number; gang?: boolean } {
  const kind = random();
  const base = { disk: pick(random, [0, 0, 10 * GiB]), deviceVariant: "", deviceCount: 0 };
  if (kind < 0.8) {
    return { demand: { ...base, cpu: pick(random, [0.5, 1, 2, 4, 8, 16]), memory: pick(random, [0.5, 1, 2, 4, 8, 16, 32]) * GiB, deviceType: "cpu" } };
  }
  if (kind < 0.92) {
    const variant = pick(random, ["H100", "a100", "L4", "auto"]);
    return { demand: { ...base, cpu: 8, memory: 64 * GiB, deviceType: "gpu", deviceVariant: variant, deviceCount: pick(random, [1, 2, 4, 8]) } };
  }
  if (kind < 0.97) {
    const [variant, chips] = pick(random, TPU_SHAPES);
    const hosts = variant === "v5litepod-16" ? 4 : 1;
    return { demand: { ...base, cpu: 32, memory: 128 * GiB, deviceType: "tpu", deviceVariant: variant, deviceCount: chips }, tasks: hosts, gang: true };
  }
  // Demands no worker can meet: they exercise the never-fits path.
  return { demand: { ...base, cpu: pick(random, [200, 999]), memory: 1 * GiB, deviceType: "cpu" } };
}

function makeJobs(totalTasks: number, random: () => number): PendingJob[] {
  const jobs: PendingJob[] = [];
  let tasks = 0;
  while (tasks < totalTasks) {
    const shape = makeDemand(random);
    const count = Math.min(shape.tasks ?? 1 + Math.floor(random() * 8), totalTasks - tasks);
    const constraints = random() < 0.25 ? pick(random, CONSTRAINT_MENU) : [];
    const regions = random() < 0.1 ? [pick(random, REGIONS)] : undefined;
    jobs.push({
      jobId: `job-${jobs.length}`,
      priority: pick<Priority>(random, ["production", "interactive", "interactive", "batch"]),
      sequence: jobs.length,
      demand: shape.demand,
      taskIndexes: Array.from({ length: count }, (_, i) => i),
      gang: shape.gang ?? random() < 0.3,
      constraints,
      preemptible: random() < 0.1,
      ...(regions ? { regions } : {}),
      ...(random() < 0.02 ? { sameZone: true } : {}),
    });
    tasks += count;
  }
  return jobs;
}

/**
 * Fills `share` of each worker's cpu (and devices) with running batch and
 * interactive attempts, as the controller reports them for preemption.
 */
function withRunning(workers: SchedulerWorker[], random: () => number, share: number): SchedulerWorker[] {
  return workers.map((w) => {
    const running: RunningAttempt[] = [];
    const used = { cpu: 0, memory: 0, disk: 0, deviceCount: 0 };
    const devices = w.capacity.deviceType === "cpu" ? 0 : w.capacity.deviceCount;
    while (used.cpu < w.capacity.cpu * share) {
      const cpu = Math.min(pick(random, [0.5, 1, 2, 4, 8]), w.capacity.cpu - used.cpu);
      const memory = Math.min(cpu * 2 * GiB, w.capacity.memory - used.memory);
      const deviceCount = used.deviceCount < devices * share ? 1 : 0;
      const usage = { cpu, memory, disk: 0, deviceCount };
      running.push({ attemptId: `${w.workerId}-a${running.length}`, jobId: `running-${running.length}`, priority: random() < 0.7 ? "batch" : "interactive", usage, startedAt: Math.floor(random() * 1e6) });
      used.cpu += cpu;
      used.memory += memory;
      used.deviceCount += deviceCount;
    }
    return { ...w, used, running };
  });
}

interface CaseResult {
  name: string;
  tasks: number;
  jobs: number;
  workers: number;
  placed: number;
  pendingJobs: number;
  neverFits: number;
  preemptions: number;
  medianMs: number;
  maxMs: number;
  medianCpuMs: number;
  /** Short hash of the placements and preemptions: equal hashes, same results. */
  hash: string;
}

function runCase(name: string, taskCount: number, workerCount: number, seed: number, scale?: number, busy?: number, runningShare?: number): CaseResult {
  const random = rng(seed);
  const made = makeWorkers(workerCount, random, scale, busy);
  const workers = runningShare === undefined ? made : withRunning(made, random, runningShare);
  const jobs = makeJobs(taskCount, random);
  let result = schedule(jobs, workers); // warm-up: lets the JIT compile the hot paths
  const times: number[] = [];
  const cpuTimes: number[] = [];
  for (let i = 0; i < TIMED_PASSES; i++) {
    const start = performance.now();
    const cpuStart = process.cpuUsage();
    result = schedule(jobs, workers);
    times.push(performance.now() - start);
    // CPU time as well: on a shared machine the wall time also counts waiting for a core.
    const cpu = process.cpuUsage(cpuStart);
    cpuTimes.push((cpu.user + cpu.system) / 1000);
  }
  times.sort((a, b) => a - b);
  cpuTimes.sort((a, b) => a - b);
  return {
    name,
    tasks: taskCount,
    jobs: jobs.length,
    workers: workerCount,
    placed: result.placements.length,
    pendingJobs: result.pending.size,
    neverFits: result.neverFits.size,
    preemptions: result.preemptions.length,
    medianMs: times[Math.floor(times.length / 2)] ?? NaN,
    maxMs: times[times.length - 1] ?? NaN,
    medianCpuMs: cpuTimes[Math.floor(cpuTimes.length / 2)] ?? NaN,
    hash: createHash("sha256")
      .update(JSON.stringify([result.placements, result.preemptions, [...result.pending].sort(), [...result.neverFits].sort()]))
      .digest("hex")
      .slice(0, 12),
  };
}

// BENCH_CASE=<substring> runs only the matching cases (e.g. BENCH_CASE=preemptible).
const only = process.env.BENCH_CASE;
const cases = ([
  // The target case: the cluster fills up and about half the tasks stay pending.
  ["large", () => runCase("large", 100_000, 10_000, 42)],
  // Same jobs, idle CPU machines four times larger: most tasks are placed.
  ["large, roomy", () => runCase("large, roomy", 100_000, 10_000, 42, 4, 0)],
  ["small", () => runCase("small", 1_000, 100, 7)],
  // Issue 14: 30% of every worker held by running batch and interactive attempts, 75% of tasks production or interactive.
  ["large, 30% preemptible", () => runCase("large, 30% preemptible", 100_000, 10_000, 42, 1, 0, 0.3)],
] as const)
  .filter(([name]) => only === undefined || name.includes(only))
  .map(([, run]) => run());
console.log(`scheduler pass, ${TIMED_PASSES} timed passes after one warm-up (node ${process.version})`);
console.log("| case | pending tasks | jobs | workers | tasks placed | jobs left pending | never fit | preemptions | median | max | median cpu | result hash |");
console.log("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
for (const c of cases) {
  console.log(`| ${c.name} | ${c.tasks} | ${c.jobs} | ${c.workers} | ${c.placed} | ${c.pendingJobs} | ${c.neverFits} | ${c.preemptions} | ${c.medianMs.toFixed(1)} ms | ${c.maxMs.toFixed(1)} ms | ${c.medianCpuMs.toFixed(1)} ms | ${c.hash} |`);
}
const targetCases = cases.filter((c) => c.tasks >= 100_000 && c.preemptions === 0);
const worst = Math.max(...targetCases.map((c) => c.maxMs));
const met = targetCases.length === 0 || worst <= TARGET_MS;
console.log(`target: one pass over 100000 tasks and 10000 workers in ≤ ${TARGET_MS} ms: ${met ? "met" : "NOT met"} (slowest pass ${worst.toFixed(1)} ms)`);
const preempting = cases.filter((c) => c.preemptions > 0);
const preemptMedian = Math.max(...preempting.map((c) => c.medianMs));
const preemptMet = preempting.length > 0 && preemptMedian <= PREEMPT_TARGET_MS;
console.log(`target: median pass with preemption ≤ ${PREEMPT_TARGET_MS} ms: ${preemptMet ? "met" : "NOT met"} (median ${preemptMedian.toFixed(1)} ms)`);
process.exitCode = met && preemptMet ? 0 : 1;
