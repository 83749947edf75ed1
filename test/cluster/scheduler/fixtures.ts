// Builders shared by the scheduler tests: workers, pending jobs, and placements as strings.
import type { Priority } from "../../../src/core/job.js";
import type { PendingJob, Placement, RunningAttempt, SchedulerWorker, TaskDemand, WorkerCapacity } from "../../../src/cluster/controller/scheduler/index.js";

export const GiB = 1024 ** 3;

export interface WorkerInit {
  cpu?: number;
  memory?: number;
  disk?: number;
  device?: readonly [type: "gpu" | "tpu", variant: string, count: number];
  used?: Partial<SchedulerWorker["used"]>;
  attributes?: Record<string, string>;
  running?: readonly RunningAttempt[];
  stopping?: Partial<SchedulerWorker["used"]>;
}

export function worker(workerId: string, init: WorkerInit = {}): SchedulerWorker {
  const [deviceType, deviceVariant, deviceCount] = init.device ?? ["cpu", "", 0];
  const capacity: WorkerCapacity = { cpu: init.cpu ?? 8, memory: init.memory ?? 32 * GiB, disk: init.disk ?? 100 * GiB, deviceType, deviceVariant, deviceCount };
  return {
    workerId,
    capacity,
    used: { cpu: 0, memory: 0, disk: 0, deviceCount: 0, ...init.used },
    attributes: init.attributes ?? {},
    ...(init.running ? { running: init.running } : {}),
    ...(init.stopping ? { stopping: { cpu: 0, memory: 0, disk: 0, deviceCount: 0, ...init.stopping } } : {}),
  };
}

/** A running attempt of `jobId` holding `cpu` cores and `memory` (memory defaults to 1 GiB, like `job`'s). */
export function running(attemptId: string, priority: Priority, init: { cpu?: number; memory?: number; startedAt?: number; jobId?: string } = {}): RunningAttempt {
  return {
    attemptId,
    jobId: init.jobId ?? attemptId.split("/")[0] ?? attemptId,
    priority,
    usage: { cpu: init.cpu ?? 1, memory: init.memory ?? 1 * GiB, disk: 0, deviceCount: 0 },
    startedAt: init.startedAt ?? 0,
  };
}

/** A worker full of running attempts: its `used` is their sum. */
export function busyWorker(workerId: string, attempts: readonly RunningAttempt[], init: WorkerInit = {}): SchedulerWorker {
  const used = { cpu: 0, memory: 0, disk: 0, deviceCount: 0 };
  for (const a of attempts) {
    used.cpu += a.usage.cpu;
    used.memory += a.usage.memory;
    used.disk += a.usage.disk;
    used.deviceCount += a.usage.deviceCount;
  }
  for (const [k, v] of Object.entries(init.used ?? {})) used[k as keyof typeof used] += v;
  return worker(workerId, { ...init, used, running: attempts });
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
