// The controller's scheduler: one pure pass that places pending tasks on
// workers with room, by priority band then submission order. No I/O, no clock.
import { PRIORITIES, type Constraint, type Priority } from "../../core/job.js";
import { formatByteSize } from "../../core/quantity.js";
import type { DeviceType } from "../../core/resources.js";

/** What a worker machine offers in total. */
export interface WorkerCapacity {
  /** CPU cores. */
  cpu: number;
  /** Memory in bytes. */
  memory: number;
  /** Disk in bytes. */
  disk: number;
  deviceType: DeviceType;
  /** GPU model (`"H100"`) or TPU variant (`"v5litepod-16"`); `""` for CPU-only machines. */
  deviceVariant: string;
  /** GPUs, or TPU chips on this host; 0 for CPU-only machines. */
  deviceCount: number;
}

/** Resources held on a worker by attempts placed in earlier passes. */
export interface WorkerUsage {
  cpu: number;
  memory: number;
  disk: number;
  deviceCount: number;
}

/** A registered worker as the scheduler sees it. */
export interface SchedulerWorker {
  workerId: string;
  capacity: WorkerCapacity;
  used: WorkerUsage;
  /**
   * `region`, `zone`, `preemptible` (`"true"`/`"false"`) and user labels. The
   * controller also fills `device-type` and `device-variant` from the
   * registered resources; the scheduler reads those two from `capacity`, so a
   * constraint on them can never disagree with what the machine has.
   */
  attributes: Readonly<Record<string, string>>;
}

/** What one task of a job needs. */
export interface TaskDemand {
  /** CPU cores (fractions allowed). */
  cpu: number;
  /** Memory in bytes. */
  memory: number;
  /** Disk in bytes. */
  disk: number;
  deviceType: DeviceType;
  /** GPU model (matched case-insensitively; `"auto"` takes any GPU) or TPU variant (matched exactly). */
  deviceVariant: string;
  /** GPUs or TPU chips per task; ignored for `"cpu"`. */
  deviceCount: number;
}

/** A job with tasks waiting for a worker. */
export interface PendingJob {
  jobId: string;
  priority: Priority;
  /** Submission order: FIFO within a priority band. */
  sequence: number;
  /** Per task. */
  demand: TaskDemand;
  /** The job's tasks that are pending now. */
  taskIndexes: readonly number[];
  /** Place every task in `taskIndexes` in this pass, or none. */
  gang: boolean;
  /** Required constraints filter workers; preferred ones rank them. */
  constraints: readonly Constraint[];
  /** Whether the job accepts workers whose `preemptible` attribute is `"true"`. */
  preemptible: boolean;
  /** Regions (attribute `region`) the job may use; any when absent or empty. */
  regions?: readonly string[];
  /** Zone (attribute `zone`) the job must use; any when absent. */
  zone?: string;
  /**
   * Put all pending tasks in one region (`sameRegion`) or one zone
   * (`sameZone`). Implies gang placement. Workers without the attribute count
   * as one unnamed region or zone. To keep later tasks next to running ones,
   * the controller passes that region in `regions` (or `zone`).
   * @default false
   */
  sameRegion?: boolean;
  /** @default false */
  sameZone?: boolean;
}

export interface Placement {
  jobId: string;
  taskIndex: number;
  workerId: string;
}

export interface ScheduleResult {
  /** New placements, in the order they were made. */
  placements: Placement[];
  /**
   * Every job with a task left unplaced, with a reason naming what is short,
   * e.g. "insufficient cpu: wants 64, largest worker has 2",
   * "no worker matches constraint region eq us-east1",
   * "gang of 4 tasks: only 2 fit now".
   */
  pending: Map<string, string>;
  /**
   * The pending jobs that cannot fit on the registered workers even when they
   * are idle (no such device, no matching worker, more than any machine has).
   * Same reasons as in `pending`. The controller marks them unschedulable
   * once their scheduling timeout passes; new workers may still arrive.
   */
  neverFits: Map<string, string>;
}

