// The autoscaler's decision: from the demand no current worker takes, the VMs
// already asked for and each group's backoff, which VMs to allocate and which
// idle ones to release. Pure: no I/O, no clock (the caller passes `now`).
import { PRIORITIES, type Constraint } from "../../core/job.js";
import { ValidationError } from "../../core/errors.js";
import { RESOURCES, fits, maxOver, tasksThatFit, toNeed, toSlot, type Amounts, type Need } from "../controller/scheduler/amounts.js";
import { describeNeed, formatAmount, resourceName } from "../controller/scheduler/explain.js";
import { deviceCheck, deviceKey, deviceWords, feasibilityChecks } from "../controller/scheduler/feasibility.js";
import { FirstFitTree } from "../controller/scheduler/first-fit-tree.js";
import { tpuTopology } from "../../core/tpu.js";
import type { SchedulerWorker } from "../controller/scheduler/index.js";
import type {
  AllocateAction,
  AutoscalerInput,
  GroupBackoff,
  GroupStatus,
  PendingDemand,
  ReleaseAction,
  ScaleGroup,
  ScalingDecision,
  UnfittableDemand,
  VmRecord,
} from "./types.js";

/** A group during one decision: its counts, and the bins (VMs) demand is packed into. */
interface GroupWork {
  readonly group: ScaleGroup;
  /** The group's shape as the worker a VM of it will register as, for the scheduler's feasibility checks. */
  readonly worker: SchedulerWorker;
  /** One VM's room, in the scheduler's units (millicores). */
  readonly capacity: Readonly<Amounts>;
  readonly vms: GroupStatus["vms"];
  /** Idle ready VMs, longest idle first. */
  readonly idle: VmRecord[];
  /** Set while the group may not allocate. */
  readonly backoff?: GroupBackoff;
  /** Bins demand may use: requested and booting VMs first, then VMs it may still add. */
  readonly allowed: number;
  /** Pending tasks whose filters and size this group passes (bounds the bins worth building). */
  eligibleTasks: number;
  bins: Amounts[];
  tree?: FirstFitTree;
  /**
   * Per task size (`Need.key`): no bin before this index has room for it.
   * Room only shrinks while packing (a gang's rollback clears them), so a
   * search starts there instead of crossing full bins again for every task.
   */
  readonly cursors: Map<string, number>;
  /** Bins used: the highest used index + 1 (first fit fills them in order). */
  used: number;
  placedTasks: number;
  waitingTasks: number;
}

/** The groups a kind of demand may use, or why none could ever serve it. */
interface Plan {
  readonly groups: readonly GroupWork[];
  readonly blocked?: string;
}

/** Filter plans of one device kind: for entries without filters by `preemptible`, else by a key naming the filters. */
interface DevicePlans {
  readonly plain: [FilterPlan | undefined, FilterPlan | undefined];
  readonly filtered: Map<string, FilterPlan>;
}

/** Entries with the same filters and task demand: their plan, and their pack unit per priority band. */
interface Kind {
  /** With cpu and memory (the keys it is found under), the demand it stands for. */
  readonly disk: number;
  readonly deviceCount: number;
  readonly need: Need;
  readonly plan: Plan;
  readonly units: PackUnit[];
}

/** Tasks packed together: a gang entry, or every non-gang entry of one band and plan. */
interface PackUnit {
  readonly need: Need;
  readonly plan: Plan;
  readonly band: number;
  /** The first entry's place in the input: ties keep input order. */
  readonly index: number;
  readonly gang: boolean;
  taskCount: number;
}

/** The groups passing a kind of demand's filters (device, preemptible, regions, zone, constraints), with its plans per task size. */
interface FilterPlan extends Plan {
  readonly noun: string;
  readonly bySize: Map<string, Plan>;
  /** Kinds of demand under these filters, by cpu, then memory. */
  readonly kinds: Map<number, Map<number, Kind[]>>;
}

