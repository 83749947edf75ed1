// Runs a controller: opens the state store, starts the state machine, serves
// ControllerService, and talks to workers through WorkerService clients.
import { create, isMessage } from "@bufbuild/protobuf";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { BundleStore } from "../bundle/blob-store.js";
import { observedFromProto, controllerRoutes, type AttemptLogReader } from "./service.js";
import { Controller, type Assignment, type WorkerConnection } from "./controller.js";
import { StateStore } from "./store.js";
import { acquireStateLock, type StateLock } from "./state-lock.js";
import { CALLER } from "./access.js";
import { dashboardRoutes } from "./dashboard-files.js";
import { ControllerMetrics } from "../metrics/controller-metrics.js";
import { createMetricsRegistry } from "../metrics/registry.js";
import { metricsRoute } from "../metrics/route.js";
import { ControllerIdentity } from "./identity.js";
import { isActiveAttempt } from "./task-state.js";
import { RegisterWorkerRequestSchema } from "../../rpc/gen/fluster/cluster/v1/controller_pb.js";
import { WorkerService, TaskAssignmentSchema } from "../../rpc/gen/fluster/worker/v1/worker_pb.js";
import { createRpcChannel, readPemFile, startRpcServer, type RpcChannel, type RpcServer, type TokenRefusal } from "../../rpc/transport.js";
import { fromConnectError } from "../../rpc/errors.js";
import { taskStateToProto } from "../../rpc/convert.js";
import { FlusterError, ValidationError, type FlusterErrorCode } from "../../core/errors.js";
import { checkLogger, createLogger, type Logger } from "../../core/logger.js";
import { checkInteger, checkPlainObject, checkPort, checkPositive, checkString } from "../../core/validate.js";
import { isLoopbackAddress, resolvesToLoopback } from "../../rpc/loopback.js";
import { createFaultInjector } from "../../rpc/faults.js";
import { rpcMetricsInterceptor } from "../../rpc/rpc-metrics.js";
import { compileControllerFaults, type ControllerFaults } from "./faults.js";
import type { ConnectRouter } from "@connectrpc/connect";
import type { AutoscalingOptions } from "./autoscaling.js";
import { loadClusterConfig, type ClusterConfig } from "../platform/config.js";
import { createPlatform, type PlatformName, type PlatformSettings } from "../platform/registry.js";
import type { Platform } from "../platform/types.js";