/**
 * Places pending tasks on workers. Jobs go in priority band order
 * (production, interactive, batch), FIFO by `sequence` within a band; a job
 * that does not fit is passed over, never blocking the jobs behind it.
 *
 * Placement policy (pack): a task goes to the first worker with room in this
 * order: most preferred constraints met; for CPU-only tasks, machines without
 * accelerators before GPU/TPU ones; then smallest machine first (devices,
 * cpu, memory, disk); then workerId. Filling small machines first leaves the
 * large ones whole for large tasks, and a fixed order keeps filling the same
 * machines pass after pass instead of spreading fragments everywhere. Tasks
 * of one job may share a worker. The result depends only on the input.
 */
export function schedule(jobs: readonly PendingJob[], workers: readonly SchedulerWorker[]): ScheduleResult {
  return new SchedulingPass(workers).run(jobs);
}

/** True when a worker satisfies one constraint (required or preferred alike). */
export function matchesConstraint(worker: SchedulerWorker, constraint: Constraint): boolean {
  const actual = attributeOf(worker, constraint.key);
  switch (constraint.op) {
    case "exists":
      return actual !== undefined;
    case "not_exists":
      return actual === undefined;
    case "in":
      return actual !== undefined && (constraint.values ?? []).includes(actual);
    case "eq":
      return actual !== undefined && constraint.value !== undefined && equalsOperand(actual, constraint.value);
    case "ne":
      // A worker without the attribute is "not equal" to any value.
      return !(actual !== undefined && constraint.value !== undefined && equalsOperand(actual, constraint.value));
    case "gt":
      return compareNumbers(actual, constraint.value, (a, b) => a > b);
    case "ge":
      return compareNumbers(actual, constraint.value, (a, b) => a >= b);
    case "lt":
      return compareNumbers(actual, constraint.value, (a, b) => a < b);
    case "le":
      return compareNumbers(actual, constraint.value, (a, b) => a <= b);
  }
}

function attributeOf(worker: SchedulerWorker, key: string): string | undefined {
  if (key === "device-type") return worker.capacity.deviceType;
  if (key === "device-variant") return worker.capacity.deviceType === "cpu" ? undefined : worker.capacity.deviceVariant || undefined;
  return worker.attributes[key];
}

function parseNumber(text: string | number | undefined): number | undefined {
  if (typeof text === "number") return text;
  if (text === undefined || text.trim() === "") return undefined;
  const n = Number(text);
  return Number.isFinite(n) ? n : undefined;
}

function equalsOperand(actual: string, operand: string | number): boolean {
  const n = typeof operand === "number" ? parseNumber(actual) : undefined;
  return n !== undefined ? n === operand : actual === String(operand);
}

function compareNumbers(actual: string | undefined, operand: string | number | undefined, test: (a: number, b: number) => boolean): boolean {
  const a = parseNumber(actual);
  const b = parseNumber(operand);
  return a !== undefined && b !== undefined && test(a, b);
}

function formatConstraint(c: Constraint): string {
  if (c.op === "exists" || c.op === "not_exists") return `${c.key} ${c.op}`;
  if (c.op === "in") return `${c.key} in [${(c.values ?? []).join(", ")}]`;
  return `${c.key} ${c.op} ${String(c.value)}`;
}

// ---------------------------------------------------------------------------
// Resource arithmetic. CPU is kept in whole millicores so sums stay exact.

const RESOURCES = ["cpu", "memory", "disk", "devices"] as const;
type Resource = (typeof RESOURCES)[number];
type Amounts = Record<Resource, number>;

/** A worker during one pass: its free resources shrink as tasks are placed. */
interface Slot extends Amounts {
  readonly worker: SchedulerWorker;
  /** Shared by every slot of the same machine shape, so shapes can be counted by identity. */
  readonly capacity: Readonly<Amounts>;
  /** Position in the pass's smallest-machine-first order; also the slot's bit in a WorkerSet. */
  readonly order: number;
  /** The `region` and `zone` attributes, `""` when absent: read once, as same-region jobs group by them. */
  readonly region: string;
  readonly zone: string;
}

/** One task's demand in slot units, with a key naming its shape. */
interface Need extends Readonly<Amounts> {
  readonly key: string;
}

function toNeed(demand: TaskDemand): Need {
  const cpu = Math.round(demand.cpu * 1000);
  const devices = demand.deviceType === "cpu" ? 0 : demand.deviceCount;
  return { cpu, memory: demand.memory, disk: demand.disk, devices, key: `${cpu}:${demand.memory}:${demand.disk}:${devices}` };
}

