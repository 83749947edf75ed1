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
  SliceDemand,
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
 * order: most preferred constraints met; for CPU-only tasks, machines without
 * accelerators before GPU/TPU ones; then smallest machine first (devices,
 * cpu, memory, disk); then workerId. Filling small machines first leaves the
 * large ones whole for large tasks, and a fixed order keeps filling the same
 * machines pass after pass instead of spreading fragments everywhere. Tasks
 * of one job may share a worker.
 *
 * Reservations come first, highest `priority` then `sequence`: the pending
 * tasks of their own jobs (job order, gangs whole) up to `holdCount`, then
 * the rest of `holdCount` as held slots of `shape` (first fit, device and
 * preemptible rules), which no later job may use. A reservation's jobs then
 * grow in normal order up to `maxTasks` active tasks.
 *
 * Jobs sharing a `groupId` are one unit at their first job's turn: every
 * pending task of every job is placed, or none; with `sameRegion`/`sameZone`
 * on any of them, all in one region or zone, tried in turn.
 *
 * A job on multi-host TPU slices (`slice`) takes whole slices: only workers
 * labelled as slice hosts, task i on host `i mod hosts` of the job's
 * `⌊i / hosts⌋`-th slice (the first complete slice, in worker rank order,
 * whose hosts all have room), every pending task or none; its pending
 * reason names the slices it wants ("needs a whole v5litepod-16 slice
 * (4 hosts): none free"). It does not preempt.
 *
 * Preemption, after placement: each production or interactive job with
 * unplaced tasks (job order; gangs all or none; a failed group for every
 * task of every job or none, each job preempting only below its own band;
 * jobs at their reservation's maximum excluded) first claims room being freed
 * (`stopping`), else preempts attempts of strictly lower bands on the
 * eligible worker needing the fewest (ties: lowest victim band, then
 * youngest); on a worker victims go lowest band, larger usage, youngest
 * first. Claimed room is not offered to another job in the pass; the task
 * stays pending until the room is free. Holds are never preempted.
 *
 * The result depends only on the input.
 */
export function schedule(jobs: readonly PendingJob[], workers: readonly SchedulerWorker[], reservations: readonly ReservationDemand[] = []): ScheduleResult {
  return new SchedulingPass(workers).run(jobs, reservations);
}
