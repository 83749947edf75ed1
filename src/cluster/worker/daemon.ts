// The worker daemon, one per machine: registers with the controller, serves
// WorkerService, runs each attempt through the process runtime, pushes state
// changes at once and answers the controller's reconcile with what it sees.
import { create } from "@bufbuild/protobuf";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { hostname } from "node:os";
import { join } from "node:path";
import { retry } from "../../core/backoff.js";
import { FlusterError, ValidationError } from "../../core/errors.js";
import type { Logger } from "../../core/logger.js";
import { formatByteSize } from "../../core/quantity.js";
import type { TaskState } from "../../core/status.js";
import { deviceFromProto, deviceToProto, taskStateFromProto, taskStateToProto, toTimestamp } from "../../rpc/convert.js";
import { fromConnectError } from "../../rpc/errors.js";
import { ControllerService } from "../../rpc/gen/fluster/cluster/v1/controller_pb.js";
import { AttemptSchema, LogEntrySchema, LogStream, WorkerResourcesSchema, type Attempt, type JobSpec } from "../../rpc/gen/fluster/cluster/v1/types_pb.js";
import { WorkerService, type TaskAssignment } from "../../rpc/gen/fluster/worker/v1/worker_pb.js";
import { bearerHeader, createRpcChannel, startRpcServer, untrustedCertificateReason, type RpcChannel, type RpcServer } from "../../rpc/transport.js";
import { createFaultInjector } from "../../rpc/faults.js";
import { rpcMetricsInterceptor } from "../../rpc/rpc-metrics.js";
import { createMetricsRegistry } from "../metrics/registry.js";
import { metricsRoute } from "../metrics/route.js";
import { WorkerMetrics, type ActiveAttemptState, type EndedAttemptState, type RunningAttemptProcess } from "../metrics/worker-metrics.js";
import { chooseAdvertiseHost } from "./advertise-host.js";
import { BundleCache } from "../bundle/checkout.js";
import { functionError, functionResult, taskCommand } from "./entrypoint.js";
import { reapContainers } from "./container.js";
import { EnvironmentCache } from "./environments.js";
import { assignGpus, cudaVisibleDevices } from "./gpus.js";
import { detectHostResources, type HostResources } from "./host-resources.js";
import { leaseTerms, WorkerLease } from "./lease.js";
import { LeaseFileWriter, monotonicMs } from "./lease-file.js";
import { LeaseSupervisor } from "./lease-supervisor.js";
import { AttemptLog } from "./log-store.js";
import { compileWorkerDaemonOptions, defaultWorkDir, type CompiledWorkerDaemonOptions, type WorkerDaemonOptions } from "./options.js";
import { FENCED_FILE_NAME, reapOrphans } from "./process-group.js";
import { DEFAULT_KILL_GRACE_MS, ProcessRuntime, type AttemptOutcome, type RunningAttempt } from "./runtime.js";

export type { WorkerDaemonOptions } from "./options.js";

/**
 * Lifecycle:
 * - `created`: nothing started.
 * - `registering`: serving WorkerService, registering with the controller (retried until it answers).
 * - `running`: registered; runs what the controller asks.
 * - `stopping`: killing attempts, closing the server.
 * - `stopped`: everything released.
 */
export type WorkerDaemonState = "created" | "registering" | "running" | "stopping" | "stopped";

const FINISHED_RETENTION_MS = 10 * 60_000;
/** A daemon not reconciled for this long registers again (the controller restarted without its record, or lost it). */
const REREGISTER_AFTER_MS = 15_000;
/** How long a RunTask that finds the lease expired waits for a registration in flight to be answered. */
const REGISTRATION_WAIT_MS = 5_000;
/** While the controller does not answer, a line about it at the first failure and then this often. */
const WAITING_REPORT_MS = 30_000;
/** KillTask answers at most this long after the kill's own grace, even if a process outlives SIGKILL. */
const KILL_ANSWER_MARGIN_MS = 5_000;

interface AttemptEntry {
  assignment: TaskAssignment;
  dir: string;
  /** The indexes of this worker's GPUs the attempt holds while it is active (its CUDA_VISIBLE_DEVICES). */
  gpus?: number[];
  running?: RunningAttempt;
  /** Its environment is being built; the process starts when it is ready. */
  building?: boolean;
  /** Aborted when the attempt is killed before its process started (while it builds). */
  starting?: AbortController;
  /** Settles once the attempt's process has started or could not start (its workspace is fetched and its environment built first). */
  started?: Promise<void>;
  /** Final state when the attempt could not start or has ended. */
  final?: Attempt;
  /** Why the worker killed it on its own (its lease expired): it ends as worker_failed with this message. */
  fenced?: string;
  endedAt?: number;
}

