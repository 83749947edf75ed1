// The autoscaler's decision, rule by rule (table-style), and its invariants
// over bounded random inputs (fast-check).
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import type { Constraint } from "../../../src/core/job.js";
import type { WorkerCapacity } from "../../../src/cluster/controller/scheduler/index.js";
import {
  backoffAfterFailure,
  decideScaling,
  nextBackoff,
  type AllocateAction,
  type AutoscalerInput,
  type PendingDemand,
  type ReleaseAction,
  type ScaleGroup,
  type ScalingDecision,
  type VmRecord,
  type VmState,
} from "../../../src/cluster/autoscaler/index.js";

const GiB = 1024 ** 3;
const NOW = Date.parse("2026-12-02T05:00:00.000Z");

function cpuMachine(cpu: number, memoryGiB: number): WorkerCapacity {
  return { cpu, memory: memoryGiB * GiB, disk: 100 * GiB, deviceType: "cpu", deviceVariant: "", deviceCount: 0 };
}

function group(name: string, overrides: Partial<ScaleGroup> = {}, shape: Partial<ScaleGroup["shape"]> = {}): ScaleGroup {
  return {
    name,
    platform: "docker",
    shape: { resources: cpuMachine(4, 16), preemptible: false, ...shape },
    minVms: 0,
    maxVms: 10,
    idleTimeoutSeconds: 300,
    ...overrides,
  };
}

function tasks(id: string, taskCount: number, cpu = 1, memoryGiB = 2, more: Partial<PendingDemand> = {}): PendingDemand {
  return {
    kind: "job",
    id,
    demand: { cpu, memory: memoryGiB * GiB, disk: 0, deviceCount: 0, deviceType: "cpu", deviceVariant: "" },
    taskCount,
    constraints: [],
    preemptible: false,
    ...more,
  };
}

function vm(vmId: string, groupName: string, state: VmState, idleSince?: number): VmRecord {
  return { vmId, group: groupName, state, since: NOW - 3_600_000, ...(idleSince !== undefined ? { idleSince } : {}) };
}

function allocations(d: ScalingDecision): Record<string, number> {
  const out: Record<string, number> = {};
  for (const a of d.actions) if (a.type === "allocate") out[a.group] = (out[a.group] ?? 0) + a.count;
  return out;
}

function released(d: ScalingDecision): string[] {
  return d.actions.filter((a): a is ReleaseAction => a.type === "release").map((a) => a.vmId);
}

function status(d: ScalingDecision, name: string) {
  const s = d.groups.find((g) => g.group === name);
  assert.ok(s, `no status for group ${name}`);
  return s;
}

interface Case {
  name: string;
  input: AutoscalerInput;
  now?: number;
  allocate: Record<string, number>;
  release?: string[];
  /** Substrings the named groups' reasons must contain. */
  reasons?: Record<string, string>;
  unfittable?: Record<string, string>;
}