function toSlot(worker: SchedulerWorker, order: number, shapes: Map<string, Readonly<Amounts>>): Slot {
  const { capacity: cap, used } = worker;
  const amounts = { cpu: Math.round(cap.cpu * 1000), memory: cap.memory, disk: cap.disk, devices: cap.deviceType === "cpu" ? 0 : cap.deviceCount };
  const shapeKey = `${amounts.cpu}:${amounts.memory}:${amounts.disk}:${amounts.devices}`;
  const capacity = shapes.get(shapeKey) ?? amounts;
  shapes.set(shapeKey, capacity);
  return {
    worker,
    capacity,
    order,
    region: worker.attributes.region ?? "",
    zone: worker.attributes.zone ?? "",
    cpu: capacity.cpu - Math.round(used.cpu * 1000),
    memory: capacity.memory - used.memory,
    disk: capacity.disk - used.disk,
    devices: capacity.devices - (cap.deviceType === "cpu" ? 0 : used.deviceCount),
  };
}

function fits(free: Amounts, need: Amounts): boolean {
  return free.cpu >= need.cpu && free.memory >= need.memory && free.disk >= need.disk && free.devices >= need.devices;
}

function take(slot: Slot, need: Need, sign: 1 | -1): void {
  slot.cpu -= sign * need.cpu;
  slot.memory -= sign * need.memory;
  slot.disk -= sign * need.disk;
  slot.devices -= sign * need.devices;
}

/** How many tasks of `need` fit in `room` (Infinity for a demand of nothing). */
function tasksThatFit(room: Amounts, need: Amounts): number {
  return Math.max(0, Math.min(timesIn(room.cpu, need.cpu), timesIn(room.memory, need.memory), timesIn(room.disk, need.disk), timesIn(room.devices, need.devices)));
}

function timesIn(have: number, want: number): number {
  return want > 0 ? Math.floor(have / want) : Infinity;
}

/**
 * The pass's base order: machines without accelerators first (a CPU-only
 * task then reaches a GPU or TPU host only when no plain machine has room),
 * then smallest first by devices, cpu, memory, disk; ties by workerId.
 */
function compareMachines(a: SchedulerWorker, b: SchedulerWorker): number {
  const x = a.capacity;
  const y = b.capacity;
  return (
    Number(x.deviceType !== "cpu") - Number(y.deviceType !== "cpu") ||
    x.deviceCount - y.deviceCount || x.cpu - y.cpu || x.memory - y.memory || x.disk - y.disk ||
    (a.workerId < b.workerId ? -1 : a.workerId > b.workerId ? 1 : 0)
  );
}

// ---------------------------------------------------------------------------
// First-fit index.

/**
 * Finds the first slot (in list order) with room for a demand in O(log n)
 * typical time: a max-segment tree over the slots' free cpu, memory, disk
 * and devices, as in the classic O(n log n) First Fit bin packing. A subtree
 * whose maxima cannot hold the demand is skipped whole. With four resources
 * the maxima of a subtree may come from different slots, so a search can
 * descend in vain; the caller's per-shape cursor (see Candidates) makes it
 * cross such a stretch once per shape, not once per task.
 *
 * A slot can sit in several lists, and a placement refreshes only the list
 * it went through. The others then hold stale maxima, but free space only
 * shrinks within a pass, so stale values are upper bounds: they may send a
 * search into a subtree in vain (the leaf is re-read and fixed on the way),
 * never past a slot that fits. A gang rollback gives space back, and
 * refreshes that list for those slots; other lists still hold values from
 * before the gang's attempt, which remain upper bounds.
 */
class FirstFitTree {
  private readonly leaves: number;
  // Per tree node, the largest free amount of each resource below it.
  private readonly cpu: Float64Array;
  private readonly memory: Float64Array;
  private readonly disk: Float64Array;
  private readonly devices: Float64Array;

  constructor(private readonly slots: readonly Slot[]) {
    let leaves = 1;
    while (leaves < slots.length) leaves *= 2;
    this.leaves = leaves;
    this.cpu = new Float64Array(2 * leaves).fill(-Infinity);
    this.memory = new Float64Array(2 * leaves).fill(-Infinity);
    this.disk = new Float64Array(2 * leaves).fill(-Infinity);
    this.devices = new Float64Array(2 * leaves).fill(-Infinity);
    slots.forEach((slot, i) => this.write(leaves + i, slot));
    for (let node = leaves - 1; node >= 1; node--) this.pull(node);
  }

