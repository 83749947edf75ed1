// The controller's books: every change to jobs, tasks and attempts, made
// through the task state machine and written through to the state store,
// with what follows when an attempt ends (the endpoints it owned) and when a
// job finishes (its tasks, children and endpoints).
// Every method that writes runs inside the caller's store transaction, and
// says how to undo its in-memory changes should that transaction fail
// (`store.keep`, `store.onRollback`); events and calls to workers wait for the
// commit (`store.afterCommit`). See store.ts: commit before visible.
import { EventEmitter } from "node:events";
import { isGang } from "../../core/job.js";
import type { Logger } from "../../core/logger.js";
import { isFinished, isTaskFinished, rollUpJobStatus } from "../../core/status.js";
import { watchSnapshots } from "../../core/watch.js";
import type { EndpointRegistry } from "./endpoints.js";
import { JobTable } from "./jobs.js";
import { attemptFields, describeAttempt } from "./log-fields.js";
import type { AttemptRecord, JobRecord, TaskRecord } from "./model.js";
import type { AttemptEnding } from "./observer.js";
import type { StateStore } from "./store.js";
import { isActiveAttempt, nextTaskState, type TaskEvent } from "./task-state.js";
import type { ObservedAttempt } from "./worker-connection.js";
import type { WorkerRuntime, WorkerTable } from "./workers.js";

/** What the ledger tells its owner, and how long it counts a stopping attempt's room. */
export interface LedgerHooks {
  /** A stopped attempt's room counts as used at most this long (a worker-lost grace) if its KillTask never answers. @default 10_000 */
  stoppingMaxMs?: number;
  /** A stopped attempt's room is free now: a task waiting for it can go. */
  roomFreed?: () => void;
  /** A job finished; called inside the transaction that finished it (job groups end together). */
  jobFinished?: (job: JobRecord) => void;
  /** A new job joined the books (after its launch was stored). */
  jobAdded?: (job: JobRecord) => void;
  /** An attempt ended; called once the transaction that ended it committed. */
  attemptEnded?: (attempt: AttemptRecord, ending: AttemptEnding) => void;
  /** Where attempts starting and ending, retries and finished jobs are logged, after their commit. @default none */
  logger?: Logger;
}

export class Ledger {
  readonly jobs = new JobTable();
  readonly attempts = new Map<string, AttemptRecord>();
  /** Attempts whose RunTask has not been acknowledged yet: a worker may not know them. */
  readonly undispatched = new Set<string>();
  /** Unfinished jobs that may have pending tasks. */
  readonly schedulable = new Set<JobRecord>();
  /** Jobs that became schedulable since the last scheduling pass. */
  readonly untried = new Set<JobRecord>();
  private readonly events = new EventEmitter();

  constructor(
    private readonly store: StateStore,
    private readonly workers: WorkerTable,
    private readonly endpoints: EndpointRegistry,
    private readonly now: () => number,
    private readonly hooks: LedgerHooks = {},
  ) {
    this.events.setMaxListeners(0);
  }

  /** Takes the jobs loaded at start; active attempts go back on their workers (load workers first) or end as lost. */
  load(jobs: readonly JobRecord[]): void {
    for (const job of jobs) {
      this.jobs.add(job);
      if (!isFinished(job.state)) this.markSchedulable(job);
      for (const task of job.tasks) for (const a of task.attempts) this.attempts.set(a.attemptId, a);
    }
    for (const a of this.attempts.values()) {
      if (!isActiveAttempt(a.state)) continue;
      const worker = this.workers.get(a.workerId);
      if (worker) worker.attempts.add(a);
      else if (!a.delivered) this.notStarted(a, `worker ${a.workerId} is gone and never received the attempt`);
      else this.endAttempt(a, { attemptId: a.attemptId, state: "worker_failed", errorMessage: `worker ${a.workerId} is gone` });
    }
  }

  /** A new job, stored by the caller. */
  addJob(job: JobRecord): void {
    this.jobs.add(job);
    this.markSchedulable(job);
    this.emitJob(job);
    this.hooks.jobAdded?.(job);
  }

  markSchedulable(job: JobRecord): void {
    this.schedulable.add(job);
    this.untried.add(job);
  }