const BAND = new Map(PRIORITIES.map((p, i) => [p, i]));
const DEFAULT_BAND = PRIORITIES.indexOf("interactive");
const NO_USE = Object.freeze({ cpu: 0, memory: 0, disk: 0, deviceCount: 0 });
/** Attribute keys a shape sets from its own fields; labels may not override them. */
const SHAPE_KEYS = new Set(["region", "zone", "preemptible", "device-type", "device-variant"]);

/**
 * Decides one autoscaling step at `now` (epoch ms). The same input gives the
 * same decision.
 *
 * - Demand is packed first fit decreasing: entries in priority band order
 *   (production first), then largest task first (devices, cpu, memory,
 *   disk), then input order (non-gang entries of one band, size and
 *   filters are packed together, at the first one's place). Each task goes to the first group, in
 *   `groups` order, whose shape passes the scheduler's feasibility checks
 *   (device, preemptible, regions, zone, required constraints) and has
 *   room: the operator lists groups in the order they are to be used (say
 *   the cheapest first). CPU-only demand uses groups with GPUs or TPUs only
 *   when no group without them passes its filters and holds a task.
 *   Within a group, tasks fill the requested and booting
 *   VMs first (they will arrive empty, so they are not asked for twice), then
 *   new VMs, up to `maxVms` counting requested, booting, ready and draining
 *   VMs. A `gang` entry goes whole into one group or waits.
 * - A group in backoff (`now` < `nextAttemptAt`) allocates nothing, not even
 *   for `minVms`; its requested and booting VMs still count as room, and
 *   demand it cannot take goes on to the next fitting group.
 * - Every group is brought up to `minVms` (requested, booting and ready).
 * - A ready VM idle for `idleTimeoutSeconds` or more is released, longest
 *   idle first, while more than `minVms` ready VMs remain. An idle VM of a
 *   group no longer configured is released at once.
 * - Demand that no group's shape could ever serve (even at `maxVms`, idle)
 *   is listed in `unfittable` with what is missing, and gets no VM.
 *
 * - A multi-host TPU slice is one VM of its group (`maxVms` counts
 *   slices) with the room of all its hosts, so a slice's worth of tasks
 *   (one per host) asks for one VM.
 *
 * Not yet: preferred constraints (they rank workers, not groups); the room
 * of a slice is summed over its hosts, so a task asking more than one host
 * has is not refused here (the scheduler refuses it on the hosts). Throws a ValidationError for duplicate group names or
 * `minVms` > `maxVms`.
 */
export function decideScaling(input: AutoscalerInput, now: number): ScalingDecision {
  const work = buildGroups(input, now);
  const byName = new Map(work.map((g) => [g.group.name, g]));

  // Plans per kind of demand (filters, then size), worked out once per kind.
  const plans = new Map<string, DevicePlans>();
  // Tasks to pack. Non-gang entries of one band and one kind are one unit:
  // first fit packs them the same one by one or all at once, and 10,000
  // one-task jobs then cost one packing per kind.
  const units: PackUnit[] = [];
  const unfittable: UnfittableDemand[] = [];
  for (let index = 0; index < input.demand.length; index++) {
    const entry = input.demand[index] as PendingDemand;
    if (entry.taskCount <= 0) continue;
    const kind = kindOf(entry, work, plans);
    const { need, plan } = kind;
    if (plan.blocked !== undefined) {
      unfittable.push({ kind: entry.kind, id: entry.id, reason: plan.blocked });
      continue;
    }
    const gangBlocked = entry.gang ? gangReason(entry, need, plan) : undefined;
    if (gangBlocked !== undefined) {
      unfittable.push({ kind: entry.kind, id: entry.id, reason: gangBlocked });
      continue;
    }
    const band = entry.priority === undefined ? DEFAULT_BAND : (BAND.get(entry.priority) ?? DEFAULT_BAND);
    if (entry.gang) {
      units.push({ need, plan, band, index, gang: true, taskCount: entry.taskCount });
      continue;
    }
    const unit = kind.units[band];
    if (unit) unit.taskCount += entry.taskCount;
    else units.push((kind.units[band] = { need, plan, band, index, gang: false, taskCount: entry.taskCount }));
  }

  for (const unit of units) for (const g of unit.plan.groups) g.eligibleTasks += unit.taskCount;
  for (const g of work) {
    const count = Math.min(g.allowed, g.vms.requested + g.vms.booting + g.eligibleTasks);
    g.bins = Array.from({ length: count }, () => ({ ...g.capacity }));
    if (count > 0) g.tree = new FirstFitTree(g.bins);
  }

  units.sort((a, b) => {
    return a.band - b.band || b.need.devices - a.need.devices || b.need.cpu - a.need.cpu || b.need.memory - a.need.memory || b.need.disk - a.need.disk || a.index - b.index;
  });
  for (const { gang, taskCount, need, plan } of units) {
    const left = gang ? packGang(taskCount, need, plan.groups) : packSpread(taskCount, need, plan.groups);
    if (left > 0) for (const g of plan.groups) g.waitingTasks += left;
  }

  const allocations: AllocateAction[] = [];
  const releases: ReleaseAction[] = [];
  const groups = work.map((g) => settle(g, now, allocations, releases));
  // VMs of groups no longer configured: released once idle, as nothing sizes them any more.
  for (const vm of input.vms) {
    if (!byName.has(vm.group) && vm.state === "ready" && vm.idleSince !== undefined) {
      releases.push({ type: "release", vmId: vm.vmId, reason: `its scale group ${vm.group} is not configured` });
    }
  }
  return { actions: [...allocations, ...releases], groups, unfittable };
}

