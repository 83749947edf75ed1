// A whole cluster on this machine: the controller in this process, worker
// daemons as child processes. For tests, examples and development; shutdown()
// leaves no process, port or temporary file behind.
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { FlusterError, ValidationError } from "../../core/errors.js";
import { checkLogFormat, checkLogger, checkLogLevel, createLogger, type LogFormat, type Logger, type LogLevel } from "../../core/logger.js";
import { refuseWhileImportingByReference } from "../../core/remote.js";
import { checkInteger, checkNonNegative, checkPositive } from "../../core/validate.js";
import { parseByteSize, type ByteSize } from "../../core/quantity.js";
import { startController, type ControllerServer } from "../controller/server.js";
import type { WorkerDaemonOptions } from "../worker/daemon.js";
import type { ControllerFaults } from "../controller/faults.js";
import type { WorkerFaults } from "../worker/faults.js";
import type { ScaleGroup } from "../autoscaler/types.js";
import type { AutoscalerTuning } from "../controller/server.js";
import type { ClusterConfig } from "../platform/config.js";
import { LocalPlatform } from "../platform/local/platform.js";
import { Cluster, type ClusterOptions } from "./cluster.js";


/**
 * Options of {@link LocalCluster.start}. A `token` (or FLUSTER_TOKEN) turns
 * the controller's auth on with it as the operator token: the workers
 * register with it, and jobs get credentials of their own.
 */
export interface LocalClusterOptions extends ClusterOptions {
  /** Worker daemons to start. @default 2 */
  workers?: number;
  /** Controller state directory; kept after shutdown when given. @default a temporary directory, removed on shutdown */
  stateDir?: string;
  /** Controller port. @default a free port */
  port?: number;
  /** CPU cores each worker advertises. @default the machine's cores */
  workerCpu?: number;
  /** Memory each worker advertises. @default the machine's memory divided among the workers */
  workerMemory?: ByteSize;
  /** Labels of worker `i` (for constraints). @default none */
  workerLabels?: (index: number) => Record<string, string>;
  /** Seconds between reconcile rounds. @default 0.5 */
  reconcileIntervalSeconds?: number;
  /** Seconds a worker may fail reconciles before it is lost. @default 10 */
  workerLostGraceSeconds?: number;
  /** Seconds between SIGTERM and SIGKILL when workers kill attempts. @default 2 */
  killGraceSeconds?: number;
  /** Fault injection in the controller, for tests only (controller/faults.ts). @default none */
  controllerFaults?: ControllerFaults;
  /** Fault injection in every worker daemon, for tests only (worker/faults.ts). @default none */
  workerFaults?: WorkerFaults;
  /**
   * Least severe level the controller and the workers log on stderr
   * (docs/logging.md). A local cluster serves a program or a test, so only
   * what goes wrong is said unless asked. @default the FLUSTER_LOG_LEVEL environment variable, else "warn"
   */
  logLevel?: LogLevel;
  /** Format of the controller's and the workers' lines. @default the FLUSTER_LOG_FORMAT environment variable, else "auto" (pretty on a terminal, else JSON) */
  logFormat?: LogFormat;
  /** The controller's logger (it runs in this process), instead of one on stderr from `logLevel` and `logFormat`; the workers still use those. @default none */
  logger?: Logger;
  /**
   * A cluster config (a YAML file's path, or a loaded config): the
   * controller's autoscaler sizes its scale groups, beside the `workers`
   * started here. Their VMs are the platforms' (docker containers, local
   * processes under the state dir) and are released at shutdown. @default none
   */
  config?: string | ClusterConfig;
  /** Autoscaler timings (tests shorten them). @default see ControllerServerOptions.autoscaler */
  autoscaler?: AutoscalerTuning;
}

/** Checks LocalCluster options up front; throws a ValidationError naming the field. */
export function compileLocalClusterOptions(options: LocalClusterOptions): LocalClusterOptions {
  if (options.workers !== undefined) checkInteger(options.workers, "workers", 0);
  if (options.workerCpu !== undefined) checkPositive(options.workerCpu, "workerCpu");
  if (options.workerMemory !== undefined) parseByteSize(options.workerMemory, "workerMemory");
  if (options.workerLabels !== undefined && typeof options.workerLabels !== "function") throw new ValidationError("workerLabels", "must be a function of the worker index");
  if (options.killGraceSeconds !== undefined) checkNonNegative(options.killGraceSeconds, "killGraceSeconds");
  if (options.logLevel !== undefined) checkLogLevel(options.logLevel, "logLevel");
  if (options.logFormat !== undefined) checkLogFormat(options.logFormat, "logFormat");
  if (options.logger !== undefined) checkLogger(options.logger);
  if (options.config !== undefined && typeof options.config !== "string" && (typeof options.config !== "object" || options.config === null)) {
    throw new ValidationError("config", "must be the path of a cluster config file or a loaded config");
  }
  return options;
}