  /** Index of the first slot at or after `from` with room for `need`, or -1. */
  findFirst(need: Need, from: number): number {
    return this.search(1, 0, this.leaves, need, from);
  }

  /** Re-reads one slot after its free space changed. */
  refresh(index: number): void {
    const slot = this.slots[index];
    if (!slot) return;
    let node = this.leaves + index;
    this.write(node, slot);
    for (node >>= 1; node >= 1; node >>= 1) this.pull(node);
  }

  /** Searches the subtree `node`, which covers slots `lo` to `lo + size - 1`. */
  private search(node: number, lo: number, size: number, need: Need, from: number): number {
    if (lo + size <= from || !this.mayFit(node, need)) return -1;
    if (size === 1) {
      const slot = this.slots[lo];
      if (!slot) return -1;
      this.write(node, slot); // the maxima here may be stale (see class comment)
      return fits(slot, need) ? lo : -1;
    }
    const half = size / 2;
    let found = this.search(2 * node, lo, half, need, from);
    if (found < 0) found = this.search(2 * node + 1, lo + half, half, need, from);
    this.pull(node);
    return found;
  }

  private mayFit(node: number, need: Need): boolean {
    return (this.cpu[node] ?? -Infinity) >= need.cpu && (this.memory[node] ?? -Infinity) >= need.memory &&
      (this.disk[node] ?? -Infinity) >= need.disk && (this.devices[node] ?? -Infinity) >= need.devices;
  }

  private write(node: number, free: Amounts): void {
    this.cpu[node] = free.cpu;
    this.memory[node] = free.memory;
    this.disk[node] = free.disk;
    this.devices[node] = free.devices;
  }

  private pull(node: number): void {
    const left = 2 * node;
    const right = left + 1;
    this.cpu[node] = Math.max(this.cpu[left] ?? -Infinity, this.cpu[right] ?? -Infinity);
    this.memory[node] = Math.max(this.memory[left] ?? -Infinity, this.memory[right] ?? -Infinity);
    this.disk[node] = Math.max(this.disk[left] ?? -Infinity, this.disk[right] ?? -Infinity);
    this.devices[node] = Math.max(this.devices[left] ?? -Infinity, this.devices[right] ?? -Infinity);
  }
}

// ---------------------------------------------------------------------------
// Worker sets.

/**
 * A set of workers as a bitset over their position in the pass's order.
 * Each filter (a device, a region, a constraint) is evaluated once per pass
 * over all workers; a job's eligible workers are the AND of its filters' sets,
 * which costs a few hundred word operations instead of a scan per job kind.
 */
class WorkerSet {
  private constructor(private readonly words: Uint32Array) {}

  static where(slots: readonly Slot[], test: (worker: SchedulerWorker) => boolean): WorkerSet {
    const words = new Uint32Array((slots.length + 31) >>> 5);
    slots.forEach((slot, i) => {
      if (test(slot.worker)) words[i >>> 5] = (words[i >>> 5] ?? 0) | (1 << (i & 31));
    });
    return new WorkerSet(words);
  }

  has(slot: Slot): boolean {
    return ((this.words[slot.order >>> 5] ?? 0) & (1 << (slot.order & 31))) !== 0;
  }

  and(other: WorkerSet): WorkerSet {
    return new WorkerSet(this.words.map((word, i) => word & (other.words[i] ?? 0)));
  }

  isEmpty(): boolean {
    return this.words.every((word) => word === 0);
  }

  size(): number {
    let n = 0;
    for (const word of this.words) for (let bits = word; bits !== 0; bits &= bits - 1) n++;
    return n;
  }

  /** The members, in order. */
  members(slots: readonly Slot[]): Slot[] {
    const out: Slot[] = [];
    for (let w = 0; w < this.words.length; w++) {
      // Visit set bits lowest first: `bits & -bits` isolates the lowest one.
      for (let bits = this.words[w] ?? 0; bits !== 0; bits &= bits - 1) {
        const slot = slots[(w << 5) + 31 - Math.clz32(bits & -bits)];
        if (slot) out.push(slot);
      }
    }
    return out;
  }
}