function buildGroups(input: AutoscalerInput, now: number): GroupWork[] {
  const seen = new Set<string>();
  const work: GroupWork[] = [];
  const vmsOf = new Map<string, VmRecord[]>();
  for (const vm of input.vms) {
    const list = vmsOf.get(vm.group);
    if (list) list.push(vm);
    else vmsOf.set(vm.group, [vm]);
  }
  input.groups.forEach((group, i) => {
    const field = `groups[${i}]`;
    if (seen.has(group.name)) throw new ValidationError(`${field}.name`, `repeats the scale group name ${JSON.stringify(group.name)}`);
    seen.add(group.name);
    if (group.minVms > group.maxVms) throw new ValidationError(`${field}.minVms`, `(${group.minVms}) of scale group ${group.name} exceeds its maxVms (${group.maxVms})`);
    const vms = { requested: 0, booting: 0, ready: 0, draining: 0 };
    const idle: VmRecord[] = [];
    for (const vm of vmsOf.get(group.name) ?? []) {
      if (vm.state === "released" || vm.state === "failed") continue;
      vms[vm.state] += 1;
      if (vm.state === "ready" && vm.idleSince !== undefined) idle.push(vm);
    }
    idle.sort((a, b) => (a.idleSince ?? 0) - (b.idleSince ?? 0) || (a.vmId < b.vmId ? -1 : a.vmId > b.vmId ? 1 : 0));
    const backoff = input.backoff?.[group.name];
    const backingOff = backoff !== undefined && now < backoff.nextAttemptAt;
    const inFlight = vms.requested + vms.booting;
    const worker = shapeWorker(group);
    const { cpu, memory, disk, devices } = toSlot(worker, 0, new Map());
    // A multi-host TPU slice is one VM of its group: its room is every host's.
    const hosts = hostsPerVm(group);
    work.push({
      group,
      worker,
      capacity: { cpu: cpu * hosts, memory: memory * hosts, disk: disk * hosts, devices: devices * hosts },
      vms,
      idle,
      ...(backingOff ? { backoff } : {}),
      allowed: backingOff ? inFlight : Math.max(inFlight, group.maxVms - vms.ready - vms.draining),
      eligibleTasks: 0,
      bins: [],
      cursors: new Map(),
      used: 0,
      placedTasks: 0,
      waitingTasks: 0,
    });
  });
  return work;
}

/**
 * Hosts in one VM of the group: a multi-host TPU slice (`v5litepod-16`: 4)
 * is allocated and counted as one VM, with one worker per host; 1 for
 * every other shape.
 */
