// What the autoscaler reads and answers: scale groups and their machine
// shapes, the VMs the controller has asked platforms for, the demand no
// current worker takes, and the actions and per-group reasons of a decision.
// Everything here is plain data, so the controller can keep it in SQLite and
// the decision can be tested without a platform.
import type { Constraint, Priority } from "../../core/job.js";
import type { TaskDemand, WorkerCapacity } from "../controller/scheduler/index.js";

/**
 * What one VM of a scale group offers, in the terms a worker registers with:
 * the scheduler sees a VM of this shape, once it is up, as a worker with
 * `resources` as its capacity and the other fields as its attributes
 * (`region`, `zone`, `preemptible` and the labels). A config file's
 * `"8g"`-style sizes and device configs (`ResourceConfig`'s `GpuConfig`,
 * `TpuConfig`) are turned into these numbers when the config is loaded.
 */
export interface MachineShape {
  /**
   * CPU cores, memory and disk in bytes, and the accelerator: `deviceType`,
   * `deviceVariant` (`"H100"`, `"v5litepod-16"`, `""` for none) and
   * `deviceCount` (GPUs, or TPU chips of this one host).
   */
  resources: WorkerCapacity;
  /** The `region` attribute its workers register. @default none */
  region?: string;
  /** The `zone` attribute its workers register. @default none */
  zone?: string;
  /** Whether the platform may take the VM back at any time (spot, preemptible); registered as `preemptible: "true"`. */
  preemptible: boolean;
  /**
   * User labels its workers register, matched by job constraints. The keys
   * `region`, `zone`, `preemptible`, `device-type` and `device-variant`
   * come from the fields above and are ignored here. @default none
   */
  labels?: Readonly<Record<string, string>>;
}

/**
 * A set of interchangeable VMs from one platform, sized by the autoscaler
 * between `minVms` and `maxVms`. A multi-host TPU slice is one VM (its
 * shape gives one host; the slice has a worker per host).
 */
export interface ScaleGroup {
  /** Unique among the cluster's groups; names the group in actions and reasons. */
  name: string;
  /** The platform that allocates its VMs (`"local"`, `"docker"`, `"gcp"`, ...). */
  platform: string;
  shape: MachineShape;
  /** VMs kept up (requested, booting or ready) even without demand. */
  minVms: number;
  /** Most VMs the group holds at once, draining ones included. */
  maxVms: number;
  /** A ready VM that has run nothing for this long is released (down to `minVms`). */
  idleTimeoutSeconds: number;
}

/**
 * Where a VM is in its life. The controller moves VMs along
 * `requested → booting → ready → draining → released`; any state before
 * `released` may end in `failed`.
 */
export type VmState =
  /** Asked of the platform; the platform has not confirmed it yet. */
  | "requested"
  /** The platform created it; its worker has not registered yet. */
  | "booting"
  /** Its worker registered and takes tasks. */
  | "ready"
  /** Takes no new tasks; released once its running attempts end. */
  | "draining"
  /** Given back to the platform: counts for nothing. */
  | "released"
  /** Allocation or boot failed, or the platform lost it: counts for nothing. */
  | "failed";

/** Every VM state, in lifecycle order. */
export const VM_STATES: readonly VmState[] = ["requested", "booting", "ready", "draining", "released", "failed"];

/** One VM the controller asked a platform for, as it keeps it. */
export interface VmRecord {
  /** Unique across the cluster (the platform's name for it, or one the controller gave). */
  vmId: string;
  /** The scale group it belongs to. */
  group: string;
  state: VmState;
  /** When it entered `state` (epoch ms): for the controller's loop to time out a boot; the decision does not read it. */
  since: number;
  /**
   * While `ready` and running no attempt and holding no reservation slot:
   * since when (epoch ms). Absent while it has work; the controller clears it
   * when an attempt is placed there.
   */
  idleSince?: number;
}

/**
 * Tasks that no current worker takes, as the scheduler saw them in its last
 * pass: one entry per job (or per reservation's unheld minimum), with the
 * per-task demand and the filters that decide which groups may serve it.
 * Reservation minimums come in the same form: the controller passes the
 * slots a pass could not hold (`holdCount` less held slots and placed tasks)
 * with `kind: "reservation"`, the reservation's slot shape and its
 * `preemptible`, so the minimum is allocated like any pending task; and it
 * leaves `idleSince` unset on VMs holding slots, so they are never released
 * as idle.
 */