export class WorkerDaemon {
  private stateValue: WorkerDaemonState = "created";
  private readonly options: CompiledWorkerDaemonOptions;
  private readonly runtime: ProcessRuntime;
  /** Aborted by shutdown: ends registration retries. */
  private readonly stopping = new AbortController();
  private readonly attempts = new Map<string, AttemptEntry>();
  private readonly pendingReports = new Map<string, Attempt>();
  private reportQueued = false;
  private server: RpcServer | undefined;
  private controller: RpcChannel | undefined;
  private resources: HostResources | undefined;
  private environments: EnvironmentCache | undefined;
  private registerTimer: NodeJS.Timeout | undefined;
  /** Fault injection's attempt killer (tests only). */
  private faultTimer: NodeJS.Timeout | undefined;
  /** The lease on this worker's attempts, from the first registration whose answer gave the controller's grace. */
  private lease: WorkerLease | undefined;
  private leaseTimer: NodeJS.Timeout | undefined;
  /** The deadline the lease supervisor enforces, renewed with the lease. */
  private leaseFile: LeaseFileWriter | undefined;
  /** The process that kills this daemon's attempts when the lease runs out, even while the daemon cannot act (stopped, hung). */
  private supervisor: LeaseSupervisor | undefined;
  /** Heartbeats in flight (renewals may overlap while the controller is slow). */
  private heartbeatsInFlight = 0;
  private lastReconcileAt = 0;
  /** The registration in progress, so that timers and heartbeats never start a second one. */
  private registering: Promise<void> | undefined;
  /** The last refusal logged by a background registration, so it is said once. */
  private lastRefusal = "";
  /**
   * This worker's own credential, from its last registration (auth on): it
   * speaks for this worker id alone (heartbeats, bundle downloads); the
   * cluster token is used only to register.
   */
  private credential: string | undefined;
  /** The host in {@link address}, chosen once serving (see advertise-host.ts). */
  private advertised: string | undefined;
  private readonly startedAt = Date.now();
  /** The daemon's logger; its lines carry `workerId` once the id is known. */
  private logger: Logger;
  workerId = "";
  workDir = "";
  /** Workspace bundles fetched from the controller, under `<workDir>/bundles`. */
  bundles: BundleCache | undefined;
  /** What `/metrics` serves: this daemon's own registry (several daemons may share a process). */
  private readonly metricsRegistry = createMetricsRegistry();
  private readonly metrics = new WorkerMetrics(this.metricsRegistry, {
    activeAttempts: () => this.activeAttemptStates(),
    runningProcesses: () => this.runningProcesses(),
    bundleCache: () => this.bundles && { hits: this.bundles.hits, misses: this.bundles.misses },
    environmentCache: () => this.environments?.counters,
  });

  /** Checks the options at once (a ValidationError names a bad one); nothing starts until {@link start}. */
  constructor(options: WorkerDaemonOptions) {
    this.options = compileWorkerDaemonOptions(options);
    this.logger = this.options.logger;
    this.runtime = new ProcessRuntime({ killGraceMs: this.options.killGraceMs });
  }

  get state(): WorkerDaemonState {
    return this.stateValue;
  }

  /**
   * The host the controller and other machines reach this worker at, and
   * that its tasks get as FLUSTER_ADVERTISE_HOST: `advertiseHost`, else the
   * bind address, else (bound to 0.0.0.0 or ::) this machine's primary address.
   */
  get advertiseHost(): string {
    if (this.advertised === undefined) throw new FlusterError("worker is not serving yet", "failed_precondition");
    return this.advertised;
  }

  /** URL of this worker's WorkerService, as registered with the controller. */
  get address(): string {
    if (!this.server) throw new FlusterError("worker is not serving yet", "failed_precondition");
    const host = this.advertiseHost;
    return `${this.options.tls ? "https" : "http"}://${host.includes(":") ? `[${host}]` : host}:${this.server.port}`;
  }

  /** Serves WorkerService and registers with the controller; resolves once registered. */
  async start(): Promise<void> {
    if (this.stateValue !== "created") throw new FlusterError(`worker cannot start from state ${this.stateValue}`, "failed_precondition");
    this.stateValue = "registering";
    const { host, port, token } = this.options;
    this.server = await startRpcServer({
      host,
      port,
      ...(this.options.tls ? { tls: this.options.tls } : {}),
      ...(token ? { token, tokenHint: "this worker was started with a FLUSTER_TOKEN, and the controller must use the same token" } : {}),
      // Metrics first: they see the code of every call, also of one that fault injection drops.
      interceptors: [rpcMetricsInterceptor(this.metricsRegistry, { prefix: "fluster_worker" }), ...(this.options.faults?.rpc ? [createFaultInjector(this.options.faults.rpc).interceptor] : [])],
      ...(this.options.maxRequestBytes !== undefined ? { limits: { maxRequestBytes: this.options.maxRequestBytes } } : {}),
      httpRoutes: [metricsRoute(this.metricsRegistry)],
      routes: (router) => router.service(WorkerService, this.handlers()),
    });
    const advertised = chooseAdvertiseHost(host, this.options.advertiseHost, this.options.hostNetwork);
    this.advertised = advertised.host;
    this.workerId = this.options.workerId ?? `${hostname()}-${this.server.port}`;
    this.logger = this.options.logger.child({ workerId: this.workerId });
    if (advertised.warning) this.logger.warn({ event: "advertise_host_guessed", host: advertised.host, source: advertised.source }, advertised.warning);
    else if (advertised.source !== "--advertise-host" && advertised.source !== "the bind address") {
      this.logger.info(
        { event: "advertise_host_chosen", bindHost: host, host: advertised.host, source: advertised.source },
        `bound to ${host}; advertising ${advertised.host} (${advertised.source}); set --advertise-host to choose another`,
      );
    }
    this.workDir = this.options.workDir ?? defaultWorkDir(this.workerId);
    mkdirSync(join(this.workDir, "attempts"), { recursive: true });
    this.bundles = new BundleCache(join(this.workDir, "bundles"), () => {
      if (!this.controller) throw new FlusterError("worker is not connected to a controller yet", "unavailable");
      return this.controller.client(ControllerService);
    });
    // Attempts left running by a previous incarnation of this daemon (killed
    // without cleanup) are not ours to adopt: the controller has retried them.
    const attemptsDir = join(this.workDir, "attempts");
    const reaped = await reapOrphans(attemptsDir);
    if (reaped.length > 0) this.logger.warn({ event: "orphans_reaped", count: reaped.length }, `killed ${reaped.length} attempt(s) left by a previous run`);
    // Their containers (`environment.image`) outlive the `docker run` killed above: removed too.
    const containers = await reapContainers(attemptsDir, this.workerId);
    if (containers.length > 0) {
      this.logger.warn({ event: "containers_removed", count: containers.length, containers: containers.map((c) => c.name) }, `removed ${containers.length} container(s) left by a previous run`);
    }
    // Started alongside the registration; no attempt runs before both are done.
    this.leaseFile = new LeaseFileWriter(join(this.workDir, "lease"));
    const supervising = LeaseSupervisor.start({ attemptsDir, leaseFile: this.leaseFile.path, logger: this.logger }).then((supervisor) => {
      this.supervisor = supervisor;
      // Shut down meanwhile: nothing will close it otherwise.
      if (this.stateValue === "stopping" || this.stateValue === "stopped") void supervisor.close();
    });
    // Awaited below with the registration; until then a failure must not count as unhandled.
    supervising.catch(() => undefined);
    this.resources = await detectHostResources({
      workDir: this.workDir,
      ...(this.options.cpu !== undefined ? { cpu: this.options.cpu } : {}),
      ...(this.options.memory !== undefined ? { memory: this.options.memory } : {}),
      ...(this.options.gpu ? { gpus: this.options.gpu } : {}),
      ...(this.options.tpu ? { tpu: this.options.tpu } : {}),
    });
    const { environmentsDir, npmCacheDir, npmOffline, npmIgnoreScripts } = this.options;
    this.environments = new EnvironmentCache({
      root: environmentsDir ?? join(this.workDir, "envs"),
      ...(npmCacheDir !== undefined ? { npmCacheDir } : {}),
      offline: npmOffline,
      ignoreScripts: npmIgnoreScripts,
    });
    this.runtime.onChange((attempt) => this.onAttemptChange(attempt));
    const { tlsCaFile } = this.options;
    this.controller = createRpcChannel(this.options.controllerUrl, { token: () => this.credential ?? token, ...(tlsCaFile ? { tlsCaFile } : {}) });
    await Promise.all([this.register(), supervising]);
    // Shut down while it was still registering: nothing more to start.
    if (this.stopping.signal.aborted) return;
    this.stateValue = "running";
    // If the controller stops reconciling us (it restarted without our
    // record, or lost us), register again.
    this.registerTimer = setInterval(() => {
      if (this.stateValue === "running" && Date.now() - this.lastReconcileAt > REREGISTER_AFTER_MS) this.registerAgain();
    }, 5_000);
    this.registerTimer.unref();
    const killProbability = this.options.faults?.killAttemptProbability ?? 0;
    if (killProbability > 0) {
      this.faultTimer = setInterval(() => this.killAttemptsAtRandom(killProbability), 1_000);
      this.faultTimer.unref();
    }
  }