/** Options of {@link startController}. */
export interface ControllerServerOptions {
  /** Directory of the SQLite state (created if missing), or `":memory:"` for tests. @default ".fluster" */
  stateDir?: string;
  /** Address to bind. @default "127.0.0.1" */
  host?: string;
  /** Port to bind; 0 picks one. @default 0 */
  port?: number;
  /** Host name workers and jobs use to reach the controller. @default the bind host */
  advertiseHost?: string;
  /**
   * Bearer token required of every caller. Defaults to `FLUSTER_TOKEN`; when
   * the controller binds a non-loopback address and none is given, one is
   * generated into `<stateDir>/token`.
   */
  token?: string;
  /** Seconds between reconcile rounds (each worker gets its desired set). @default 1 */
  reconcileIntervalSeconds?: number;
  /** Seconds without contact (no reconcile answered, no heartbeat) before a worker is lost and its attempts are retried elsewhere; workers fence their attempts sooner. @default 10 */
  workerLostGraceSeconds?: number;
  /**
   * Workspace bundles (and their blobs) that no unfinished job uses are
   * removed once this many seconds have passed since they were last
   * registered. @default 86400 (a day)
   */
  bundleMaxAgeSeconds?: number;
  /**
   * Bytes of blobs the bundle store may hold: above it, a sweep also removes
   * unused bundles, least recently used first, however young. Bundles of
   * unfinished jobs always stay. @default 10 GiB
   */
  bundleStoreMaxBytes?: number;
  /** Seconds between sweeps of unused bundles. @default 600 */
  bundleSweepIntervalSeconds?: number;
  /**
   * PEM file of the certificate chain to serve TLS with (with `tlsKey`): the
   * controller then speaks HTTP/2 and HTTP/1.1 over TLS and advertises an
   * https:// URL. Clients, workers and jobs verify it against the system CAs
   * plus the CA file in `FLUSTER_TLS_CA` (or their `--tls-ca`). @default plain HTTP
   */
  tlsCert?: string;
  /** PEM file of the private key of `tlsCert`. @default none */
  tlsKey?: string;
  /** PEM file of CA certificates a worker's https:// certificate may chain to, besides the system's. @default process.env.FLUSTER_TLS_CA */
  tlsCaFile?: string;
  /** Bytes of one request; a larger one gets `resource_exhausted` (bundle chunks are at most 1 MiB). @default 8 MiB */
  maxRequestBytes?: number;
  /** Characters of an id, name, namespace, address or map key in a request. @default 1024 */
  maxIdLength?: number;
  /** Characters of any other string in a request (argv and env entries, metadata values). @default 65536 */
  maxStringLength?: number;
  /** Entries of one list or map in a request. @default 100000 */
  maxListEntries?: number;
  /** Tasks (replicas) one job may have. @default 10000 */
  maxReplicas?: number;
  /** Endpoints one job may hold at once. @default 1000 */
  maxEndpointsPerJob?: number;
  /**
   * A lost worker's row is deleted this many seconds after it was last seen
   * (its attempts keep the worker id; their logs are then gone). @default 86400 (a day)
   */
  lostWorkerRetentionSeconds?: number;
  /** Extra routes served on the same port (e.g. the dashboard's). */
  extraRoutes?: (router: ConnectRouter) => void;
  /**
   * Where the controller's structured lines go: lifecycle events (workers,
   * attempts, retries, jobs), refusals, a stale lock taken over
   * (docs/logging.md). @default `createLogger({ component: "controller" })`: stderr, JSON off a terminal, level from FLUSTER_LOG_LEVEL else info
   */
  logger?: Logger;
  /** Fault injection, for tests only (controller/faults.ts): drop or delay the RPCs it serves, lose workers at random. @default none */
  faults?: ControllerFaults;
  /**
   * The cluster config (a YAML file's path, or the config it holds): scale
   * groups the controller's autoscaler sizes, and their platforms'
   * settings (docs in README "Platforms and autoscaling"). @default none: workers are started by hand
   */
  config?: string | ClusterConfig;
  /** Tuning of the autoscaler (tests shorten these). @default see AutoscalingOptions */
  autoscaler?: AutoscalerTuning;
}

/** The autoscaler's timings, in seconds. */
export interface AutoscalerTuning {
  /** A VM whose workers have not registered this long after it was asked for fails. @default 600 */
  bootTimeoutSeconds?: number;
  /** How often each platform is asked for its VMs (adoption, preemption, leaks). @default 10 */
  syncIntervalSeconds?: number;
  /** Delay after a group's first failed allocation, doubling per failure in a row. @default 10 */
  allocationBackoffSeconds?: number;
  /** Longest delay between a group's failed allocations. @default 600 */
  allocationBackoffMaxSeconds?: number;
}

/** A running controller. */
export interface ControllerServer {
  readonly url: string;
  readonly controller: Controller;
  /** Workspace bundles and their blobs. */
  readonly bundles: BundleStore;
  /** The token callers must present, when auth is on: the operator credential. */
  readonly token: string | undefined;
  /** The signing key and credentials, when auth is on. */
  readonly identity: ControllerIdentity | undefined;
  /** Stops serving, then the controller; jobs keep running on their workers. */
  shutdown(): Promise<void>;
}

/** Options that bound what one request may ask for. */
const LIMIT_OPTIONS = ["maxRequestBytes", "maxIdLength", "maxStringLength", "maxListEntries", "maxReplicas", "maxEndpointsPerJob"] as const;

/**
 * Checks controller server options (also untyped JSON, as a spawned
 * controller process gets them); throws a ValidationError naming the field.
 */
