// The controller's effect loop: it holds jobs, workers and attempts in memory,
// asks the pure parts what to do (the task state machine, the scheduler, the
// reconcile diff) and applies their answers to the store and the wire.
// A change is seen in memory only once the store has committed it (store.ts):
// a launch joins the books after its group commit; every other change runs in
// a store transaction that undoes it in memory if the commit fails. Changes
// the controller makes on its own (ticks, workers' answers) that cannot be
// stored are dropped and logged, and happen again on a later round, so a full
// disk costs nothing but time, and reads go on meanwhile.
// Job groups and reservations live in their own collaborators (JobGroups in
// groups.ts, Reservations in reservations.ts), beside the Ledger and the
// WorkerTable; the controller's public methods for them check that it is
// running and delegate. A worker as a scheduling pass sees it is built in
// scheduling.ts.
import { setMaxListeners } from "node:events";
import { randomUUID } from "node:crypto";
import { backoffDelay } from "../../core/backoff.js";
import { FlusterError, ValidationError } from "../../core/errors.js";
import { silentLogger, type Logger } from "../../core/logger.js";
import { isFinished } from "../../core/status.js";
import { DEFAULT_MAX_REPLICAS, validateJobSpec } from "../../rpc/convert.js";
import type { JobGroupSpec, ReservationSpec } from "../../rpc/gen/fluster/cluster/v1/controller_pb.js";
import type { JobSpec } from "../../rpc/gen/fluster/cluster/v1/types_pb.js";
import { watchRevisions, type ClusterRevision, type WatchRevisionsOptions } from "./changes.js";
import { EndpointRegistry, type RegisterEndpointInput } from "./endpoints.js";
import { jobIdPrefix, namespaceFor, newJobRecord, type JobFilter, type LaunchOptions } from "./jobs.js";
import { Ledger } from "./ledger.js";
import { attemptFields, describeAttempt, describeResources, LOGGED_WAIT_MS, pendingSince, resourcesField } from "./log-fields.js";
import { groupPlaced, JobGroups, type GroupFilter, type GroupStatus } from "./groups.js";
import type { AttemptRecord, EndpointRecord, JobGroupRecord, JobRecord, ManagedVmRecord, ReservationRecord, WorkerCapacityRecord, WorkerRecord } from "./model.js";
import type { ControllerObserver } from "./observer.js";
import { Reservations, type ReservationFigures, type ReservationFilter } from "./reservations.js";
import { classifyWorkerFailure, desiredSet, diffReconcile, isEmptyDiff, reconcileDeadlineMs, type ReconcileDiff, type WorkerFailure } from "./reconcile.js";
import { schedule, type PendingJob, type Preemption, type ReservationDemand, type ScheduleResult, type SchedulerWorker } from "./scheduler/index.js";
import type { GroupStatus as AutoscalerGroupStatus, PendingDemand, ScaleGroup } from "../autoscaler/types.js";
import { Autoscaling, jobDemand, reservationDemand, type AutoscalingOptions } from "./autoscaling.js";
import { hostOfAddress, rendezvousVariables } from "./rendezvous.js";
import { isTaskActive, pendingJobOf, schedulerWorkerFor, sliceDemandOf, tpuHostsOf, usedBy, type PendingContext } from "./scheduling.js";
import { StoreWriteError, type StateStore } from "./store.js";
import { isActiveAttempt } from "./task-state.js";
import type { Assignment, ObservedAttempt, WorkerConnection } from "./worker-connection.js";
import { WorkerTable, workerRecordOf, type RegisterWorkerInput, type WorkerRuntime } from "./workers.js";

/** How long the controller waits for a registering worker to answer its first call. */
const WORKER_CHECK_TIMEOUT_MS = 5_000;

export type { JobFilter, LaunchOptions } from "./jobs.js";
export type { GroupFilter, GroupStatus } from "./groups.js";
export type { ReservationFigures, ReservationFilter } from "./reservations.js";
export type { RegisterEndpointInput } from "./endpoints.js";
export type { RegisterWorkerInput } from "./workers.js";
export type { AttemptEnding, ControllerObserver, ReconcileRoundReport, SchedulingPassReport } from "./observer.js";
export type { Assignment, DesiredAttempt, ObservedAttempt, ObservedAttempts, WorkerConnection } from "./worker-connection.js";

/** Options of {@link Controller}. */
export interface ControllerOptions {
  store: StateStore;
  /** Opens a connection to a worker's WorkerService. */
  connectWorker: (address: string) => WorkerConnection;
  /** How often every worker is reconciled. @default 1000 */
  reconcileIntervalMs?: number;
  /**
   * A worker the controller has not heard from (no reconcile answered, no
   * heartbeat) for longer than this is lost; workers learn it when they
   * register, and fence their attempts sooner. @default 10_000
   */
  workerLostGraceMs?: number;
  /** Most tasks (replicas) one job may have; a launch asking more gets `invalid_argument`. @default 10_000 */
  maxReplicas?: number;
  /** Endpoints one job may hold at once; one more gets `resource_exhausted`. @default 1000 */
  maxEndpointsPerJob?: number;
  /** Clock, for tests. @default Date.now */
  now?: () => number;
  /** Where lifecycle events go (workers joining and lost, attempts, retries, jobs finishing; docs/logging.md). @default none (a silent logger) */
  logger?: Logger;
  /**
   * Fault injection, tests only: at each tick, each worker is cut off with
   * this probability for `loseWorkerMs` — every call to it and from it fails
   * as on a partitioned network — so that it is lost after the grace and
   * fences its attempts itself. @default 0
   */
  loseWorkerProbability?: number;
  /** How long a worker cut off by fault injection stays cut off. @default 1.5 × workerLostGraceMs */
  loseWorkerMs?: number;
  /** Random draws of fault injection, for tests. @default Math.random */
  random?: () => number;
  /** The scheduling pass, for tests that check what the controller asks of it. @default schedule (scheduler/index.ts) */
  schedule?: typeof schedule;
  /** Told of launches, ended attempts, scheduling passes, reconcile rounds and lost workers, e.g. to count them (observer.ts). @default none */
  observer?: ControllerObserver;
  /** Scale groups and their platforms: the controller sizes them to the demand it sees (autoscaling.ts). @default none: workers are started by hand */
  autoscaling?: AutoscalingOptions;
}

/**
 * Lifecycle:
 * - `created`: state not loaded; nothing runs.
 * - `running`: reconcile loop ticking; accepts every call.
 * - `stopping`: loop halted; in-flight calls finish.
 * - `stopped`: store closed; calls fail with `unavailable`.
 */