  /** The job now and after every change until it is finished or `signal` aborts; changes made meanwhile fold into one snapshot. */
  watchJob(jobId: string, signal: AbortSignal): AsyncGenerator<JobRecord> {
    const job = this.jobs.get(jobId);
    let seen = -1;
    const snapshot = () => (job.revision === seen ? undefined : ((seen = job.revision), job));
    return watchSnapshots(this.events, `job:${jobId}`, signal, snapshot, (j) => isFinished(j.state));
  }

  /** A new attempt of `task` on `worker` (the task must be pending). */
  placeAttempt(job: JobRecord, task: TaskRecord, worker: WorkerRuntime, now: number): AttemptRecord {
    const attempt: AttemptRecord = {
      attemptId: `${job.jobId}/${task.taskIndex}/${task.attempts.length}`,
      jobId: job.jobId,
      taskIndex: task.taskIndex,
      workerId: worker.record.workerId,
      state: "assigned",
      createdAt: now,
      delivered: false,
    };
    const { store } = this;
    store.saveAttempt(attempt);
    store.keep(task.attempts);
    store.keep(task);
    store.keep(job);
    task.attempts.push(attempt);
    task.workerId = worker.record.workerId;
    this.transition(job, task, { kind: "placed" }, now);
    this.attempts.set(attempt.attemptId, attempt);
    worker.attempts.add(attempt);
    this.undispatched.add(attempt.attemptId);
    store.onRollback(() => {
      this.attempts.delete(attempt.attemptId);
      worker.attempts.delete(attempt);
      this.undispatched.delete(attempt.attemptId);
    });
    delete job.pendingReason;
    store.afterCommit(() =>
      this.hooks.logger?.info({ event: "attempt_started", ...attemptFields(attempt) }, `${describeAttempt(attempt)} started on worker ${attempt.workerId}`),
    );
    return attempt;
  }

  /** An attempt moved on (building, running) on its worker. */
  progressAttempt(attempt: AttemptRecord, update: ObservedAttempt): void {
    this.store.keep(attempt);
    attempt.state = update.state;
    attempt.delivered = true;
    if (update.startedAt !== undefined) attempt.startedAt = update.startedAt;
    this.store.saveAttempt(attempt);
    const job = this.jobs.find(attempt.jobId);
    const task = job?.tasks[attempt.taskIndex];
    const state = update.state;
    if (job && task && task.attempts.at(-1) === attempt && isActiveAttempt(state) && this.transition(job, task, { kind: "progressed", state }, update.startedAt)) {
      this.updateJobState(job);
      this.store.afterCommit(() => this.hooks.logger?.debug({ event: "attempt_progressed", ...attemptFields(attempt), state }, `${describeAttempt(attempt)} is ${state}`));
    }
  }

  /**
   * Its worker has shown it has the attempt (it reported it): from now on,
   * the worker not having it means it was lost. Runs inside a transaction.
   */
  markDelivered(attempt: AttemptRecord): void {
    if (attempt.delivered) return;
    this.store.keep(attempt);
    attempt.delivered = true;
    this.store.saveAttempt(attempt);
  }

  /** Pending tasks of `job` become unschedulable, and so does the job. */
  markUnschedulable(job: JobRecord, reason: string): void {
    this.store.keep(job);
    job.errorMessage = reason;
    for (const task of job.tasks) this.transition(job, task, { kind: "unschedulable", reason });
    this.updateJobState(job);
  }

  /** A scheduling pass's reason why a job waits; kept in memory only (the next pass after a restart recomputes it). */
  setPendingReason(job: JobRecord, reason: string): void {
    if (job.pendingReason === reason) return;
    this.store.keep(job);
    job.pendingReason = reason;
    this.emitJob(job);
  }

  /** Kills every unfinished task of `job` and finishes it as killed. Runs inside a transaction. */
  killJob(job: JobRecord, reason: string): void {
    this.store.keep(job);
    job.errorMessage ??= reason;
    this.killTasks(job, reason);
    this.updateJobState(job);
  }

  private killTasks(job: JobRecord, reason: string): void {
    for (const task of job.tasks) {
      if (isTaskFinished(task.state)) continue;
      const current = task.attempts.at(-1);
      if (current && isActiveAttempt(current.state)) this.stopAttempt(current, reason);
      this.transition(job, task, { kind: "killed", reason });
    }
  }