// ---------------------------------------------------------------------------
// Candidate lists and plans.

/** Workers a kind of job may use, in placement order, with this pass's memos. */
class Candidates {
  private tree?: FirstFitTree;
  /**
   * Per demand shape, the first slot that may still take one more task of
   * it. First fit put the last such task there, so no slot before it had
   * room, and free space only shrinks within a pass. A shape that fits
   * nowhere has its cursor at the end, so identical demands later in the
   * pass skip the search.
   */
  private readonly cursors = new Map<string, number>();
  private machineShapes?: Map<Readonly<Amounts>, number>;
  private freeMax?: Amounts;
  private readonly idleFit = new Map<string, number>();

  constructor(readonly slots: readonly Slot[]) {}

  get index(): FirstFitTree {
    return (this.tree ??= new FirstFitTree(this.slots));
  }

  cursor(need: Need): number {
    return this.cursors.get(need.key) ?? 0;
  }

  setCursor(need: Need, index: number): void {
    this.cursors.set(need.key, index);
  }

  /** Largest capacity per resource over these workers. */
  largestCapacity(): Amounts {
    return maxOver([...this.shapes().keys()]);
  }

  /**
   * Distinct machine capacities with their counts. Clusters have few machine
   * shapes, so questions about idle machines are answered per shape.
   */
  private shapes(): Map<Readonly<Amounts>, number> {
    if (!this.machineShapes) {
      this.machineShapes = new Map();
      for (const { capacity } of this.slots) this.machineShapes.set(capacity, (this.machineShapes.get(capacity) ?? 0) + 1);
    }
    return this.machineShapes;
  }

  /** Largest free amount per resource; call once placement is over (the first answer is kept). */
  mostFree(): Amounts {
    return (this.freeMax ??= maxOver(this.slots));
  }

  /** How many tasks of `need` these workers could hold if all were idle. */
  fitsWhenIdle(need: Need): number {
    let total = this.idleFit.get(need.key);
    if (total === undefined) {
      total = 0;
      for (const [capacity, count] of this.shapes()) total += count * tasksThatFit(capacity, need);
      this.idleFit.set(need.key, total);
    }
    return total;
  }
}

function maxOver(list: readonly Amounts[]): Amounts {
  const out: Amounts = { cpu: 0, memory: 0, disk: 0, devices: 0 };
  for (const a of list) {
    out.cpu = Math.max(out.cpu, a.cpu);
    out.memory = Math.max(out.memory, a.memory);
    out.disk = Math.max(out.disk, a.disk);
    out.devices = Math.max(out.devices, a.devices);
  }
  return out;
}

/** Where a kind of job may go: worked out once per pass for every job with the same device, filters and preferences. */
interface Plan {
  /** Set when no registered worker passes the job's filters. */
  readonly blocked?: string;
  /** Every eligible worker. */
  readonly eligible: Candidates;
  /** One list per region or zone for same-region/zone jobs, else `[eligible]`. */
  readonly groups: readonly Candidates[];
  /** "region" or "zone" for grouped plans. */
  readonly groupedBy?: "region" | "zone";
  /** How reasons name the eligible workers: "worker", "gpu H100 worker", "matching worker". */
  readonly noun: string;
}

const PRIORITY_RANK = new Map(PRIORITIES.map((p, i) => [p, i]));

function compareJobs(a: PendingJob, b: PendingJob): number {
  return (
    (PRIORITY_RANK.get(a.priority) ?? 1) - (PRIORITY_RANK.get(b.priority) ?? 1) || a.sequence - b.sequence ||
    (a.jobId < b.jobId ? -1 : a.jobId > b.jobId ? 1 : 0)
  );
}

/** Whether a worker has the accelerator a task asks for (every worker serves CPU-only tasks). */
function servesDevice(worker: SchedulerWorker, demand: TaskDemand): boolean {
  const cap = worker.capacity;
  switch (demand.deviceType) {
    case "cpu":
      return true;
    case "gpu":
      return cap.deviceType === "gpu" && (demand.deviceVariant.toLowerCase() === "auto" || cap.deviceVariant.toLowerCase() === demand.deviceVariant.toLowerCase());
    case "tpu":
      return cap.deviceType === "tpu" && cap.deviceVariant === demand.deviceVariant;
  }
}

