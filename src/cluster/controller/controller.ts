// The controller's state machine: jobs → tasks → attempts, placement through
// the scheduler, dispatch to workers, reconcile, worker loss, retries, and the
// endpoint registry. Every change is written through to the state store.
import { EventEmitter, setMaxListeners } from "node:events";
import { randomBytes, randomUUID } from "node:crypto";
import { FlusterError, ValidationError } from "../../core/errors.js";
import { isFinished, isTaskFinished, rollUpJobStatus, type JobStatus, type TaskState } from "../../core/status.js";
import { validateJobName } from "../../core/job.js";
import { validateJobSpec } from "../../rpc/convert.js";
import type { JobSpec } from "../../rpc/gen/fluster/cluster/v1/types_pb.js";
import { schedule, type PendingJob, type SchedulerWorker, type TaskDemand } from "./scheduler.js";
import type { StateStore } from "./store.js";
import type { AttemptRecord, EndpointRecord, JobRecord, TaskRecord, WorkerCapacityRecord, WorkerRecord } from "./model.js";

/** What the controller needs from a worker; the RPC layer implements it. */
export interface WorkerConnection {
  /** Starts the attempt; resolves to its state on the worker. */
  runTask(assignment: Assignment): Promise<ObservedAttempt>;
  /** Stops an attempt now (the next reconcile would too; this is the fast path). */
  killTask(attemptId: string, reason: string): Promise<void>;
  /** Sends the complete desired set; `signal` bounds the call (one signal serves a whole tick). */
  reconcile(desired: readonly DesiredAttempt[], stopReasons: Readonly<Record<string, string>>, signal: AbortSignal): Promise<ObservedAttempts>;
  close(): void;
}

/** One attempt as the controller asks a worker to run it. */
export interface Assignment {
  attemptId: string;
  jobId: string;
  jobName: string;
  namespace: string;
  taskIndex: number;
  numTasks: number;
  spec: JobSpec;
}

/** One entry of a reconcile's desired set. */
export interface DesiredAttempt {
  attemptId: string;
  /** The state the controller last saw; the worker reports only differences. */
  knownState: TaskState;
}

/** An attempt as a worker observes it. */
export interface ObservedAttempt {
  attemptId: string;
  state: TaskState;
  exitCode?: number;
  errorMessage?: string;
  startedAt?: number;
  finishedAt?: number;
  result?: Uint8Array;
}

export interface ObservedAttempts {
  observed: ObservedAttempt[];
  /** Desired attempts the worker does not have. */
  missing: string[];
}

/** Options of {@link Controller}. */
export interface ControllerOptions {
  store: StateStore;
  /** Opens a connection to a worker's WorkerService. */
  connectWorker: (address: string) => WorkerConnection;
  /** How often every worker is reconciled. @default 1000 */
  reconcileIntervalMs?: number;
  /** A worker failing reconciles for longer than this is lost. @default 10_000 */
  workerLostGraceMs?: number;
  /** Clock, for tests. @default Date.now */
  now?: () => number;
}

/**
 * Lifecycle:
 * - `created`: state not loaded; nothing runs.
 * - `running`: reconcile loop ticking; accepts every call.
 * - `stopping`: loop halted; in-flight calls finish.
 * - `stopped`: store closed; calls fail with `unavailable`.
 */
export type ControllerState = "created" | "running" | "stopping" | "stopped";

export interface LaunchOptions {
  namespace?: string;
  parentJobId?: string;
  requestId?: string;
}

export interface JobFilter {
  namespace?: string;
  allNamespaces?: boolean;
  prefix?: string;
  states?: readonly JobStatus[];
  limit?: number;
}

export interface RegisterWorkerInput {
  workerId: string;
  address: string;
  capacity: WorkerCapacityRecord;
  attributes: Record<string, string>;
}

export interface RegisterEndpointInput {
  name: string;
  address: string;
  namespace: string;
  jobId?: string;
  metadata?: Record<string, string>;
  ttlSeconds?: number;
}

const ACTIVE_ATTEMPT: ReadonlySet<TaskState> = new Set(["assigned", "building", "running"]);
const DEFAULT_NAMESPACE = "default";
const NAMESPACE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

interface WorkerRuntime {
  record: WorkerRecord;
  connection: WorkerConnection;
  /** Attempts placed on this worker that are still active. */
  attempts: Set<AttemptRecord>;
  failingSince?: number;
  reconciling: boolean;
}