  /** Applies one event to a task through the state machine and stores the result. Runs inside a transaction. */
  private transition(job: JobRecord, task: TaskRecord, event: TaskEvent, at = this.now()): boolean {
    const next = nextTaskState(task, event, job.request);
    if (!next.changed) return false;
    this.store.keep(task);
    task.state = next.state;
    task.failureCount = next.failureCount;
    task.preemptionCount = next.preemptionCount;
    setOptional(task, "exitCode", next.exitCode);
    setOptional(task, "errorMessage", next.errorMessage);
    if (event.kind === "progressed") task.startedAt ??= at;
    if (next.finished) task.finishedAt = at;
    if (next.retry) this.markSchedulable(job);
    this.store.saveTask(task);
    if (next.retry) this.logRetry(job, task, event, next);
    // Here rather than in endAttempt, so every way an attempt ends badly
    // (a report, a lost worker, a preemption) restarts a gang alike.
    if (event.kind === "attempt_ended" && next.retry && isGang(job.request)) this.restartGang(job, task, event, at);
    return true;
  }

  /** A task back to pending: a retry charged to a budget (info), or a placement that did not start (debug, nothing charged). */
  private logRetry(job: JobRecord, task: TaskRecord, event: TaskEvent, next: { failureCount: number; preemptionCount: number }): void {
    const logger = this.hooks.logger;
    if (!logger) return;
    const ids = { jobId: job.jobId, taskIndex: task.taskIndex };
    const reason = "reason" in event ? event.reason : event.kind === "attempt_ended" ? (event.errorMessage ?? (event.exitCode !== undefined ? `exited with code ${event.exitCode}` : event.state)) : event.kind;
    if (event.kind === "not_started") {
      this.store.afterCommit(() => logger.debug({ event: "task_requeued", ...ids, reason }, `job ${job.jobId} task ${task.taskIndex} goes back to pending (no retry charged): ${reason}`));
      return;
    }
    const budget = (event.kind === "attempt_ended" && event.state === "failed") || (event.kind === "gang_restart" && event.cause === "failure") ? "failure" : "preemption";
    const count = budget === "failure" ? next.failureCount : next.preemptionCount;
    const limit = budget === "failure" ? job.request.maxRetriesFailure : job.request.maxRetriesPreemption;
    this.store.afterCommit(() =>
      logger.info(
        { event: "task_retry_scheduled", ...ids, budget, count, limit, reason },
        `job ${job.jobId} task ${task.taskIndex} will be retried (${budget} ${count} of ${limit}): ${reason}`,
      ),
    );
  }

  /**
   * One task of a gang ended badly and went back to pending under its
   * budget: every other unfinished task is stopped and goes back to pending
   * too, charged the same retry (see JobRequest.coscheduled), so the whole
   * gang is placed again together. Runs inside a transaction.
   */
  private restartGang(job: JobRecord, cause: TaskRecord, event: Extract<TaskEvent, { kind: "attempt_ended" }>, at: number): void {
    const detail = event.errorMessage ?? (event.exitCode !== undefined ? `exited with code ${event.exitCode}` : event.state);
    const what = event.state === "failed" ? "failed" : event.state === "preempted" ? "was preempted" : "lost its worker";
    const reason = `gang restart: task ${cause.taskIndex} ${what}: ${detail}`;
    const budget = event.state === "failed" ? "failure" : "preemption";
    for (const task of job.tasks) {
      if (task === cause || isTaskFinished(task.state)) continue;
      const current = task.attempts.at(-1);
      if (current && isActiveAttempt(current.state)) this.stopAttempt(current, reason);
      this.transition(job, task, { kind: "gang_restart", cause: budget, reason }, at);
    }
  }

  /** Records the end of an attempt and, if it is its task's current one, moves the task on. Runs inside a transaction. */
  endAttempt(attempt: AttemptRecord, update: ObservedAttempt): void {
    // Already ended: stopped by a gang restart earlier in this transaction
    // (a lost worker ends all its attempts in a row); its record stays.
    if (!isActiveAttempt(attempt.state)) return;
    const job = this.jobs.find(attempt.jobId);
    const task = job?.tasks[attempt.taskIndex];
    // The controller's own kills go through stopAttempt; any other end that is
    // not a success or a failure of the task itself counts as a lost worker.
    const state = update.state === "succeeded" || update.state === "failed" || update.state === "preempted" ? update.state : "worker_failed";
    this.finishAttemptRecord(attempt, state, update);
    if (!job || !task || task.attempts.at(-1) !== attempt) return;
    const event: TaskEvent = {
      kind: "attempt_ended",
      state,
      ...(update.exitCode !== undefined ? { exitCode: update.exitCode } : {}),
      ...(update.errorMessage ? { errorMessage: update.errorMessage } : {}),
    };
    if (this.transition(job, task, event, attempt.finishedAt)) this.updateJobState(job);
  }