const cases: Case[] = [
  {
    name: "a burst from zero: 10 tasks of 1 cpu / 2g on 4-cpu VMs take 3 VMs",
    input: { groups: [group("cpu")], vms: [], demand: [tasks("j1", 10)] },
    allocate: { cpu: 3 },
    reasons: { cpu: "10 pending tasks need 3 more VMs" },
  },
  {
    name: "memory decides when it is the scarce resource: 6 tasks of 1 cpu / 8g need 3 VMs of 16g",
    input: { groups: [group("cpu")], vms: [], demand: [tasks("j1", 6, 1, 8)] },
    allocate: { cpu: 3 },
  },
  {
    name: "first fit decreasing: big tasks first, small ones fill the gaps",
    // 3 tasks of 3 cpu and 3 of 1 cpu fit 3 VMs of 4 cpu; in input order a
    // naive first fit would still do it, so the small tasks come first in the input.
    input: { groups: [group("cpu")], vms: [], demand: [tasks("small", 3, 1, 1), tasks("big", 3, 3, 1)] },
    allocate: { cpu: 3 },
  },
  {
    name: "at maxVms: the group allocates up to its cap and says how many tasks wait",
    input: { groups: [group("cpu", { maxVms: 4 })], vms: [], demand: [tasks("j1", 28)] },
    allocate: { cpu: 4 },
    reasons: { cpu: "at maxVms (4): 12 tasks wait" },
  },
  {
    name: "draining VMs count towards maxVms",
    input: { groups: [group("cpu", { maxVms: 4 })], vms: [vm("d1", "cpu", "draining"), vm("d2", "cpu", "draining"), vm("r1", "cpu", "ready")], demand: [tasks("j1", 8)] },
    allocate: { cpu: 1 },
    reasons: { cpu: "at maxVms (4): 4 tasks wait" },
  },
  {
    name: "minVms is kept up without demand",
    input: { groups: [group("cpu", { minVms: 2 })], vms: [vm("r1", "cpu", "ready")], demand: [] },
    allocate: { cpu: 1 },
    reasons: { cpu: "below minVms (2): 1 more" },
  },
  {
    name: "requested and booting VMs count towards minVms",
    input: { groups: [group("cpu", { minVms: 2 })], vms: [vm("q1", "cpu", "requested"), vm("b1", "cpu", "booting")], demand: [] },
    allocate: {},
  },
  {
    name: "requested and booting VMs are room already on the way: not asked for twice",
    input: { groups: [group("cpu")], vms: [vm("q1", "cpu", "requested"), vm("b1", "cpu", "booting")], demand: [tasks("j1", 10)] },
    allocate: { cpu: 1 },
    reasons: { cpu: "need 1 more VM beside 2 requested or booting" },
  },
  {
    name: "demand that fits the VMs on the way allocates nothing",
    input: { groups: [group("cpu")], vms: [vm("b1", "cpu", "booting")], demand: [tasks("j1", 4)] },
    allocate: {},
    reasons: { cpu: "1 requested or booting VM will take 4 pending tasks" },
  },
  {
    name: "idle longer than the timeout: released, longest idle first, down to minVms",
    input: {
      groups: [group("cpu", { minVms: 1, idleTimeoutSeconds: 300 })],
      vms: [vm("a", "cpu", "ready", NOW - 400_000), vm("b", "cpu", "ready", NOW - 900_000), vm("c", "cpu", "ready", NOW - 600_000)],
      demand: [],
    },
    allocate: {},
    release: ["b", "c"],
    reasons: { cpu: "releasing 2 idle VMs" },
  },
  {
    name: "idle shorter than the timeout, or busy: kept",
    input: {
      groups: [group("cpu", { idleTimeoutSeconds: 300 })],
      vms: [vm("a", "cpu", "ready", NOW - 299_000), vm("b", "cpu", "ready")],
      demand: [],
    },
    allocate: {},
    release: [],
    reasons: { cpu: "no demand" },
  },
  {
    name: "busy ready VMs count towards minVms, so idle ones above it go",
    input: {
      groups: [group("cpu", { minVms: 2, idleTimeoutSeconds: 60 })],
      vms: [vm("busy1", "cpu", "ready"), vm("busy2", "cpu", "ready"), vm("idle", "cpu", "ready", NOW - 61_000)],
      demand: [],
    },
    allocate: {},
    release: ["idle"],
  },
  {
    name: "backing off: nothing allocated before the next attempt time, and the reason says until when",
    input: {
      groups: [group("cpu", { minVms: 1 })],
      vms: [],
      demand: [tasks("j1", 8)],
      backoff: { cpu: { consecutiveFailures: 3, nextAttemptAt: NOW + 40_000, lastError: "quota exceeded" } },
    },
    allocate: {},
    reasons: { cpu: "backing off after 3 failed allocations until 2026-12-02T05:00:40.000Z (quota exceeded); 8 tasks wait" },
  },
  {
    name: "backing off, then allowed once the next attempt time has come",
    now: NOW + 40_000,
    input: {
      groups: [group("cpu", { minVms: 1 })],
      vms: [],
      demand: [tasks("j1", 8)],
      backoff: { cpu: { consecutiveFailures: 3, nextAttemptAt: NOW + 40_000 } },
    },
    allocate: { cpu: 2 },
  },
  {
    name: "a group in backoff passes its demand to the next fitting group",
    input: {
      groups: [group("zone-a"), group("zone-b")],
      vms: [],
      demand: [tasks("j1", 8)],
      backoff: { "zone-a": { consecutiveFailures: 1, nextAttemptAt: NOW + 10_000, lastError: "ZONE_RESOURCE_POOL_EXHAUSTED" } },
    },
    allocate: { "zone-b": 2 },
  },
  {
    name: "several groups: the first in order that fits is used, the next takes the overflow",
    input: {
      groups: [group("spot", { maxVms: 2 }, { preemptible: true }), group("small", { maxVms: 2 }), group("big", {}, { resources: cpuMachine(16, 64) })],
      vms: [],
      demand: [tasks("tolerant", 10, 1, 2, { preemptible: true })],
    },
    allocate: { spot: 2, small: 1 },
    reasons: { big: "its demand went to groups listed before it" },
  },
  {
    name: "a task too big for the first group goes to the first group it fits",
    input: { groups: [group("small"), group("big", {}, { resources: cpuMachine(16, 64) })], vms: [], demand: [tasks("wide", 2, 8, 8)] },
    allocate: { big: 1 },
    reasons: { small: "no demand" },
  },
  {
    name: "a task that does not accept preemptible VMs skips preemptible groups",
    input: { groups: [group("spot", {}, { preemptible: true }), group("standard")], vms: [], demand: [tasks("j1", 4)] },
    allocate: { standard: 1 },
  },
  {
    name: "constraints filter groups by labels, region and zone",
    input: {
      groups: [
        group("west", {}, { region: "us-west1", zone: "us-west1-a", labels: { tier: "ssd" } }),
        group("east-hdd", {}, { region: "us-east1", zone: "us-east1-b", labels: { tier: "hdd" } }),
        group("east-ssd", {}, { region: "us-east1", zone: "us-east1-c", labels: { tier: "ssd" } }),
      ],
      vms: [],
      demand: [tasks("j1", 4, 1, 2, { regions: ["us-east1"], constraints: [{ key: "tier", op: "eq", value: "ssd" } satisfies Constraint] })],
    },
    allocate: { "east-ssd": 1 },
  },
  {
    name: "a gang goes whole into one group: a group with too few VMs left is passed over",
    input: {
      groups: [group("a", { maxVms: 2 }), group("b", { maxVms: 4 })],
      vms: [],
      demand: [tasks("gang", 12, 1, 2, { gang: true })],
    },
    allocate: { b: 3 },
  },
  {
    name: "production demand gets the capped VMs before batch demand",
    input: {
      groups: [group("cpu", { maxVms: 1 })],
      vms: [],
      demand: [tasks("batch", 4, 1, 2, { priority: "batch" }), tasks("prod", 4, 1, 2, { priority: "production", gang: true })],
    },
    allocate: { cpu: 1 },
    reasons: { cpu: "at maxVms (1): 4 tasks wait" },
  },
  {
    name: "GPU demand goes to a GPU group of its variant",
    input: {
      groups: [
        group("cpu"),
        group("a100", {}, { resources: { cpu: 32, memory: 256 * GiB, disk: 500 * GiB, deviceType: "gpu", deviceVariant: "A100", deviceCount: 8 } }),
        group("h100", {}, { resources: { cpu: 32, memory: 256 * GiB, disk: 500 * GiB, deviceType: "gpu", deviceVariant: "H100", deviceCount: 8 } }),
      ],
      vms: [],
      demand: [{ ...tasks("train", 4, 4, 16), demand: { cpu: 4, memory: 16 * GiB, disk: 0, deviceType: "gpu", deviceVariant: "h100", deviceCount: 4 } }],
    },
    allocate: { h100: 2 },
  },
  {
    name: "unfittable demand is reported with what is missing and gets no VM",
    input: {
      groups: [group("cpu", { maxVms: 3 }), group("a100", {}, { resources: { cpu: 32, memory: 256 * GiB, disk: 0, deviceType: "gpu", deviceVariant: "A100", deviceCount: 8 } })],
      vms: [],
      demand: [
        tasks("too-big", 1, 64, 2),
        tasks("no-such-gpu", 1, 1, 1, { demand: { cpu: 1, memory: GiB, disk: 0, deviceType: "gpu", deviceVariant: "H100", deviceCount: 1 } }),
        tasks("no-tpu", 1, 1, 1, { demand: { cpu: 1, memory: GiB, disk: 0, deviceType: "tpu", deviceVariant: "v6e-8", deviceCount: 8 } }),
        tasks("no-region", 1, 1, 1, { regions: ["europe-west4"] }),
        tasks("big-gang", 20, 2, 2, { gang: true }),
        tasks("fits", 1),
      ],
    },
    allocate: { cpu: 1 },
    unfittable: {
      "too-big": "insufficient cpu: wants 64, largest scale group has 32",
      "no-such-gpu": "no scale group has gpu variant H100 (configured: A100)",
      "no-tpu": "no scale group has a tpu",
      "no-region": "no scale group in region europe-west4",
      "big-gang": "gang of 20 tasks: at most 6 fit in one scale group at its maxVms",
    },
  },
  {
    name: "with no groups configured every demand is unfittable",
    input: { groups: [], vms: [], demand: [tasks("j1", 1)] },
    allocate: {},
    unfittable: { j1: "no scale groups are configured" },
  },
  {
    name: "an idle VM of a group no longer configured is released at once",
    input: { groups: [group("cpu")], vms: [vm("old", "gone", "ready", NOW - 1000), vm("old-busy", "gone", "ready")], demand: [] },
    allocate: {},
    release: ["old"],
  },
];