export class Controller {
  private stateValue: ControllerState = "created";
  private readonly store: StateStore;
  private readonly connectWorker: (address: string) => WorkerConnection;
  readonly reconcileIntervalMs: number;
  private readonly workerLostGraceMs: number;
  private readonly now: () => number;
  private readonly jobs = new Map<string, JobRecord>();
  private readonly jobsByRequestId = new Map<string, JobRecord>();
  private readonly children = new Map<string, Set<string>>();
  private readonly workers = new Map<string, WorkerRuntime>();
  private readonly attempts = new Map<string, AttemptRecord>();
  /** Attempts whose RunTask has not been acknowledged yet: a worker may not know them. */
  private readonly undispatched = new Set<string>();
  private readonly endpoints = new Map<string, EndpointRecord>();
  private readonly events = new EventEmitter();
  /** Addresses of workers that were lost, so logs of their attempts can still be asked for. */
  private readonly knownWorkerAddresses = new Map<string, string>();
  private nextSeq = 1;
  private scheduleQueued = false;
  /** Unfinished jobs that may have pending tasks. */
  private readonly schedulable = new Set<JobRecord>();
  /** Jobs that became schedulable since the last pass. */
  private readonly untried = new Set<JobRecord>();
  /**
   * Room may have appeared since the last pass (an attempt ended, a worker
   * joined): every schedulable job is tried. Otherwise only untried ones are,
   * since a job that did not fit cannot fit in less room.
   */
  private capacityGrew = true;
  private tickTimer: NodeJS.Timeout | undefined;
  /** Advertised address of this controller, given to jobs. */
  address = "";

  constructor(options: ControllerOptions) {
    this.store = options.store;
    this.connectWorker = options.connectWorker;
    this.reconcileIntervalMs = options.reconcileIntervalMs ?? 1000;
    this.workerLostGraceMs = options.workerLostGraceMs ?? 10_000;
    this.now = options.now ?? Date.now;
    this.events.setMaxListeners(0);
  }

  get state(): ControllerState {
    return this.stateValue;
  }

  /** Loads durable state and starts the reconcile loop. */
  start(): void {
    if (this.stateValue !== "created") throw new FlusterError(`controller cannot start from state ${this.stateValue}`, "failed_precondition");
    const loaded = this.store.load();
    this.nextSeq = loaded.nextSeq;
    for (const job of loaded.jobs) {
      this.jobs.set(job.jobId, job);
      if (!isFinished(job.state)) this.markSchedulable(job);
      if (job.requestId) this.jobsByRequestId.set(job.requestId, job);
      if (job.parentJobId) this.childSet(job.parentJobId).add(job.jobId);
      for (const task of job.tasks) for (const a of task.attempts) this.attempts.set(a.attemptId, a);
    }
    for (const w of loaded.workers) {
      if (w.health === "lost") continue;
      this.workers.set(w.workerId, { record: w, connection: this.connectWorker(w.address), attempts: new Set(), reconciling: false });
    }
    for (const a of this.attempts.values()) {
      if (!ACTIVE_ATTEMPT.has(a.state)) continue;
      const worker = this.workers.get(a.workerId);
      if (worker) worker.attempts.add(a);
      else this.endAttempt(a, { attemptId: a.attemptId, state: "worker_failed", errorMessage: `worker ${a.workerId} is gone` });
    }
    for (const e of loaded.endpoints) this.endpoints.set(e.endpointId, e);
    this.stateValue = "running";
    this.tickTimer = setInterval(() => this.tick(), this.reconcileIntervalMs);
    this.tickTimer.unref();
    this.requestSchedule();
  }

  /** Stops the loop and closes worker connections and the store. Running jobs keep running on their workers. */
  async stop(): Promise<void> {
    if (this.stateValue === "stopped" || this.stateValue === "stopping") return;
    this.stateValue = "stopping";
    if (this.tickTimer) clearInterval(this.tickTimer);
    for (const w of this.workers.values()) w.connection.close();
    this.events.emit("stopped");
    this.store.close();
    this.stateValue = "stopped";
  }

  private ensureRunning(): void {
    if (this.stateValue !== "running") throw new FlusterError(`controller is ${this.stateValue}`, "unavailable");
  }

  // ---------------------------------------------------------------- jobs