export function hostsPerVm(group: ScaleGroup): number {
  const { resources } = group.shape;
  return resources.deviceType === "tpu" ? tpuTopology(resources.deviceVariant, "shape.tpu.variant").hostCount : 1;
}

/** The worker a VM of this group registers as: its capacity, and attributes from the shape. */
function shapeWorker(group: ScaleGroup): SchedulerWorker {
  const { shape } = group;
  const attributes: Record<string, string> = {};
  for (const [key, value] of Object.entries(shape.labels ?? {})) if (!SHAPE_KEYS.has(key)) attributes[key] = value;
  if (shape.region !== undefined) attributes.region = shape.region;
  if (shape.zone !== undefined) attributes.zone = shape.zone;
  attributes.preemptible = String(shape.preemptible);
  attributes["device-type"] = shape.resources.deviceType;
  if (shape.resources.deviceType !== "cpu" && shape.resources.deviceVariant) attributes["device-variant"] = shape.resources.deviceVariant;
  return { workerId: group.name, capacity: shape.resources, used: NO_USE, attributes };
}

/**
 * The groups a demand may use, worked out once per kind (device and filters)
 * and then per size: groups passing the scheduler's feasibility checks whose
 * shape holds one task and whose `maxVms` is above 0. When none does, the
 * reason names the first check that no group passes.
 */
function kindOf(entry: PendingDemand, work: readonly GroupWork[], plans: Map<string, DevicePlans>): Kind {
  // Found for every entry, so strings are built only for entries with
  // filters (regions, zone, constraints), and task sizes key nested maps by
  // number. A NUL cannot occur in names from a config file or a job request,
  // so it keeps the parts of a key apart.
  const { demand } = entry;
  const device = deviceKey(demand);
  let byDevice = plans.get(device);
  if (!byDevice) plans.set(device, (byDevice = { plain: [undefined, undefined], filtered: new Map() }));
  let filtered: FilterPlan | undefined;
  if (!entry.regions?.length && entry.zone === undefined && entry.constraints.length === 0) {
    const slot = entry.preemptible ? 1 : 0;
    filtered = byDevice.plain[slot];
    if (!filtered) byDevice.plain[slot] = filtered = filterPlan(entry, work);
  } else {
    let key = entry.preemptible ? "p" : "";
    if (entry.regions?.length) key += `\0regions\0${entry.regions.join("\0")}`;
    if (entry.zone !== undefined) key += `\0zone\0${entry.zone}`;
    for (let i = 0; i < entry.constraints.length; i++) {
      const c = entry.constraints[i] as Constraint;
      if (!c.preferred) key += `\0${c.key}\0${c.op}\0${typeof c.value}\0${c.value ?? ""}\0${c.values?.join("\u0001") ?? ""}`;
    }
    filtered = byDevice.filtered.get(key);
    if (!filtered) byDevice.filtered.set(key, (filtered = filterPlan(entry, work)));
  }
  let byMemory = filtered.kinds.get(demand.cpu);
  if (!byMemory) filtered.kinds.set(demand.cpu, (byMemory = new Map()));
  let list = byMemory.get(demand.memory);
  if (!list) byMemory.set(demand.memory, (list = []));
  for (const kind of list) if (kind.disk === demand.disk && kind.deviceCount === demand.deviceCount) return kind;

  const need = toNeed(demand);
  let plan: Plan | undefined = filtered.blocked !== undefined ? filtered : filtered.bySize.get(need.key);
  if (!plan) {
    plan = sizePlan(entry, need, filtered);
    filtered.bySize.set(need.key, plan);
  }
  const kind: Kind = { disk: demand.disk, deviceCount: demand.deviceCount, need, plan, units: [] };
  list.push(kind);
  return kind;
}

function filterPlan(entry: PendingDemand, work: readonly GroupWork[]): FilterPlan {
  const { demand } = entry;
  const noun = `${deviceWords(demand)}scale group`;
  const bySize = new Map<string, Plan>();
  const kinds = new Map<number, Map<number, Kind[]>>();
  if (work.length === 0) return { groups: [], blocked: "no scale groups are configured", noun, bySize, kinds };
  const device = deviceCheck(demand);
  let groups = work.filter((g) => device.test(g.worker));
  if (groups.length === 0) return { groups, blocked: missingDevice(work, entry), noun, bySize, kinds };
  for (const check of feasibilityChecks(entry, noun)) {
    groups = groups.filter((g) => check.test(g.worker));
    if (groups.length === 0) return { groups, blocked: check.reason, noun, bySize, kinds };
  }
  return { groups, noun, bySize, kinds };
}

