// The fields the controller's log lines share (docs/logging.md): an attempt's
// ids, a worker's resources, a job's wait. Small pure functions, so every
// line names things the same way.
import { formatByteSize } from "../../core/quantity.js";
import type { AttemptRecord, JobRecord, TaskRecord, WorkerCapacityRecord } from "./model.js";

/** The ids of an attempt, as every line about it carries them. */
export function attemptFields(attempt: AttemptRecord): { jobId: string; taskIndex: number; attemptId: string; workerId: string } {
  return { jobId: attempt.jobId, taskIndex: attempt.taskIndex, attemptId: attempt.attemptId, workerId: attempt.workerId };
}

/** How an attempt is named in a message: `attempt <id> (job <job> task <i>)`. */
export function describeAttempt(attempt: AttemptRecord): string {
  return `attempt ${attempt.attemptId} (job ${attempt.jobId} task ${attempt.taskIndex})`;
}

/** A worker's resources as a log field. */
export function resourcesField(capacity: WorkerCapacityRecord): { cpu: number; memoryBytes: number; diskBytes: number; device: string; deviceCount: number } {
  const device = capacity.deviceType === "cpu" ? "cpu" : `${capacity.deviceType}:${capacity.deviceVariant}`;
  return { cpu: capacity.cpu, memoryBytes: capacity.memory, diskBytes: capacity.disk, device, deviceCount: capacity.deviceCount };
}

/** A worker's resources in a message: `4 cpu, 16 GiB memory, 2 gpu:H100`. */
export function describeResources(capacity: WorkerCapacityRecord): string {
  const devices = capacity.deviceType === "cpu" || capacity.deviceCount === 0 ? "" : `, ${capacity.deviceCount} ${capacity.deviceType}:${capacity.deviceVariant}`;
  return `${capacity.cpu} cpu, ${formatByteSize(capacity.memory)} memory${devices}`;
}

/**
 * Since when a pending task has waited to be placed: the end of its last
 * attempt (it went back to pending then), else its job's submission.
 */
export function pendingSince(job: JobRecord, task: TaskRecord): number {
  return task.attempts.at(-1)?.finishedAt ?? job.submittedAt;
}

/** A job's placement is logged when some task of it waited at least this long (shorter waits are the normal case). */
export const LOGGED_WAIT_MS = 1_000;