  /** Accepts a job; resolves once it is durably stored. */
  async launchJob(spec: JobSpec | undefined, options: LaunchOptions = {}): Promise<JobRecord> {
    this.ensureRunning();
    if (options.requestId) {
      const existing = this.jobsByRequestId.get(options.requestId);
      if (existing) {
        await this.store.defer(() => undefined);
        return existing;
      }
    }
    const request = validateJobSpec(spec);
    let namespace = options.namespace || DEFAULT_NAMESPACE;
    if (options.parentJobId) {
      const parent = this.getJob(options.parentJobId);
      // A child inherits its parent's namespace unless it asked for one.
      namespace = options.namespace || parent.namespace;
      if (isFinished(parent.state)) {
        throw new FlusterError(`parent job ${parent.jobId} is already ${parent.state}`, "failed_precondition");
      }
    }
    if (!NAMESPACE_PATTERN.test(namespace)) {
      throw new ValidationError("namespace", `must be letters, digits, ".", "_" or "-" (at most 128), got ${JSON.stringify(namespace)}`);
    }
    const now = this.now();
    const jobId = `${slug(request.name)}-${randomUUID().slice(0, 12)}`;
    const job: JobRecord = {
      jobId,
      name: request.name,
      namespace,
      spec: spec as JobSpec,
      request,
      state: "pending",
      submittedAt: now,
      seq: this.nextSeq++,
      tasks: Array.from({ length: request.resources.replicas }, (_, taskIndex) => ({
        jobId,
        taskIndex,
        state: "pending" as const,
        failureCount: 0,
        preemptionCount: 0,
        attempts: [],
      })),
    };
    if (options.parentJobId) job.parentJobId = options.parentJobId;
    if (options.requestId) job.requestId = options.requestId;
    const stored = this.store.defer(() => {
      this.store.saveJob(job);
      for (const t of job.tasks) this.store.saveTask(t);
    });
    this.jobs.set(jobId, job);
    this.markSchedulable(job);
    if (job.requestId) this.jobsByRequestId.set(job.requestId, job);
    if (job.parentJobId) this.childSet(job.parentJobId).add(jobId);
    this.emitJob(job);
    this.requestSchedule(false);
    await stored;
    return job;
  }

  getJob(jobId: string): JobRecord {
    if (typeof jobId !== "string" || jobId === "") throw new ValidationError("jobId", "must not be empty");
    const job = this.jobs.get(jobId);
    if (!job) throw new FlusterError(`job ${jobId} not found`, "not_found");
    return job;
  }

  listJobs(filter: JobFilter = {}): JobRecord[] {
    const namespace = filter.namespace || DEFAULT_NAMESPACE;
    const states = filter.states && filter.states.length > 0 ? new Set(filter.states) : undefined;
    const out: JobRecord[] = [];
    for (const job of this.jobs.values()) {
      if (!filter.allNamespaces && job.namespace !== namespace) continue;
      if (filter.prefix && !job.name.startsWith(filter.prefix)) continue;
      if (states && !states.has(job.state)) continue;
      out.push(job);
    }
    out.sort((a, b) => b.seq - a.seq);
    return filter.limit && filter.limit > 0 ? out.slice(0, filter.limit) : out;
  }

  /** Calls `listener` with the job each time it changes; returns an unsubscribe function. */
  onJobChange(jobId: string, listener: (job: JobRecord) => void): () => void {
    const event = `job:${jobId}`;
    this.events.on(event, listener);
    return () => this.events.off(event, listener);
  }

  /** Calls `listener` on every job change (dashboards, watchers of many jobs). */
  onAnyJobChange(listener: (job: JobRecord) => void): () => void {
    this.events.on("job", listener);
    return () => this.events.off("job", listener);
  }

  terminateJob(jobId: string, reason = "terminated by request"): JobRecord {
    this.ensureRunning();
    const job = this.getJob(jobId);
    if (isFinished(job.state)) return job;
    this.store.transaction(() => this.killJob(job, reason));
    this.requestSchedule();
    return job;
  }

  /** Kills every unfinished task of `job` and finishes it as killed. Runs inside a transaction. */
  private killJob(job: JobRecord, reason: string): void {
    for (const task of job.tasks) {
      if (isTaskFinished(task.state)) continue;
      const current = task.attempts[task.attempts.length - 1];
      if (current && ACTIVE_ATTEMPT.has(current.state)) this.stopAttempt(current, reason);
      task.state = "killed";
      task.errorMessage = reason;
      task.finishedAt = this.now();
      this.store.saveTask(task);
    }
    job.errorMessage ??= reason;
    this.updateJobState(job);
  }

  // ---------------------------------------------------------------- workers