for (const c of cases) {
  test(c.name, () => {
    const d = decideScaling(c.input, c.now ?? NOW);
    assert.deepEqual(allocations(d), c.allocate, JSON.stringify(d.groups, null, 1));
    if (c.release) assert.deepEqual(released(d), c.release);
    for (const [name, text] of Object.entries(c.reasons ?? {})) {
      const reason = status(d, name).reason;
      assert.ok(reason.includes(text), `group ${name}: reason ${JSON.stringify(reason)} lacks ${JSON.stringify(text)}`);
    }
    assert.deepEqual(Object.fromEntries(d.unfittable.map((u) => [u.id, u.reason])), c.unfittable ?? {});
    assert.deepEqual(decideScaling(c.input, c.now ?? NOW), d, "the same input gives the same decision");
  });
}

test("a decision reports one status per group, in input order, with its VM counts", () => {
  const d = decideScaling({ groups: [group("b"), group("a")], vms: [vm("1", "a", "ready"), vm("2", "a", "booting"), vm("3", "a", "failed"), vm("4", "a", "released")], demand: [] }, NOW);
  assert.deepEqual(d.groups.map((g) => g.group), ["b", "a"]);
  assert.deepEqual(status(d, "a").vms, { requested: 0, booting: 1, ready: 1, draining: 0 });
});