  /**
   * An attempt its worker turned down before starting it: the attempt ends,
   * and its task goes back to pending without spending a retry budget (the
   * caller keeps that worker from being asked again at once). Runs inside a
   * transaction.
   */
  notStarted(attempt: AttemptRecord, reason: string): void {
    if (!isActiveAttempt(attempt.state)) return;
    const job = this.jobs.find(attempt.jobId);
    const task = job?.tasks[attempt.taskIndex];
    this.finishAttemptRecord(attempt, "worker_failed", { errorMessage: reason }, "not_started");
    if (!job || !task || task.attempts.at(-1) !== attempt) return;
    if (this.transition(job, task, { kind: "not_started", reason }, attempt.finishedAt)) this.updateJobState(job);
  }

  /** Records an attempt as killed and tells its worker at once. */
  private stopAttempt(attempt: AttemptRecord, reason: string): void {
    this.finishAttemptRecord(attempt, "killed", { errorMessage: reason });
    this.killOnWorker(attempt, reason);
  }

  /**
   * Preempts an active attempt so a higher-band task can use its room: it
   * ends `preempted`, which charges its task one preemption and sends it
   * back to pending (task-state.ts), and its worker is told to kill it. Runs
   * inside a transaction.
   */
  preemptAttempt(attempt: AttemptRecord, reason: string): void {
    this.endAttempt(attempt, { attemptId: attempt.attemptId, state: "preempted", errorMessage: reason });
    this.killOnWorker(attempt, reason);
  }

  /**
   * Sends KillTask after commit. Until it answers (the worker answers once
   * the processes are gone), fails, or the worker-lost grace passes, the
   * attempt's room stays counted on the worker (`WorkerRuntime.stopping`):
   * a task placed there earlier would be refused "no room".
   */
  private killOnWorker(attempt: AttemptRecord, reason: string): void {
    const worker = this.workers.get(attempt.workerId);
    if (!worker) return;
    worker.stopping.set(attempt, this.now() + (this.hooks.stoppingMaxMs ?? 10_000));
    this.store.onRollback(() => worker.stopping.delete(attempt));
    // Unanswered, the next reconcile stops it: it is no longer desired.
    this.store.afterCommit(() =>
      void worker.connection.killTask(attempt.attemptId, reason).catch(() => undefined).finally(() => {
        if (worker.stopping.delete(attempt)) this.hooks.roomFreed?.();
      }),
    );
  }

  /** Ends an attempt's record; `ending` is what observers are told (its state unless said otherwise). */
  private finishAttemptRecord(attempt: AttemptRecord, state: AttemptRecord["state"], update: Partial<ObservedAttempt>, ending = state as AttemptEnding): void {
    const { store } = this;
    store.keep(attempt);
    attempt.state = state;
    attempt.finishedAt = update.finishedAt ?? this.now();
    if (update.startedAt !== undefined) attempt.startedAt ??= update.startedAt;
    if (update.exitCode !== undefined) attempt.exitCode = update.exitCode;
    if (update.errorMessage) attempt.errorMessage = update.errorMessage;
    if (update.result && update.result.length > 0) attempt.result = update.result;
    store.saveAttempt(attempt);
    store.afterCommit(() => this.logAttemptEnded(attempt));
    const worker = this.workers.get(attempt.workerId);
    if (worker?.attempts.delete(attempt)) store.onRollback(() => worker.attempts.add(attempt));
    if (this.undispatched.delete(attempt.attemptId)) store.onRollback(() => this.undispatched.add(attempt.attemptId));
    // What the attempt served is gone with its process; a retry registers anew.
    this.endpoints.removeOwnedByAttempt(attempt.attemptId);
    const ended = this.hooks.attemptEnded;
    if (ended) store.afterCommit(() => ended(attempt, ending));
  }

