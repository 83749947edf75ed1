// Random clusters: capacity and gang invariants, and the indexed pass checked against a naive scan.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { schedule, type PendingJob, type SchedulerWorker, type TaskDemand } from "../../../src/cluster/controller/scheduler/index.js";
import { matchesConstraint } from "../../../src/cluster/controller/scheduler/feasibility.js";
import type { Constraint } from "../../../src/core/job.js";
import { TPU_HOST_LABEL, TPU_SLICE_LABEL } from "../../../src/cluster/platform/types.js";
import { GiB, job, placed, worker, type WorkerInit } from "./fixtures.js";


// ---------------------------------------------------------------------------
// Properties over random clusters.

const deviceArb = fc.constantFrom<WorkerInit["device"]>(undefined, undefined, ["gpu", "H100", 4], ["gpu", "A100", 8], ["tpu", "v5p-8", 4]);
const workerArb = fc.record({
  cpu: fc.integer({ min: 1, max: 16 }),
  memoryGiB: fc.integer({ min: 1, max: 64 }),
  device: deviceArb,
  busy: fc.double({ min: 0, max: 1, noNaN: true }),
  zone: fc.constantFrom("a", "b", "c"),
  rack: fc.integer({ min: 1, max: 5 }),
  preemptible: fc.boolean(),
});

const CONSTRAINTS: readonly Constraint[] = [
  { key: "zone", op: "eq", value: "a" },
  { key: "rack", op: "ge", value: 3 },
  { key: "zone", op: "in", values: ["b", "c"], preferred: true },
  { key: "rack", op: "lt", value: 2, preferred: true },
];
const demandArb = fc.constantFrom<Pick<TaskDemand, "deviceType" | "deviceVariant" | "deviceCount">>(
  { deviceType: "cpu", deviceVariant: "", deviceCount: 0 },
  { deviceType: "cpu", deviceVariant: "", deviceCount: 0 },
  { deviceType: "gpu", deviceVariant: "auto", deviceCount: 2 },
  { deviceType: "gpu", deviceVariant: "h100", deviceCount: 1 },
  { deviceType: "tpu", deviceVariant: "v5p-8", deviceCount: 4 },
  { deviceType: "tpu", deviceVariant: "v5litepod-16", deviceCount: 4 },
);
/** The hosts of v5litepod-16 slices (4 hosts of 4 chips): each host busy or not, some missing, in any order. */
const sliceArb = fc.record({
  // Mostly complete slices, with hosts mostly free: slice jobs often fit, and sometimes just not.
  hosts: fc.oneof({ arbitrary: fc.shuffledSubarray([0, 1, 2, 3], { minLength: 4 }), weight: 4 }, { arbitrary: fc.shuffledSubarray([0, 1, 2, 3], { minLength: 3 }), weight: 1 }),
  busy: fc.array(fc.integer({ min: 0, max: 5 }).map((n) => n === 0), { minLength: 4, maxLength: 4 }),
  zone: fc.constantFrom("a", "b", "c"),
  preemptible: fc.boolean(),
});
const jobArb = fc.record({
  // Few shapes and mostly no constraints, so jobs that share a shape and a
  // set of eligible workers meet often: the scheduler memoizes per both.
  cpu: fc.constantFrom(0.5, 1, 2, 4),
  memoryGiB: fc.constantFrom(1, 4),
  device: demandArb,
  tasks: fc.integer({ min: 1, max: 5 }),
  gang: fc.boolean(),
  sameZone: fc.integer({ min: 0, max: 4 }).map((n) => n === 0),
  priority: fc.constantFrom("production" as const, "interactive" as const, "batch" as const),
  constraints: fc.oneof({ arbitrary: fc.constant([]), weight: 3 }, { arbitrary: fc.subarray([...CONSTRAINTS], { maxLength: 2 }), weight: 1 }),
  preemptible: fc.boolean(),
});

type Sample<A> = A extends fc.Arbitrary<infer T> ? T : never;