test("a configuration mistake is an error naming the group", () => {
  assert.throws(() => decideScaling({ groups: [group("cpu", { minVms: 5, maxVms: 2 })], vms: [], demand: [] }, NOW), /groups\[0\]\.minVms \(5\) of scale group cpu exceeds its maxVms \(2\)/);
  assert.throws(() => decideScaling({ groups: [group("cpu"), group("cpu")], vms: [], demand: [] }, NOW), /groups\[1\]\.name repeats the scale group name "cpu"/);
});

test("nextBackoff doubles from 10 s to a 10 min cap, and jitter only cuts it when a random source is given", () => {
  assert.deepEqual([1, 2, 3, 4, 7, 8, 50].map((n) => nextBackoff(n)), [10_000, 20_000, 40_000, 80_000, 600_000, 600_000, 600_000]);
  assert.equal(nextBackoff(1, () => 0.5), 9_000);
  assert.equal(nextBackoff(3, () => 0.999999), 32_000);
  const first = backoffAfterFailure(undefined, NOW, "stockout");
  assert.deepEqual(first, { consecutiveFailures: 1, nextAttemptAt: NOW + 10_000, lastError: "stockout" });
  assert.deepEqual(backoffAfterFailure(first, NOW + 10_000, "stockout"), { consecutiveFailures: 2, nextAttemptAt: NOW + 30_000, lastError: "stockout" });
});

