// What the controller tells an observer as it works (metrics count it): each
// event once its change is committed, so an observer never sees one that was
// undone. Observers are called synchronously and must not throw.
import type { TaskState } from "../../core/status.js";
import type { AttemptRecord, JobRecord, WorkerRecord } from "./model.js";

/**
 * How an attempt ended: its final state, or `not_started` when its worker
 * never ran it (it refused it, or never received it) and its task went back
 * to pending at no cost (the attempt's record says `worker_failed`).
 */
export type AttemptEnding = Extract<TaskState, "succeeded" | "failed" | "killed" | "worker_failed" | "preempted"> | "not_started";

/** Every {@link AttemptEnding}. */
export const ATTEMPT_ENDINGS: readonly AttemptEnding[] = ["succeeded", "failed", "killed", "worker_failed", "preempted", "not_started"];

/** One scheduling pass that had jobs (or reservations) to place. */
export interface SchedulingPassReport {
  /** Seconds the pass took: the scheduler's decision, its commit and the dispatches sent. */
  seconds: number;
  /** Jobs the pass tried to place. */
  jobs: number;
  /** Attempts it placed. */
  placements: number;
  /** Attempts it preempted to make room for higher-priority ones. */
  preemptions: number;
}

/** One reconcile round: every reachable worker asked for its attempts, and the answers applied. */
export interface ReconcileRoundReport {
  /** Seconds until the last worker answered (or its call failed). */
  seconds: number;
  /** Workers reconciled in the round. */
  workers: number;
}

/** Optional hooks of a {@link ControllerObserver}; each one is called after its change committed. */
export interface ControllerObserver {
  /** A job was accepted (alone or in a group) and stored. */
  jobLaunched?(job: JobRecord): void;
  /** An attempt ended, however it ended. */
  attemptEnded?(attempt: AttemptRecord, ending: AttemptEnding): void;
  /** A scheduling pass finished; passes with nothing to place are not reported. */
  schedulingPass?(report: SchedulingPassReport): void;
  /** A reconcile round finished; rounds without a worker to reconcile are not reported. */
  reconcileRound?(report: ReconcileRoundReport): void;
  /** A worker was lost (silent past its grace, or restarted): its attempts were retried elsewhere. */
  workerLost?(worker: WorkerRecord, reason: string): void;
}