export function compileControllerServerOptions(raw: unknown): ControllerServerOptions {
  const o = checkPlainObject(raw, "controller options") as Record<string, unknown>;
  const known = ["stateDir", "host", "port", "advertiseHost", "token", "reconcileIntervalSeconds", "workerLostGraceSeconds", "bundleMaxAgeSeconds", "bundleStoreMaxBytes", "tlsCert", "tlsKey", "tlsCaFile", "bundleSweepIntervalSeconds", ...LIMIT_OPTIONS, "lostWorkerRetentionSeconds", "extraRoutes", "logger", "faults", "config", "autoscaler"];
  for (const key of Object.keys(o)) if (!known.includes(key)) throw new ValidationError(key, `is not a controller option (known: ${known.join(", ")})`);
  for (const key of ["stateDir", "host", "advertiseHost", "token", "tlsCert", "tlsKey", "tlsCaFile"]) if (o[key] !== undefined) checkString(o[key], key, { nonEmpty: true });
  if ((o.tlsCert === undefined) !== (o.tlsKey === undefined)) throw new ValidationError(o.tlsCert === undefined ? "tlsCert" : "tlsKey", `must be given with ${o.tlsCert === undefined ? "tlsKey" : "tlsCert"}: TLS needs both the certificate and its key`);
  if (o.port !== undefined) checkPort(o.port);
  for (const key of ["reconcileIntervalSeconds", "workerLostGraceSeconds", "bundleMaxAgeSeconds", "bundleStoreMaxBytes", "bundleSweepIntervalSeconds", "lostWorkerRetentionSeconds"]) {
    if (o[key] !== undefined) checkPositive(o[key], key);
  }
  for (const key of LIMIT_OPTIONS) if (o[key] !== undefined) checkInteger(o[key], key, 1);
  if (o.extraRoutes !== undefined && typeof o.extraRoutes !== "function") throw new ValidationError("extraRoutes", "must be a function");
  if (o.logger !== undefined) checkLogger(o.logger);
  if (o.config !== undefined && typeof o.config !== "string" && (typeof o.config !== "object" || o.config === null)) throw new ValidationError("config", "must be the path of a cluster config file or a loaded config");
  if (o.autoscaler !== undefined) {
    const tuning = checkPlainObject(o.autoscaler, "autoscaler");
    const keys = ["bootTimeoutSeconds", "syncIntervalSeconds", "allocationBackoffSeconds", "allocationBackoffMaxSeconds"];
    for (const [key, value] of Object.entries(tuning)) {
      if (!keys.includes(key)) throw new ValidationError(`autoscaler.${key}`, `is not an autoscaler option (known: ${keys.join(", ")})`);
      checkPositive(value, `autoscaler.${key}`);
    }
  }
  const faults = o.faults === undefined ? undefined : compileControllerFaults(o.faults);
  return { ...(o as ControllerServerOptions), ...(faults ? { faults } : {}) };
}

