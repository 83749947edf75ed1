// The task state machine as one pure function: given a task's state and
// counters, what happened to it, and its retry limits, what the task becomes.
// The controller applies the answer; every task transition goes through here.
import { isTaskFinished, type TaskState } from "../../core/status.js";

/** The parts of a task its next state depends on. */
export interface TaskSnapshot {
  state: TaskState;
  failureCount: number;
  preemptionCount: number;
}

/** Retries allowed per budget: a task retries while its count ≤ its limit. */
export interface RetryLimits {
  /** Attempts that `failed` (non-zero exit, thrown error, timeout). */
  maxRetriesFailure: number;
  /** Attempts lost to their worker (`worker_failed`, `preempted`, or killed by the worker on its own). */
  maxRetriesPreemption: number;
}

/** How an attempt can end, as its worker reports it. */
export type AttemptEndState = "succeeded" | "failed" | "killed" | "worker_failed" | "preempted";

/** What happened to a task. */
export type TaskEvent =
  /** A scheduling pass placed it on a worker (a new attempt). */
  | { kind: "placed" }
  /** Its current attempt moved on: the worker is building or running it. */
  | { kind: "progressed"; state: ActiveState }
  /**
   * Its current attempt ended. `killed` here means the worker stopped it on
   * its own (the controller's kills arrive as the `killed` event), so it
   * counts like a lost worker.
   */
  | { kind: "attempt_ended"; state: AttemptEndState; exitCode?: number; errorMessage?: string }
  /**
   * Its current attempt never started: the worker turned it down (no room,
   * or the worker is misconfigured and refuses the controller). Nothing ran,
   * so no budget is charged; the controller keeps the worker from being
   * asked again in a tight loop.
   */
  | { kind: "not_started"; reason: string }
  /**
   * Another task of its gang ended badly and goes back to pending (see
   * JobRequest.coscheduled): the controller stopped this task's attempt, if
   * it had one, and the task goes back to pending too, charged one retry in
   * the budget of the cause, as the task that caused it was. So every task
   * of a gang carries the same counts, and the limit is checked once per
   * restart, on the task that caused it: this event never fails a task.
   */
  | { kind: "gang_restart"; cause: "failure" | "preemption"; reason: string }
  /** It was stopped on request: its job was terminated or finished, or a parent ended. */
  | { kind: "killed"; reason: string }
  /** It could not be placed in time. */
  | { kind: "unschedulable"; reason: string };

/** The task after an event. `changed` is false when the event does not apply (nothing to write). */
export interface TaskTransition extends TaskSnapshot {
  changed: boolean;
  /** The task is finished now (the caller stamps `finishedAt`). */
  finished: boolean;
  /** The task went back to `pending` to be placed again. */
  retry: boolean;
  /** The task's exit code and error message after the event (absent: cleared). */
  exitCode?: number;
  errorMessage?: string;
}

const PROGRESS_RANK: Readonly<Partial<Record<TaskState, number>>> = { assigned: 1, building: 2, running: 3 };

/** The states of an attempt (or its task) placed on a worker and not ended. */
export type ActiveState = "assigned" | "building" | "running";

/** Whether an attempt (or its task) is placed on a worker and not ended: assigned, building or running. */
export function isActiveAttempt(state: TaskState): state is ActiveState {
  return PROGRESS_RANK[state] !== undefined;
}

/** Progress order of the active states (0 for others), so a late "assigned" never overwrites "running". */
export function progressRank(state: TaskState): number {
  return PROGRESS_RANK[state] ?? 0;
}

/**
 * The task state machine:
 *
 * | from                           | event                          | to                                   |
 * |--------------------------------|--------------------------------|--------------------------------------|
 * | pending                        | placed                         | assigned (error and exit code clear) |
 * | assigned, building, running    | progressed to a later state    | that state                           |
 * | assigned, building, running    | attempt_ended succeeded        | succeeded                            |
 * | assigned, building, running    | attempt_ended failed           | pending if failures ≤ limit, else failed |
 * | assigned, building, running    | attempt_ended worker_failed, preempted, killed | pending if preemptions ≤ limit, else failed |
 * | assigned                       | not_started                    | pending (no budget charged)          |
 * | pending, assigned, building, running | gang_restart             | pending, the cause's count + 1 (never failed) |
 * | any unfinished                 | killed                         | killed                               |
 * | pending                        | unschedulable                  | unschedulable                        |
 *
 * Anything else (a finished task, a stale or backward event) changes nothing.
 */
export function nextTaskState(task: TaskSnapshot & { exitCode?: number; errorMessage?: string }, event: TaskEvent, limits: RetryLimits): TaskTransition {
  const same: TaskTransition = {
    state: task.state,
    failureCount: task.failureCount,
    preemptionCount: task.preemptionCount,
    changed: false,
    finished: false,
    retry: false,
    ...(task.exitCode !== undefined ? { exitCode: task.exitCode } : {}),
    ...(task.errorMessage !== undefined ? { errorMessage: task.errorMessage } : {}),
  };
  if (isTaskFinished(task.state)) return same;
  const active = isActiveAttempt(task.state);
  const to = (state: TaskState, fields: Partial<TaskTransition> = {}): TaskTransition => ({
    state,
    failureCount: task.failureCount,
    preemptionCount: task.preemptionCount,
    changed: true,
    finished: isTaskFinished(state),
    retry: state === "pending",
    ...fields,
  });
  switch (event.kind) {
    case "placed":
      return task.state === "pending" ? to("assigned") : same;
    case "progressed":
      return active && progressRank(event.state) > progressRank(task.state)
        ? { ...same, state: event.state, changed: true }
        : same;
    case "killed":
      return to("killed", { ...exitCodeOf(task), errorMessage: event.reason });
    case "unschedulable":
      return task.state === "pending" ? to("unschedulable", { errorMessage: event.reason }) : same;
    case "attempt_ended":
      return active ? attemptEnded(task, event, limits, to) : same;
    case "not_started":
      return task.state === "assigned" ? to("pending", { errorMessage: event.reason }) : same;
    case "gang_restart":
      // A pending task is charged too (it may wait after a refusal): the counts of a gang stay equal.
      return event.cause === "failure"
        ? to("pending", { errorMessage: event.reason, failureCount: task.failureCount + 1 })
        : to("pending", { errorMessage: event.reason, preemptionCount: task.preemptionCount + 1 });
  }
}

function attemptEnded(
  task: TaskSnapshot,
  event: Extract<TaskEvent, { kind: "attempt_ended" }>,
  limits: RetryLimits,
  to: (state: TaskState, fields?: Partial<TaskTransition>) => TaskTransition,
): TaskTransition {
  const outcome = {
    ...(event.exitCode !== undefined ? { exitCode: event.exitCode } : {}),
    ...(event.errorMessage ? { errorMessage: event.errorMessage } : {}),
  };
  if (event.state === "succeeded") return to("succeeded", outcome);
  if (event.state === "failed") {
    const failureCount = task.failureCount + 1;
    return to(failureCount <= limits.maxRetriesFailure ? "pending" : "failed", { ...outcome, failureCount });
  }
  const preemptionCount = task.preemptionCount + 1;
  if (preemptionCount <= limits.maxRetriesPreemption) return to("pending", { ...outcome, preemptionCount });
  const why = event.errorMessage || event.state;
  return to("failed", { ...outcome, preemptionCount, errorMessage: `${why} (retried ${limits.maxRetriesPreemption} times after worker failures)` });
}

function exitCodeOf(task: { exitCode?: number }): { exitCode?: number } {
  return task.exitCode !== undefined ? { exitCode: task.exitCode } : {};
}