export type ControllerState = "created" | "running" | "stopping" | "stopped";

export class Controller {
  private stateValue: ControllerState = "created";
  private readonly store: StateStore;
  readonly reconcileIntervalMs: number;
  /** How long a worker may go without contact before it is lost. */
  readonly workerLostGraceMs: number;
  private readonly now: () => number;
  private readonly maxReplicas: number;
  private readonly logger: Logger;
  private readonly connectWorker: (address: string) => WorkerConnection;
  private readonly loseWorkerProbability: number;
  private readonly loseWorkerMs: number;
  /** Workers cut off by fault injection, until when. */
  private readonly cutOff = new Map<string, number>();
  private readonly random: () => number;
  private readonly schedule: typeof schedule;
  private readonly observer: ControllerObserver;
  private readonly workers: WorkerTable;
  /** Jobs, tasks and attempts, changed only through the task state machine. */
  private readonly ledger: Ledger;
  /** The endpoint registry; reads go straight to it, writes through the controller. */
  readonly endpoints: EndpointRegistry;
  private nextSeq = 1;
  /** Launches with a request id whose commit is under way: a retry waits for the same outcome. */
  private readonly launching = new Map<string, Promise<JobRecord>>();
  /** Job groups: launches, ends and the cascade (groups.ts). */
  private readonly groups: JobGroups;
  /** Reservations: creation, release, expiry, and what a pass is asked (reservations.ts). */
  private readonly reservations: Reservations;
  /** When a failed write was last logged (one line a minute while the store cannot be written). */
  private storeFailureLoggedAt = Number.NEGATIVE_INFINITY;
  private scheduleQueued = false;
  /**
   * Room may have appeared since the last pass (an attempt ended, a worker
   * joined): every schedulable job is tried. Otherwise only untried ones are,
   * since a job that did not fit cannot fit in less room.
   */
  private capacityGrew = true;
  private tickTimer: NodeJS.Timeout | undefined;
  /** When the last tick ran, to tell a stalled controller from silent workers. */
  private lastTickAt: number | undefined;
  /** Advertised address of this controller, given to jobs. */
  address = "";
  /** The autoscaler, when scale groups are configured. */
  private readonly autoscaling: Autoscaling | undefined;
  /** Jobs the last pass that tried them could not place (and not for a preemption under way): the autoscaler's demand. */
  private readonly waiting = new Set<string>();
  /** Jobs that no registered worker could ever take, as the last pass that tried them found. */
  private readonly neverFit = new Set<string>();
  /** Reservation minimums the last pass could not hold, as demand. */
  private reservationsWaiting: PendingDemand[] = [];
  /** Workers holding reservation slots in the last pass. */
  private slotHolders: ReadonlySet<string> = new Set();
  /** What the autoscaler is doing for waiting jobs, appended to their pending reasons ("" when nothing). */
  private autoscalerNote = "";
  /** Jobs the last autoscaler round found no scale group could ever serve. */
  private unfittableJobs: ReadonlySet<string> = new Set();

  constructor(options: ControllerOptions) {
    this.store = options.store;
    this.reconcileIntervalMs = options.reconcileIntervalMs ?? 1000;
    this.now = options.now ?? Date.now;
    this.logger = options.logger ?? silentLogger();
    this.connectWorker = options.connectWorker;
    this.loseWorkerProbability = options.loseWorkerProbability ?? 0;
    this.loseWorkerMs = options.loseWorkerMs ?? 1.5 * (options.workerLostGraceMs ?? 10_000);
    this.random = options.random ?? Math.random;
    this.schedule = options.schedule ?? schedule;
    this.observer = options.observer ?? {};
    this.endpoints = new EndpointRegistry(this.store, this.now, options.maxEndpointsPerJob);
    this.maxReplicas = options.maxReplicas ?? DEFAULT_MAX_REPLICAS;
    this.workerLostGraceMs = options.workerLostGraceMs ?? 10_000;
    this.workers = new WorkerTable(this.store, options.connectWorker, this.workerLostGraceMs);
    this.ledger = new Ledger(this.store, this.workers, this.endpoints, this.now, {
      stoppingMaxMs: this.workerLostGraceMs,
      // Room a stopped attempt held is free: a task waiting for it can go now.
      roomFreed: () => this.requestSchedule(),
      jobFinished: (job) => this.groups.jobFinished(job),
      jobAdded: (job) => this.observer.jobLaunched?.(job),
      attemptEnded: (attempt, ending) => this.observer.attemptEnded?.(attempt, ending),
      logger: this.logger,
    });
    const collaborator = {
      store: this.store,
      now: this.now,
      nextSeq: () => this.nextSeq++,
      maxReplicas: this.maxReplicas,
      requestSchedule: (capacityChanged?: boolean) => this.requestSchedule(capacityChanged),
      background: (change: () => void) => this.background(change),
    };
    this.reservations = new Reservations({ ...collaborator, jobs: this.ledger.jobs, logger: this.logger });
    this.groups = new JobGroups({ ...collaborator, ledger: this.ledger, reservations: this.reservations });
    this.autoscaling = options.autoscaling
      ? new Autoscaling(options.autoscaling, {
          store: this.store,
          now: this.now,
          logger: this.logger,
          workerLoad: (workerId) => {
            const worker = this.workers.get(workerId);
            return worker && worker.record.health !== "lost" ? worker.attempts.size : undefined;
          },
          drainWorker: (workerId) => {
            const worker = this.workers.get(workerId);
            if (worker) worker.draining = true;
          },
          forgetWorker: (workerId, reason) => {
            const worker = this.workers.get(workerId);
            if (worker && this.stateValue === "running") this.background(() => this.loseWorker(worker, reason));
          },
          background: (change) => this.background(change),
        })
      : undefined;
  }

  get state(): ControllerState {
    return this.stateValue;
  }