export async function startController(given: ControllerServerOptions = {}): Promise<ControllerServer> {
  const options = compileControllerServerOptions(given);
  const stateDir = options.stateDir ?? ".fluster";
  const host = options.host ?? "127.0.0.1";
  const logger = options.logger ?? createLogger({ component: "controller" });
  // One controller per state directory: a second one fails here, before it touches anything.
  const lock: StateLock | undefined = stateDir === ":memory:" ? undefined : acquireStateLock(stateDir, logger);
  let store: StateStore | undefined;
  let tokenSource: TokenSource;
  // An in-memory controller (tests) keeps its bundles in a temporary directory of its own, made last below.
  let bundleDir = join(stateDir, "bundles");
  let ownBundleDir = false;
  const dropBundleDir = () => {
    if (ownBundleDir) rmSync(bundleDir, { recursive: true, force: true });
  };
  let bundles: BundleStore;
  let identity: ControllerIdentity | undefined;
  let tls: { cert: string; key: string } | undefined;
  let platforms = new Map<string, Platform>();
  let config: ClusterConfig | undefined;
  try {
    if (options.tlsCert && options.tlsKey) tls = { cert: readPemFile(options.tlsCert, "TLS certificate (tlsCert)"), key: readPemFile(options.tlsKey, "TLS key (tlsKey)") };
    // Decided from the addresses the host resolves to (and checked again on the bound socket below).
    const loopback = await resolvesToLoopback(host);
    tokenSource = resolveToken(options.token ?? process.env.FLUSTER_TOKEN, loopback, stateDir);
    store = new StateStore(stateDir);
    // Auth on: the signing key of worker and job credentials, kept in the state database.
    identity = tokenSource ? await ControllerIdentity.open(tokenSource.token, store) : undefined;
    if (stateDir === ":memory:") {
      bundleDir = mkdtempSync(join(tmpdir(), "fluster-bundles-"));
      ownBundleDir = true;
    }
    bundles = new BundleStore(bundleDir);
    config = typeof options.config === "string" ? loadClusterConfig(options.config) : options.config;
    if (config && Object.keys(config.platforms).length > 0) {
      // An in-memory controller keeps its platforms' files with its bundles, removed at shutdown.
      platforms = await buildPlatforms(config, store, ownBundleDir ? join(bundleDir, ".platforms") : join(stateDir, "platforms"), logger);
    }
  } catch (err) {
    // Nothing of a controller that did not start stays behind: no open database, no temporary directory, no lock.
    await closePlatforms(platforms);
    store?.close();
    dropBundleDir();
    lock?.release();
    throw err;
  }
  const token = tokenSource?.token;
  const channels = new Map<string, RpcChannel>();
  const channelTo = (address: string) => {
    let channel = channels.get(address);
    if (!channel) {
      channel = createRpcChannel(address, { token: token ?? "", ...(options.tlsCaFile ? { tlsCaFile: options.tlsCaFile } : {}) });
      channels.set(address, channel);
    }
    return channel;
  };
  // Prometheus metrics at /metrics: the gauges read the controller's records at each scrape.
  const metricsRegistry = createMetricsRegistry();
  const metrics = new ControllerMetrics(metricsRegistry, {
    jobs: () => controller.listJobs({ allNamespaces: true }),
    workers: () => controller.listWorkers().map(({ record }) => record),
  });
  const controller: Controller = new Controller({
    store,
    observer: metrics,
    connectWorker: (address) => workerConnection(channelTo(address), identity),
    ...(options.reconcileIntervalSeconds !== undefined ? { reconcileIntervalMs: options.reconcileIntervalSeconds * 1000 } : {}),
    ...(options.workerLostGraceSeconds !== undefined ? { workerLostGraceMs: options.workerLostGraceSeconds * 1000 } : {}),
    ...(options.faults?.loseWorkerProbability ? { loseWorkerProbability: options.faults.loseWorkerProbability } : {}),
    ...(options.maxReplicas !== undefined ? { maxReplicas: options.maxReplicas } : {}),
    ...(options.maxEndpointsPerJob !== undefined ? { maxEndpointsPerJob: options.maxEndpointsPerJob } : {}),
    ...(config && config.scaleGroups.length > 0 ? { autoscaling: autoscalingOptions(config, platforms, options.autoscaler ?? {}, () => controller.address, token, options.tlsCaFile) } : {}),
    logger,
  });
  const readAttemptLog: AttemptLogReader = async function* (address, attemptId, follow, signal) {
    const stream = channelTo(address).client(WorkerService).streamLogs({ attemptId, follow }, { signal });
    for await (const res of stream) yield res.entries;
  };
  let server: RpcServer;
  try {
    server = await startRpcServer({
      host,
      port: options.port ?? 0,
      ...(tls ? { tls } : {}),
      ...(tokenSource && identity
        ? {
            authenticator: {
              key: CALLER,
              authenticate: (token: string) =>
                identity.authenticate(token, (attemptId) => {
                  const attempt = controller.findAttempt(attemptId);
                  return attempt && { state: attempt.state, active: isActiveAttempt(attempt.state) };
                }),
            },
            tokenHint: tokenSource.hint,
            onUnauthenticated: refusalLogger(logger),
          }
        : {}),
      // Metrics first: they see the code of every call, also of one that fault injection drops.
      interceptors: [rpcMetricsInterceptor(metricsRegistry, { prefix: "fluster_controller" }), ...(options.faults?.rpc ? [createFaultInjector(options.faults.rpc).interceptor] : [])],
      limits: {
        ...(options.maxRequestBytes !== undefined ? { maxRequestBytes: options.maxRequestBytes } : {}),
        ...(options.maxIdLength !== undefined ? { maxIdLength: options.maxIdLength } : {}),
        ...(options.maxStringLength !== undefined ? { maxStringLength: options.maxStringLength } : {}),
        ...(options.maxListEntries !== undefined ? { maxListEntries: options.maxListEntries } : {}),
      },
      // Plain HTTP beside the RPCs: Prometheus metrics (behind the token), the dashboard's page and files.
      httpRoutes: [metricsRoute(metricsRegistry), ...dashboardRoutes()],
      routes: (router) => {
        controllerRoutes(controller, readAttemptLog, bundles, identity, deniedLogger(logger))(router);
        options.extraRoutes?.(router);
      },
    });
    if (!tokenSource && stateDir !== ":memory:" && !isLoopbackAddress(server.address)) {
      await server.shutdown();
      throw new FlusterError(`${host} resolved to loopback but the controller is bound to ${server.address}: refusing to serve without a token`, "failed_precondition");
    }
  } catch (err) {
    await closePlatforms(platforms);
    store.close();
    dropBundleDir();
    lock?.release();
    throw err;
  }
  const advertise = options.advertiseHost ?? (host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host);
  controller.address = `${tls ? "https" : "http"}://${advertise.includes(":") ? `[${advertise}]` : advertise}:${server.port}`;
  controller.start();
  lock?.setUrl(controller.address);
  logger.info(
    { event: "controller_started", address: controller.address, stateDir: stateDir === ":memory:" ? stateDir : resolve(stateDir), auth: token !== undefined },
    `serving at ${controller.address} (state in ${stateDir})${token !== undefined ? "; callers need the token" : ""}`,
  );
  const bundleMaxAgeMs = (options.bundleMaxAgeSeconds ?? 86_400) * 1000;
  const bundleStoreMaxBytes = options.bundleStoreMaxBytes ?? 10 * 1024 ** 3;
  const sweepTimer = setInterval(() => {
    try {
      const swept = bundles.sweep(controller.liveBundleIds(), bundleMaxAgeMs, bundleStoreMaxBytes);
      if (swept.bundles + swept.blobs > 0) {
        logger.info({ event: "bundles_swept", bundles: swept.bundles, blobs: swept.blobs }, `removed ${swept.bundles} unused bundle(s) and ${swept.blobs} blob(s)`);
      }
    } catch (err) {
      logger.error({ event: "bundle_sweep_failed", error: (err as Error).message }, `sweeping unused bundles failed: ${(err as Error).message}`);
    }
  }, (options.bundleSweepIntervalSeconds ?? 600) * 1000);
  sweepTimer.unref();
  const retentionMs = (options.lostWorkerRetentionSeconds ?? 86_400) * 1000;
  const pruneTimer = setInterval(() => {
    try {
      const pruned = controller.pruneLostWorkers(retentionMs);
      if (pruned.length > 0) {
        logger.info(
          { event: "lost_workers_pruned", workerIds: pruned, retentionSeconds: retentionMs / 1000 },
          `forgot ${pruned.length} worker(s) lost more than ${retentionMs / 1000} s ago`,
        );
      }
    } catch (err) {
      logger.error({ event: "lost_worker_prune_failed", error: (err as Error).message }, `pruning lost workers failed: ${(err as Error).message}`);
    }
  }, Math.min(Math.max(retentionMs / 4, 100), 600_000));
  pruneTimer.unref();
  return {
    url: controller.address,
    controller,
    bundles,
    token,
    identity,
    async shutdown() {
      logger.info({ event: "controller_stopping", address: controller.address }, "stopping; jobs keep running on their workers");
      clearInterval(sweepTimer);
      clearInterval(pruneTimer);
      await server.shutdown();
      await controller.shutdown();
      await closePlatforms(platforms);
      dropBundleDir();
      for (const channel of channels.values()) channel.close();
      lock?.release();
    },
  };
}