  registerWorker(input: RegisterWorkerInput): WorkerRecord {
    this.ensureRunning();
    if (!input.workerId) throw new ValidationError("workerId", "must not be empty");
    if (!input.address) throw new ValidationError("address", "must not be empty");
    const capacity = input.capacity;
    for (const [key, value] of Object.entries({ cpu: capacity.cpu, memory: capacity.memory, disk: capacity.disk, deviceCount: capacity.deviceCount })) {
      if (!Number.isFinite(value) || value < 0) throw new ValidationError(`resources.${key}`, `must be a non-negative number, got ${value}`);
    }
    const now = this.now();
    const attributes = {
      ...input.attributes,
      "device-type": capacity.deviceType,
      ...(capacity.deviceType !== "cpu" ? { "device-variant": capacity.deviceVariant } : {}),
    };
    const record: WorkerRecord = {
      workerId: input.workerId,
      address: input.address,
      capacity,
      attributes,
      registeredAt: now,
      lastSeen: now,
      health: "healthy",
    };
    const existing = this.workers.get(input.workerId);
    if (existing && existing.record.address === input.address) {
      existing.record = { ...record, registeredAt: existing.record.registeredAt };
      existing.failingSince = undefined;
    } else {
      if (existing) {
        // Same worker id, new address: the daemon restarted and its old attempts are gone.
        existing.connection.close();
        this.loseWorker(existing, "worker restarted");
      }
      this.workers.set(input.workerId, { record, connection: this.connectWorker(input.address), attempts: existing?.attempts ?? new Set(), reconciling: false });
    }
    const runtime = this.workers.get(input.workerId);
    if (runtime) this.store.saveWorker(runtime.record);
    this.requestSchedule();
    return record;
  }

  listWorkers(): Array<{ record: WorkerRecord; used: WorkerCapacityRecord; runningAttempts: number }> {
    return [...this.workers.values()].map((w) => ({ record: w.record, used: this.usedBy(w), runningAttempts: w.attempts.size }));
  }

  /** Attempt updates pushed by a worker. Returns false when the worker is unknown (it must register). */
  heartbeat(workerId: string, updates: readonly ObservedAttempt[]): boolean {
    this.ensureRunning();
    const worker = this.workers.get(workerId);
    if (!worker) return false;
    worker.record.lastSeen = this.now();
    this.applyObserved(worker, updates);
    return true;
  }

  private usedBy(worker: WorkerRuntime): WorkerCapacityRecord {
    const used = { cpu: 0, memory: 0, disk: 0, deviceType: worker.record.capacity.deviceType, deviceVariant: worker.record.capacity.deviceVariant, deviceCount: 0 };
    for (const a of worker.attempts) {
      const job = this.jobs.get(a.jobId);
      if (!job) continue;
      const d = demandOf(job);
      used.cpu += d.cpu;
      used.memory += d.memory;
      used.disk += d.disk;
      used.deviceCount += d.deviceCount;
    }
    return used;
  }

  // ---------------------------------------------------------------- scheduling and dispatch

  /**
   * Coalesces scheduling requests into one pass on the next turn of the event
   * loop. `capacityChanged` (the default) means room may have appeared, so
   * every pending job is tried again; a plain launch only tries the new job.
   */
  requestSchedule(capacityChanged = true): void {
    if (capacityChanged) this.capacityGrew = true;
    if (this.scheduleQueued || this.stateValue !== "running") return;
    this.scheduleQueued = true;
    setImmediate(() => {
      this.scheduleQueued = false;
      if (this.stateValue === "running") this.schedulePass();
    });
  }

  /** One scheduling pass: place pending tasks, create their attempts, dispatch them. */
  schedulePass(): void {
    const pendingJobs: PendingJob[] = [];
    const now = this.now();
    const candidates = this.capacityGrew ? [...this.schedulable] : [...this.untried];
    this.capacityGrew = false;
    this.untried.clear();
    for (const job of candidates) {
      const pendingTasks = isFinished(job.state) ? [] : job.tasks.filter((t) => t.state === "pending");
      if (pendingTasks.length === 0) {
        this.schedulable.delete(job);
        continue;
      }
      const r = job.request;
      pendingJobs.push({
        jobId: job.jobId,
        priority: r.priority,
        sequence: job.seq,
        demand: demandOf(job),
        taskIndexes: pendingTasks.map((t) => t.taskIndex),
        gang: pendingTasks.length === job.tasks.length && job.tasks.length > 1,
        constraints: r.constraints,
        preemptible: r.resources.preemptible,
        ...(r.resources.regions ? { regions: r.resources.regions } : {}),
        ...(r.resources.zone ? { zone: r.resources.zone } : {}),
      });
    }
    if (pendingJobs.length === 0) return;
    const workers: SchedulerWorker[] = [];
    for (const w of this.workers.values()) {
      if (w.record.health !== "healthy") continue;
      const used = this.usedBy(w);
      workers.push({
        workerId: w.record.workerId,
        capacity: w.record.capacity,
        used: { cpu: used.cpu, memory: used.memory, disk: used.disk, deviceCount: used.deviceCount },
        attributes: w.record.attributes,
      });
    }
    const result = schedule(pendingJobs, workers);
    const dispatches: Array<{ worker: WorkerRuntime; assignment: Assignment }> = [];
    this.store.transaction(() => {
      for (const placement of result.placements) {
        const job = this.jobs.get(placement.jobId);
        const task = job?.tasks[placement.taskIndex];
        const worker = this.workers.get(placement.workerId);
        if (!job || !task || !worker) continue;
        const attempt: AttemptRecord = {
          attemptId: `${job.jobId}/${task.taskIndex}/${task.attempts.length}`,
          jobId: job.jobId,
          taskIndex: task.taskIndex,
          workerId: worker.record.workerId,
          state: "assigned",
          createdAt: now,
        };
        task.attempts.push(attempt);
        task.state = "assigned";
        task.workerId = worker.record.workerId;
        delete task.errorMessage;
        delete task.exitCode;
        this.attempts.set(attempt.attemptId, attempt);
        worker.attempts.add(attempt);
        this.undispatched.add(attempt.attemptId);
        this.store.saveAttempt(attempt);
        this.store.saveTask(task);
        if (job.pendingReason !== undefined) delete job.pendingReason;
        dispatches.push({ worker, assignment: this.assignmentFor(job, attempt) });
      }
      for (const [jobId, reason] of [...result.pending, ...result.neverFits]) {
        const job = this.jobs.get(jobId);
        // Not written to the store: the next pass after a restart recomputes it.
        if (job && job.pendingReason !== reason) {
          job.pendingReason = reason;
          this.emitJob(job);
        }
      }
    });
    const touched = new Set(dispatches.map((d) => d.assignment.jobId));
    for (const jobId of touched) {
      const job = this.jobs.get(jobId);
      if (job) this.updateJobState(job);
    }
    for (const { worker, assignment } of dispatches) this.dispatch(worker, assignment);
  }