  /** Loads durable state, adopts attempts of known workers, and starts the reconcile loop. */
  start(): void {
    if (this.stateValue !== "created") throw new FlusterError(`controller cannot start from state ${this.stateValue}`, "failed_precondition");
    const loaded = this.store.load();
    this.nextSeq = loaded.nextSeq;
    // Endpoints and workers first: adopting attempts can finish a job, which removes its endpoints.
    this.endpoints.load(loaded.endpoints);
    this.workers.load(loaded.workers, this.now());
    // Groups and reservations before jobs: adopting attempts can finish a job, which ends its group.
    for (const group of loaded.groups) this.groups.add(group);
    for (const reservation of loaded.reservations) this.reservations.add(reservation);
    for (const job of loaded.jobs) this.reservations.addJob(job);
    this.nextSeq = Math.max(this.nextSeq, ...loaded.reservations.map((r) => r.seq + 1));
    this.ledger.load(loaded.jobs);
    this.endpoints.removeOwnedByEndedAttempts((id) => {
      const attempt = this.ledger.attempts.get(id);
      return attempt !== undefined && isActiveAttempt(attempt.state);
    });
    this.stateValue = "running";
    this.autoscaling?.load(loaded.vms);
    this.tickTimer = setInterval(() => this.tick(), this.reconcileIntervalMs);
    this.tickTimer.unref();
    this.requestSchedule();
  }

  /** Stops the loop and closes worker connections and the store. Running jobs keep running on their workers. */
  async shutdown(): Promise<void> {
    if (this.stateValue === "stopped" || this.stateValue === "stopping") return;
    this.stateValue = "stopping";
    if (this.tickTimer) clearInterval(this.tickTimer);
    this.autoscaling?.stop();
    this.workers.closeAll();
    this.store.close();
    this.stateValue = "stopped";
  }

  private ensureRunning(): void {
    if (this.stateValue !== "running") throw new FlusterError(`controller is ${this.stateValue}`, "unavailable");
  }

  // ---------------------------------------------------------------- jobs

  /**
   * Accepts a job; resolves once it is durably stored, and only then is it
   * listed and scheduled. A launch whose commit fails leaves nothing behind.
   * A retry with the same request id gets the first launch's job (waiting
   * for its commit while that is under way), never one that was not stored.
   */
  async launchJob(spec: JobSpec | undefined, options: LaunchOptions = {}): Promise<JobRecord> {
    this.ensureRunning();
    const { requestId } = options;
    if (!requestId) return this.launchNew(spec, options);
    const existing = this.ledger.jobs.byRequest(requestId) ?? this.launching.get(requestId);
    if (existing) return existing;
    const launch = this.launchNew(spec, options);
    this.launching.set(requestId, launch);
    const forget = () => void this.launching.delete(requestId);
    launch.then(forget, forget);
    return launch;
  }

  private async launchNew(spec: JobSpec | undefined, options: LaunchOptions): Promise<JobRecord> {
    const request = validateJobSpec(spec, "job", { maxReplicas: this.maxReplicas });
    const parent = options.parentJobId ? this.ledger.jobs.get(options.parentJobId) : undefined;
    if (parent && isFinished(parent.state)) throw new FlusterError(`parent job ${parent.jobId} is already ${parent.state}`, "failed_precondition");
    // A child inherits its parent's namespace unless it asked for one.
    const namespace = namespaceFor(options.namespace, parent);
    if (options.reservationId) this.reservations.forLaunch(options.reservationId, namespace);
    const job = newJobRecord(spec as JobSpec, request, {
      jobId: `${jobIdPrefix(request.name)}-${randomUUID().slice(0, 12)}`,
      namespace,
      seq: this.nextSeq++,
      submittedAt: this.now(),
      ...(parent ? { parentJobId: parent.jobId } : {}),
      ...(options.requestId ? { requestId: options.requestId } : {}),
      ...(options.reservationId ? { reservationId: options.reservationId } : {}),
    });
    await this.store.defer(() => {
      this.store.saveJob(job);
      for (const t of job.tasks) this.store.saveTask(t);
    });
    this.ledger.addJob(job);
    this.reservations.addJob(job);
    // Its parent may have finished while the job was being stored: it goes the way of its siblings.
    const parentNow = job.parentJobId ? this.ledger.jobs.find(job.parentJobId) : undefined;
    if (parentNow && isFinished(parentNow.state)) {
      this.background(() => this.store.transaction(() => this.ledger.killJob(job, `parent job ${parentNow.jobId} ${parentNow.state}`)));
    }
    this.requestSchedule(false);
    return job;
  }

  getJob(jobId: string): JobRecord {
    return this.ledger.jobs.get(jobId);
  }

  /** The job, or undefined when there is none with this id. */
  findJob(jobId: string): JobRecord | undefined {
    return this.ledger.jobs.find(jobId);
  }

  /** The job a launch with this request id made, if any. */
  findJobByRequest(requestId: string): JobRecord | undefined {
    return this.ledger.jobs.byRequest(requestId);
  }

  /** The attempt, or undefined when there is none with this id. */
  findAttempt(attemptId: string): AttemptRecord | undefined {
    return this.ledger.attempts.get(attemptId);
  }

  listJobs(filter: JobFilter = {}): JobRecord[] {
    return this.ledger.jobs.list(filter);
  }

  /** The workspace bundles of unfinished jobs, which the bundle sweep keeps. */
  liveBundleIds(): Set<string> {
    const live = new Set<string>();
    for (const job of this.ledger.jobs.values()) {
      const bundleId = job.spec.environment?.bundleId;
      if (bundleId && !isFinished(job.state)) live.add(bundleId);
    }
    return live;
  }

  /**
   * The state's revision now and after every committed change (jobs, tasks,
   * workers, endpoints, groups, reservations), for live views; ends when
   * `signal` aborts.
   */
  watchRevisions(signal: AbortSignal, options: WatchRevisionsOptions = {}): AsyncGenerator<ClusterRevision> {
    return watchRevisions(this.store, signal, { now: this.now, ...options });
  }

  /** The job now and after every change until it is finished or `signal` aborts. */
  watchJob(jobId: string, signal: AbortSignal): AsyncGenerator<JobRecord> {
    return this.ledger.watchJob(jobId, signal);
  }

  terminateJob(jobId: string, reason = "terminated by request"): JobRecord {
    this.ensureRunning();
    const job = this.ledger.jobs.get(jobId);
    if (isFinished(job.state)) return job;
    this.store.transaction(() => this.ledger.killJob(job, reason));
    this.requestSchedule();
    return job;
  }

  // ---------------------------------------------------------------- job groups (groups.ts)

  /**
   * Accepts a group of jobs: every spec is validated first (errors name
   * `jobs[i].…`), then the jobs and the group are stored in one commit, and
   * only then listed and scheduled, all together or none (groups.ts). A
   * retry with the same request id gets the first launch's group.
   */
  async launchGroup(specs: readonly (JobSpec | undefined)[], groupSpec: JobGroupSpec | undefined, options: LaunchOptions = {}): Promise<JobGroupRecord> {
    this.ensureRunning();
    return this.groups.launch(specs, groupSpec, options);
  }