/** The name VMs of this cluster carry on shared platforms: made once, kept in the state database. */
function clusterNameOf(store: StateStore): string {
  const known = store.getMeta("cluster_name");
  if (known) return known;
  const name = `fluster-${randomBytes(4).toString("hex")}`;
  store.setMeta("cluster_name", name);
  return name;
}

/** Builds the platforms the config names (in file order), each with a directory under the state dir. */
async function buildPlatforms(config: ClusterConfig, store: StateStore, root: string, logger: Logger): Promise<Map<string, Platform>> {
  const platforms = new Map<string, Platform>();
  const clusterName = clusterNameOf(store);
  try {
    for (const [name, settings] of Object.entries(config.platforms) as Array<[PlatformName, PlatformSettings]>) {
      const dir = join(root, name);
      mkdirSync(dir, { recursive: true });
      platforms.set(name, await createPlatform(name, settings, { clusterName, stateDir: dir, logger: logger.child({ platform: name }) }));
    }
  } catch (err) {
    await closePlatforms(platforms);
    throw err;
  }
  return platforms;
}

async function closePlatforms(platforms: ReadonlyMap<string, Platform>): Promise<void> {
  await Promise.allSettled([...platforms.values()].map((p) => p.close()));
}

function autoscalingOptions(
  config: ClusterConfig,
  platforms: ReadonlyMap<string, Platform>,
  tuning: AutoscalerTuning,
  controllerUrl: () => string,
  token: string | undefined,
  tlsCaFile: string | undefined,
): AutoscalingOptions {
  const tlsCa = tlsCaFile ?? process.env.FLUSTER_TLS_CA;
  const ca = tlsCa ? readPemFile(tlsCa, "TLS CA (tlsCaFile)") : undefined;
  return {
    groups: config.scaleGroups,
    platforms,
    bootstrap: () => ({ controllerUrl: controllerUrl(), ...(token ? { token } : {}), ...(ca ? { tlsCa: ca } : {}) }),
    ...(tuning.bootTimeoutSeconds !== undefined ? { bootTimeoutMs: tuning.bootTimeoutSeconds * 1000 } : {}),
    ...(tuning.syncIntervalSeconds !== undefined ? { syncIntervalMs: tuning.syncIntervalSeconds * 1000 } : {}),
    allocationBackoff: {
      ...(tuning.allocationBackoffSeconds !== undefined ? { initialMs: tuning.allocationBackoffSeconds * 1000 } : {}),
      ...(tuning.allocationBackoffMaxSeconds !== undefined ? { maxMs: tuning.allocationBackoffMaxSeconds * 1000 } : {}),
    },
  };
}

