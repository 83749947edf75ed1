// The worker daemon, one per machine: registers with the controller, serves
// WorkerService, runs each attempt through the process runtime, pushes state
// changes at once and answers the controller's reconcile with what it sees.
import { create } from "@bufbuild/protobuf";
import { createServer } from "node:net";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join, resolve } from "node:path";
import { FlusterError, ValidationError } from "../../core/errors.js";
import { nodeEntryArgs } from "../../core/node-entry.js";
import { formatByteSize } from "../../core/quantity.js";
import type { TaskState } from "../../core/status.js";
import { decodeValue } from "../../rpc/codec.js";
import { deviceToProto, taskStateToProto, toTimestamp } from "../../rpc/convert.js";
import { fromConnectError } from "../../rpc/errors.js";
import { ControllerService } from "../../rpc/gen/fluster/cluster/v1/controller_pb.js";
import { AttemptSchema, LogEntrySchema, LogStream, WorkerResourcesSchema, type Attempt, type JobSpec } from "../../rpc/gen/fluster/cluster/v1/types_pb.js";
import { WorkerService, type TaskAssignment } from "../../rpc/gen/fluster/worker/v1/worker_pb.js";
import { createRpcChannel, startRpcServer, type RpcChannel, type RpcServer } from "../../rpc/transport.js";
import { detectHostResources, type HostResources } from "./host-resources.js";
import { AttemptLog } from "./log-store.js";
import { ProcessRuntime, reapOrphans, type RunningAttempt } from "./runtime.js";

/** Options of {@link WorkerDaemon}. */
export interface WorkerDaemonOptions {
  /** Controller URL, e.g. `http://10.0.0.2:7070`. */
  controllerUrl: string;
  /** Stable id; reusing it across restarts lets the controller recognise the machine. @default `<hostname>-<port>` */
  workerId?: string;
  /** Address to bind. @default "127.0.0.1" */
  host?: string;
  /** Port to bind; 0 picks one. @default 0 */
  port?: number;
  /** Host name other machines use to reach this worker. @default the bind host */
  advertiseHost?: string;
  /** Directory for attempt logs and results. @default `.fluster/worker-<id>` */
  workDir?: string;
  /** Override detected CPU cores. */
  cpu?: number;
  /** Override detected memory, in bytes. */
  memory?: number;
  /** Attributes for scheduling constraints (`region`, `zone`, user labels). @default {} */
  labels?: Record<string, string>;
  /** Bearer token for the controller. @default process.env.FLUSTER_TOKEN */
  token?: string;
  /** SIGTERM → SIGKILL grace when killing an attempt. @default 5000 */
  killGraceMs?: number;
  /** Progress and errors. @default writes to stderr */
  log?: (line: string) => void;
}

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
const BOOTSTRAP_ARGS = nodeEntryArgs(import.meta.url, "./bootstrap", { importsUserCode: true });

interface AttemptEntry {
  assignment: TaskAssignment;
  dir: string;
  running?: RunningAttempt;
  /** Final state when the attempt could not start or has ended. */
  final?: Attempt;
  endedAt?: number;
}

export class WorkerDaemon {
  private stateValue: WorkerDaemonState = "created";
  private readonly options: WorkerDaemonOptions;
  private readonly runtime = new ProcessRuntime();
  private readonly attempts = new Map<string, AttemptEntry>();
  private readonly pendingReports = new Map<string, Attempt>();
  private reportQueued = false;
  private server: RpcServer | undefined;
  private controller: RpcChannel | undefined;
  private resources: HostResources | undefined;
  private registerTimer: NodeJS.Timeout | undefined;
  private lastReconcileAt = 0;
  private readonly startedAt = Date.now();
  workerId = "";
  workDir = "";

  constructor(options: WorkerDaemonOptions) {
    this.options = options;
  }

  get state(): WorkerDaemonState {
    return this.stateValue;
  }

  /** URL of this worker's WorkerService. */
  get address(): string {
    if (!this.server) throw new FlusterError("worker is not serving yet", "failed_precondition");
    const host = this.options.advertiseHost ?? this.options.host ?? "127.0.0.1";
    return `http://${host.includes(":") ? `[${host}]` : host}:${this.server.port}`;
  }

  private log(line: string): void {
    (this.options.log ?? ((l: string) => process.stderr.write(`${l}\n`)))(line);
  }