  getGroup(groupId: string): JobGroupRecord {
    return this.groups.get(groupId);
  }

  findGroup(groupId: string): JobGroupRecord | undefined {
    return this.groups.find(groupId);
  }

  /** The group a launch with this request id made, if any. */
  findGroupByRequest(requestId: string): JobGroupRecord | undefined {
    return this.groups.findByRequest(requestId);
  }

  listGroups(filter: GroupFilter = {}): JobGroupRecord[] {
    return this.groups.list(filter);
  }

  /** The group's jobs in launch order. */
  jobsOfGroup(group: JobGroupRecord): JobRecord[] {
    return this.groups.jobsOf(group);
  }

  groupStatus(group: JobGroupRecord): GroupStatus {
    return this.groups.status(group);
  }

  /** Kills every unfinished job of the group. */
  terminateGroup(groupId: string, reason = "terminated by request"): JobGroupRecord {
    this.ensureRunning();
    return this.groups.terminate(groupId, reason);
  }

  // ---------------------------------------------------------------- reservations (reservations.ts)

  /** Creates a reservation, durably; a retry with the same request id gets the first one. */
  async createReservation(spec: ReservationSpec | undefined, options: { namespace?: string; requestId?: string } = {}): Promise<ReservationRecord> {
    this.ensureRunning();
    return this.reservations.create(spec, options);
  }

  getReservation(reservationId: string): ReservationRecord {
    return this.reservations.get(reservationId);
  }

  findReservation(reservationId: string): ReservationRecord | undefined {
    return this.reservations.find(reservationId);
  }

  /** The reservation a creation with this request id made, if any. */
  findReservationByRequest(requestId: string): ReservationRecord | undefined {
    return this.reservations.findByRequest(requestId);
  }

  listReservations(filter: ReservationFilter = {}): ReservationRecord[] {
    return this.reservations.list(filter);
  }

  /** Used, held and pending slots of a reservation, with its jobs. */
  reservationFigures(reservationId: string): ReservationFigures & { jobIds: readonly string[] } {
    return this.reservations.figures(reservationId);
  }

  /** Ends a reservation now: it holds nothing more, its jobs run on as ordinary jobs. Releasing an ended one changes nothing. */
  releaseReservation(reservationId: string, reason = ""): ReservationRecord {
    this.ensureRunning();
    return this.reservations.release(reservationId, reason);
  }

  // ---------------------------------------------------------------- workers

  registerWorker(input: RegisterWorkerInput): WorkerRecord {
    this.ensureRunning();
    this.checkNotCutOff(input.workerId);
    const record = workerRecordOf(input, this.now());
    const existing = this.workers.get(record.workerId);
    // Same worker id, new address: the daemon restarted and its old attempts are gone.
    if (existing && existing.record.address !== record.address) this.loseWorker(existing, "worker restarted");
    const worker = this.workers.upsert(record);
    const again = existing !== undefined && existing === this.workers.get(record.workerId);
    this.logger.info(
      { event: "worker_registered", workerId: record.workerId, address: record.address, resources: resourcesField(record.capacity), attributes: input.attributes, again },
      `worker ${record.workerId} ${again ? "registered again" : "registered"} at ${record.address} (${describeResources(record.capacity)})`,
    );
    this.requestSchedule();
    return worker.record;
  }

  /**
   * Registers a worker after calling it once, as every dispatch will: a
   * worker that refuses the controller's token, an address that is not a
   * Fluster worker (or is another one) is turned away with the reason
   * (`failed_precondition`), one the controller cannot reach with
   * `unavailable`, instead of taking attempts it can never run.
   */
  async admitWorker(input: RegisterWorkerInput): Promise<WorkerRecord> {
    this.ensureRunning();
    workerRecordOf(input, this.now()); // bad input fails before any call
    const { workerId, address } = input;
    const connection = this.connectWorker(address);
    let answer: { workerId: string };
    try {
      answer = await connection.healthCheck(AbortSignal.timeout(WORKER_CHECK_TIMEOUT_MS));
    } catch (err) {
      const failure = classifyWorkerFailure(err);
      const misconfigured = failure.kind === "misconfigured";
      const message =
        `the controller cannot call worker ${workerId} at ${address}: ${failure.kind === "unreachable" ? `no answer (${failure.message})` : failure.message}` +
        (misconfigured ? "" : "; set the worker's --advertise-host to an address the controller can reach");
      this.logger.warn({ event: "worker_refused", workerId, address, reason: message }, `refused worker ${workerId} (${address}): ${message}`);
      throw new FlusterError(message, misconfigured ? "failed_precondition" : "unavailable", { cause: err });
    } finally {
      connection.close();
    }
    if (answer.workerId && answer.workerId !== workerId) {
      const message = `the address ${address} answers as worker ${answer.workerId}, not ${workerId}`;
      this.logger.warn({ event: "worker_refused", workerId, address, reason: message }, `refused worker ${workerId} (${address}): ${message}`);
      throw new FlusterError(message, "failed_precondition");
    }
    return this.registerWorker(input);
  }

  listWorkers(): Array<{ record: WorkerRecord; used: WorkerCapacityRecord; runningAttempts: number }> {
    return [...this.workers.values()].map((w) => ({ record: w.record, used: usedBy(w, this.now, this.jobOf), runningAttempts: w.attempts.size }));
  }

  /**
   * Attempt updates pushed by a worker, or none (the worker renewing its
   * lease): contact, so its grace period starts over. Returns false when the
   * worker is unknown (it must register; its attempts were retried).
   */
  heartbeat(workerId: string, updates: readonly ObservedAttempt[]): boolean {
    this.ensureRunning();
    this.checkNotCutOff(workerId);
    const worker = this.workers.get(workerId);
    if (!worker) return false;
    this.workers.contact(worker, this.now());
    this.applyDiff(worker, this.diff(worker, updates, []));
    return true;
  }

  /**
   * Fault injection: the error every call to or from a worker meets while it
   * is cut off (lost on the way), else undefined; a cut that has ended is forgotten.
   */
  private cutOffError(workerId: string): FlusterError | undefined {
    const until = this.cutOff.get(workerId);
    if (until === undefined) return undefined;
    if (this.now() < until) return new FlusterError(`fault injection: worker ${workerId} is cut off from the controller`, "unavailable");
    this.cutOff.delete(workerId);
    return undefined;
  }

  /** Fault injection: a call from a worker that is cut off is lost on the way. */
  private checkNotCutOff(workerId: string): void {
    const cut = this.cutOffError(workerId);
    if (cut) throw cut;
  }