/** The token callers must present, and how a refused caller gets it. */
type TokenSource = { token: string; hint: string } | undefined;

/** Auth is on when a token is given, or always on a non-loopback bind (generating one if needed). */
function resolveToken(given: string | undefined, loopback: boolean, stateDir: string): TokenSource {
  if (given) return { token: given, hint: "set FLUSTER_TOKEN to the token the controller was started with" };
  if (loopback || stateDir === ":memory:") return undefined;
  const path = join(stateDir, "token");
  const hint = `set FLUSTER_TOKEN to the contents of ${resolve(path)} on the controller host`;
  if (existsSync(path)) return { token: readFileSync(path, "utf8").trim(), hint };
  mkdirSync(stateDir, { recursive: true });
  const token = randomBytes(24).toString("base64url");
  writeFileSync(path, `${token}\n`, { mode: 0o600 });
  return { token, hint };
}

/**
 * Logs callers refused for their token: a registering worker by id and
 * address, each time; other callers once a minute per procedure, so a
 * client retrying with a wrong token cannot flood the log.
 */
function refusalLogger(logger: Logger): (refusal: TokenRefusal) => void {
  const due = oncePerMinute();
  return ({ procedure, reason, request }) => {
    if (procedure.endsWith("/RegisterWorker") && isMessage(request, RegisterWorkerRequestSchema)) {
      const { workerId, address } = request;
      logger.warn({ event: "worker_refused", workerId, address, reason: `${reason} bearer token` }, `refused worker ${workerId} (${address}): ${reason} bearer token`);
      return;
    }
    if (!due(procedure)) return;
    logger.warn(
      { event: "call_refused", procedure, reason: `${reason} bearer token` },
      `refused a ${procedure} call: ${reason} bearer token (such refusals are logged once a minute)`,
    );
  };
}