// Property: over bounded random clusters, a decision never takes a group past
// maxVms, never releases below minVms, gives every action a reason, and
// allocates only for groups out of backoff.
const shapeArb = fc.record({ cpu: fc.integer({ min: 1, max: 16 }), mem: fc.integer({ min: 1, max: 64 }) });
const groupArb = fc.record({
  shape: shapeArb,
  minVms: fc.integer({ min: 0, max: 3 }),
  extra: fc.integer({ min: 0, max: 6 }),
  idle: fc.integer({ min: 0, max: 600 }),
  preemptible: fc.boolean(),
  backoff: fc.option(fc.integer({ min: -60_000, max: 60_000 }), { nil: undefined }),
});
const vmArb = fc.record({
  group: fc.integer({ min: 0, max: 4 }),
  state: fc.constantFrom<VmState>("requested", "booting", "ready", "draining", "released", "failed"),
  idleFor: fc.option(fc.integer({ min: 0, max: 1_200_000 }), { nil: undefined }),
});
const demandArb = fc.record({
  cpu: fc.integer({ min: 0, max: 20 }),
  mem: fc.integer({ min: 0, max: 80 }),
  count: fc.integer({ min: 0, max: 30 }),
  gang: fc.boolean(),
  preemptible: fc.boolean(),
});

test("invariants hold over random inputs: ≤ maxVms, no release below minVms, reasons everywhere", () => {
  fc.assert(
    fc.property(fc.array(groupArb, { minLength: 1, maxLength: 5 }), fc.array(vmArb, { maxLength: 30 }), fc.array(demandArb, { maxLength: 12 }), (gs, vs, ds) => {
      const groups = gs.map((g, i) => group(`g${i}`, { minVms: g.minVms, maxVms: g.minVms + g.extra, idleTimeoutSeconds: g.idle }, { resources: cpuMachine(g.shape.cpu, g.shape.mem), preemptible: g.preemptible }));
      const vms = vs.map((v, i) => vm(`vm${i}`, `g${v.group % groups.length}`, v.state, v.state === "ready" && v.idleFor !== undefined ? NOW - v.idleFor : undefined));
      // Some random VM sets start over maxVms (a lowered config); the invariants then say "no growth".
      const demand = ds.map((d, i) => tasks(`j${i}`, d.count, d.cpu, d.mem, { gang: d.gang, preemptible: d.preemptible }));
      const backoff = Object.fromEntries(gs.flatMap((g, i) => (g.backoff === undefined ? [] : [[`g${i}`, { consecutiveFailures: 1, nextAttemptAt: NOW + g.backoff }]])));
      const d = decideScaling({ groups, vms, demand, backoff }, NOW);

      for (const a of d.actions) assert.ok(a.reason.length > 0, `action without a reason: ${JSON.stringify(a)}`);
      for (const g of groups) {
        const mine = vms.filter((v) => v.group === g.name);
        const live = mine.filter((v) => v.state !== "released" && v.state !== "failed").length;
        const ready = mine.filter((v) => v.state === "ready").length;
        const allocs = d.actions.filter((a): a is AllocateAction => a.type === "allocate" && a.group === g.name);
        const added = allocs.reduce((n, a) => n + a.count, 0);
        const releasedHere = d.actions.filter((a) => a.type === "release" && mine.some((v) => v.vmId === a.vmId)).length;
        assert.ok(allocs.every((a) => a.count >= 1), "allocations are of one VM or more");
        assert.ok(allocs.length <= 1, "one allocation per group");
        if (added > 0) assert.ok(live + added <= g.maxVms, `${g.name}: ${live} live + ${added} > maxVms ${g.maxVms}`);
        const blockedUntil = backoff[g.name]?.nextAttemptAt;
        if (added > 0) assert.ok(blockedUntil === undefined || NOW >= blockedUntil, `${g.name} allocates while backing off`);
        if (releasedHere > 0) assert.ok(ready - releasedHere >= g.minVms, `${g.name}: released below minVms`);
        const s = status(d, g.name);
        assert.ok(s.reason.length > 0);
        assert.equal(s.allocate, added);
        assert.equal(s.release, releasedHere);
      }
      // Each released VM was ready and idle, and released once.
      const ids = d.actions.filter((a): a is ReleaseAction => a.type === "release").map((a) => a.vmId);
      assert.equal(new Set(ids).size, ids.length);
      for (const id of ids) {
        const v = vms.find((x) => x.vmId === id);
        assert.ok(v && v.state === "ready" && v.idleSince !== undefined, `released ${id}, which is not idle and ready`);
      }
      assert.deepEqual(decideScaling({ groups, vms, demand, backoff }, NOW), d);
    }),
    { numRuns: 500, seed: 17 },
  );
});
