// The controller's records in the scheduler's terms: a job's per-task
// demand, its pending tasks, and the resources a worker's attempts hold.
import { isGang } from "../../core/job.js";
import type { AttemptRecord, JobRecord, WorkerCapacityRecord, WorkerRecord } from "./model.js";
import type { PendingJob, SchedulerWorker, TaskDemand } from "./scheduler/index.js";

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
export type PendingContext = Pick<PendingJob, "groupId" | "sameRegion" | "sameZone" | "reservationId">;

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