  /** Serves WorkerService and registers with the controller; resolves once registered. */
  async start(): Promise<void> {
    if (this.stateValue !== "created") throw new FlusterError(`worker cannot start from state ${this.stateValue}`, "failed_precondition");
    this.stateValue = "registering";
    this.server = await startRpcServer({
      host: this.options.host ?? "127.0.0.1",
      port: this.options.port ?? 0,
      ...(this.options.token ?? process.env.FLUSTER_TOKEN ? { token: this.options.token ?? process.env.FLUSTER_TOKEN } : {}),
      routes: (router) => router.service(WorkerService, this.handlers()),
    });
    this.workerId = this.options.workerId ?? `${hostname()}-${this.server.port}`;
    this.workDir = resolve(this.options.workDir ?? join(".fluster", `worker-${this.workerId}`));
    mkdirSync(join(this.workDir, "attempts"), { recursive: true });
    // Attempts left running by a previous incarnation of this daemon (killed
    // without cleanup) are not ours to adopt: the controller has retried them.
    const reaped = await reapOrphans(join(this.workDir, "attempts"));
    if (reaped.length > 0) this.log(`fluster worker: killed ${reaped.length} attempt(s) left by a previous run`);
    this.resources = await detectHostResources({
      workDir: this.workDir,
      ...(this.options.cpu !== undefined ? { cpu: this.options.cpu } : {}),
      ...(this.options.memory !== undefined ? { memory: this.options.memory } : {}),
    });
    this.runtime.onChange((attempt) => this.onAttemptChange(attempt));
    this.controller = createRpcChannel(this.options.controllerUrl, this.options.token ? { token: this.options.token } : {});
    await this.register();
    this.stateValue = "running";
    // If the controller stops reconciling us (it restarted without our
    // record, or lost us), register again.
    this.registerTimer = setInterval(() => {
      if (this.stateValue === "running" && Date.now() - this.lastReconcileAt > 15_000) void this.register().catch(() => undefined);
    }, 5_000);
    this.registerTimer.unref();
  }

