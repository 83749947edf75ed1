// The controller's records in the scheduler's terms: a job's per-task
// demand, its pending tasks, the resources a worker's attempts hold, the
// attempts a worker is still stopping, and a worker as a pass sees it (with
// the attempts it could preempt and the room being freed). Pure: the clock
// and the jobs come in as arguments.
import { isGang } from "../../core/job.js";
import { isTaskFinished } from "../../core/status.js";
import { tpuTopology } from "../../core/tpu.js";
import { TPU_SLICE_LABEL } from "../platform/types.js";
import type { AttemptRecord, JobRecord, TaskRecord, WorkerCapacityRecord, WorkerRecord } from "./model.js";
import type { PendingJob, RunningAttempt, SchedulerWorker, SliceDemand, TaskDemand } from "./scheduler/index.js";
import type { WorkerRuntime } from "./workers.js";

/** What one task of the job needs. */
export function demandOf(job: JobRecord): TaskDemand {
  const r = job.request.resources;
  const device = r.device;
  return {
    cpu: r.cpu,
    memory: r.memory,
    disk: r.disk,
    deviceType: device.kind,
    deviceVariant: device.kind === "cpu" ? "" : device.variant,
    deviceCount: r.chipsPerTask(),
  };
}

/** What the controller adds to a job's pending tasks: its group while still being placed, its active reservation. */
export type PendingContext = Pick<PendingJob, "groupId" | "sameRegion" | "sameZone" | "reservationId" | "slice">;

/** Whether a task has an attempt that holds its worker now (placed, building or running). */
export function isTaskActive(task: TaskRecord): boolean {
  return task.state !== "pending" && !isTaskFinished(task.state);
}

/** Hosts per slice of a job's TPU (1 for a single-host slice), or undefined when it has none. */
export function tpuHostsOf(job: JobRecord): number | undefined {
  const device = job.request.resources.device;
  return device.kind === "tpu" ? tpuTopology(device.variant).hostCount : undefined;
}

/**
 * For a job on multi-host TPU slices: the hosts per slice, and the slices
 * its active tasks hold (read from their workers' `fluster-tpu-slice` label),
 * by slice number; undefined for any other job.
 */
export function sliceDemandOf(job: JobRecord, attributesOf: (workerId: string) => Readonly<Record<string, string>> | undefined): SliceDemand | undefined {
  const hosts = tpuHostsOf(job);
  if (hosts === undefined || hosts <= 1) return undefined;
  const held: Record<number, string> = {};
  for (const task of job.tasks) {
    if (!isTaskActive(task) || task.workerId === undefined) continue;
    const slice = attributesOf(task.workerId)?.[TPU_SLICE_LABEL];
    if (slice !== undefined) held[Math.floor(task.taskIndex / hosts)] = slice;
  }
  return { hosts, ...(Object.keys(held).length > 0 ? { held } : {}) };
}

/** The job's pending tasks as the scheduler takes them, or undefined when none is pending. */
export function pendingJobOf(job: JobRecord, context: PendingContext = {}): PendingJob | undefined {
  const taskIndexes = job.tasks.filter((t) => t.state === "pending").map((t) => t.taskIndex);
  if (taskIndexes.length === 0) return undefined;
  const r = job.request;
  return {
    jobId: job.jobId,
    priority: r.priority,
    sequence: job.seq,
    demand: demandOf(job),
    taskIndexes,
    // A multi-task job starting whole places all its tasks or none; a gang
    // always does, also when only some of its tasks are pending (a task
    // refused by its worker joins running siblings alone).
    gang: isGang(r) || (taskIndexes.length === job.tasks.length && job.tasks.length > 1),
    constraints: r.constraints,
    preemptible: r.resources.preemptible,
    ...(r.resources.regions ? { regions: r.resources.regions } : {}),
    ...(r.resources.zone ? { zone: r.resources.zone } : {}),
    ...context,
  };
}

/** What a worker's active attempts hold, summed from their jobs' demands. */
export function usageOf(worker: WorkerRecord, attempts: Iterable<AttemptRecord>, jobOf: (jobId: string) => JobRecord | undefined): WorkerCapacityRecord {
  const used: WorkerCapacityRecord = { cpu: 0, memory: 0, disk: 0, deviceType: worker.capacity.deviceType, deviceVariant: worker.capacity.deviceVariant, deviceCount: 0 };
  for (const a of attempts) {
    const job = jobOf(a.jobId);
    if (!job) continue;
    const d = demandOf(job);
    used.cpu += d.cpu;
    used.memory += d.memory;
    used.disk += d.disk;
    used.deviceCount += d.deviceCount;
  }
  return used;
}

/** A worker as the scheduler sees it. */
export function schedulerWorkerOf(worker: WorkerRecord, used: WorkerCapacityRecord): SchedulerWorker {
  return {
    workerId: worker.workerId,
    capacity: worker.capacity,
    used: { cpu: used.cpu, memory: used.memory, disk: used.disk, deviceCount: used.deviceCount },
    attributes: worker.attributes,
  };
}

/**
 * Attempts the controller stopped whose worker has not confirmed them gone,
 * within the worker-lost grace (past it, the room is taken as free: the
 * worker refuses a task "no room" if it was not).
 */
export function stoppingOn(worker: Pick<WorkerRuntime, "stopping">, clock: () => number): AttemptRecord[] {
  const now = clock();
  const out: AttemptRecord[] = [];
  for (const [attempt, until] of worker.stopping) if (until > now) out.push(attempt);
  return out;
}

/** What a worker's active attempts hold, and the attempts it is still stopping. */
export function usedBy(worker: WorkerRuntime, clock: () => number, jobOf: (jobId: string) => JobRecord | undefined): WorkerCapacityRecord {
  return usageOf(worker.record, [...worker.attempts, ...stoppingOn(worker, clock)], jobOf);
}

/** A worker as the scheduler sees it, with the attempts it could preempt and the room being freed. */
export function schedulerWorkerFor(worker: WorkerRuntime, clock: () => number, jobOf: (jobId: string) => JobRecord | undefined): SchedulerWorker {
  const running: RunningAttempt[] = [];
  for (const attempt of worker.attempts) {
    const job = jobOf(attempt.jobId);
    if (!job || job.request.priority === "production") continue;
    const { cpu, memory, disk, deviceCount } = demandOf(job);
    running.push({ attemptId: attempt.attemptId, jobId: job.jobId, priority: job.request.priority, usage: { cpu, memory, disk, deviceCount }, startedAt: attempt.startedAt ?? attempt.createdAt });
  }
  const stopping = usageOf(worker.record, stoppingOn(worker, clock), jobOf);
  return {
    ...schedulerWorkerOf(worker.record, usedBy(worker, clock, jobOf)),
    running,
    stopping: { cpu: stopping.cpu, memory: stopping.memory, disk: stopping.disk, deviceCount: stopping.deviceCount },
  };
}