function buildCluster(ws: Array<Sample<typeof workerArb>>, js: Array<Sample<typeof jobArb>>, ss: Array<Sample<typeof sliceArb>> = []): { workers: SchedulerWorker[]; jobs: PendingJob[] } {
  const workers = ws.map((w, i) =>
    worker(`w${String(i).padStart(2, "0")}`, {
      cpu: w.cpu,
      memory: w.memoryGiB * GiB,
      ...(w.device ? { device: w.device } : {}),
      used: { cpu: Math.floor(w.cpu * w.busy), memory: Math.floor(w.memoryGiB * GiB * w.busy), deviceCount: Math.floor((w.device?.[2] ?? 0) * w.busy) },
      attributes: { zone: w.zone, rack: String(w.rack), preemptible: String(w.preemptible) },
    }),
  );
  ss.forEach((slice, s) => {
    for (const host of slice.hosts) {
      workers.push(worker(`s${s}h${host}`, {
        cpu: 8,
        memory: 64 * GiB,
        device: ["tpu", "v5litepod-16", 4],
        used: slice.busy[host] ? { deviceCount: 4 } : {},
        attributes: { zone: slice.zone, rack: String(host + 1), preemptible: String(slice.preemptible), [TPU_SLICE_LABEL]: `s${s}`, [TPU_HOST_LABEL]: String(host) },
      }));
    }
  });
  const jobs = js.map((j, i) =>
    job(`j${i}`, {
      cpu: j.cpu,
      memory: j.memoryGiB * GiB,
      ...j.device,
      // A v5litepod-16 job spans whole slices: 4 or 8 tasks (one or two slices), a gang.
      ...(j.device.deviceVariant === "v5litepod-16" ? { slice: { hosts: 4 } } : {}),
      tasks: j.device.deviceVariant === "v5litepod-16" ? (j.tasks > 2 ? 4 : 8) : j.tasks,
      ...(j.device.deviceVariant === "v5litepod-16" ? { gang: true } : {}),
      gang: j.gang,
      ...(j.sameZone && j.device.deviceVariant !== "v5litepod-16" ? { sameZone: true } : {}),
      priority: j.priority,
      constraints: j.constraints,
      preemptible: j.preemptible,
      sequence: i,
    }),
  );
  return { workers, jobs };
}

/**
 * The same policy written the slow, obvious way: every task scans every
 * worker in rank order. The indexed scheduler must agree with it exactly.
 */
function referenceSchedule(jobs: readonly PendingJob[], workers: readonly SchedulerWorker[]): string[] {
  const free = new Map(workers.map((w) => [w.workerId, {
    cpu: Math.round(w.capacity.cpu * 1000) - Math.round(w.used.cpu * 1000),
    memory: w.capacity.memory - w.used.memory,
    devices: w.capacity.deviceType === "cpu" ? 0 : w.capacity.deviceCount - w.used.deviceCount,
  }]));
  const band = { production: 0, interactive: 1, batch: 2 };
  const accel = (w: SchedulerWorker) => (w.capacity.deviceType === "cpu" ? 0 : 1);
  const baseOrder = [...workers].sort((a, b) =>
    accel(a) - accel(b) || a.capacity.deviceCount - b.capacity.deviceCount || a.capacity.cpu - b.capacity.cpu ||
    a.capacity.memory - b.capacity.memory || a.capacity.disk - b.capacity.disk || a.workerId.localeCompare(b.workerId));
  const out: string[] = [];
  for (const j of [...jobs].sort((a, b) => band[a.priority] - band[b.priority] || a.sequence - b.sequence)) {
    const d = j.demand;
    const need = { cpu: Math.round(d.cpu * 1000), memory: d.memory, devices: d.deviceType === "cpu" ? 0 : d.deviceCount };
    const eligible = baseOrder.filter((w) =>
      (d.deviceType === "cpu" || (w.capacity.deviceType === d.deviceType &&
        (d.deviceVariant === "auto" || w.capacity.deviceVariant.toLowerCase() === d.deviceVariant.toLowerCase()))) &&
      (j.preemptible || w.attributes.preemptible !== "true") &&
      j.constraints.every((c) => c.preferred || matchesConstraint(w, c)));
    const score = (w: SchedulerWorker) => j.constraints.filter((c) => c.preferred && matchesConstraint(w, c)).length;
    const ranked = eligible.map((w, i) => ({ w, i })).sort((a, b) => score(b.w) - score(a.w) || a.i - b.i).map((x) => x.w);
    if (j.slice) {
      const hosts = j.slice.hosts;
      const sliceIds = [...new Set(ranked.filter((w) => w.attributes[TPU_SLICE_LABEL] !== undefined).map((w) => w.attributes[TPU_SLICE_LABEL]))];
      const complete = sliceIds
        .map((id) => Array.from({ length: hosts }, (_, h) => ranked.filter((w) => w.attributes[TPU_SLICE_LABEL] === id && w.attributes[TPU_HOST_LABEL] === String(h))))
        .filter((list) => list.every((ws) => ws.length === 1))
        .map((list) => list.map((ws) => ws[0] as SchedulerWorker));
      const fitsOn = (w: SchedulerWorker) => {
        const f = free.get(w.workerId);
        return f !== undefined && f.cpu >= need.cpu && f.memory >= need.memory && f.devices >= need.devices;
      };
      const chosen: SchedulerWorker[][] = [];
      for (let n = 0; n * hosts < j.taskIndexes.length; n++) {
        const found = complete.find((hostsOf) => !chosen.includes(hostsOf) && hostsOf.every(fitsOn));
        if (!found) break;
        chosen.push(found);
      }
      if (chosen.length * hosts === j.taskIndexes.length) {
        for (const taskIndex of j.taskIndexes) {
          const w = chosen[Math.floor(taskIndex / hosts)]?.[taskIndex % hosts] as SchedulerWorker;
          const f = free.get(w.workerId);
          if (f) {
            f.cpu -= need.cpu;
            f.memory -= need.memory;
            f.devices -= need.devices;
          }
          out.push(`${j.jobId}/${taskIndex}@${w.workerId}`);
        }
      }
      continue;
    }
    const groups = j.sameZone ? [...new Set(ranked.map((w) => w.attributes.zone))].map((z) => ranked.filter((w) => w.attributes.zone === z)) : [ranked];
    const allOrNothing = j.gang || j.sameZone === true;
    for (const group of groups) {
      const taken: Array<[string, number]> = [];
      for (const taskIndex of j.taskIndexes) {
        const w = group.find((x) => {
          const f = free.get(x.workerId);
          return f !== undefined && f.cpu >= need.cpu && f.memory >= need.memory && f.devices >= need.devices;
        });
        if (!w) break;
        const f = free.get(w.workerId);
        if (f) {
          f.cpu -= need.cpu;
          f.memory -= need.memory;
          f.devices -= need.devices;
        }
        taken.push([w.workerId, taskIndex]);
      }
      if (!allOrNothing || taken.length === j.taskIndexes.length) {
        for (const [workerId, taskIndex] of taken) out.push(`${j.jobId}/${taskIndex}@${workerId}`);
        break;
      }
      for (const [workerId] of taken) {
        const f = free.get(workerId);
        if (f) {
          f.cpu += need.cpu;
          f.memory += need.memory;
          f.devices += need.devices;
        }
      }
    }
  }
  return out;
}