function deviceKey(d: TaskDemand): string {
  if (d.deviceType === "gpu") return d.deviceVariant.toLowerCase() === "auto" ? "gpu" : `gpu:${d.deviceVariant.toLowerCase()}`;
  if (d.deviceType === "tpu") return `tpu:${d.deviceVariant}`;
  return "cpu";
}

/** "", "gpu ", "gpu H100 ", "tpu v5litepod-16 ": prefixes "worker" in reasons. */
function deviceWords(d: TaskDemand): string {
  if (d.deviceType === "cpu") return "";
  if (d.deviceType === "gpu" && d.deviceVariant.toLowerCase() === "auto") return "gpu ";
  return `${d.deviceType} ${d.deviceVariant} `;
}

function constraintKey(c: Constraint): string {
  return JSON.stringify([c.key, c.op, c.value ?? null, c.values ?? null]);
}

/** Jobs with equal keys have the same eligible workers in the same order. */
function planKey(job: PendingJob): string {
  let key = `${deviceKey(job.demand)} ${job.preemptible} ${job.sameZone ? "zone" : job.sameRegion ? "region" : "any"}`;
  // Region, zone and constraint text can hold any character: JSON keeps the parts apart.
  if (job.regions?.length) key += ` regions ${JSON.stringify(job.regions)}`;
  if (job.zone !== undefined) key += ` zone ${JSON.stringify(job.zone)}`;
  for (const c of job.constraints) key += ` ${c.preferred ? "preferred" : "required"} ${constraintKey(c)}`;
  return key;
}

/** A job's outcome in this pass, before reasons are written. */
interface Outcome {
  job: PendingJob;
  plan: Plan;
  need: Need;
  /** Tasks still unplaced. */
  left: number;
  /** For a gang that did not fit: most of its tasks that fit at once. */
  gangFitted?: number;
}

/** One scheduling pass: the mutable working state behind `schedule()`. */
class SchedulingPass {
  /** Every worker, smallest machine first. */
  private readonly slots: Slot[];
  /** Workers passing each filter, by filter key; shared by all plans. */
  private readonly sets = new Map<string, WorkerSet>();
  private readonly plans = new Map<string, Plan>();
  private readonly placements: Placement[] = [];

  constructor(workers: readonly SchedulerWorker[]) {
    const shapes = new Map<string, Readonly<Amounts>>();
    this.slots = [...workers].sort(compareMachines).map((worker, order) => toSlot(worker, order, shapes));
  }

  run(jobs: readonly PendingJob[]): ScheduleResult {
    const outcomes: Outcome[] = [];
    for (const job of [...jobs].sort(compareJobs)) {
      if (job.taskIndexes.length === 0) continue;
      const plan = this.planFor(job);
      const need = toNeed(job.demand);
      const outcome = plan.blocked ? { job, plan, need, left: job.taskIndexes.length } : this.place(job, plan, need);
      if (outcome.left > 0) outcomes.push(outcome);
    }
    // Reasons are written after every placement, so the amounts they quote
    // ("most free on any worker") describe the cluster as this pass leaves it.
    const pending = new Map<string, string>();
    const neverFits = new Map<string, string>();
    for (const outcome of outcomes) {
      const { reason, never } = explain(outcome);
      pending.set(outcome.job.jobId, reason);
      if (never) neverFits.set(outcome.job.jobId, reason);
    }
    return { placements: this.placements, pending, neverFits };
  }

  private place(job: PendingJob, plan: Plan, need: Need): Outcome {
    const count = job.taskIndexes.length;
    if (!job.gang && !plan.groupedBy) {
      const placed = this.fill(plan.eligible, need, count);
      this.commit(job, plan.eligible, placed);
      return { job, plan, need, left: count - placed.length };
    }
    let gangFitted = 0;
    for (const group of plan.groups) {
      const cursor = group.cursor(need);
      const placed = this.fill(group, need, count);
      if (placed.length === count) {
        this.commit(job, group, placed);
        return { job, plan, need, left: 0 };
      }
      this.rollback(group, placed, need, cursor);
      gangFitted = Math.max(gangFitted, placed.length);
    }
    return { job, plan, need, left: count, gangFitted };
  }