  /** Fault injection (tests only): SIGKILLs each running attempt with probability `p`; it ends worker_failed, as on a machine that died. */
  private killAttemptsAtRandom(p: number): void {
    for (const entry of this.attempts.values()) {
      if (entry.final || entry.fenced || entry.running?.state !== "running" || Math.random() >= p) continue;
      entry.fenced = "fault injection: the attempt was killed";
      entry.running.kill(entry.fenced, { force: true });
    }
  }

  /** Registers in the background (the controller forgot this worker); a refusal is logged once. */
  private registerAgain(): void {
    this.register().then(
      () => (this.lastRefusal = ""),
      (err: unknown) => {
        const message = err instanceof Error ? err.message : String(err);
        if (message !== this.lastRefusal) this.logger.error({ event: "registration_refused", controllerUrl: this.options.controllerUrl, reason: message }, `cannot register again: ${message}`);
        this.lastRefusal = message;
      },
    );
  }

  /** Registers with the controller, retrying while it does not answer; one registration at a time. */
  private register(): Promise<void> {
    this.registering ??= this.registerOnce().finally(() => (this.registering = undefined));
    return this.registering;
  }

  private async registerOnce(): Promise<void> {
    const resources = this.resources;
    const channel = this.controller;
    if (!resources || !channel) return;
    const device = resources.gpus
      ? deviceToProto({ kind: "gpu", variant: resources.gpus.variant, count: resources.gpus.count })
      : resources.tpu
        ? deviceToProto({ kind: "tpu", variant: resources.tpu.variant, topology: "", sliceCount: 1 })
        : deviceToProto({ kind: "cpu" });
    const request = {
      workerId: this.workerId,
      address: this.address,
      resources: create(WorkerResourcesSchema, {
        cpu: resources.cpu,
        memoryBytes: BigInt(resources.memory),
        diskBytes: BigInt(resources.disk),
        device,
        deviceCount: resources.gpus?.count ?? resources.tpu?.chips ?? 0,
      }),
      attributes: { ...this.options.labels },
    };
    const client = channel.client(ControllerService);
    const { signal } = this.stopping;
    const url = this.options.controllerUrl;
    const since = Date.now();
    let reportedAt = -Infinity;
    try {
      const { sentAt, graceMs } = await retry(
        async () => {
          const sentAt = monotonicMs();
          try {
            // Registration is the cluster token's (the operator's) to grant; everything after goes with the credential it answers.
            const headers = this.options.token ? { authorization: bearerHeader(this.options.token) } : undefined;
            const res = await client.registerWorker(request, { timeoutMs: 10_000, signal, ...(headers ? { headers } : {}) });
            if (res.workerCredential) this.credential = res.workerCredential;
            return { sentAt, graceMs: res.workerLostGraceMs };
          } catch (err) {
            throw fromConnectError(err);
          }
        },
        {
          initialMs: 200,
          signal,
          // A controller that refuses us for good (wrong token, bad input, not a controller) will not change its mind.
          retryIf: (err) => registrationRefusal(url, err) === undefined,
          onRetry: (err) => {
            const now = Date.now();
            if (now - reportedAt < WAITING_REPORT_MS) return;
            reportedAt = now;
            const waited = Math.round((now - since) / 1000);
            this.logger.warn(
              { event: "controller_unreachable", controllerUrl: url, error: (err as Error).message, waitedSeconds: waited },
              `waiting for the controller at ${url}: ${(err as Error).message}; retrying with backoff${waited > 0 ? ` (${waited}s so far)` : ""}`,
            );
          },
        },
      );
      this.lastReconcileAt = Date.now();
      if (signal.aborted) return;
      this.logger.info(
        { event: "worker_registered", controllerUrl: url, address: request.address, resources: { cpu: resources.cpu, memoryBytes: resources.memory, diskBytes: resources.disk }, labels: request.attributes },
        `registered with the controller at ${url} as ${this.workerId} (${request.address})`,
      );
      this.leaseGranted(sentAt, graceMs);
    } catch (err) {
      if (signal.aborted) return;
      const refusal = registrationRefusal(url, err);
      throw refusal ? new FlusterError(refusal, (err as FlusterError).code, { cause: err }) : err;
    }
  }