/** A worker daemon process of a LocalCluster. */
export interface LocalWorker {
  readonly workerId: string;
  readonly address: string;
  readonly process: ChildProcess;
}

export class LocalCluster extends Cluster {
  readonly server: ControllerServer;
  private readonly workerList: LocalWorker[] = [];
  /** Starts and stops the worker processes. */
  private readonly platform: LocalPlatform;
  private readonly options: LocalClusterOptions;
  private readonly rootDir: string;
  private readonly ownsRoot: boolean;
  private nextWorker = 0;
  private shutDown = false;

  private constructor(server: ControllerServer, rootDir: string, ownsRoot: boolean, options: LocalClusterOptions) {
    super(server.url, { ...options, ...(server.token ? { token: server.token } : {}) });
    this.server = server;
    this.rootDir = rootDir;
    this.ownsRoot = ownsRoot;
    this.options = options;
    const { level: logLevel, format: logFormat } = localLogSettings(options);
    // Tied: the workers die with this process, even when it is SIGKILLed.
    this.platform = new LocalPlatform({
      workDir: join(rootDir, "workers"),
      tied: true,
      logLevel,
      ...(logFormat !== undefined ? { logFormat } : {}),
      workerOptions: { killGraceSeconds: options.killGraceSeconds ?? 2, ...(options.workerFaults ? { faults: options.workerFaults } : {}) },
    });
  }

  /** Starts a controller in this process and `workers` worker daemons; resolves when all are registered. */
  static async start(given: LocalClusterOptions = {}): Promise<LocalCluster> {
    // A module that starts a cluster as it loads would start one in every worker process that imports it.
    refuseWhileImportingByReference("LocalCluster.start() was called");
    const options = compileLocalClusterOptions(given);
    const ownsRoot = options.stateDir === undefined;
    const rootDir = options.stateDir ?? mkdtempSync(join(tmpdir(), "fluster-local-"));
    let server: ControllerServer;
    try {
      server = await startController({
        stateDir: rootDir,
        ...(options.port !== undefined ? { port: options.port } : {}),
        reconcileIntervalSeconds: options.reconcileIntervalSeconds ?? 0.5,
        workerLostGraceSeconds: options.workerLostGraceSeconds ?? 10,
        // A token turns auth on (else FLUSTER_TOKEN does): it is the operator's; workers and jobs get credentials of their own.
        ...(options.token !== undefined ? { token: options.token } : {}),
        ...(options.controllerFaults ? { faults: options.controllerFaults } : {}),
        ...(options.config !== undefined ? { config: options.config } : {}),
        ...(options.autoscaler !== undefined ? { autoscaler: options.autoscaler } : {}),
        logger: options.logger ?? createLogger({ component: "controller", ...localLogSettings(options) }),
      });
    } catch (err) {
      if (ownsRoot) rmSync(rootDir, { recursive: true, force: true });
      throw err;
    }
    const cluster = new LocalCluster(server, rootDir, ownsRoot, options);
    shutDownOnSignals(cluster, () => cluster.abandon());
    try {
      await Promise.all(Array.from({ length: options.workers ?? 2 }, () => cluster.addWorker()));
    } catch (err) {
      await cluster.shutdown();
      throw err;
    }
    return cluster;
  }

  /** The worker daemons now running. */
  get workers(): readonly LocalWorker[] {
    return this.workerList.filter((w) => w.process.exitCode === null && w.process.signalCode === null);
  }