/**
 * Logs calls refused by their access rule, each distinct refusal once a
 * minute: a job reaching out of its namespace, or a heartbeat sent with
 * another's credential, is something an operator wants to see.
 */
function deniedLogger(logger: Logger): (error: FlusterError) => void {
  const due = oncePerMinute();
  return (error) => {
    if (due(error.message)) logger.warn({ event: "call_denied", reason: error.message }, `refused: ${error.message}`);
  };
}

/**
 * Whether a line keyed `key` is due: true at most once a minute per key, so
 * a caller repeating itself cannot flood the log (at most 1,000 keys are
 * remembered; past that the memory starts over).
 */
function oncePerMinute(): (key: string) => boolean {
  const lastLogged = new Map<string, number>();
  return (key) => {
    const now = Date.now();
    if (now - (lastLogged.get(key) ?? -Infinity) < 60_000) return false;
    if (lastLogged.size > 1000) lastLogged.clear();
    lastLogged.set(key, now);
    return true;
  };
}

/**
 * The controller's calls to one worker, over the channel it shares with log
 * streams to that address. A call that got no answer (deadline, reset,
 * refused) drops the channel's HTTP/2 connection, so the next call opens a
 * new one: a connection stalled by a partition would otherwise hold every
 * call after it until TCP or HTTP/2 keepalive gave up (tens of seconds after
 * the network is back).
 */
/** Codes of a call that got no answer from the worker. */
const NO_ANSWER = new Set<FlusterErrorCode>(["deadline_exceeded", "unavailable", "cancelled"]);

function workerConnection(channel: RpcChannel, identity: ControllerIdentity | undefined): WorkerConnection {
  const client = channel.client(WorkerService);
  const failed = (err: unknown): FlusterError => {
    const error = fromConnectError(err);
    if (NO_ANSWER.has(error.code)) channel.close();
    return error;
  };
  // Each attempt acts with a credential of its own, not the cluster token.
  const toProto = async (a: Assignment) =>
    create(TaskAssignmentSchema, {
      ...(identity ? { credential: await identity.jobCredential(a.jobId, a.attemptId, a.namespace), clusterKey: identity.publicKey } : {}),
      attemptId: a.attemptId,
      jobId: a.jobId,
      jobName: a.jobName,
      namespace: a.namespace,
      taskIndex: a.taskIndex,
      numTasks: a.numTasks,
      spec: a.spec,
      env: a.env ?? {},
    });
  return {
    async runTask(assignment) {
      let res;
      try {
        res = await client.runTask({ task: await toProto(assignment) }, { timeoutMs: 30_000 });
      } catch (err) {
        throw failed(err);
      }
      if (!res.attempt) throw new FlusterError(`worker answered RunTask for ${assignment.attemptId} without an attempt`, "internal");
      return observedFromProto(res.attempt);
    },
    async killTask(attemptId, reason) {
      try {
        // The worker answers once the processes are gone: up to its kill grace (5 s by default) and a margin.
        await client.killTask({ attemptId, reason }, { timeoutMs: 15_000 });
      } catch (err) {
        throw failed(err);
      }
    },
    async reconcile(desired, stopReasons, signal) {
      let res;
      try {
        res = await client.reconcile(
          { attemptIds: desired.map((d) => d.attemptId), knownStates: desired.map((d) => taskStateToProto(d.knownState)), stopReasons: { ...stopReasons } },
          { signal },
        );
      } catch (err) {
        throw failed(err);
      }
      return { observed: res.observed.map(observedFromProto), missing: res.missing };
    },
    async healthCheck(signal) {
      try {
        const res = await client.healthCheck({}, { signal });
        return { workerId: res.workerId };
      } catch (err) {
        throw failed(err);
      }
    },
    close() {
      // Channels are shared per address and closed with the server.
    },
  };
}