  // ------------------------------------------------------------- the lease

  /**
   * A registration sent at `sentAt` was accepted by a controller whose grace
   * is `graceMs` (0: a controller that does not say, so no lease): the lease
   * starts, or is renewed with the controller's current terms.
   */
  private leaseGranted(sentAt: number, graceMs: number): void {
    if (!(graceMs > 0)) return;
    const terms = leaseTerms(graceMs);
    if (this.lease) {
      if (this.lease.acknowledged(sentAt, terms)) this.logger.info({ event: "lease_restored", controllerUrl: this.options.controllerUrl }, "registered again; taking attempts");
      this.renewHardFence();
      return;
    }
    this.lease = new WorkerLease(terms, monotonicMs, sentAt);
    this.logger.debug({ event: "lease_granted", graceMs, fenceAfterMs: terms.fenceAfterMs, hardFenceAfterMs: terms.hardFenceAfterMs }, `lease granted: attempts are fenced after ${terms.fenceAfterMs / 1000}s without contact`);
    this.renewHardFence();
    this.leaseTimer = setInterval(() => this.checkLease(), terms.checkEveryMs);
    this.leaseTimer.unref();
  }

  /**
   * Moves the lease supervisor's deadline to the lease's hard fence (the
   * last acknowledged renewal + `hardFenceAfterMs`), while the lease is held.
   * Written before anything else happens on the renewal, so an attempt that
   * starts under this lease is covered by a deadline the supervisor can read.
   */
  private renewHardFence(): void {
    const lease = this.lease;
    if (lease && !lease.fenced) this.leaseFile?.renew(lease.renewedAt + lease.terms.hardFenceAfterMs);
  }

  /** The lease timer: fence when the lease expired; renew when due. */
  private checkLease(): void {
    const lease = this.lease;
    // Also while the first registration waits for the lease supervisor to start: the lease runs from the registration.
    if (!lease || (this.stateValue !== "running" && this.stateValue !== "registering")) return;
    const step = lease.step();
    if (step.fence) this.fence(`fenced: no contact with the controller for ${(step.fence.silentMs / 1000).toFixed(1)}s`);
    // Renewals may overlap (a slow controller), a few at most: each gives up after the fence period.
    if (step.renew && this.heartbeatsInFlight < 4) void this.heartbeat(lease.terms.fenceAfterMs);
  }

  /**
   * Kills every running attempt on the worker's own authority (the existing
   * kill path: SIGTERM to the process group, SIGKILL after the kill grace):
   * the controller has retried them, or is about to. They end as
   * worker_failed with `reason`, reported once the controller answers.
   */
  private fence(reason: string): void {
    const attemptIds: string[] = [];
    for (const entry of this.attempts.values()) {
      if (entry.fenced || entry.final) continue;
      // Running, or still getting ready (fetching its workspace, building its environment): both stop.
      if (entry.running ? entry.running.state !== "running" : !entry.starting) continue;
      entry.fenced = reason;
      this.killAttempt(entry, reason);
      attemptIds.push(entry.assignment.attemptId);
    }
    const killed = attemptIds.length;
    if (killed > 0 || !reason.includes("lost this worker")) this.logger.warn({ event: "attempts_fenced", reason, killed, attemptIds }, `${reason}; killed ${killed} attempt(s)`);
    // A connection the partition stalled would hold back the next calls: open a new one.
    this.controller?.close();
  }

  /**
   * One heartbeat: the attempt changes not yet reported (none: a plain
   * renewal). Acknowledged, it renews the lease from when it was sent; the
   * controller not knowing this worker fences at once and registers again;
   * unanswered, the changes are kept for the next one and the connection is
   * opened anew.
   */
  private async heartbeat(timeoutMs: number): Promise<void> {
    const channel = this.controller;
    if (!channel) return;
    const reports = new Map(this.pendingReports);
    this.pendingReports.clear();
    const sentAt = monotonicMs();
    this.lease?.sent(sentAt);
    this.heartbeatsInFlight += 1;
    let known: boolean;
    try {
      const res = await channel.client(ControllerService).heartbeat({ workerId: this.workerId, attempts: [...reports.values()] }, { timeoutMs });
      known = res.known;
    } catch (err) {
      // Not delivered: keep what a later change did not replace, for the next heartbeat or reconcile.
      for (const [id, attempt] of reports) if (!this.pendingReports.has(id)) this.pendingReports.set(id, attempt);
      // A controller that no longer accepts this worker's credential (its signing key changed): register again for a new one.
      if (this.credential && fromConnectError(err).code === "unauthenticated" && this.stateValue === "running") {
        this.credential = undefined;
        this.registerAgain();
      }
      return;
    } finally {
      this.heartbeatsInFlight -= 1;
    }
    if (this.stateValue !== "running" && this.stateValue !== "registering") return;
    if (known) {
      if (this.lease?.acknowledged(sentAt)) this.logger.info({ event: "controller_reachable", controllerUrl: this.options.controllerUrl }, "the controller answers again");
      this.renewHardFence();
      return;
    }
    // The controller lost this worker and retried its attempts: none of them may go on.
    if (this.lease) {
      this.lease.forgotten();
      this.fence("fenced: the controller lost this worker");
    }
    if (this.stateValue === "running") this.registerAgain();
  }

