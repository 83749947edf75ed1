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