  /** A job by id, for the scheduling helpers (scheduling.ts). */
  private readonly jobOf = (jobId: string): JobRecord | undefined => this.ledger.jobs.find(jobId);

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
      if (this.stateValue === "running") this.background(() => this.schedulePass());
    });
  }

  /** One scheduling pass: place pending tasks, create their attempts, dispatch them. */
  schedulePass(): void {
    const { ledger } = this;
    const began = performance.now();
    const candidates = this.capacityGrew ? [...ledger.schedulable] : [...ledger.untried];
    this.capacityGrew = false;
    ledger.untried.clear();
    const pendingJobs: PendingJob[] = [];
    const seen = new Set<JobRecord>();
    for (const job of candidates) {
      // A group still being placed goes to the scheduler whole, or it could never be placed all at once.
      const group = job.groupId ? this.groups.find(job.groupId) : undefined;
      const together = group && !groupPlaced(this.groups.jobsOf(group)) ? this.groups.jobsOf(group) : [job];
      for (const member of together) {
        if (seen.has(member)) continue;
        seen.add(member);
        const pending = isFinished(member.state) ? undefined : pendingJobOf(member, this.pendingContext(member));
        if (pending) pendingJobs.push(pending);
        else ledger.schedulable.delete(member);
      }
    }
    const demands = this.reservations.demands();
    // Active reservations hold room on every pass, also when no job waits.
    if (pendingJobs.length === 0 && demands.length === 0) return;
    const now = this.now();
    const workers: SchedulerWorker[] = [];
    for (const w of this.workers.values()) if (this.workers.isPlaceable(w, now)) workers.push(schedulerWorkerFor(w, this.now, this.jobOf));
    const result = this.schedule(pendingJobs, workers, demands);
    const dispatches: Array<{ worker: WorkerRuntime; assignment: Assignment }> = [];
    let preempted = 0;
    /** Jobs placed after a wait worth a line: the longest wait of their tasks placed now, and why they waited. */
    const waited = new Map<JobRecord, { waitedMs: number; pendingReason: string | undefined; tasks: number }>();
    this.store.transaction(() => {
      const placed = new Set<JobRecord>();
      const newAttempts: Array<{ job: JobRecord; attempt: AttemptRecord; worker: WorkerRuntime }> = [];
      for (const placement of result.placements) {
        const job = ledger.jobs.find(placement.jobId);
        const task = job?.tasks[placement.taskIndex];
        const worker = this.workers.get(placement.workerId);
        if (!job || !task || !worker || task.state !== "pending") continue;
        const wait = waited.get(job) ?? { waitedMs: 0, pendingReason: job.pendingReason, tasks: 0 };
        waited.set(job, { ...wait, waitedMs: Math.max(wait.waitedMs, now - pendingSince(job, task)), tasks: wait.tasks + 1 });
        const attempt = ledger.placeAttempt(job, task, worker, now);
        placed.add(job);
        newAttempts.push({ job, attempt, worker });
      }
      // Once every placement of the pass is made: a gang's variables name where all its tasks went.
      for (const { job, attempt, worker } of newAttempts) dispatches.push({ worker, assignment: assignmentFor(job, attempt, this.rendezvousFor(job, attempt)) });
      for (const job of placed) ledger.updateJobState(job);
      preempted = this.applyPreemptions(result.preemptions);
      for (const [jobId, reason] of [...result.pending, ...result.neverFits]) {
        const job = ledger.jobs.find(jobId);
        if (job) ledger.setPendingReason(job, this.autoscalerNote && !this.unfittableJobs.has(jobId) ? `${reason}; ${this.autoscalerNote}` : reason);
      }
    });
    this.reservations.noteOutcomes(result.reservations);
    if (this.autoscaling) this.noteDemand(pendingJobs, demands, result);
    for (const [job, { waitedMs, pendingReason, tasks }] of waited) {
      if (waitedMs < LOGGED_WAIT_MS) continue;
      this.logger.info(
        { event: "job_scheduled", jobId: job.jobId, tasks, waitedMs, ...(pendingReason ? { pendingReason } : {}) },
        `job ${job.jobId}: ${tasks} task(s) placed after waiting ${(waitedMs / 1000).toFixed(1)}s${pendingReason ? ` (it waited because: ${pendingReason})` : ""}`,
      );
    }
    for (const { worker, assignment } of dispatches) this.dispatch(worker, assignment);
    this.observer.schedulingPass?.({ seconds: (performance.now() - began) / 1000, jobs: pendingJobs.length, placements: dispatches.length, preemptions: preempted });
  }

  /**
   * What a pass left for the autoscaler: the jobs it tried and could not
   * place (those waiting for preempted attempts to stop excepted: room is
   * coming), the jobs no registered worker could ever take, the reservation
   * minimums it could not hold, and the workers holding slots.
   */
  private noteDemand(tried: readonly PendingJob[], reservations: readonly ReservationDemand[], result: ScheduleResult): void {
    const preempting = new Set(result.preemptions.map((p) => p.forJobId));
    for (const { jobId } of tried) {
      if (result.pending.has(jobId) && !preempting.has(jobId)) this.waiting.add(jobId);
      else this.waiting.delete(jobId);
      if (result.neverFits.has(jobId)) this.neverFit.add(jobId);
      else this.neverFit.delete(jobId);
    }
    const waiting: PendingDemand[] = [];
    const holders = new Set<string>();
    for (const reservation of reservations) {
      const outcome = result.reservations.get(reservation.reservationId);
      for (const workerId of outcome?.workerIds ?? []) holders.add(workerId);
      const demand = reservationDemand(reservation, outcome);
      if (demand) waiting.push(demand);
    }
    this.reservationsWaiting = waiting;
    this.slotHolders = holders;
  }

  /**
   * One autoscaler round: demand from the jobs and reservations the last
   * passes left waiting. A job that no registered worker and no scale
   * group's shape could ever take is unschedulable at once, with the reason.
   */
  private autoscale(now: number): void {
    const autoscaling = this.autoscaling;
    if (!autoscaling) return;
    const demand: PendingDemand[] = [];
    for (const jobId of [...this.waiting]) {
      const job = this.ledger.jobs.find(jobId);
      const pending = job && !isFinished(job.state) ? pendingJobOf(job, this.pendingContext(job)) : undefined;
      if (!pending) {
        this.waiting.delete(jobId);
        this.neverFit.delete(jobId);
        continue;
      }
      demand.push(jobDemand(pending));
    }
    demand.push(...this.reservationsWaiting);
    const decision = autoscaling.step(now, { demand, slotHolders: this.slotHolders });
    this.unfittableJobs = new Set(decision.unfittable.filter((u) => u.kind === "job").map((u) => u.id));
    if (autoscaling.enabled) {
      for (const unfit of decision.unfittable) {
        const job = unfit.kind === "job" && this.neverFit.has(unfit.id) ? this.ledger.jobs.find(unfit.id) : undefined;
        if (!job || isFinished(job.state)) continue;
        const reason = `no worker and no scale group can run it: ${unfit.reason}`;
        this.background(() => this.store.transaction(() => this.ledger.markUnschedulable(job, reason)));
        this.waiting.delete(job.jobId);
        this.neverFit.delete(job.jobId);
      }
    }
    const note = autoscalerNote(decision.groups);
    if (note !== this.autoscalerNote) {
      this.autoscalerNote = note;
      // Every waiting job's reason says it: a full pass sets them.
      this.requestSchedule(true);
    }
  }

  /** The VMs the autoscaler knows (ended ones for a day), oldest first; none without scale groups. */
  listVms(): ManagedVmRecord[] {
    return this.autoscaling?.list() ?? [];
  }

  /** Each scale group with its VM counts and what the autoscaler last decided for it, in config order. */
  scaleGroupStatuses(): Array<{ group: ScaleGroup; status: AutoscalerGroupStatus }> {
    return this.autoscaling?.groupStatuses() ?? [];
  }

  /** Releases every VM the autoscaler holds and waits for it (a LocalCluster's shutdown). */
  async releaseAllVms(reason: string): Promise<void> {
    this.autoscaling?.stop();
    await this.autoscaling?.releaseAll(reason);
  }

  /** A job's group (while the group is still being placed, with its locality) and its reservation (while active), for the scheduler. */
  private pendingContext(job: JobRecord): PendingContext {
    const context: PendingContext = {};
    const group = job.groupId ? this.groups.find(job.groupId) : undefined;
    if (group && !groupPlaced(this.groups.jobsOf(group))) {
      context.groupId = group.groupId;
      if (group.sameRegion) context.sameRegion = true;
      if (group.sameZone) context.sameZone = true;
    }
    if (job.reservationId && this.reservations.isActive(job.reservationId)) context.reservationId = job.reservationId;
    const slice = sliceDemandOf(job, (workerId) => this.workers.get(workerId)?.record.attributes);
    if (slice) context.slice = slice;
    return context;
  }

  /** The rendezvous variables of an attempt (rendezvous.ts), from where its job's active tasks are now. */
  private rendezvousFor(job: JobRecord, attempt: AttemptRecord): Record<string, string> {
    const hosts = job.tasks.map((task) => {
      const address = isTaskActive(task) && task.workerId !== undefined ? this.workers.get(task.workerId)?.record.address : undefined;
      return address !== undefined ? hostOfAddress(address) : undefined;
    });
    const first = job.tasks[0];
    const coordinator = first && isTaskActive(first) ? first.attempts.at(-1)?.attemptId : undefined;
    const tpuHosts = tpuHostsOf(job);
    return rendezvousVariables({
      taskIndex: attempt.taskIndex,
      numTasks: job.tasks.length,
      hosts,
      ...(tpuHosts !== undefined ? { tpuHostsPerSlice: tpuHosts } : {}),
      ...(coordinator !== undefined ? { coordinatorAttemptId: coordinator } : {}),
    });
  }

  /**
   * Stops the attempts a pass chose to preempt: each ends `preempted` (its
   * task is charged one preemption and goes back to pending) and its worker
   * gets KillTask after commit; its room counts as being freed until the
   * worker confirms. Runs inside the pass's transaction; returns how many it stopped.
   */
  private applyPreemptions(preemptions: readonly Preemption[]): number {
    let stopped = 0;
    for (const p of preemptions) {
      const attempt = this.ledger.attempts.get(p.attemptId);
      if (!attempt || !isActiveAttempt(attempt.state)) continue;
      const forJob = this.ledger.jobs.find(p.forJobId);
      const reason = `preempted by ${forJob?.request.priority ?? "higher-priority"} job ${p.forJobId}`;
      this.ledger.preemptAttempt(attempt, reason);
      this.store.afterCommit(() =>
        this.logger.info(
          { event: "attempt_preempted", ...attemptFields(attempt), workerId: p.workerId, forJobId: p.forJobId, reason },
          `${describeAttempt(attempt)} on worker ${p.workerId} ${reason}`,
        ),
      );
      stopped += 1;
    }
    return stopped;
  }

  /**
   * Sends an attempt's RunTask. One that got no answer may still have
   * arrived (only the answer was lost), so the attempt may be running there:
   * it is not placed elsewhere but sent again to the same worker (RunTask is
   * idempotent per attempt id), with backoff, until the worker answers or is
   * lost — and a lost worker's lease has fenced it by then — for one grace
   * period at most (a worker that heartbeats but never takes RunTask).
   */
  private dispatch(worker: WorkerRuntime, assignment: Assignment, resends = 0, firstSentAt = this.now()): void {
    const cut = this.cutOffError(worker.record.workerId);
    const sent = cut ? Promise.reject(cut) : worker.connection.runTask(assignment);
    sent.then(
      (observed) => {
        this.ledger.undispatched.delete(assignment.attemptId);
        if (!this.workers.isCurrent(worker)) return;
        this.workers.accepted(worker);
        if (this.stateValue === "running") this.background(() => this.applyDiff(worker, this.diff(worker, [observed], [])));
      },
      (err: unknown) => {
        const attempt = this.ledger.attempts.get(assignment.attemptId);
        if (!attempt || !isActiveAttempt(attempt.state) || this.stateValue !== "running") {
          this.ledger.undispatched.delete(assignment.attemptId);
          return;
        }
        const failure = classifyWorkerFailure(err);
        if (failure.kind === "unreachable" && this.workers.isCurrent(worker) && this.now() - firstSentAt < this.workerLostGraceMs) {
          // Still undispatched: a reconcile that finds it missing does not end it meanwhile.
          const timer = setTimeout(() => this.dispatch(worker, assignment, resends + 1, firstSentAt), backoffDelay(resends, { initialMs: 250, maxMs: 2_000 }));
          timer.unref();
          return;
        }
        this.ledger.undispatched.delete(assignment.attemptId);
        this.background(() => this.dispatchFailed(worker, attempt, failure));
        this.requestSchedule();
      },
    );
  }

  /**
   * A RunTask that failed. Unreachable (a worker no longer current): the
   * attempt is lost with the worker and retried (a preemption retry). Refused
   * (no room) or misconfigured (wrong token, not a worker): nothing ran, so
   * the task goes back to pending at no cost, and the worker gets no new
   * attempts, for a backoff after a refusal, or until it answers properly.
   */
  private dispatchFailed(worker: WorkerRuntime, attempt: AttemptRecord, failure: WorkerFailure): void {
    const { workerId } = worker.record;
    if (failure.kind === "unreachable") {
      this.store.transaction(() => this.ledger.endAttempt(attempt, { attemptId: attempt.attemptId, state: "worker_failed", errorMessage: `dispatch to ${workerId} failed: ${failure.message}` }));
      return;
    }
    const reason = failure.kind === "refused" ? `worker ${workerId} refused the attempt: ${failure.message}` : `worker ${workerId} is unhealthy: ${failure.message}`;
    this.store.transaction(() => this.ledger.notStarted(attempt, reason));
    if (failure.kind === "refused") this.workers.refused(worker, this.now());
    else this.workerFailed(worker, failure);
  }

  /** Pending jobs past their scheduling timeout become unschedulable. */
  private expireUnschedulable(now: number): void {
    for (const job of this.ledger.schedulable) {
      const limit = job.request.schedulingTimeoutSeconds;
      if (!limit || isFinished(job.state) || job.startedAt !== undefined) continue;
      if (now - job.submittedAt <= limit * 1000 || !job.tasks.some((t) => t.state === "pending")) continue;
      this.background(() => this.store.transaction(() => this.ledger.markUnschedulable(job, `not scheduled within ${limit}s: ${job.pendingReason ?? "no worker fits"}`)));
    }
  }

  // ---------------------------------------------------------------- attempt updates

  private diff(worker: WorkerRuntime, observed: readonly ObservedAttempt[], missing: readonly string[]): ReconcileDiff {
    return diffReconcile(worker.record.workerId, { observed, missing }, (id) => this.ledger.attempts.get(id), this.ledger.undispatched);
  }

  /** Applies a worker's changes in one transaction (most answers change nothing and cost none). */
  private applyDiff(worker: WorkerRuntime, diff: ReconcileDiff): void {
    if (isEmptyDiff(diff)) return;
    const { ledger } = this;
    this.store.transaction(() => {
      for (const update of diff.progressed) {
        const attempt = ledger.attempts.get(update.attemptId);
        if (attempt) ledger.progressAttempt(attempt, update);
      }
      for (const update of diff.ended) {
        const attempt = ledger.attempts.get(update.attemptId);
        if (attempt) ledger.endAttempt(attempt, update);
      }
      for (const known of diff.lost) {
        const attempt = ledger.attempts.get(known.attemptId);
        if (attempt) ledger.endAttempt(attempt, { attemptId: attempt.attemptId, state: "worker_failed", errorMessage: `worker ${worker.record.workerId} lost the attempt` });
      }
      for (const known of diff.delivered) {
        const attempt = ledger.attempts.get(known.attemptId);
        if (attempt && isActiveAttempt(attempt.state)) ledger.markDelivered(attempt);
      }
      for (const known of diff.undelivered) {
        const attempt = ledger.attempts.get(known.attemptId);
        if (attempt) ledger.notStarted(attempt, `worker ${worker.record.workerId} never received the attempt; it is sent again`);
      }
    });
    this.requestSchedule();
  }

  // ---------------------------------------------------------------- reconcile

  /**
   * One reconcile round: workers silent for longer than the grace period are
   * lost (also while a call to them is still in flight), every other worker
   * gets its desired set; TTL endpoints expire.
   */
  tick(): void {
    if (this.stateValue !== "running") return;
    const now = this.now();
    // Ticks that did not come (the process was stopped or its loop blocked)
    // are the controller's silence, not the workers'.
    const gap = this.lastTickAt === undefined ? 0 : now - this.lastTickAt;
    if (gap > 2 * this.reconcileIntervalMs) this.workers.credit(gap - this.reconcileIntervalMs);
    this.lastTickAt = now;
    for (const worker of [...this.workers.values()]) {
      const reason = this.workers.silence(worker, now);
      if (reason) this.background(() => this.loseWorker(worker, reason));
      else if (this.loseWorkerProbability > 0 && !this.cutOff.has(worker.record.workerId) && this.random() < this.loseWorkerProbability) {
        this.cutOff.set(worker.record.workerId, now + this.loseWorkerMs);
        this.logger.warn(
          { event: "fault_worker_cut_off", workerId: worker.record.workerId, durationMs: this.loseWorkerMs },
          `fault injection: worker ${worker.record.workerId} cut off for ${Math.round(this.loseWorkerMs / 1000)}s`,
        );
      }
    }
    this.expireUnschedulable(now);
    this.reservations.expire(now);
    this.autoscale(now);
    this.background(() => this.endpoints.expire());
    void this.reconcileAll();
    this.requestSchedule();
  }

  /** Reconciles every worker at once; resolves when all answers (or failures) are applied. */
  async reconcileAll(): Promise<void> {
    const signal = AbortSignal.timeout(reconcileDeadlineMs(this.reconcileIntervalMs, this.workerLostGraceMs));
    setMaxListeners(0, signal); // one listener per worker call
    const rounds: Promise<void>[] = [];
    const began = performance.now();
    for (const worker of this.workers.values()) {
      if (worker.record.health !== "lost" && !worker.reconciling) rounds.push(this.reconcileWorker(worker, signal));
    }
    await Promise.all(rounds);
    if (rounds.length > 0) this.observer.reconcileRound?.({ seconds: (performance.now() - began) / 1000, workers: rounds.length });
  }

  /** Reconciles one worker; resolves when its answer has been applied. */
  private async reconcileWorker(worker: WorkerRuntime, signal: AbortSignal): Promise<void> {
    worker.reconciling = true;
    this.workers.asking(worker, this.now());
    let answer: Awaited<ReturnType<WorkerConnection["reconcile"]>>;
    try {
      this.checkNotCutOff(worker.record.workerId);
      answer = await worker.connection.reconcile(desiredSet(worker.attempts), {}, signal);
    } catch (err) {
      if (this.stateValue === "running" && this.workers.isCurrent(worker)) this.background(() => this.workerFailed(worker, classifyWorkerFailure(err)));
      return;
    } finally {
      worker.reconciling = false;
    }
    // Lost while the call was in flight: a late answer changes nothing.
    if (this.stateValue !== "running" || !this.workers.isCurrent(worker)) return;
    this.background(() => {
      const before = worker.record.health;
      if (this.workers.answered(worker, this.now())) {
        const { workerId, address } = worker.record;
        this.logger.info({ event: "worker_healthy", workerId, address, previous: before }, `worker ${workerId} (${address}) answers again and takes new attempts`);
        this.requestSchedule();
      }
      this.applyDiff(worker, this.diff(worker, answer.observed, answer.missing));
    });
  }

  /** A call to the worker failed: its health follows, and it is lost once failures outlast the grace period. */
  private workerFailed(worker: WorkerRuntime, failure: WorkerFailure): void {
    if (!this.workers.isCurrent(worker)) return;
    const before = worker.record.health;
    const lostReason = this.workers.failed(worker, this.now(), failure);
    if (lostReason) return this.loseWorker(worker, lostReason);
    const { workerId, address } = worker.record;
    if (worker.record.health === "unhealthy" && before !== "unhealthy") {
      const reason = worker.record.healthReason ?? failure.message;
      this.logger.warn({ event: "worker_unhealthy", workerId, address, reason }, `worker ${workerId} (${address}) is unhealthy and gets no new attempts: ${reason}`);
    } else if (worker.record.health === "unreachable" && before === "healthy") {
      // Info, not warn: it is often a blip, and a worker that stays silent gets its worker_lost warning.
      this.logger.info({ event: "worker_unreachable", workerId, address, reason: failure.message }, `worker ${workerId} (${address}) does not answer: ${failure.message}; it gets no new attempts until it does`);
    }
  }

  private loseWorker(worker: WorkerRuntime, reason: string): void {
    const attemptIds = [...worker.attempts].map((a) => a.attemptId);
    this.store.transaction(() => {
      for (const attempt of [...worker.attempts]) this.ledger.endAttempt(attempt, { attemptId: attempt.attemptId, state: "worker_failed", errorMessage: reason });
      this.workers.remove(worker);
    });
    this.observer.workerLost?.(worker.record, reason);
    const { workerId, address } = worker.record;
    this.logger.warn({ event: "worker_lost", workerId, address, reason, attempts: attemptIds.length, attemptIds }, `worker ${workerId} (${address}) lost: ${reason}; ${attemptIds.length} attempt(s) affected`);
    this.requestSchedule();
  }

  /**
   * Runs a change the controller makes on its own (a tick, a worker's
   * answer). When the store cannot be written, the change was undone (see
   * store.ts) and happens again on a later round: it is logged, once a
   * minute while writes keep failing, and every pending job is tried again
   * at the next scheduling pass. Any other error is a bug and is thrown.
   */
  private background(change: () => void): void {
    try {
      change();
    } catch (err) {
      if (!(err instanceof StoreWriteError)) throw err;
      this.capacityGrew = true;
      const now = this.now();
      if (now - this.storeFailureLoggedAt < 60_000) return;
      this.storeFailureLoggedAt = now;
      this.logger.error({ event: "store_write_failed", error: err.message }, `${err.message}; the controller keeps answering reads and retries its changes every round`);
    }
  }

  // ---------------------------------------------------------------- endpoint registry (writes)

  /**
   * An endpoint owned by an attempt must name a live attempt (of its job,
   * which it defaults to): a process whose attempt already ended, e.g. one
   * its worker was told to kill, cannot leave an endpoint behind.
   */
  registerEndpoint(input: RegisterEndpointInput): EndpointRecord {
    this.ensureRunning();
    let owned = input;
    if (input.attemptId) {
      const attempt = this.ledger.attempts.get(input.attemptId);
      if (!attempt) throw new FlusterError(`attempt ${input.attemptId} not found; it cannot own endpoints`, "not_found");
      if (input.jobId && input.jobId !== attempt.jobId) {
        throw new ValidationError("attemptId", `attempt ${input.attemptId} belongs to job ${attempt.jobId}, not ${input.jobId}`);
      }
      if (!isActiveAttempt(attempt.state)) {
        throw new FlusterError(`attempt ${attempt.attemptId} has already ended (${attempt.state}); it cannot own endpoints`, "failed_precondition");
      }
      owned = { ...input, jobId: attempt.jobId };
    }
    if (owned.jobId) {
      const job = this.ledger.jobs.get(owned.jobId);
      if (isFinished(job.state)) throw new FlusterError(`job ${job.jobId} is already ${job.state}; it cannot own endpoints`, "failed_precondition");
    }
    return this.endpoints.register(owned);
  }

  /** Extends TTL endpoints; returns the ids that no longer exist. */
  renewEndpoints(ids: readonly string[]): string[] {
    this.ensureRunning();
    return this.endpoints.renew(ids);
  }

  unregisterEndpoint(endpointId: string): void {
    this.ensureRunning();
    if (!endpointId) throw new ValidationError("endpointId", "must not be empty");
    this.endpoints.remove(endpointId);
  }

  /** Forgets workers lost more than `retentionMs` ago (their attempts keep the worker id); returns their ids. */
  pruneLostWorkers(retentionMs: number): string[] {
    this.ensureRunning();
    return this.workers.pruneLost(this.now() - retentionMs);
  }

  /** Where an attempt ran, for log streaming (also after its worker was lost, until it is pruned). */
  workerAddressOf(attempt: AttemptRecord): string | undefined {
    return this.workers.addressOf(attempt.workerId);
  }
}

/**
 * What the autoscaler does for waiting jobs, in a few words for their
 * pending reasons: the groups allocating, backing off or full, e.g.
 * "autoscaler: cpu: at maxVms (4): 12 tasks wait". "" when no group acts.
 */
export function autoscalerNote(groups: readonly AutoscalerGroupStatus[]): string {
  const acting = groups.filter((g) => g.allocate > 0 || g.waitingTasks > 0 || /backing off/.test(g.reason) || g.vms.requested + g.vms.booting > 0);
  if (acting.length === 0) return "";
  const shown = acting.slice(0, 3).map((g) => `${g.group}: ${g.reason}`);
  if (acting.length > 3) shown.push(`${acting.length - 3} more group(s)`);
  return `autoscaler: ${shown.join("; ")}`;
}

function assignmentFor(job: JobRecord, attempt: AttemptRecord, env: Record<string, string>): Assignment {
  return {
    env,
    attemptId: attempt.attemptId,
    jobId: job.jobId,
    jobName: job.name,
    namespace: job.namespace,
    taskIndex: attempt.taskIndex,
    numTasks: job.tasks.length,
    spec: job.spec,
  };
}