  /** Stops registering, kills every attempt (SIGTERM, then SIGKILL after the grace), and stops serving. */
  async shutdown(): Promise<void> {
    if (this.stateValue === "stopped" || this.stateValue === "stopping") return;
    this.stateValue = "stopping";
    const live = [...this.attempts.values()].filter((e) => (e.running ? e.running.state === "running" : e.final === undefined)).length;
    this.logger.info({ event: "worker_stopping", attempts: live }, `stopping: killing the ${live} attempt(s) still running`);
    this.stopping.abort();
    if (this.registerTimer) clearInterval(this.registerTimer);
    if (this.faultTimer) clearInterval(this.faultTimer);
    if (this.leaseTimer) clearInterval(this.leaseTimer);
    for (const entry of this.attempts.values()) entry.starting?.abort(new FlusterError("the worker is shutting down", "cancelled"));
    await this.environments?.close();
    await this.runtime.shutdown();
    // Its attempts are gone: the supervisor finds nothing left to kill.
    await this.supervisor?.close();
    this.leaseFile?.close();
    this.controller?.close();
    await this.server?.shutdown();
    this.stateValue = "stopped";
  }

  // ------------------------------------------------------------- attempts

  private attemptDir(attemptId: string): string {
    return join(this.workDir, "attempts", attemptDirName(attemptId));
  }

  private async runTask(assignment: TaskAssignment): Promise<Attempt> {
    if (this.stateValue !== "running" && this.stateValue !== "registering") {
      throw new FlusterError(`worker is ${this.stateValue}`, "unavailable");
    }
    if (!assignment.attemptId) throw new ValidationError("task.attemptId", "must not be empty");
    const existing = this.attempts.get(assignment.attemptId);
    if (existing) return this.observe(existing);
    const spec = assignment.spec;
    if (!spec) throw new ValidationError("task.spec", "is required to start an attempt");
    await this.checkLeaseForNewAttempt();
    this.checkRoom(spec);
    // Taken in the same turn as the room check, so two attempts never get one GPU.
    const gpus = this.takeGpus(spec);
    const dir = this.attemptDir(assignment.attemptId);
    mkdirSync(dir, { recursive: true });
    const entry: AttemptEntry = { assignment, dir, ...(gpus ? { gpus } : {}) };
    this.attempts.set(assignment.attemptId, entry);
    this.metrics.attemptStarted();
    // An attempt whose environment must be built answers `building` at once and starts when it is ready.
    let reportBuilding = () => {};
    const building = new Promise<void>((resolveBuilding) => (reportBuilding = resolveBuilding));
    const started = (entry.started = this.startAttempt(entry, spec, reportBuilding));
    await Promise.race([started, building]);
    return this.observe(entry);
  }

  /** Prepares the attempt's environment and command and starts its process; never rejects (a failure becomes its final state). */
  private async startAttempt(entry: AttemptEntry, spec: JobSpec, reportBuilding: () => void): Promise<void> {
    const { assignment, dir } = entry;
    const starting = (entry.starting = new AbortController());
    try {
      const environment = this.environments && {
        cache: this.environments,
        signal: starting.signal,
        onBuilding: () => {
          this.logger.debug({ event: "environment_building", ...attemptIdsOf(assignment) }, `attempt ${assignment.attemptId}: building its environment`);
          entry.building = true;
          this.queueReport(this.observe(entry));
          reportBuilding();
        },
      };
      const { argv, env, cwd, mounts } = await taskCommand(assignment, spec, dir, { controllerUrl: this.options.controllerUrl, workerId: this.workerId, advertiseHost: this.advertiseHost, ...(this.options.tlsCaFile ? { tlsCaFile: this.options.tlsCaFile } : {}), ...(this.bundles ? { bundles: this.bundles } : {}) }, environment);
      starting.signal.throwIfAborted();
      // A GPU task sees the GPUs it holds; any other task on a GPU machine sees none.
      if (this.resources?.gpus) env.CUDA_VISIBLE_DEVICES = cudaVisibleDevices(entry.gpus ?? [], process.env.CUDA_VISIBLE_DEVICES);
      // The lease ran out while it got ready (the daemon was stopped, say): the controller may have retried it already.
      if (this.lease?.expired()) {
        entry.fenced ??= `fenced: no contact with the controller for ${(this.lease.silentMs() / 1000).toFixed(1)}s before the attempt could start`;
        throw new FlusterError(entry.fenced, "cancelled");
      }
      entry.building = false;
      entry.running = this.runtime.start({
        attemptId: assignment.attemptId,
        argv,
        cwd,
        env,
        logDir: dir,
        ...(spec.timeoutSeconds > 0 ? { timeoutSeconds: spec.timeoutSeconds } : {}),
        ...(spec.environment?.image && mounts
          ? {
              container: {
                image: spec.environment.image,
                workerId: this.workerId,
                attemptsDir: join(this.workDir, "attempts"),
                cpu: spec.resources?.cpu ?? 0,
                memoryBytes: Number(spec.resources?.memoryBytes ?? 0n),
                mounts,
              },
            }
          : {}),
      });
      this.logger.info({ event: "attempt_started", ...attemptIdsOf(assignment), processId: entry.running.pid }, `attempt ${assignment.attemptId} started (pid ${entry.running.pid})`);
    } catch (err) {
      const killed = starting.signal.aborted;
      const reason: unknown = killed ? starting.signal.reason : err;
      entry.building = false;
      // Fenced while it was getting ready: lost with the worker (a preemption retry), as a fenced running attempt is.
      const state: EndedAttemptState = entry.fenced ? "worker_failed" : killed ? "killed" : "failed";
      const final = create(AttemptSchema, {
        attemptId: assignment.attemptId,
        taskIndex: assignment.taskIndex,
        workerId: this.workerId,
        state: taskStateToProto(state),
        errorMessage: entry.fenced ?? (reason instanceof Error ? reason.message : String(reason)),
        finishedAt: toTimestamp(new Date()),
      });
      this.finish(entry, final, state);
      entry.endedAt = Date.now();
      this.logAttemptEnded(entry, final);
      this.queueReport(final);
    } finally {
      entry.starting = undefined;
    }
  }