describe("properties", () => {
  test("placements never exceed free capacity, and gangs are placed whole or not at all", () => {
    fc.assert(
      fc.property(fc.array(workerArb, { maxLength: 25 }), fc.array(jobArb, { maxLength: 40 }), fc.array(sliceArb, { maxLength: 3 }), (ws, js, ss) => {
        const { workers, jobs } = buildCluster(ws, js, ss);
        const result = schedule(jobs, workers);
        const byId = new Map(workers.map((w) => [w.workerId, w]));
        const jobsById = new Map(jobs.map((j) => [j.jobId, j]));
        const load = new Map<string, { cpu: number; memory: number; disk: number; devices: number }>();
        const tasksPlaced = new Map<string, Set<number>>();
        for (const p of result.placements) {
          const j = jobsById.get(p.jobId);
          const w = byId.get(p.workerId);
          assert.ok(j && w, "placements name known jobs and workers");
          assert.ok(j.taskIndexes.includes(p.taskIndex), "only pending tasks are placed");
          const seen = tasksPlaced.get(p.jobId) ?? new Set();
          assert.ok(!seen.has(p.taskIndex), "a task is placed once");
          seen.add(p.taskIndex);
          tasksPlaced.set(p.jobId, seen);
          const l = load.get(p.workerId) ?? { cpu: 0, memory: 0, disk: 0, devices: 0 };
          l.cpu += Math.round(j.demand.cpu * 1000);
          l.memory += j.demand.memory;
          l.disk += j.demand.disk;
          l.devices += j.demand.deviceType === "cpu" ? 0 : j.demand.deviceCount;
          load.set(p.workerId, l);
          for (const c of j.constraints) if (!c.preferred) assert.ok(matchesConstraint(w, c), "required constraints hold");
          if (j.demand.deviceType !== "cpu") assert.equal(w.capacity.deviceType, j.demand.deviceType);
          if (!j.preemptible) assert.notEqual(w.attributes.preemptible, "true");
          if (j.slice) assert.equal(w.attributes[TPU_HOST_LABEL], String(p.taskIndex % j.slice.hosts), "task i of a slice job on host i");
        }
        for (const [workerId, l] of load) {
          const w = byId.get(workerId);
          assert.ok(w);
          assert.ok(l.cpu <= Math.round(w.capacity.cpu * 1000) - Math.round(w.used.cpu * 1000), `cpu on ${workerId}`);
          assert.ok(l.memory <= w.capacity.memory - w.used.memory, `memory on ${workerId}`);
          assert.ok(l.disk <= w.capacity.disk - w.used.disk, `disk on ${workerId}`);
          assert.ok(l.devices <= w.capacity.deviceCount - w.used.deviceCount, `devices on ${workerId}`);
        }
        for (const j of jobs) {
          const count = tasksPlaced.get(j.jobId)?.size ?? 0;
          if (j.gang || j.sameZone) assert.ok(count === 0 || count === j.taskIndexes.length, `gang ${j.jobId} placed ${count}/${j.taskIndexes.length}`);
          if (j.sameZone && count > 0) {
            const zones = new Set(result.placements.filter((p) => p.jobId === j.jobId).map((p) => byId.get(p.workerId)?.attributes.zone));
            assert.equal(zones.size, 1, "a same-zone job sits in one zone");
          }
          const hosts = j.slice?.hosts;
          if (hosts !== undefined && count > 0) {
            const sliceOf = (taskIndex: number) => byId.get(result.placements.find((p) => p.jobId === j.jobId && p.taskIndex === taskIndex)?.workerId ?? "")?.attributes[TPU_SLICE_LABEL];
            const slices = j.taskIndexes.map(sliceOf);
            for (const t of j.taskIndexes) assert.equal(slices[t], slices[t - (t % hosts)], "the tasks of one slice number share a slice");
            assert.equal(new Set(slices).size, j.taskIndexes.length / hosts, "each slice number has a slice of its own");
          }
          assert.equal(result.pending.has(j.jobId), count < j.taskIndexes.length, `pending lists exactly the unfinished jobs (${j.jobId})`);
        }
        for (const [jobId, reason] of result.neverFits) assert.equal(result.pending.get(jobId), reason);
      }),
      { numRuns: 300 },
    );
  });

  test("the indexed scheduler places exactly what a naive scan would", () => {
    fc.assert(
      fc.property(fc.array(workerArb, { maxLength: 40 }), fc.array(jobArb, { maxLength: 60 }), fc.array(sliceArb, { maxLength: 3 }), (ws, js, ss) => {
        const { workers, jobs } = buildCluster(ws, js, ss);
        assert.deepEqual(placed(schedule(jobs, workers).placements), referenceSchedule(jobs, workers));
      }),
      { numRuns: 300 },
    );
  });

  test("preemption: placements unchanged, victims once, strictly lower bands, on workers the job may use, and room enough", () => {
    const runningArb = fc.array(fc.record({ band: fc.constantFrom("production" as const, "interactive" as const, "batch" as const), cpu: fc.constantFrom(0.5, 1, 2), startedAt: fc.integer({ min: 0, max: 9 }) }), { maxLength: 4 });
    fc.assert(
      fc.property(fc.array(workerArb, { maxLength: 20 }), fc.array(runningArb, { maxLength: 20 }), fc.array(jobArb, { maxLength: 30 }), (ws, rs, js) => {
        const { workers: plain, jobs } = buildCluster(ws, js);
        const workers = plain.map((w, i) => {
          const attempts = (rs[i] ?? []).map((r, k) => ({ attemptId: `${w.workerId}-a${k}`, jobId: `x${k}`, priority: r.band, usage: { cpu: r.cpu, memory: 0, disk: 0, deviceCount: 0 }, startedAt: r.startedAt }));
          // Running attempts hold part of `used`, as the controller reports them; `used` grows where they do not fit in it.
          const held = attempts.reduce((sum, a) => sum + a.usage.cpu, 0);
          return { ...w, used: { ...w.used, cpu: Math.max(w.used.cpu, Math.min(held, w.capacity.cpu)) }, running: attempts.filter((_, k) => attempts.slice(0, k + 1).reduce((s2, a) => s2 + a.usage.cpu, 0) <= Math.min(Math.max(w.used.cpu, held), w.capacity.cpu)) };
        });
        const withRunning = schedule(jobs, workers);
        const without = schedule(jobs, workers.map((w) => ({ ...w, running: [] })));
        assert.deepEqual(placed(withRunning.placements), placed(without.placements), "preemption never changes this pass's placements");
        assert.deepEqual(without.preemptions, []);
        const band = { production: 0, interactive: 1, batch: 2 };
        const seen = new Set<string>();
        const freed = new Map<string, number>();
        for (const p of withRunning.preemptions) {
          assert.ok(!seen.has(p.attemptId), "each victim once");
          seen.add(p.attemptId);
          const w = workers.find((x) => x.workerId === p.workerId);
          const victim = w?.running.find((a) => a.attemptId === p.attemptId);
          const asker = jobs.find((j) => j.jobId === p.forJobId);
          assert.ok(w && victim && asker);
          assert.ok(band[victim.priority] > band[asker.priority], `${asker.priority} preempts ${victim.priority}`);
          assert.ok(withRunning.pending.get(asker.jobId)?.startsWith("waiting for"), "the asking job waits");
          for (const c of asker.constraints) if (!c.preferred) assert.ok(matchesConstraint(w, c), "required constraints hold");
          if (!asker.preemptible) assert.notEqual(w.attributes.preemptible, "true");
          if (asker.demand.deviceType !== "cpu") assert.equal(w.capacity.deviceType, asker.demand.deviceType);
          freed.set(w.workerId, (freed.get(w.workerId) ?? 0) + victim.usage.cpu);
          // A preempting job needed more cpu than the worker had free.
          assert.ok(asker.demand.cpu > 0);
        }
        for (const [workerId, cpu] of freed) {
          const w = workers.find((x) => x.workerId === workerId);
          assert.ok(w && cpu <= w.used.cpu + 1e-9, "victims free no more than is used");
        }
      }),
      { numRuns: 300 },
    );
  });

  test("job groups are placed whole or not at all, never over-committing", () => {
    fc.assert(
      fc.property(fc.array(workerArb, { maxLength: 20 }), fc.array(jobArb, { maxLength: 30 }), fc.array(fc.constantFrom(undefined, "g1", "g2", "g3"), { maxLength: 30 }), (ws, js, gs) => {
        const { workers, jobs: plain } = buildCluster(ws, js);
        const jobs = plain.map((j, i) => (gs[i] ? { ...j, groupId: gs[i] } : j));
        const result = schedule(jobs, workers);
        const placedCount = new Map<string, number>();
        for (const p of result.placements) placedCount.set(p.jobId, (placedCount.get(p.jobId) ?? 0) + 1);
        const byGroup = new Map<string, typeof jobs>();
        for (const j of jobs) if (j.groupId) byGroup.set(j.groupId, [...(byGroup.get(j.groupId) ?? []), j]);
        for (const [groupId, members] of byGroup) {
          const whole = members.every((j) => placedCount.get(j.jobId) === j.taskIndexes.length);
          const none = members.every((j) => !placedCount.has(j.jobId));
          assert.ok(whole || none, `group ${groupId} placed in part`);
          if (none) for (const j of members) assert.match(result.pending.get(j.jobId) ?? "", new RegExp(`^group ${groupId}: `));
          if (whole && members.some((j) => j.sameZone)) {
            const ids = new Set(members.map((j) => j.jobId));
            const zones = new Set(result.placements.filter((p) => ids.has(p.jobId)).map((p) => workers.find((w) => w.workerId === p.workerId)?.attributes.zone));
            assert.ok(zones.size <= 1, `group ${groupId} spans zones ${[...zones].join(", ")}`);
          }
        }
        const used = new Map<string, number>();
        for (const p of result.placements) {
          const j = jobs.find((x) => x.jobId === p.jobId);
          used.set(p.workerId, (used.get(p.workerId) ?? 0) + Math.round((j?.demand.cpu ?? 0) * 1000));
        }
        for (const [workerId, cpu] of used) {
          const w = workers.find((x) => x.workerId === workerId);
          assert.ok(w && cpu <= Math.round(w.capacity.cpu * 1000) - Math.round(w.used.cpu * 1000), `cpu on ${workerId}`);
        }
      }),
      { numRuns: 300 },
    );
  });

  test("a job that never fits on an idle cluster also fits nowhere when the cluster is emptied", () => {
    fc.assert(
      fc.property(fc.array(workerArb, { maxLength: 15 }), fc.array(jobArb, { maxLength: 20 }), (ws, js) => {
        const { workers, jobs } = buildCluster(ws, js);
        const result = schedule(jobs, workers);
        const idle = workers.map((w) => ({ ...w, used: { cpu: 0, memory: 0, disk: 0, deviceCount: 0 } }));
        for (const jobId of result.neverFits.keys()) {
          const j = jobs.find((x) => x.jobId === jobId);
          assert.ok(j);
          assert.equal(schedule([j], idle).placements.length, 0, `${jobId}: ${result.neverFits.get(jobId)}`);
        }
      }),
      { numRuns: 200 },
    );
  });
});
