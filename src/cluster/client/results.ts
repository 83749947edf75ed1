// A finished function job's return values, read from its tasks' succeeded
// attempts (the controller keeps each one's codec-encoded value), with an
// error that names the task whenever there is no value to give.
import { FlusterError } from "../../core/errors.js";
import type { JobId } from "../../core/job.js";
import { decodeValue } from "../../rpc/codec.js";
import { jobStateFromProto, taskStateFromProto } from "../../rpc/convert.js";
import { TaskState, type Job, type Task } from "../../rpc/gen/fluster/cluster/v1/types_pb.js";

/** Options of {@link Cluster.results}. */
export interface ResultsOptions {
  /** Give up waiting for an unfinished job after this long, with a `deadline_exceeded` error. @default no limit */
  timeoutSeconds?: number;
  /** Stops waiting for an unfinished job when it aborts: rejects with `signal.reason`; the job runs on. @default none */
  signal?: AbortSignal;
}

/** Why a job has no return values: a command job has none to give. */
export function commandJobError(jobId: JobId): FlusterError {
  return new FlusterError(`job ${jobId} is a command job: it has no return values; read its logs (fluster job logs ${jobId})`, "failed_precondition");
}

/** Whether the job runs a command rather than a remote function. */
export function isCommandJob(job: Job): boolean {
  return job.spec?.entrypoint?.kind.case === "command";
}

/**
 * The first task that explains why a job ended other than `succeeded`: a
 * failed one first (the cause; gang members killed after it are not), else
 * any task that did not succeed.
 */
export function decisiveTask(job: Job): Task | undefined {
  const tasks = [...job.tasks].sort((a, b) => a.taskIndex - b.taskIndex);
  return tasks.find((t) => t.state === TaskState.FAILED) ?? tasks.find((t) => t.state !== TaskState.SUCCEEDED);
}

/**
 * Why a finished job has no values, naming the task at fault:
 * "job X failed: task 2 failed: RangeError: too big".
 */
export function noResultsMessage(job: Job): string {
  const status = jobStateFromProto(job.state);
  const task = decisiveTask(job);
  const taskPart = task ? `: task ${task.taskIndex} ${taskStateFromProto(task.state)}${task.errorMessage ? `: ${task.errorMessage}` : ""}` : "";
  const jobPart = !task?.errorMessage && job.errorMessage ? `: ${job.errorMessage}` : "";
  return `job ${job.jobId} ${status}${taskPart}${jobPart}`;
}

/**
 * One decoded value per task, in task order, from a job that `succeeded`.
 * Each value is the one of the task's last succeeded attempt. Decoding needs
 * no user code: the codec turns class instances into plain data on the way.
 */
export function decodeJobResults(job: Job): unknown[] {
  const tasks = [...job.tasks].sort((a, b) => a.taskIndex - b.taskIndex);
  return tasks.map((task) => {
    const attempt = [...task.attempts].reverse().find((a) => a.state === TaskState.SUCCEEDED);
    if (!attempt || attempt.result.length === 0) {
      throw new FlusterError(
        `job ${job.jobId}: task ${task.taskIndex} succeeded but the controller holds no result for it${attempt ? ` (attempt ${attempt.attemptId})` : ""}`,
        "not_found",
      );
    }
    try {
      return decodeValue(attempt.result);
    } catch (err) {
      throw new FlusterError(`job ${job.jobId}: the result of task ${task.taskIndex} does not decode: ${(err as Error).message}`, "internal", { cause: err });
    }
  });
}