  private logAttemptEnded(attempt: AttemptRecord): void {
    const { exitCode, errorMessage, finishedAt } = attempt;
    const durationMs = finishedAt !== undefined ? finishedAt - (attempt.startedAt ?? attempt.createdAt) : undefined;
    this.hooks.logger?.info(
      {
        event: "attempt_ended",
        ...attemptFields(attempt),
        state: attempt.state,
        ...(exitCode !== undefined ? { exitCode } : {}),
        ...(errorMessage ? { error: errorMessage } : {}),
        ...(durationMs !== undefined ? { durationMs } : {}),
      },
      `${describeAttempt(attempt)} on worker ${attempt.workerId} ended ${attempt.state}${exitCode !== undefined ? ` (exit code ${exitCode})` : ""}${errorMessage ? `: ${errorMessage.split("\n")[0]}` : ""}`,
    );
  }

  /** Recomputes the job state from its tasks and handles the consequences of finishing. Runs inside a transaction. */
  updateJobState(job: JobRecord): void {
    this.store.keep(job);
    const before = job.state;
    const next = rollUpJobStatus(job.tasks.map((t) => t.state));
    const now = this.now();
    // Started = its first task started (building or running); a task may go from building straight to an end.
    if (job.startedAt === undefined && next !== "pending") {
      const first = Math.min(...job.tasks.map((t) => t.startedAt ?? Number.POSITIVE_INFINITY));
      if (Number.isFinite(first)) job.startedAt = first;
      else if (next === "running" || next === "building") job.startedAt = now;
    }
    job.state = next;
    if (isFinished(next) && !isFinished(before)) {
      job.finishedAt = now;
      delete job.pendingReason;
      const decisive = job.tasks.find((t) => t.state === next && (t.errorMessage || t.exitCode !== undefined));
      if (decisive) {
        if (next !== "succeeded") job.errorMessage ??= `task ${decisive.taskIndex}: ${decisive.errorMessage ?? `exited with code ${decisive.exitCode}`}`;
        if (decisive.exitCode !== undefined) job.exitCode = decisive.exitCode;
      } else if (next === "succeeded") {
        job.exitCode = 0;
      }
      this.onJobFinished(job);
      this.store.afterCommit(() => this.logJobFinished(job));
    }
    this.store.saveJob(job);
    this.emitJob(job);
  }

  private logJobFinished(job: JobRecord): void {
    const { exitCode, errorMessage } = job;
    this.hooks.logger?.info(
      {
        event: "job_finished",
        jobId: job.jobId,
        name: job.name,
        namespace: job.namespace,
        state: job.state,
        ...(exitCode !== undefined ? { exitCode } : {}),
        ...(errorMessage ? { error: errorMessage } : {}),
        durationMs: (job.finishedAt ?? this.now()) - job.submittedAt,
      },
      `job ${job.jobId} ${job.state}${errorMessage && job.state !== "succeeded" ? `: ${errorMessage.split("\n")[0]}` : ""}`,
    );
  }

  /** A finished job takes its remaining tasks, its children and its endpoints with it. */
  private onJobFinished(job: JobRecord): void {
    this.schedulable.delete(job);
    this.untried.delete(job);
    this.store.onRollback(() => this.markSchedulable(job));
    // The others learn which task ended the job (in a gang, the one out of retries).
    this.killTasks(job, job.state === "failed" && job.errorMessage ? `job failed: ${job.errorMessage}` : `job ${job.state}`);
    for (const child of this.jobs.childrenOf(job.jobId)) {
      if (!isFinished(child.state)) this.killJob(child, `parent job ${job.jobId} ${job.state}`);
    }
    this.endpoints.removeOwnedBy(job.jobId);
    this.hooks.jobFinished?.(job);
  }

  private emitJob(job: JobRecord): void {
    this.store.keep(job);
    job.revision += 1;
    this.store.afterCommit(() => this.events.emit(`job:${job.jobId}`));
  }
}

/** Sets an optional field, or removes it when the value is undefined (absent, not `undefined`, in records). */
function setOptional<T extends object, K extends keyof T>(target: T, key: K, value: T[K] | undefined): void {
  if (value === undefined) delete target[key];
  else target[key] = value;
}
