// What the scheduler reads and answers: workers with their capacity and use,
// jobs with pending tasks, and the placements and pending reasons of a pass.
import type { Constraint, Priority } from "../../../core/job.js";
import type { DeviceType } from "../../../core/resources.js";

/** Amounts of the resources the scheduler counts. */
export interface WorkerUsage {
  /** CPU cores (fractions allowed). */
  cpu: number;
  /** Memory in bytes. */
  memory: number;
  /** Disk in bytes. */
  disk: number;
  /** GPUs or TPU chips. */
  deviceCount: number;
}

/** What a worker machine offers in total. */
export interface WorkerCapacity extends WorkerUsage {
  deviceType: DeviceType;
  /** GPU model (`"H100"`) or TPU variant (`"v5litepod-16"`); `""` for CPU-only machines. */
  deviceVariant: string;
}

/** A registered worker as the scheduler sees it. */
export interface SchedulerWorker {
  workerId: string;
  capacity: WorkerCapacity;
  /** What attempts placed in earlier passes hold. */
  used: WorkerUsage;
  /**
   * `region`, `zone`, `preemptible` (`"true"`/`"false"`) and user labels. The
   * controller also fills `device-type` and `device-variant` from the
   * registered resources; the scheduler reads those two from `capacity`, so a
   * constraint on them can never disagree with what the machine has.
   */
  attributes: Readonly<Record<string, string>>;
  /**
   * Active attempts on this worker that a higher priority band may preempt
   * (every active attempt whose job is not `production`). @default none
   */
  running?: readonly RunningAttempt[];
  /**
   * The part of `used` held by attempts the controller has stopped (killed
   * or preempted) and the worker has not yet confirmed gone: it is not free
   * yet, but will be; a preempting task that fits once it is freed waits
   * for it instead of preempting more. @default nothing
   */
  stopping?: WorkerUsage;
}

/** An attempt that holds room on a worker, as preemption sees it. */
export interface RunningAttempt {
  attemptId: string;
  jobId: string;
  priority: Priority;
  /** What it holds (its job's per-task demand). */
  usage: WorkerUsage;
  /** When it was placed (epoch ms): among equals, the youngest is preempted first, losing the least work. */
  startedAt: number;
}

/** What one task of a job needs: `deviceCount` is ignored for `"cpu"`. */
export interface TaskDemand extends WorkerUsage {
  deviceType: DeviceType;
  /** GPU model (matched case-insensitively; `"auto"` takes any GPU) or TPU variant (matched exactly). */
  deviceVariant: string;
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
  /**
   * Jobs sharing a `groupId` (a job group still being placed) are placed
   * all together or none, every pending task of every job, honouring the
   * `sameRegion`/`sameZone` they carry (the controller sets the group's
   * locality on each of them) across the whole group. @default none
   */
  groupId?: string;
  /**
   * The reservation the job was launched into: its tasks use the room held
   * for that reservation first (see {@link ReservationDemand}). @default none
   */
  reservationId?: string;
  /**
   * Set for a job on multi-host TPU slices: its tasks take whole slices.
   * Only workers labelled as slice hosts (`fluster-tpu-slice`,
   * `fluster-tpu-host`) are eligible, and task `i` goes to the host labelled
   * `i mod hosts` of the job's `⌊i / hosts⌋`-th slice, every pending task or
   * none. @default none: not on slices
   */
  slice?: SliceDemand;
}

/** How a job on multi-host TPU slices spreads over them (see {@link PendingJob.slice}). */
export interface SliceDemand {
  /** Hosts per slice (the TPU variant's host count, more than 1). */
  hosts: number;
  /**
   * The slices its running tasks are on, by slice number (`⌊taskIndex /
   * hosts⌋`): a pending task joins its running siblings on their slice, and
   * no other slice number may take these. @default none
   */
  held?: Readonly<Record<number, string>>;
}

/**
 * A reservation's demand on one pass. Reservations are served in
 * `priority` order (higher first, then `sequence`) before any other job:
 * first the pending tasks of their own jobs, up to `holdCount` tasks, then
 * `holdCount` less those tasks' slots of `shape` are held on workers with
 * room, so no other job is placed there. Holds are not attempts: the
 * controller recomputes them every pass (from the same input they land on
 * the same workers). A reservation's jobs may grow beyond the minimum to
 * `maxTasks` active tasks, in the normal job order, on free room.
 */
export interface ReservationDemand {
  reservationId: string;
  /** Higher is served first. */
  priority: number;
  /** Creation order, for ties. */
  sequence: number;
  /** One slot: the per-task shape of the reservation's minimum. */
  shape: TaskDemand;
  /** Slots to hold: the minimum's replicas less its jobs' active tasks (≥ 0). */
  holdCount: number;
  /** Most active tasks its jobs may have (the maximum's replicas). */
  maxTasks: number;
  /** Active tasks of its jobs now. */
  activeTasks: number;
  /** Whether slots may be held on workers whose `preemptible` attribute is `"true"`. */
  preemptible: boolean;
}

/** What a pass did for one reservation. */
export interface ReservationOutcome {
  /** Slots held (not counting tasks of its jobs placed in this pass). */
  held: number;
  /** Workers holding them, one entry per slot. */
  workerIds: string[];
  /** Tasks of its jobs placed in this pass. */
  placedTasks: number;
  /** Why part of the minimum is not held, e.g. "2 of 3 slots held: insufficient cpu ...". */
  reason?: string;
}

/** An attempt the pass wants stopped so that a higher-band task can run. */
export interface Preemption {
  attemptId: string;
  workerId: string;
  /** The job whose task needs the room. */
  forJobId: string;
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
  /**
   * Attempts to preempt: the fewest lower-band attempts whose room lets
   * pending higher-band tasks run (`production` preempts `interactive` and
   * `batch`, `interactive` preempts `batch`, a band never preempts itself).
   * The tasks that asked stay pending in this pass (their reason says they
   * wait for the preempted attempts to stop) and are placed once the room
   * is free.
   */
  preemptions: Preemption[];
  /** Per reservation in the input. */
  reservations: Map<string, ReservationOutcome>;
}