  /** Resolves once a killed attempt's processes have exited, or after `limitMs` (a process ignoring SIGKILL must not hold the answer). */
  private async attemptGone(entry: AttemptEntry, limitMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<void>((resolve) => (timer = setTimeout(resolve, limitMs)));
    const gone = (async () => {
      // One still starting may yet become a process (the abort stops it soon after).
      if (!entry.running && entry.started) await entry.started.catch(() => undefined);
      if (entry.running) await entry.running.exited;
    })();
    await Promise.race([gone, limit]);
    clearTimeout(timer);
  }

  /** Kills an attempt: its process group, or its wait for its environment. */
  private killAttempt(entry: AttemptEntry, reason: string, force = false): void {
    if (entry.running) entry.running.kill(reason, { force });
    else entry.starting?.abort(new FlusterError(reason, "cancelled"));
  }

  /**
   * Refuses a new attempt (failed_precondition: a refusal, which costs the
   * task nothing) while this worker holds no lease. A controller that just
   * took this worker back sends RunTask as it answers the registration, so
   * an answer still on its way is waited for, briefly.
   */
  private async checkLeaseForNewAttempt(): Promise<void> {
    const lease = this.lease;
    if (!lease?.expired()) return;
    const registering = this.registering;
    if (registering) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([registering.catch(() => undefined), new Promise((resolve) => (timer = setTimeout(resolve, REGISTRATION_WAIT_MS)))]);
      clearTimeout(timer);
    }
    if (lease.expired()) {
      throw new FlusterError(
        `worker ${this.workerId} holds no lease (no contact with the controller for ${(lease.silentMs() / 1000).toFixed(1)}s); it takes attempts again once the controller answers`,
        "failed_precondition",
      );
    }
  }

  /**
   * The controller does the accounting; this is the worker's own guard that
   * it never runs more than it offered (e.g. if two controllers disagreed).
   */
  private checkRoom(spec: JobSpec): void {
    const resources = this.resources;
    if (!resources) return;
    const demand = (s: JobSpec | undefined) => ({ cpu: s?.resources?.cpu ?? 0, memory: Number(s?.resources?.memoryBytes ?? 0n) });
    let cpu = 0;
    let memory = 0;
    for (const entry of this.attempts.values()) {
      // A building attempt holds its room too.
      if (!WorkerDaemon.holdsRoom(entry)) continue;
      const d = demand(entry.assignment.spec);
      cpu += d.cpu;
      memory += d.memory;
    }
    const wanted = demand(spec);
    // A little slack for floating-point sums of fractional cpus.
    if (cpu + wanted.cpu > resources.cpu + 1e-9 || memory + wanted.memory > resources.memory) {
      throw new FlusterError(
        `worker ${this.workerId} has no room: the attempt wants cpu ${wanted.cpu} and ${formatByteSize(wanted.memory)} memory; ` +
          `${Math.max(0, resources.cpu - cpu)} cpu and ${formatByteSize(Math.max(0, resources.memory - memory))} are free`,
        "failed_precondition",
      );
    }
  }

  /** Whether an attempt holds its room (and GPUs): starting, building or running. */
  private static holdsRoom(entry: AttemptEntry): boolean {
    return entry.running ? entry.running.state === "running" : entry.final === undefined;
  }

  /**
   * The GPUs a GPU task gets: the lowest indexes no active attempt holds.
   * Derived from the attempts themselves, so an attempt that ends frees
   * its GPUs with no bookkeeping. Throws "no room" when too few are free.
   */
  private takeGpus(spec: JobSpec): number[] | undefined {
    const device = deviceFromProto(spec.resources?.device);
    if (device.kind !== "gpu") return undefined;
    const total = this.resources?.gpus?.count ?? 0;
    const held: number[][] = [];
    for (const entry of this.attempts.values()) if (entry.gpus && WorkerDaemon.holdsRoom(entry)) held.push(entry.gpus);
    const gpus = assignGpus(total, held, device.count);
    if (!gpus) {
      const free = total - held.reduce((n, list) => n + list.length, 0);
      throw new FlusterError(`worker ${this.workerId} has no room: the attempt wants ${device.count} GPU(s); ${Math.max(0, free)} of ${total} are free`, "failed_precondition");
    }
    return gpus;
  }

  private onAttemptChange(running: RunningAttempt): void {
    const entry = this.attempts.get(running.attemptId);
    if (!entry) return;
    if (running.state !== "running") entry.endedAt ??= Date.now();
    // Killed by the lease supervisor (maybe while this daemon was stopped): fenced, not failed.
    if (running.state !== "running" && running.state !== "succeeded" && !entry.fenced) {
      const fenced = readFenceNote(entry.dir);
      if (fenced) entry.fenced = fenced;
    }
    const observed = this.observe(entry);
    if (running.state !== "running") this.logAttemptEnded(entry, observed, running.outcome);
    this.queueReport(observed);
  }

  /** The `attempt_ended` line: the state the controller is told, with the exit code or signal of the process, if it ran. */
  private logAttemptEnded(entry: AttemptEntry, attempt: Attempt, outcome?: AttemptOutcome): void {
    const state = taskStateFromProto(attempt.state);
    const error = attempt.errorMessage || undefined;
    const startedAt = entry.running?.startedAt.getTime();
    this.logger.info(
      {
        event: "attempt_ended",
        ...attemptIdsOf(entry.assignment),
        state,
        ...(outcome?.exitCode !== undefined ? { exitCode: outcome.exitCode } : {}),
        ...(outcome?.signal !== undefined ? { signal: outcome.signal } : {}),
        ...(error ? { error } : {}),
        ...(startedAt !== undefined ? { durationMs: (entry.endedAt ?? Date.now()) - startedAt } : {}),
      },
      `attempt ${entry.assignment.attemptId} ended ${state}${outcome?.exitCode !== undefined ? ` (exit code ${outcome.exitCode})` : outcome?.signal ? ` (signal ${outcome.signal})` : ""}${error ? `: ${error.split("\n")[0]}` : ""}`,
    );
  }

  /** The attempt as the controller sees it. */
  private observe(entry: AttemptEntry): Attempt {
    if (entry.final) return entry.final;
    const running = entry.running;
    const base = { attemptId: entry.assignment.attemptId, taskIndex: entry.assignment.taskIndex, workerId: this.workerId };
    if (!running) return create(AttemptSchema, { ...base, state: taskStateToProto(entry.building ? "building" : "assigned") });
    const outcome = running.outcome;
    const state: TaskState = running.state;
    const attempt = create(AttemptSchema, {
      ...base,
      state: taskStateToProto(state),
      startedAt: toTimestamp(running.startedAt),
      ...(outcome?.exitCode !== undefined ? { exitCode: outcome.exitCode } : {}),
      errorMessage: outcome?.errorMessage ?? "",
      finishedAt: outcome ? toTimestamp(outcome.finishedAt) : undefined,
    });
    if (state === "succeeded") {
      const result = functionResult(entry.dir);
      if (result) attempt.result = result;
    } else if (entry.fenced) {
      // Killed by its own worker cut off from the controller: lost with the worker, a preemption retry.
      attempt.state = taskStateToProto("worker_failed");
      attempt.errorMessage = entry.fenced;
    } else if (state === "failed") {
      attempt.errorMessage = functionError(entry.dir) ?? attempt.errorMessage;
    }
    if (running.state !== "running") this.finish(entry, attempt, running.state === "succeeded" || !entry.fenced ? running.state : "worker_failed");
    return attempt;
  }

  /** Records an attempt's end, once: the state it is reported with from now on, and the count of ended attempts. */
  private finish(entry: AttemptEntry, final: Attempt, state: EndedAttemptState): void {
    entry.final = final;
    this.metrics.attemptEnded(state);
  }

  /** The state of each attempt that has not ended, for metrics. */
  private *activeAttemptStates(): Generator<ActiveAttemptState> {
    for (const entry of this.attempts.values()) {
      if (entry.final) continue;
      if (!entry.running) yield entry.building ? "building" : "assigned";
      else if (entry.running.state === "running") yield "running";
    }
  }

  /** The process groups of the attempts running now, for metrics. */
  private *runningProcesses(): Generator<RunningAttemptProcess> {
    for (const entry of this.attempts.values()) {
      const running = entry.running;
      if (running?.state === "running" && running.pid !== undefined) yield { jobId: entry.assignment.jobId, taskIndex: entry.assignment.taskIndex, pgid: running.pid };
    }
  }

  /** Pushes attempt changes to the controller on the next turn, coalesced. */
  private queueReport(attempt: Attempt): void {
    this.pendingReports.set(attempt.attemptId, attempt);
    if (this.reportQueued) return;
    this.reportQueued = true;
    setImmediate(() => void this.flushReports());
  }

  private async flushReports(): Promise<void> {
    this.reportQueued = false;
    if (this.pendingReports.size === 0) return;
    await this.heartbeat(this.lease?.terms.fenceAfterMs ?? 10_000);
  }

  private reconcile(attemptIds: readonly string[], knownStates: readonly number[], stopReasons: Readonly<Record<string, string>>): { observed: Attempt[]; missing: string[] } {
    this.lastReconcileAt = Date.now();
    const wanted = new Set(attemptIds);
    for (const [id, entry] of this.attempts) {
      if (wanted.has(id)) continue;
      if (entry.running ? entry.running.state === "running" : entry.final === undefined) {
        const reason = stopReasons[id] ?? "no longer wanted by the controller";
        this.logger.info({ event: "attempt_kill_requested", ...attemptIdsOf(entry.assignment), reason, by: "reconcile" }, `killing attempt ${id}: ${reason}`);
        this.killAttempt(entry, reason);
      } else if (entry.endedAt !== undefined && Date.now() - entry.endedAt > FINISHED_RETENTION_MS) {
        this.attempts.delete(id);
      }
    }
    const observed: Attempt[] = [];
    const missing: string[] = [];
    attemptIds.forEach((attemptId, i) => {
      const entry = this.attempts.get(attemptId);
      if (!entry) {
        missing.push(attemptId);
        return;
      }
      const attempt = this.observe(entry);
      if (attempt.state !== knownStates[i]) observed.push(attempt);
    });
    return { observed, missing };
  }

  private handlers() {
    return {
      runTask: async (req: { task?: TaskAssignment }) => {
        if (!req.task) throw new ValidationError("task", "is required");
        return { attempt: await this.runTask(req.task) };
      },
      reconcile: (req: { attemptIds: string[]; knownStates: number[]; stopReasons: Record<string, string> }) =>
        this.reconcile(req.attemptIds, req.knownStates, req.stopReasons),
      getTaskStatus: (req: { attemptId: string }) => {
        const entry = this.attempts.get(req.attemptId);
        if (!entry) throw new FlusterError(`attempt ${req.attemptId} not found on worker ${this.workerId}`, "not_found");
        return { attempt: this.observe(entry) };
      },
      streamLogs: (req: { attemptId: string; follow: boolean; offset: bigint }, ctx: { signal: AbortSignal }) =>
        this.streamLogs(req.attemptId, req.follow, Number(req.offset), ctx.signal),
      killTask: async (req: { attemptId: string; force: boolean; reason: string }) => {
        const entry = this.attempts.get(req.attemptId);
        if (!entry) throw new FlusterError(`attempt ${req.attemptId} not found on worker ${this.workerId}`, "not_found");
        const reason = req.reason || "killed by request";
        if (entry.running ? entry.running.state === "running" : entry.final === undefined) {
          this.logger.info({ event: "attempt_kill_requested", ...attemptIdsOf(entry.assignment), reason, force: req.force, by: "KillTask" }, `killing attempt ${req.attemptId} on request: ${reason}`);
        }
        this.killAttempt(entry, reason, req.force);
        // Answer once the processes are gone: the controller counts their room
        // as taken until then, so the next task placed here finds it free.
        await this.attemptGone(entry, (this.options.killGraceMs ?? DEFAULT_KILL_GRACE_MS) + KILL_ANSWER_MARGIN_MS);
        return {};
      },
      healthCheck: () => ({
        healthy: this.stateValue === "running",
        workerId: this.workerId,
        uptimeMs: BigInt(Date.now() - this.startedAt),
        runningTasks: this.runtime.list().filter((a) => a.state === "running").length,
      }),
    };
  }

  private async *streamLogs(attemptId: string, follow: boolean, offset: number, signal: AbortSignal) {
    if (!attemptId) throw new ValidationError("attemptId", "must not be empty");
    const entry = this.attempts.get(attemptId);
    // An attempt still fetching its workspace or building its environment has no live log yet: one read now would end at once.
    if (entry?.started && !entry.running) await entry.started;
    const dir = entry?.dir ?? this.attemptDir(attemptId);
    if (!existsSync(dir)) throw new FlusterError(`no logs for attempt ${attemptId} on worker ${this.workerId}`, "not_found");
    const log = this.runtime.logOf(attemptId) ?? new AttemptLog(dir);
    const taskIndex = entry?.assignment.taskIndex ?? 0;
    const toProto = (e: { time: Date; stream: "stdout" | "stderr"; data: string; offset: number }) =>
      create(LogEntrySchema, {
        time: toTimestamp(e.time),
        stream: e.stream === "stdout" ? LogStream.STDOUT : LogStream.STDERR,
        data: e.data,
        attemptId,
        taskIndex,
        offset: BigInt(e.offset),
      });
    // Pages of what is already written, then (with follow) each new entry as it comes.
    let from = offset;
    for (;;) {
      const { entries, nextOffset } = await log.read(from);
      if (entries.length === 0) break;
      yield { entries: entries.map(toProto) };
      from = nextOffset;
    }
    if (!follow) return;
    for await (const e of log.follow(from, signal)) yield { entries: [toProto(e)] };
  }
}