  private async register(): Promise<void> {
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
      attributes: { ...(resources.tpu ? {} : {}), ...(this.options.labels ?? {}) },
    };
    let delay = 200;
    for (let attempt = 1; ; attempt++) {
      if (this.stateValue === "stopping" || this.stateValue === "stopped") return;
      try {
        await channel.client(ControllerService).registerWorker(request, { timeoutMs: 10_000 });
        this.lastReconcileAt = Date.now();
        return;
      } catch (err) {
        const error = fromConnectError(err);
        if (error.code === "invalid_argument" || error.code === "unauthenticated") throw error;
        if (attempt === 1 || attempt % 10 === 0) this.log(`fluster worker: waiting for controller ${this.options.controllerUrl}: ${error.message}`);
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 5_000);
      }
    }
  }

  /** Kills every attempt and stops serving. */
  async stop(): Promise<void> {
    if (this.stateValue === "stopped" || this.stateValue === "stopping") return;
    this.stateValue = "stopping";
    if (this.registerTimer) clearInterval(this.registerTimer);
    await this.runtime.shutdown();
    this.controller?.close();
    await this.server?.close();
    this.stateValue = "stopped";
  }

  // ------------------------------------------------------------- attempts

  private attemptDir(attemptId: string): string {
    return join(this.workDir, "attempts", attemptId.replace(/[^A-Za-z0-9._-]/g, "_"));
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
    this.checkRoom(spec);
    const dir = this.attemptDir(assignment.attemptId);
    mkdirSync(dir, { recursive: true });
    const entry: AttemptEntry = { assignment, dir };
    this.attempts.set(assignment.attemptId, entry);
    try {
      const { argv, env, cwd } = await this.prepare(assignment, spec, dir);
      entry.running = this.runtime.start({
        attemptId: assignment.attemptId,
        argv,
        cwd,
        env,
        logDir: dir,
        ...(spec.timeoutSeconds > 0 ? { timeoutSeconds: spec.timeoutSeconds } : {}),
        ...(this.options.killGraceMs !== undefined ? { killGraceMs: this.options.killGraceMs } : {}),
      });
    } catch (err) {
      entry.final = create(AttemptSchema, {
        attemptId: assignment.attemptId,
        taskIndex: assignment.taskIndex,
        workerId: this.workerId,
        state: taskStateToProto("failed"),
        errorMessage: err instanceof Error ? err.message : String(err),
        finishedAt: toTimestamp(new Date()),
      });
      entry.endedAt = Date.now();
      this.queueReport(entry.final);
    }
    return this.observe(entry);
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
      if (entry.running?.state !== "running") continue;
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

  /** Builds the process's argv, environment and working directory. */
  private async prepare(assignment: TaskAssignment, spec: JobSpec, dir: string): Promise<{ argv: string[]; env: Record<string, string>; cwd: string }> {
    const workspace = spec.environment?.workspace || process.cwd();
    if (!existsSync(workspace)) throw new FlusterError(`workspace ${workspace} does not exist on worker ${this.workerId}`, "failed_precondition");
    const env: Record<string, string> = {
      ...(spec.environment?.envVars ?? {}),
      FLUSTER_CLUSTER_ADDRESS: this.options.controllerUrl,
      FLUSTER_JOB_ID: assignment.jobId,
      FLUSTER_JOB_NAME: assignment.jobName,
      FLUSTER_NAMESPACE: assignment.namespace,
      FLUSTER_TASK_INDEX: String(assignment.taskIndex),
      FLUSTER_NUM_TASKS: String(assignment.numTasks),
      FLUSTER_WORKER_ID: this.workerId,
      FLUSTER_ATTEMPT_ID: assignment.attemptId,
    };
    const token = this.options.token ?? process.env.FLUSTER_TOKEN;
    if (token) env.FLUSTER_TOKEN = token;
    for (const name of spec.ports) env[`FLUSTER_PORT_${name.toUpperCase()}`] = String(await freePort());
    const kind = spec.entrypoint?.kind;
    if (kind?.case === "command") return { argv: [...kind.value.argv], env, cwd: workspace };
    if (kind?.case === "function") {
      const argsPath = join(dir, "args.bin");
      writeFileSync(argsPath, kind.value.args);
      env.FLUSTER_ENTRYPOINT_MODULE = kind.value.module;
      env.FLUSTER_ENTRYPOINT_NAME = kind.value.name;
      env.FLUSTER_ENTRYPOINT_ARGS = argsPath;
      env.FLUSTER_RESULT_PATH = join(dir, "result.bin");
      return { argv: [process.execPath, ...BOOTSTRAP_ARGS], env, cwd: workspace };
    }
    throw new ValidationError("spec.entrypoint", "is required");
  }

  private onAttemptChange(running: RunningAttempt): void {
    const entry = this.attempts.get(running.attemptId);
    if (!entry) return;
    if (running.state !== "running") entry.endedAt ??= Date.now();
    this.queueReport(this.observe(entry));
  }

  /** The attempt as the controller sees it. */
  private observe(entry: AttemptEntry): Attempt {
    if (entry.final) return entry.final;
    const running = entry.running;
    const base = { attemptId: entry.assignment.attemptId, taskIndex: entry.assignment.taskIndex, workerId: this.workerId };
    if (!running) return create(AttemptSchema, { ...base, state: taskStateToProto("assigned") });
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
      const resultPath = join(entry.dir, "result.bin");
      if (existsSync(resultPath)) attempt.result = readFileSync(resultPath);
    } else if (state === "failed") {
      const errorPath = join(entry.dir, "result.bin.error");
      if (existsSync(errorPath)) {
        try {
          const error = decodeValue(readFileSync(errorPath));
          if (error instanceof Error) attempt.errorMessage = `${error.name}: ${error.message}`;
        } catch {
          // Keep the runtime's message (exit code and stderr tail).
        }
      }
    }
    if (state !== "running") entry.final = attempt;
    return attempt;
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
    const channel = this.controller;
    if (!channel || this.pendingReports.size === 0) return;
    const attempts = [...this.pendingReports.values()];
    this.pendingReports.clear();
    try {
      const res = await channel.client(ControllerService).heartbeat({ workerId: this.workerId, attempts }, { timeoutMs: 10_000 });
      if (!res.known && this.stateValue === "running") void this.register().catch(() => undefined);
    } catch {
      // The controller's next reconcile collects these states.
    }
  }

  private reconcile(attemptIds: readonly string[], knownStates: readonly number[], stopReasons: Readonly<Record<string, string>>): { observed: Attempt[]; missing: string[] } {
    this.lastReconcileAt = Date.now();
    const wanted = new Set(attemptIds);
    for (const [id, entry] of this.attempts) {
      if (wanted.has(id)) continue;
      if (entry.running && entry.running.state === "running") {
        entry.running.kill(stopReasons[id] ?? "no longer wanted by the controller");
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
      killTask: (req: { attemptId: string; force: boolean; reason: string }) => {
        const entry = this.attempts.get(req.attemptId);
        if (!entry) throw new FlusterError(`attempt ${req.attemptId} not found on worker ${this.workerId}`, "not_found");
        entry.running?.kill(req.reason || "killed by request", { force: req.force });
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

/** A free TCP port on this machine, for FLUSTER_PORT_<NAME>. */
function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}