function sizePlan(entry: PendingDemand, need: Need, filtered: FilterPlan): Plan {
  const { demand } = entry;
  const { noun } = filtered;
  let groups = filtered.groups;
  const largest = maxOver(groups.map((g) => g.capacity));
  for (const r of RESOURCES) {
    if (need[r] > largest[r]) {
      return { groups: [], blocked: `insufficient ${resourceName(r, demand)}: wants ${formatAmount(r, need[r])}, largest ${noun} has ${formatAmount(r, largest[r])}` };
    }
  }
  groups = groups.filter((g) => fits(g.capacity, need));
  if (groups.length === 0) return { groups, blocked: `no ${noun} has ${describeNeed(need, demand)} together` };
  groups = groups.filter((g) => g.group.maxVms > 0);
  if (groups.length === 0) return { groups, blocked: `every ${noun} that fits has maxVms 0` };
  // A GPU or TPU VM bought for CPU-only work is money spent on idle accelerators.
  const plain = demand.deviceType === "cpu" ? groups.filter((g) => g.capacity.devices === 0) : [];
  return { groups: plain.length > 0 ? plain : groups };
}

function missingDevice(work: readonly GroupWork[], entry: PendingDemand): string {
  const { deviceType, deviceVariant } = entry.demand;
  const have = new Set<string>();
  for (const g of work) if (g.worker.capacity.deviceType === deviceType) have.add(g.worker.capacity.deviceVariant);
  if (have.size === 0) return `no scale group has a ${deviceType}`;
  return `no scale group has ${deviceType} variant ${deviceVariant} (configured: ${[...have].sort().join(", ")})`;
}

/** Why a gang can never start in one group, or undefined when some group could hold it at `maxVms`. */
function gangReason(entry: PendingDemand, need: Need, plan: Plan): string | undefined {
  let most = 0;
  for (const g of plan.groups) {
    const perVm = Math.min(tasksThatFit(g.capacity, need), entry.taskCount);
    const total = perVm * g.group.maxVms;
    if (total >= entry.taskCount) return undefined;
    most = Math.max(most, total);
  }
  return `gang of ${entry.taskCount} tasks: at most ${most} fit in one scale group at its maxVms`;
}

/** Packs `count` tasks into the groups in order, first fit; returns how many got no room. */
function packSpread(count: number, need: Need, groups: readonly GroupWork[]): number {
  let left = count;
  for (const g of groups) {
    if (left === 0) break;
    left -= fill(g, need, left, undefined);
  }
  return left;
}

/** Packs all `count` tasks into the first group that holds them all; returns `count` when none does. */
function packGang(count: number, need: Need, groups: readonly GroupWork[]): number {
  for (const g of groups) {
    const usedBefore = g.used;
    const taken: Array<[number, number]> = [];
    if (fill(g, need, count, taken) === count) return 0;
    // Not whole: give the room back so later demand sees the group as it was.
    for (const [index, n] of taken) {
      const bin = g.bins[index] as Amounts;
      change(bin, need, -n);
      g.tree?.refresh(index);
    }
    g.used = usedBefore;
    g.cursors.clear();
    g.placedTasks -= taken.reduce((sum, [, n]) => sum + n, 0);
  }
  return count;
}