  private assignmentFor(job: JobRecord, attempt: AttemptRecord): Assignment {
    return {
      attemptId: attempt.attemptId,
      jobId: job.jobId,
      jobName: job.name,
      namespace: job.namespace,
      taskIndex: attempt.taskIndex,
      numTasks: job.tasks.length,
      spec: job.spec,
    };
  }

  private dispatch(worker: WorkerRuntime, assignment: Assignment): void {
    worker.connection.runTask(assignment).then(
      (observed) => {
        this.undispatched.delete(assignment.attemptId);
        if (this.stateValue === "running") this.applyObserved(worker, [observed]);
      },
      (err: unknown) => {
        this.undispatched.delete(assignment.attemptId);
        const attempt = this.attempts.get(assignment.attemptId);
        if (!attempt || !ACTIVE_ATTEMPT.has(attempt.state) || this.stateValue !== "running") return;
        // The worker did not take it: retry elsewhere (counts against the preemption budget).
        const message = err instanceof Error ? err.message : String(err);
        this.store.transaction(() => this.endAttempt(attempt, { attemptId: attempt.attemptId, state: "worker_failed", errorMessage: `dispatch to ${worker.record.workerId} failed: ${message}` }));
        this.requestSchedule();
      },
    );
  }

  /** Pending jobs past their scheduling timeout become unschedulable. */
  private expireUnschedulable(now: number): void {
    for (const job of this.schedulable) {
      const limit = job.request.schedulingTimeoutSeconds;
      if (!limit || isFinished(job.state) || job.startedAt !== undefined) continue;
      if (now - job.submittedAt <= limit * 1000 || !job.tasks.some((t) => t.state === "pending")) continue;
      this.store.transaction(() => this.markUnschedulable(job, `not scheduled within ${limit}s: ${job.pendingReason ?? "no worker fits"}`));
    }
  }

  private markSchedulable(job: JobRecord): void {
    this.schedulable.add(job);
    this.untried.add(job);
  }

  private markUnschedulable(job: JobRecord, reason: string): void {
    for (const task of job.tasks) {
      if (task.state !== "pending") continue;
      task.state = "unschedulable";
      task.errorMessage = reason;
      task.finishedAt = this.now();
      this.store.saveTask(task);
    }
    job.errorMessage = reason;
    this.updateJobState(job);
  }

  // ---------------------------------------------------------------- attempt updates

  private applyObserved(worker: WorkerRuntime, updates: readonly ObservedAttempt[]): void {
    // Most reconcile answers repeat what is already known: skip them before
    // paying for a transaction.
    const news = updates.filter((u) => {
      const attempt = this.attempts.get(u.attemptId);
      return attempt !== undefined && attempt.workerId === worker.record.workerId && ACTIVE_ATTEMPT.has(attempt.state) && u.state !== attempt.state;
    });
    if (news.length === 0) return;
    let changed = false;
    this.store.transaction(() => {
      for (const update of news) {
        const attempt = this.attempts.get(update.attemptId);
        if (!attempt || attempt.workerId !== worker.record.workerId) continue;
        if (!ACTIVE_ATTEMPT.has(attempt.state)) continue;
        if (ACTIVE_ATTEMPT.has(update.state)) {
          if (update.state !== attempt.state && stateRank(update.state) > stateRank(attempt.state)) {
            attempt.state = update.state;
            if (update.startedAt !== undefined) attempt.startedAt = update.startedAt;
            this.store.saveAttempt(attempt);
            const job = this.jobs.get(attempt.jobId);
            const task = job?.tasks[attempt.taskIndex];
            if (job && task && task.attempts[task.attempts.length - 1] === attempt) {
              task.state = update.state;
              task.startedAt ??= update.startedAt ?? this.now();
              this.store.saveTask(task);
              this.updateJobState(job);
            }
            changed = true;
          }
          continue;
        }
        this.endAttempt(attempt, update);
        changed = true;
      }
    });
    if (changed) this.requestSchedule();
  }