/**
 * Why a controller's answer to RegisterWorker means it will never take this
 * worker as things are set up, said for the person starting the worker;
 * undefined when trying again may help (the controller is not up yet).
 */
function registrationRefusal(url: string, err: unknown): string | undefined {
  const untrusted = untrustedCertificateReason(err);
  if (untrusted !== undefined) return `the TLS certificate of the controller at ${url} is not trusted (${untrusted}): pass the CA that signed it with --tls-ca FILE or FLUSTER_TLS_CA`;
  if (!(err instanceof FlusterError)) return undefined;
  const { code, message } = err;
  if (code === "unauthenticated") {
    // The controller says what was wrong with the token and, after a colon, where the right one is.
    const said = /^((?:missing|wrong) bearer token)(?::\s*(.+))?$/.exec(message);
    const what = said?.[1] ?? message;
    const hint = said?.[2] ?? "set FLUSTER_TOKEN to the controller's token (the contents of <state-dir>/token on the controller host)";
    return `controller at ${url} refused this worker's token (${what}): ${hint}`;
  }
  if (code === "unimplemented") return `${url} is not a Fluster controller: it does not serve ControllerService (${message})`;
  if (code === "internal" && /Protocol error|SSL routines|wrong version number|EPROTO/i.test(message)) {
    return `${url} does not speak Fluster's protocol (${message}): is it the controller's URL (http://host:port)?`;
  }
  if (code === "failed_precondition" || code === "invalid_argument") return `controller at ${url} refused this worker: ${message}`;
  return undefined;
}

/** The ids of an attempt, as every line about it carries them (the daemon's logger adds `workerId`). */
function attemptIdsOf(assignment: TaskAssignment): { jobId: string; taskIndex: number; attemptId: string } {
  return { jobId: assignment.jobId, taskIndex: assignment.taskIndex, attemptId: assignment.attemptId };
}

/** The reason the lease supervisor left in an attempt's directory when it killed it, if it did. */
function readFenceNote(dir: string): string | undefined {
  try {
    return readFileSync(join(dir, FENCED_FILE_NAME), "utf8").trim() || undefined;
  } catch {
    return undefined;
  }
}

/**
 * A directory name for an attempt id: its safe characters, never "." or "..",
 * and within file systems' 255-byte limit (a long id keeps a prefix and gets
 * a hash of the whole id).
 */
function attemptDirName(attemptId: string): string {
  const safe = attemptId.replace(/[^A-Za-z0-9._-]/g, "_").replace(/^\.+$/, (dots) => "_".repeat(dots.length));
  if (safe.length <= 200) return safe;
  return `${safe.slice(0, 150)}-${createHash("sha256").update(attemptId).digest("hex").slice(0, 32)}`;
}