/** Places up to `count` tasks in the group's bins, first fit; returns how many were placed. */
function fill(g: GroupWork, need: Need, count: number, taken: Array<[number, number]> | undefined): number {
  const tree = g.tree;
  if (!tree) return 0;
  let placed = 0;
  let from = g.cursors.get(need.key) ?? 0;
  // Each round fills one bin with as many tasks as fit, so the loop runs at most once per bin.
  while (placed < count) {
    const index = tree.findFirst(need, from);
    if (index < 0) {
      from = g.bins.length;
      break;
    }
    from = index;
    const bin = g.bins[index] as Amounts;
    // At least 1, as the bin was found to fit; a demand of nothing takes the rest at once.
    const n = Math.min(count - placed, tasksThatFit(bin, need));
    change(bin, need, n);
    tree.refresh(index);
    taken?.push([index, n]);
    placed += n;
    g.used = Math.max(g.used, index + 1);
  }
  g.cursors.set(need.key, from);
  g.placedTasks += placed;
  return placed;
}

/** Takes `n` tasks' room from a bin (negative `n` gives it back). */
function change(bin: Amounts, need: Need, n: number): void {
  bin.cpu -= n * need.cpu;
  bin.memory -= n * need.memory;
  bin.disk -= n * need.disk;
  bin.devices -= n * need.devices;
}

/** Turns a group's packing into its actions and status. */
function settle(g: GroupWork, now: number, allocations: AllocateAction[], releases: ReleaseAction[]): GroupStatus {
  const { group, vms } = g;
  const inFlight = vms.requested + vms.booting;
  const room = g.backoff ? 0 : Math.max(0, group.maxVms - inFlight - vms.ready - vms.draining);
  const forDemand = Math.min(room, Math.max(0, g.used - inFlight));
  const forMin = Math.min(room - forDemand, Math.max(0, group.minVms - inFlight - vms.ready - forDemand));
  const parts: string[] = [];

  if (g.backoff) {
    const { consecutiveFailures: n, nextAttemptAt, lastError } = g.backoff;
    parts.push(`backing off after ${n} failed allocation${n === 1 ? "" : "s"} until ${new Date(nextAttemptAt).toISOString()}${lastError ? ` (${lastError})` : ""}`);
  }
  if (forDemand > 0 || forMin > 0) {
    const why: string[] = [];
    if (forDemand > 0) why.push(`${plural(g.placedTasks, "pending task")} need${g.placedTasks === 1 ? "s" : ""} ${plural(forDemand, "more VM")}${inFlight > 0 ? ` beside ${inFlight} requested or booting` : ""}`);
    if (forMin > 0) why.push(`below minVms (${group.minVms}): ${forMin} more`);
    const reason = why.join("; ");
    allocations.push({ type: "allocate", group: group.name, count: forDemand + forMin, reason });
    parts.push(`allocating ${plural(forDemand + forMin, "VM")}: ${reason}`);
  } else if (g.placedTasks > 0) {
    parts.push(`${plural(inFlight, "requested or booting VM")} will take ${plural(g.placedTasks, "pending task")}`);
  }
  if (g.waitingTasks > 0) {
    // In backoff the backoff part above says why; otherwise the group is full.
    parts.push(g.backoff ? `${plural(g.waitingTasks, "task")} wait` : `at maxVms (${group.maxVms}): ${plural(g.waitingTasks, "task")} wait`);
  }

  // Idle release: longest idle first, keeping minVms ready VMs.
  const timeoutMs = group.idleTimeoutSeconds * 1000;
  let releasable = Math.max(0, vms.ready - group.minVms);
  let released = 0;
  for (const vm of g.idle) {
    if (releasable === 0) break;
    const idleMs = now - (vm.idleSince ?? now);
    if (idleMs < timeoutMs) break;
    releases.push({ type: "release", vmId: vm.vmId, reason: `idle for ${Math.floor(idleMs / 1000)} s (timeout ${group.idleTimeoutSeconds} s)` });
    releasable -= 1;
    released += 1;
  }
  if (released > 0) parts.push(`releasing ${plural(released, "idle VM")}`);
  // Demand this group could serve but that took no VM of it went to a group listed before it.
  if (parts.length === 0) parts.push(g.eligibleTasks > 0 ? "its demand went to groups listed before it" : "no demand");
  return { group: group.name, vms: { ...vms }, allocate: forDemand + forMin, release: released, waitingTasks: g.waitingTasks, reason: parts.join("; ") };
}

function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}
