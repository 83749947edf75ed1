// Builders shared by the scheduler tests: workers, pending jobs, and placements as strings.
import type { PendingJob, Placement, SchedulerWorker, TaskDemand, WorkerCapacity } from "../../../src/cluster/controller/scheduler/index.js";

export const GiB = 1024 ** 3;

export interface WorkerInit {
  cpu?: number;
  memory?: number;
  disk?: number;
  device?: readonly [type: "gpu" | "tpu", variant: string, count: number];
  used?: Partial<SchedulerWorker["used"]>;
  attributes?: Record<string, string>;
}

export function worker(workerId: string, init: WorkerInit = {}): SchedulerWorker {
  const [deviceType, deviceVariant, deviceCount] = init.device ?? ["cpu", "", 0];
  const capacity: WorkerCapacity = { cpu: init.cpu ?? 8, memory: init.memory ?? 32 * GiB, disk: init.disk ?? 100 * GiB, deviceType, deviceVariant, deviceCount };
  return {
    workerId,
    capacity,
    used: { cpu: 0, memory: 0, disk: 0, deviceCount: 0, ...init.used },
    attributes: init.attributes ?? {},
  };
}

export type JobInit = Partial<Omit<PendingJob, "demand">> & Partial<TaskDemand> & { tasks?: number };

let nextSequence = 0;
export function job(jobId: string, init: JobInit = {}): PendingJob {
  const { cpu = 1, memory = 1 * GiB, disk = 0, deviceType = "cpu", deviceVariant = "", deviceCount = 0, tasks = 1, ...rest } = init;
  return {
    jobId,
    priority: "interactive",
    sequence: nextSequence++,
    taskIndexes: Array.from({ length: tasks }, (_, i) => i),
    gang: false,
    constraints: [],
    preemptible: false,
    ...rest,
    demand: { cpu, memory, disk, deviceType, deviceVariant, deviceCount },
  };
}

/** Placements as "job/task@worker" strings, in order. */
export function placed(placements: readonly Placement[]): string[] {
  return placements.map((p) => `${p.jobId}/${p.taskIndex}@${p.workerId}`);
}

export function workerOf(placements: readonly Placement[], jobId: string, taskIndex = 0): string | undefined {
  return placements.find((p) => p.jobId === jobId && p.taskIndex === taskIndex)?.workerId;
}