  /** Takes room for up to `count` tasks, first fit; returns the slot indexes used, one per task. */
  private fill(candidates: Candidates, need: Need, count: number): number[] {
    const used: number[] = [];
    const { slots, index: tree } = candidates;
    let from = candidates.cursor(need);
    while (used.length < count) {
      const index = from < slots.length ? tree.findFirst(need, from) : -1;
      const slot = slots[index];
      if (!slot) {
        from = slots.length;
        break;
      }
      take(slot, need, 1);
      tree.refresh(index);
      used.push(index);
      from = index;
    }
    candidates.setCursor(need, from);
    return used;
  }

  /**
   * Gives back a failed gang's space. The cursor returns to where it was:
   * the freed space may fit a later job of the same shape. With nothing
   * placed, nothing changed, and the cursor at the end stays as a memo.
   */
  private rollback(candidates: Candidates, used: readonly number[], need: Need, cursor: number): void {
    if (used.length === 0) return;
    candidates.setCursor(need, cursor);
    for (const index of used) {
      const slot = candidates.slots[index];
      if (!slot) continue;
      take(slot, need, -1);
      candidates.index.refresh(index);
    }
  }

  private commit(job: PendingJob, candidates: Candidates, used: readonly number[]): void {
    used.forEach((index, i) => {
      const slot = candidates.slots[index];
      const taskIndex = job.taskIndexes[i];
      if (slot && taskIndex !== undefined) this.placements.push({ jobId: job.jobId, taskIndex, workerId: slot.worker.workerId });
    });
  }

  private planFor(job: PendingJob): Plan {
    const key = planKey(job);
    let plan = this.plans.get(key);
    if (!plan) {
      plan = this.buildPlan(job);
      this.plans.set(key, plan);
    }
    return plan;
  }

  /** Intersects the job's filters, reporting the first one that leaves no worker. */
  private buildPlan(job: PendingJob): Plan {
    const { demand } = job;
    const noun = `${deviceWords(demand)}worker`;
    const blocked = (reason: string): Plan => ({ blocked: reason, eligible: new Candidates([]), groups: [], noun });
    const device = this.workersWhere(`device ${deviceKey(demand)}`, (w) => servesDevice(w, demand));
    if (device.isEmpty()) return blocked(this.missingDeviceReason(demand));

    const filters: Array<[key: string, test: (w: SchedulerWorker) => boolean, reason: string]> = [];
    if (!job.preemptible) {
      filters.push(["non-preemptible", (w) => w.attributes.preemptible !== "true", `every ${noun} is preemptible and the job does not accept preemptible workers`]);
    }
    const regions = job.regions ?? [];
    if (regions.length > 0) {
      const where = `${regions.length === 1 ? "region" : "regions"} ${regions.join(", ")}`;
      filters.push([where, (w) => regions.includes(w.attributes.region ?? ""), `no ${noun} in ${where}`]);
    }
    const zone = job.zone;
    if (zone !== undefined) filters.push([`zone ${zone}`, (w) => w.attributes.zone === zone, `no ${noun} in zone ${zone}`]);
    for (const c of job.constraints) {
      if (!c.preferred) filters.push([constraintKey(c), (w) => matchesConstraint(w, c), `no ${noun} matches constraint ${formatConstraint(c)}`]);
    }
    let eligibleSet = device;
    for (const [key, test, reason] of filters) {
      eligibleSet = eligibleSet.and(this.workersWhere(key, test));
      if (eligibleSet.isEmpty()) return blocked(reason);
    }

    const preferred = job.constraints.filter((c) => c.preferred).map((c) => this.workersWhere(constraintKey(c), (w) => matchesConstraint(w, c)));
    const slots = eligibleSet.members(this.slots);
    const ordered = rankSlots(slots, preferred);
    const eligible = new Candidates(ordered);
    const groupedBy = job.sameZone ? ("zone" as const) : job.sameRegion ? ("region" as const) : undefined;
    const groups = groupedBy ? groupSlots(ordered, groupedBy).map((g) => new Candidates(g)) : [eligible];
    const filtered = slots.length < device.size();
    return { eligible, groups, noun: filtered ? `matching ${noun}` : noun, ...(groupedBy ? { groupedBy } : {}) };
  }

  /** Workers passing one filter; each filter is evaluated once per pass. */
  private workersWhere(key: string, test: (worker: SchedulerWorker) => boolean): WorkerSet {
    let set = this.sets.get(key);
    if (!set) {
      set = WorkerSet.where(this.slots, test);
      this.sets.set(key, set);
    }
    return set;
  }

