// The controller's scheduler: one pure pass that places pending tasks on
// workers with room, by priority band then submission order. No I/O, no clock.
// Its parts: feasibility (which workers a job may use, and why not), rank
// (job and worker order), the first-fit tree, worker sets, explain (reasons).
import { SchedulingPass } from "./pass.js";
import type { PendingJob, ReservationDemand, ScheduleResult, SchedulerWorker } from "./types.js";

export type {
  PendingJob,
  Placement,
  Preemption,
  ReservationDemand,
  ReservationOutcome,
  RunningAttempt,
  ScheduleResult,
  SchedulerWorker,
  TaskDemand,
  WorkerCapacity,
  WorkerUsage,
} from "./types.js";

/**
 * Places pending tasks on workers. Jobs go in priority band order
 * (production, interactive, batch), FIFO by `sequence` within a band; a job
 * that does not fit is passed over, never blocking the jobs behind it.
 *
 * Placement policy (pack): a task goes to the first worker with room in this
 * Placement policy (pack): a task goes to the first worker with room in this
 * order: most preferred constraints met; for CPU-only tasks, machines without
 * accelerators before GPU/TPU ones; then smallest machine first (devices,
 * cpu, memory, disk); then workerId. Filling small machines first leaves the
 * large ones whole for large tasks, and a fixed order keeps filling the same
 * machines pass after pass instead of spreading fragments everywhere. Tasks
 * of one job may share a worker. The result depends only on the input.
 */
export function schedule(jobs: readonly PendingJob[], workers: readonly SchedulerWorker[], reservations: readonly ReservationDemand[] = []): ScheduleResult {
  return new SchedulingPass(workers).run(jobs, reservations);
}