  /** Records the end of an attempt and decides the task's fate (retry or finish). Runs inside a transaction. */
  private endAttempt(attempt: AttemptRecord, update: ObservedAttempt): void {
    const job = this.jobs.get(attempt.jobId);
    const task = job?.tasks[attempt.taskIndex];
    let state = update.state;
    // A kill the controller did not ask for (the worker dropped it) counts like a lost worker.
    if (state === "killed") state = "worker_failed";
    this.finishAttemptRecord(attempt, state, update);
    if (!job || !task || task.attempts[task.attempts.length - 1] !== attempt || isTaskFinished(task.state)) return;
    const r = job.request;
    task.exitCode = update.exitCode;
    if (update.exitCode === undefined) delete task.exitCode;
    task.errorMessage = update.errorMessage;
    if (!update.errorMessage) delete task.errorMessage;
    if (state === "succeeded") {
      task.state = "succeeded";
      task.finishedAt = attempt.finishedAt;
    } else if (state === "failed") {
      task.failureCount += 1;
      if (task.failureCount <= r.maxRetriesFailure) {
        task.state = "pending";
        this.markSchedulable(job);
      }
      else {
        task.state = "failed";
        task.finishedAt = attempt.finishedAt;
      }
    } else {
      task.preemptionCount += 1;
      if (task.preemptionCount <= r.maxRetriesPreemption) {
        task.state = "pending";
        this.markSchedulable(job);
      }
      else {
        task.state = "failed";
        task.errorMessage = `${update.errorMessage ?? state} (retried ${r.maxRetriesPreemption} times after worker failures)`;
        task.finishedAt = attempt.finishedAt;
      }
    }
    this.store.saveTask(task);
    this.updateJobState(job);
  }

  /** Records an attempt as killed and tells its worker at once. */
  private stopAttempt(attempt: AttemptRecord, reason: string): void {
    const worker = this.workers.get(attempt.workerId);
    this.finishAttemptRecord(attempt, "killed", { errorMessage: reason });
    // Unanswered, the next reconcile stops it: it is no longer desired.
    worker?.connection.killTask(attempt.attemptId, reason).catch(() => undefined);
  }

  private finishAttemptRecord(attempt: AttemptRecord, state: TaskState, update: Partial<ObservedAttempt>): void {
    attempt.state = state;
    attempt.finishedAt = update.finishedAt ?? this.now();
    if (update.startedAt !== undefined) attempt.startedAt ??= update.startedAt;
    if (update.exitCode !== undefined) attempt.exitCode = update.exitCode;
    if (update.errorMessage) attempt.errorMessage = update.errorMessage;
    if (update.result && update.result.length > 0) attempt.result = update.result;
    this.store.saveAttempt(attempt);
    this.workers.get(attempt.workerId)?.attempts.delete(attempt);
    this.undispatched.delete(attempt.attemptId);
  }

  /** Recomputes the job state from its tasks and handles the consequences of finishing. */
  private updateJobState(job: JobRecord): void {
    const before = job.state;
    const next = rollUpJobStatus(job.tasks.map((t) => t.state));
    const now = this.now();
    if (next === "running" && job.startedAt === undefined) job.startedAt = now;
    job.state = next;
    if (isFinished(next) && !isFinished(before)) {
      job.finishedAt = now;
      delete job.pendingReason;
      const failedTask = job.tasks.find((t) => t.state === next && (t.errorMessage || t.exitCode !== undefined));
      if (failedTask) {
        if (failedTask.errorMessage && next !== "succeeded") job.errorMessage ??= `task ${failedTask.taskIndex}: ${failedTask.errorMessage}`;
        if (failedTask.exitCode !== undefined) job.exitCode = failedTask.exitCode;
      } else if (next === "succeeded") {
        job.exitCode = 0;
      }
      this.onJobFinished(job);
    }
    this.store.saveJob(job);
    this.emitJob(job);
  }