  private missingDeviceReason(demand: TaskDemand): string {
    if (this.slots.length === 0) return "no workers are registered";
    const have = new Set<string>();
    for (const slot of this.slots) {
      if (slot.worker.capacity.deviceType === demand.deviceType) have.add(slot.worker.capacity.deviceVariant);
    }
    if (have.size === 0) return `no worker has a ${demand.deviceType}`;
    return `no worker has ${demand.deviceType} variant ${demand.deviceVariant} (registered: ${[...have].sort().join(", ")})`;
  }
}

/**
 * Placement order for one kind of job: workers meeting more preferred
 * constraints first, the base order (plain machines, then smallest first)
 * within each count.
 */
function rankSlots(slots: readonly Slot[], preferred: readonly WorkerSet[]): Slot[] {
  if (preferred.length === 0) return [...slots];
  // A stable bucket sort: bucket i holds the slots meeting i preferred constraints.
  const buckets: Slot[][] = preferred.map(() => []);
  buckets.push([]);
  for (const slot of slots) {
    let met = 0;
    for (const set of preferred) if (set.has(slot)) met++;
    buckets[met]?.push(slot);
  }
  return buckets.reverse().flat();
}

/** Splits ranked slots by region or zone; groups come in the order of their best-ranked worker. */
function groupSlots(slots: readonly Slot[], attribute: "region" | "zone"): Slot[][] {
  const groups = new Map<string, Slot[]>();
  for (const slot of slots) {
    const value = slot[attribute];
    const group = groups.get(value);
    if (group) group.push(slot);
    else groups.set(value, [slot]);
  }
  return [...groups.values()];
}

// ---------------------------------------------------------------------------
// Pending reasons.

function resourceName(r: Resource, demand: TaskDemand): string {
  if (r !== "devices") return r;
  return demand.deviceType === "tpu" ? "tpu chips" : "gpu";
}

function formatAmount(r: Resource, amount: number): string {
  if (r === "cpu") return String(amount / 1000);
  if (r === "memory" || r === "disk") return formatByteSize(amount);
  return String(amount);
}

/** "cpu 4, memory 8g": the non-zero parts of a demand. */
function describeNeed(need: Need, demand: TaskDemand): string {
  return RESOURCES.filter((r) => need[r] > 0).map((r) => `${resourceName(r, demand)} ${formatAmount(r, need[r])}`).join(", ");
}

/** Names what is short for an unplaced job, and whether it could never fit on the registered workers. */
function explain({ job, plan, need, gangFitted }: Outcome): { reason: string; never: boolean } {
  if (plan.blocked) return { reason: plan.blocked, never: true };
  const { noun, eligible } = plan;
  const demand = job.demand;
  const count = job.taskIndexes.length;

  const largest = eligible.largestCapacity();
  for (const r of RESOURCES) {
    if (need[r] > largest[r]) {
      return { reason: `insufficient ${resourceName(r, demand)}: wants ${formatAmount(r, need[r])}, largest ${noun} has ${formatAmount(r, largest[r])}`, never: true };
    }
  }
  if (eligible.fitsWhenIdle(need) === 0) {
    return { reason: `no ${noun} has ${describeNeed(need, demand)} together`, never: true };
  }
  if (gangFitted !== undefined) {
    const where = plan.groupedBy ? ` in one ${plan.groupedBy}` : "";
    const idle = Math.max(...plan.groups.map((g) => g.fitsWhenIdle(need)));
    if (idle < count) {
      return { reason: `gang of ${count} tasks: at most ${idle} fit${where} even when every worker is idle`, never: true };
    }
    if (gangFitted > 0) return { reason: `gang of ${count} tasks: only ${gangFitted} fit now${where}`, never: false };
  }

  const free = eligible.mostFree();
  for (const r of RESOURCES) {
    if (need[r] > free[r]) {
      return { reason: `insufficient ${resourceName(r, demand)}: wants ${formatAmount(r, need[r])}, most free on any ${noun} is ${formatAmount(r, Math.max(0, free[r]))}`, never: false };
    }
  }
  return { reason: `no ${noun} has ${describeNeed(need, demand)} free at once`, never: false };
}