export interface PendingDemand {
  /** Whether this is a job's pending tasks or a reservation's unheld minimum. */
  kind: "job" | "reservation";
  /** The job id or reservation id: names the entry in `unfittable`. */
  id: string;
  /** One task's needs (the scheduler's `TaskDemand`). */
  demand: TaskDemand;
  /** How many tasks (or reservation slots) wait; each needs `demand`. */
  taskCount: number;
  /** Required constraints filter groups (preferred ones are ignored: they rank workers, not machines to buy). */
  constraints: readonly Constraint[];
  /** Whether the tasks accept preemptible VMs. */
  preemptible: boolean;
  /** Regions the tasks may run in; any when absent or empty. */
  regions?: readonly string[];
  /** Zone the tasks must run in; any when absent. */
  zone?: string;
  /**
   * All `taskCount` tasks must start together (a gang, a job group, or
   * same-region/zone placement): they are sized into one scale group, all
   * or none, which also keeps them in one region and zone. @default false
   */
  gang?: boolean;
  /** Higher bands are given VMs first when a group's `maxVms` cannot serve all. @default "interactive" */
  priority?: Priority;
}

/** A group's allocation failures in a row, and when it may try again. */
export interface GroupBackoff {
  /** Allocations that failed since the last one that succeeded (≥ 1 while backing off). */
  consecutiveFailures: number;
  /** The group allocates nothing before this time (epoch ms). */
  nextAttemptAt: number;
  /** The last failure's message, shown in the group's reason. @default none */
  lastError?: string;
}

/** Everything one decision depends on. */
export interface AutoscalerInput {
  /** In the order they are tried for demand (see `decideScaling`). Names must be unique. */
  groups: readonly ScaleGroup[];
  /** The VMs known to the controller; `released` and `failed` ones may be left out. */
  vms: readonly VmRecord[];
  /** What waits for capacity. */
  demand: readonly PendingDemand[];
  /** Groups backing off after failed allocations, by group name. @default none */
  backoff?: Readonly<Record<string, GroupBackoff>>;
}

/** Ask the group's platform for `count` more VMs. */
export interface AllocateAction {
  type: "allocate";
  group: string;
  /** ≥ 1. */
  count: number;
  /** Why, e.g. "12 pending tasks need 3 more VMs" or "below minVms (2): 1 up". */
  reason: string;
}

/** Give a VM back to its platform. */
export interface ReleaseAction {
  type: "release";
  vmId: string;
  /** Why, e.g. "idle for 300 s (timeout 300 s)". */
  reason: string;
}

/** What the controller's loop is to do after a decision. */
export type AutoscalerAction = AllocateAction | ReleaseAction;

/** One group after a decision: its VMs, what is asked of it, and in one sentence why. */
export interface GroupStatus {
  group: string;
  /** VMs per live state before the decision's actions. */
  vms: { requested: number; booting: number; ready: number; draining: number };
  /** VMs this decision allocates (0 when none). */
  allocate: number;
  /** VMs this decision releases (0 when none). */
  release: number;
  /** Pending tasks this group could serve that get no VM in this decision (cap or backoff). */
  waitingTasks: number;
  /**
   * E.g. "no demand", "at maxVms (4): 12 tasks wait", "backing off after 3
   * failed allocations until 2026-12-02T05:30:00.000Z (quota exceeded)",
   * "allocating 3 VMs for 12 pending tasks".
   */
  reason: string;
}

/** Demand that no scale group's shape could ever serve: the controller marks such jobs unschedulable. */
export interface UnfittableDemand {
  kind: PendingDemand["kind"];
  id: string;
  /** What is missing, e.g. "no scale group has a gpu" or "insufficient memory: wants 512g, largest scale group shape has 256g". */
  reason: string;
}

/** A decision: the actions to apply, each group's status, and demand no group fits. */
export interface ScalingDecision {
  /** Allocations in group order, then releases in group order. */
  actions: AutoscalerAction[];
  /** One per input group, in input order. */
  groups: GroupStatus[];
  /** In demand input order. */
  unfittable: UnfittableDemand[];
}