  /** A finished job takes its remaining tasks, its children and its endpoints with it. */
  private onJobFinished(job: JobRecord): void {
    this.schedulable.delete(job);
    this.untried.delete(job);
    for (const task of job.tasks) {
      if (isTaskFinished(task.state)) continue;
      const current = task.attempts[task.attempts.length - 1];
      if (current && ACTIVE_ATTEMPT.has(current.state)) this.stopAttempt(current, `job ${job.state}`);
      task.state = "killed";
      task.errorMessage ??= `job ${job.state}`;
      task.finishedAt = this.now();
      this.store.saveTask(task);
    }
    for (const childId of this.children.get(job.jobId) ?? []) {
      const child = this.jobs.get(childId);
      if (child && !isFinished(child.state)) this.killJob(child, `parent job ${job.jobId} ${job.state}`);
    }
    for (const endpoint of [...this.endpoints.values()]) {
      if (endpoint.jobId === job.jobId) this.removeEndpoint(endpoint.endpointId);
    }
  }

  private emitJob(job: JobRecord): void {
    this.events.emit(`job:${job.jobId}`, job);
    this.events.emit("job", job);
  }

  private childSet(parentId: string): Set<string> {
    let set = this.children.get(parentId);
    if (!set) {
      set = new Set();
      this.children.set(parentId, set);
    }
    return set;
  }

  // ---------------------------------------------------------------- reconcile

  /** One reconcile round: every worker gets its desired set; TTL endpoints expire. */
  tick(): void {
    if (this.stateValue !== "running") return;
    const now = this.now();
    this.expireUnschedulable(now);
    for (const endpoint of [...this.endpoints.values()]) {
      if (endpoint.expiresAt !== undefined && endpoint.expiresAt <= now) this.removeEndpoint(endpoint.endpointId);
    }
    void this.reconcileAll();
    this.requestSchedule();
  }

  /** Reconciles every worker at once; resolves when all answers (or failures) are applied. */
  async reconcileAll(): Promise<void> {
    const rounds: Promise<void>[] = [];
    const signal = AbortSignal.timeout(Math.max(this.reconcileIntervalMs * 4, 5_000));
    setMaxListeners(0, signal); // one listener per worker call
    for (const worker of this.workers.values()) {
      if (worker.record.health === "lost" || worker.reconciling) continue;
      rounds.push(this.reconcileWorker(worker, signal));
    }
    await Promise.all(rounds);
  }

  /** Reconciles one worker; resolves when its answer has been applied. */
  private async reconcileWorker(worker: WorkerRuntime, signal: AbortSignal): Promise<void> {
    worker.reconciling = true;
    const desired: DesiredAttempt[] = [];
    for (const attempt of worker.attempts) desired.push({ attemptId: attempt.attemptId, knownState: attempt.state });
    try {
      const answer = await worker.connection.reconcile(desired, {}, signal);
      if (this.stateValue !== "running") return;
      worker.record.lastSeen = this.now();
      if (worker.record.health !== "healthy") {
        worker.record.health = "healthy";
        this.store.saveWorker(worker.record);
        this.requestSchedule();
      }
      worker.failingSince = undefined;
      this.applyObserved(worker, answer.observed);
      const missing = answer.missing
        .filter((id) => !this.undispatched.has(id))
        .map((id) => this.attempts.get(id))
        .filter((a): a is AttemptRecord => a !== undefined && ACTIVE_ATTEMPT.has(a.state) && a.workerId === worker.record.workerId);
      if (missing.length > 0) {
        this.store.transaction(() => {
          for (const a of missing) this.endAttempt(a, { attemptId: a.attemptId, state: "worker_failed", errorMessage: `worker ${worker.record.workerId} lost the attempt` });
        });
        this.requestSchedule();
      }
    } catch {
      if (this.stateValue !== "running") return;
      const now = this.now();
      worker.failingSince ??= now;
      if (worker.record.health === "healthy") {
        worker.record.health = "unreachable";
        this.store.saveWorker(worker.record);
      }
      if (now - worker.failingSince > this.workerLostGraceMs) {
        this.loseWorker(worker, `worker ${worker.record.workerId} stopped answering for ${Math.round((now - worker.failingSince) / 1000)}s`);
      }
    } finally {
      worker.reconciling = false;
    }
  }

  private loseWorker(worker: WorkerRuntime, reason: string): void {
    worker.record.health = "lost";
    this.knownWorkerAddresses.set(worker.record.workerId, worker.record.address);
    this.store.transaction(() => {
      this.store.saveWorker(worker.record);
      for (const attempt of [...worker.attempts]) this.endAttempt(attempt, { attemptId: attempt.attemptId, state: "worker_failed", errorMessage: reason });
    });
    worker.connection.close();
    this.workers.delete(worker.record.workerId);
    this.requestSchedule();
  }

