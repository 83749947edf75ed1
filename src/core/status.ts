// Job and task states, and the pure roll-up from task states to a job state.

/** A job's state, rolled up from its tasks. */
export type JobStatus = "pending" | "building" | "running" | "succeeded" | "failed" | "killed" | "unschedulable";

/** Every JobStatus, in lifecycle order. */
export const JOB_STATUSES: readonly JobStatus[] = ["pending", "building", "running", "succeeded", "failed", "killed", "unschedulable"];

/**
 * A task's state. A task runs as a sequence of attempts; this is the state of
 * its latest attempt, or `pending` between attempts.
 */
export type TaskState =
  /** Waiting for a worker with room for it. */
  | "pending"
  /** Placed on a worker; the worker has not reported it started yet. */
  | "assigned"
  /** The worker is preparing its environment. */
  | "building"
  | "running"
  | "succeeded"
  /** Exited non-zero, threw, or exceeded its timeout. */
  | "failed"
  /** Stopped on request (terminate, or its parent ended). */
  | "killed"
  /** Its worker died or stopped answering. */
  | "worker_failed"
  /** Its machine was taken back. */
  | "preempted"
  /** No worker can ever fit it, or its scheduling timeout passed. */
  | "unschedulable";

export const TASK_STATES: readonly TaskState[] = [
  "pending", "assigned", "building", "running", "succeeded", "failed", "killed", "worker_failed", "preempted", "unschedulable",
];

const FINISHED_JOB: ReadonlySet<JobStatus> = new Set(["succeeded", "failed", "killed", "unschedulable"]);
const FINISHED_TASK: ReadonlySet<TaskState> = new Set(["succeeded", "failed", "killed", "unschedulable"]);

/** True when a job will not change state again. */
export function isFinished(status: JobStatus): boolean {
  return FINISHED_JOB.has(status);
}

/**
 * True when a task state is final. `worker_failed` and `preempted` are not:
 * the task is retried while its preemption budget lasts.
 */
export function isTaskFinished(state: TaskState): boolean {
  return FINISHED_TASK.has(state);
}

/**
 * Rolls task states up to the job state: any unschedulable → unschedulable;
 * any failed (past its retry budget) → failed; any killed → killed; all
 * succeeded → succeeded; running once any task has started, building while
 * the furthest task builds, else pending.
 */
export function rollUpJobStatus(tasks: readonly TaskState[]): JobStatus {
  if (tasks.length === 0) return "pending";
  if (tasks.includes("unschedulable")) return "unschedulable";
  if (tasks.includes("failed")) return "failed";
  if (tasks.includes("killed")) return "killed";
  if (tasks.every((t) => t === "succeeded")) return "succeeded";
  if (tasks.some((t) => t === "running" || t === "succeeded")) return "running";
  if (tasks.includes("building")) return "building";
  return "pending";
}
