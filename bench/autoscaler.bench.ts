// Times one autoscaler decision (issue 17: 10,000 pending tasks over 50 scale
// groups, with 1,000 VMs known) against the 10 ms target. There is no older
// autoscaler to compare with, so it prints the absolute median and p99 over
// repeated decisions, for demand as one entry per task (the most per-entry
// work) and as jobs of 10 tasks.
// Run: node --import tsx bench/autoscaler.bench.ts
import { loadavg } from "node:os";
import { performance } from "node:perf_hooks";
import type { Constraint, Priority } from "../src/core/job.js";
import type { WorkerCapacity } from "../src/cluster/controller/scheduler/index.js";
import { decideScaling, type AutoscalerInput, type GroupBackoff, type PendingDemand, type ScaleGroup, type VmRecord, type VmState } from "../src/cluster/autoscaler/index.js";
import { machine, printTable, rng, summarize } from "./stats.js";
import { CPU_SHAPES, GPU_SHAPES, REGIONS, TPU_SHAPES, pick } from "./fleet.js";

const GiB = 1024 ** 3;
const TARGET_MS = 10;
const WARMUP = 20;
const RUNS = 200;
const NOW = Date.parse("2026-12-02T05:00:00.000Z");


/** 50 groups: 30 CPU, 15 GPU, 5 TPU, in several regions, some preemptible, some backing off. */
function makeGroups(random: () => number): { groups: ScaleGroup[]; backoff: Record<string, GroupBackoff> } {
  const groups: ScaleGroup[] = [];
  const backoff: Record<string, GroupBackoff> = {};
  for (let i = 0; i < 50; i++) {
    let resources: WorkerCapacity;
    if (i < 30) {
      const [cpu, mem] = pick(random, CPU_SHAPES);
      resources = { cpu, memory: mem * GiB, disk: 500 * GiB, deviceType: "cpu", deviceVariant: "", deviceCount: 0 };
    } else if (i < 45) {
      const [variant, gpus, cpu, mem] = pick(random, GPU_SHAPES);
      resources = { cpu, memory: mem * GiB, disk: 1000 * GiB, deviceType: "gpu", deviceVariant: variant, deviceCount: gpus };
    } else {
      const [variant, chips] = pick(random, TPU_SHAPES);
      resources = { cpu: 96, memory: 384 * GiB, disk: 500 * GiB, deviceType: "tpu", deviceVariant: variant, deviceCount: chips };
    }
    const region = pick(random, REGIONS);
    const name = `g${String(i).padStart(2, "0")}`;
    groups.push({
      name,
      platform: "gcp",
      shape: { resources, region, zone: `${region}-${pick(random, ["a", "b", "c"])}`, preemptible: random() < 0.2, labels: { tier: random() < 0.5 ? "ssd" : "hdd" } },
      minVms: Math.floor(random() * 3),
      maxVms: 20 + Math.floor(random() * 200),
      idleTimeoutSeconds: 300,
    });
    if (random() < 0.1) backoff[name] = { consecutiveFailures: 2, nextAttemptAt: NOW + 20_000, lastError: "stockout" };
  }
  return { groups, backoff };
}

const STATES: readonly VmState[] = ["requested", "booting", "ready", "ready", "ready", "ready", "draining"];

function makeVms(random: () => number, groups: readonly ScaleGroup[], count: number): VmRecord[] {
  return Array.from({ length: count }, (_, i) => {
    const state = pick(random, STATES);
    const idle = state === "ready" && random() < 0.3;
    return { vmId: `vm-${i}`, group: pick(random, groups).name, state, since: NOW - 600_000, ...(idle ? { idleSince: NOW - Math.floor(random() * 900_000) } : {}) };
  });
}

/** `tasks` pending tasks in entries of `perEntry`: mostly CPU, some GPU and TPU, a few with filters, a few that fit nowhere. */
function makeDemand(random: () => number, tasks: number, perEntry: number): PendingDemand[] {
  const demand: PendingDemand[] = [];
  for (let i = 0; i * perEntry < tasks; i++) {
    const kind = random();
    const constraints: Constraint[] = random() < 0.2 ? [{ key: "tier", op: "eq", value: "ssd" }] : [];
    const entry: PendingDemand = {
      kind: "job",
      id: `job-${i}`,
      demand: { cpu: pick(random, [0.5, 1, 2, 4, 8]), memory: pick(random, [1, 2, 4, 8, 16]) * GiB, disk: 0, deviceType: "cpu", deviceVariant: "", deviceCount: 0 },
      taskCount: perEntry,
      constraints,
      preemptible: random() < 0.3,
      priority: pick<Priority>(random, ["production", "interactive", "interactive", "batch"]),
      ...(random() < 0.2 ? { regions: [pick(random, REGIONS)] } : {}),
      ...(perEntry > 1 && random() < 0.2 ? { gang: true } : {}),
    };
    if (kind > 0.8 && kind <= 0.95) entry.demand = { cpu: 8, memory: 64 * GiB, disk: 0, deviceType: "gpu", deviceVariant: pick(random, ["auto", "H100", "A100", "L4"]), deviceCount: pick(random, [1, 2, 4]) };
    else if (kind > 0.95 && kind <= 0.99) entry.demand = { cpu: 24, memory: 96 * GiB, disk: 0, deviceType: "tpu", deviceVariant: pick(random, ["v5litepod-16", "v6e-8"]), deviceCount: 4 };
    else if (kind > 0.99) entry.demand = { ...entry.demand, cpu: 512 };
    demand.push(entry);
  }
  return demand;
}

/** Wall time per decision, and the CPU time this process spent (on a shared machine, the wall time also counts waits for a core). */
function time(input: AutoscalerInput): { median: number; p99: number; cpuMedian: number; actions: number; unfittable: number } {
  for (let i = 0; i < WARMUP; i++) decideScaling(input, NOW);
  const samples: number[] = [];
  const cpuSamples: number[] = [];
  let last = decideScaling(input, NOW);
  for (let i = 0; i < RUNS; i++) {
    const cpuStart = process.cpuUsage();
    const start = performance.now();
    last = decideScaling(input, NOW);
    samples.push(performance.now() - start);
    const cpu = process.cpuUsage(cpuStart);
    cpuSamples.push((cpu.user + cpu.system) / 1000);
  }
  const { median, p99 } = summarize(samples);
  return { median, p99, cpuMedian: summarize(cpuSamples).median, actions: last.actions.length, unfittable: last.unfittable.length };
}

const rows: Array<Record<string, string | number>> = [];
for (const [label, perEntry] of [["10,000 entries of 1 task", 1], ["1,000 jobs of 10 tasks", 10]] as const) {
  const random = rng(17);
  const { groups, backoff } = makeGroups(random);
  const vms = makeVms(random, groups, 1000);
  const demand = makeDemand(random, 10_000, perEntry);
  const r = time({ groups, vms, demand, backoff });
  rows.push({ demand: label, groups: groups.length, vms: vms.length, "median ms": r.median, "p99 ms": r.p99, "cpu median ms": r.cpuMedian, "target ms": TARGET_MS, actions: r.actions, unfittable: r.unfittable, verdict: r.median <= TARGET_MS ? "ok" : "SLOW" });
}
console.log(`autoscaler decision, ${RUNS} timed runs after ${WARMUP} warm-up, on ${machine()}, load average ${loadavg()[0]?.toFixed(2)}`);
printTable(rows);