  /** Starts one more worker daemon; resolves when it has registered. It is a process: it logs on stderr by the cluster's `logLevel` and `logFormat`. */
  async addWorker(overrides: Partial<Omit<WorkerDaemonOptions, "logger">> = {}): Promise<LocalWorker> {
    if (this.shutDown) throw new FlusterError("local cluster is shut down", "failed_precondition");
    const index = this.nextWorker++;
    const count = Math.max(1, this.options.workers ?? 2);
    const workerId = overrides.workerId ?? `local-${index}`;
    const cpu = overrides.cpu ?? this.options.workerCpu ?? availableParallelism();
    const memory = overrides.memory ?? (this.options.workerMemory !== undefined ? parseByteSize(this.options.workerMemory, "workerMemory") : Math.floor(totalmem() / count));
    // A worker of a LocalCluster is a VM of the local platform, started by hand rather than by the autoscaler.
    const group: ScaleGroup = {
      name: "local",
      platform: "local",
      shape: { resources: { cpu, memory, disk: 0, deviceType: "cpu", deviceVariant: "", deviceCount: 0 }, preemptible: false },
      minVms: 0,
      maxVms: Number.MAX_SAFE_INTEGER,
      idleTimeoutSeconds: 0,
    };
    const worker = { controllerUrl: this.server.url, labels: overrides.labels ?? this.options.workerLabels?.(index) ?? {}, ...(this.server.token ? { token: this.server.token } : {}) };
    await this.platform.allocate({ vmId: workerId, group, worker }, undefined, { ...overrides, workDir: overrides.workDir ?? join(this.rootDir, "workers", workerId), cpu, memory });
    const ready = await this.platform.waitReady(workerId, 120_000);
    const child = this.platform.processOf(workerId);
    if (!child) throw new FlusterError(`worker ${workerId} has no process`, "internal");
    const local: LocalWorker = { workerId, address: this.platform.workerAddress(ready.vmId) ?? "", process: child };
    this.workerList.push(local);
    return local;
  }

  /** Sends `signal` to a worker daemon (SIGKILL simulates a machine dying). Resolves when it has exited. */
  async killWorker(workerId: string, signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const worker = this.workerList.find((w) => w.workerId === workerId);
    if (!worker) throw new FlusterError(`no local worker ${workerId}`, "not_found");
    await stopProcess(worker.process, signal);
  }

  /**
   * Ends the cluster at once and synchronously, for a process about to die of
   * a signal: SIGKILLs the worker daemons (their attempts die with them) and
   * removes the temporary directory.
   */
  private abandon(): void {
    if (this.shutDown) return;
    this.shutDown = true;
    liveClusters.delete(this);
    for (const worker of this.workerList) worker.process.kill("SIGKILL");
    if (this.ownsRoot) rmSync(this.rootDir, { recursive: true, force: true });
  }

  /** Stops every worker (and the attempts they run), the controller, and removes temporary files. */
  async shutdown(): Promise<void> {
    if (this.shutDown) return;
    this.shutDown = true;
    liveClusters.delete(this);
    if (liveClusters.size === 0) removeSignalHandlers();
    await Promise.all([...this.workerList.map((w) => stopProcess(w.process, "SIGTERM", 10_000)), this.server.controller.releaseAllVms("the local cluster shut down")]);
    await this.close();
    await this.server.shutdown();
    if (this.ownsRoot) rmSync(this.rootDir, { recursive: true, force: true });
  }
}

/** The level and format of a local cluster's lines: as given, else FLUSTER_LOG_LEVEL or "warn", and FLUSTER_LOG_FORMAT or auto. */
function localLogSettings(options: LocalClusterOptions): { level: LogLevel; format?: LogFormat } {
  const level = options.logLevel ?? (process.env.FLUSTER_LOG_LEVEL ? checkLogLevel(process.env.FLUSTER_LOG_LEVEL, "FLUSTER_LOG_LEVEL") : "warn");
  return { level, ...(options.logFormat !== undefined ? { format: options.logFormat } : {}) };
}

// ------------------------------------------------------------------ signals

/** Clusters of this process not shut down yet, each with how to end it at once. */
const liveClusters = new Map<LocalCluster, () => void>();
const SIGNALS = ["SIGINT", "SIGTERM"] as const;
const signalHandlers = new Map<NodeJS.Signals, () => void>();

/**
 * A SIGINT or SIGTERM that the program does not handle itself ends it at
 * once, which would leave the cluster's temporary directory behind: until
 * the cluster is shut down, such a signal first ends every LocalCluster of
 * the process — synchronously, so that none of the program's code runs in
 * between — then ends the process with the same signal, as it would have
 * ended. A program that listens for the signal itself decides what happens
 * (and calls shutdown()).
 */
function shutDownOnSignals(cluster: LocalCluster, abandon: () => void): void {
  liveClusters.set(cluster, abandon);
  if (signalHandlers.size > 0) return;
  for (const signal of SIGNALS) {
    const handler = (): void => {
      if (process.listeners(signal).some((listener) => listener !== handler)) return;
      for (const abandon of [...liveClusters.values()]) abandon();
      removeSignalHandlers();
      process.kill(process.pid, signal);
    };
    signalHandlers.set(signal, handler);
    process.on(signal, handler);
  }
}

function removeSignalHandlers(): void {
  for (const [signal, handler] of signalHandlers) process.off(signal, handler);
  signalHandlers.clear();
}

/** Signals a process and waits for it to exit; escalates to SIGKILL after `graceMs`. */
function stopProcess(child: ChildProcess, signal: NodeJS.Signals, graceMs = 5_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill(signal);
  });
}