  // ---------------------------------------------------------------- endpoint registry

  registerEndpoint(input: RegisterEndpointInput): EndpointRecord {
    this.ensureRunning();
    if (typeof input.name !== "string" || input.name.trim() === "") throw new ValidationError("name", "must not be empty");
    if (input.name.length > 512) throw new ValidationError("name", `must be at most 512 characters, got ${input.name.length}`);
    if (typeof input.address !== "string" || input.address.trim() === "") throw new ValidationError("address", "must not be empty");
    const namespace = input.namespace || DEFAULT_NAMESPACE;
    if (input.ttlSeconds !== undefined && (!Number.isFinite(input.ttlSeconds) || input.ttlSeconds < 0)) {
      throw new ValidationError("ttlSeconds", `must be a non-negative number, got ${input.ttlSeconds}`);
    }
    if (input.jobId) {
      const job = this.getJob(input.jobId);
      if (isFinished(job.state)) throw new FlusterError(`job ${job.jobId} is already ${job.state}; it cannot own endpoints`, "failed_precondition");
    }
    const now = this.now();
    const endpoint: EndpointRecord = {
      endpointId: `ep-${randomBytes(8).toString("hex")}`,
      name: input.name,
      address: input.address,
      namespace,
      metadata: { ...(input.metadata ?? {}) },
      registeredAt: now,
    };
    if (input.jobId) endpoint.jobId = input.jobId;
    if (input.ttlSeconds) {
      endpoint.ttlSeconds = input.ttlSeconds;
      endpoint.expiresAt = now + input.ttlSeconds * 1000;
    }
    this.store.saveEndpoint(endpoint);
    this.endpoints.set(endpoint.endpointId, endpoint);
    this.events.emit(`endpoints:${namespace}:${endpoint.name}`);
    return endpoint;
  }

  /** Extends TTL endpoints; returns the ids that no longer exist. */
  renewEndpoints(ids: readonly string[]): string[] {
    this.ensureRunning();
    const missing: string[] = [];
    const now = this.now();
    this.store.transaction(() => {
      for (const id of ids) {
        const e = this.endpoints.get(id);
        if (!e) {
          missing.push(id);
          continue;
        }
        if (e.ttlSeconds) {
          e.expiresAt = now + e.ttlSeconds * 1000;
          this.store.saveEndpoint(e);
        }
      }
    });
    return missing;
  }

  unregisterEndpoint(endpointId: string): void {
    this.ensureRunning();
    if (!endpointId) throw new ValidationError("endpointId", "must not be empty");
    this.removeEndpoint(endpointId);
  }

  private removeEndpoint(endpointId: string): void {
    const e = this.endpoints.get(endpointId);
    if (!e) return;
    this.endpoints.delete(endpointId);
    this.store.deleteEndpoint(endpointId);
    this.events.emit(`endpoints:${e.namespace}:${e.name}`);
  }

  lookupEndpoints(name: string, namespace: string): EndpointRecord[] {
    if (typeof name !== "string" || name === "") throw new ValidationError("name", "must not be empty");
    const ns = namespace || DEFAULT_NAMESPACE;
    return [...this.endpoints.values()].filter((e) => e.namespace === ns && e.name === name).sort((a, b) => a.registeredAt - b.registeredAt);
  }

  listEndpoints(prefix: string, namespace: string, allNamespaces = false): EndpointRecord[] {
    const ns = namespace || DEFAULT_NAMESPACE;
    return [...this.endpoints.values()]
      .filter((e) => (allNamespaces || e.namespace === ns) && e.name.startsWith(prefix))
      .sort((a, b) => a.name.localeCompare(b.name) || a.registeredAt - b.registeredAt);
  }

  /** Attempt lookup for log streaming: where an attempt ran. */
  workerAddressOf(attempt: AttemptRecord): string | undefined {
    return this.workers.get(attempt.workerId)?.record.address ?? this.knownWorkerAddresses.get(attempt.workerId);
  }
}

/** Per-task demand of a job, in scheduler terms. */
function demandOf(job: JobRecord): TaskDemand {
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

/** Progress order of active states, so a late "assigned" never overwrites "running". */
function stateRank(state: TaskState): number {
  return state === "assigned" ? 1 : state === "building" ? 2 : state === "running" ? 3 : 0;
}

/** A job id prefix from its name: readable in listings, safe in paths. */
function slug(name: string): string {
  validateJobName(name);
  const tail = name.split("/").pop() ?? "job";
  return tail.replace(/[^A-Za-z0-9-]/g, "-").replace(/-+/g, "-").replace(/^-|-$/g, "").slice(0, 40).toLowerCase() || "job";
}
