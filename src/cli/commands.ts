// What each `fluster` command does, given its parsed options. The command tree
// and option parsing live in program.ts; this module talks to the cluster.
import { resolve } from "node:path";
import { inspect } from "node:util";
import { Cluster, type EndpointInfo } from "../cluster/client/cluster.js";
import { LocalCluster } from "../cluster/client/local-cluster.js";
import { startController } from "../cluster/controller/server.js";
import { backupStateDatabase } from "../cluster/controller/backup.js";
import { WorkerDaemon } from "../cluster/worker/daemon.js";
import { Entrypoint } from "../core/entrypoint.js";
import { FlusterError } from "../core/errors.js";
import { checkLogLevel, createLogger, type LogComponent, type Logger } from "../core/logger.js";
import type { JobInfo } from "../core/job.js";
import type { JobGroupInfo, ReservationInfo } from "../core/reservation.js";
import { formatByteSize, parseByteSize } from "../core/quantity.js";
import { ResourceConfig } from "../core/resources.js";
import { isFinished } from "../core/status.js";
import { toJsonValue } from "./json-values.js";
import { CliError, printJson } from "./output.js";
import { StatusLine, canDrawOn } from "./status-line.js";
import type {
  ClusterStartOptions,
  CommandActions,
  ControllerBackupOptions,
  ControllerServeOptions,
  EndpointListOptions,
  GroupListOptions,
  ReservationCreateOptions,
  ReservationListOptions,
  ReservationReleaseOptions,
  JobListOptions,
  JobLogsOptions,
  JobResultsOptions,
  JobRunOptions,
  LogOptions,
  OutputOptions,
  VmListOptions,
  WorkerServeOptions,
} from "./program.js";

function connect(options: OutputOptions): Cluster {
  const address = options.controller ?? process.env.FLUSTER_CLUSTER_ADDRESS;
  if (!address) {
    throw new FlusterError("no controller address: pass --controller URL or set FLUSTER_CLUSTER_ADDRESS (see `fluster cluster start --local`)", "invalid_argument");
  }
  return Cluster.connect(address, { ...(options.namespace ? { namespace: options.namespace } : {}), ...(options.tlsCa ? { tlsCaFile: options.tlsCa } : {}) });
}

async function withCluster<T>(options: OutputOptions, fn: (cluster: Cluster) => Promise<T>): Promise<T> {
  const cluster = connect(options);
  try {
    return await fn(cluster);
  } finally {
    await cluster.close();
  }
}

/** Resolves when the process receives SIGINT or SIGTERM. */
function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    process.once("SIGINT", () => resolve("SIGINT"));
    process.once("SIGTERM", () => resolve("SIGTERM"));
  });
}

function printTable(rows: ReadonlyArray<Record<string, string>>, empty: string): void {
  const first = rows[0];
  if (!first) {
    process.stdout.write(`${empty}\n`);
    return;
  }
  const headers = Object.keys(first);
  const widths = headers.map((h) => Math.max(h.length, ...rows.map((r) => (r[h] ?? "").length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join("  ").trimEnd();
  process.stdout.write(`${line(headers.map((h) => h.toUpperCase()))}\n`);
  for (const row of rows) process.stdout.write(`${line(headers.map((h) => row[h] ?? ""))}\n`);
}

function duration(info: JobInfo): string {
  const start = info.startedAt ?? info.submittedAt;
  const end = info.finishedAt ?? new Date();
  const seconds = Math.max(0, (end.getTime() - start.getTime()) / 1000);
  return seconds < 60 ? `${seconds.toFixed(1)}s` : `${Math.floor(seconds / 60)}m${Math.round(seconds % 60)}s`;
}

// ------------------------------------------------------------------ cluster

export async function clusterStart(options: ClusterStartOptions): Promise<void> {
  const status = new StatusLine(process.stderr);
  // With a config, the scale groups bring the workers (their minVms, and more on demand).
  const workers = options.workers ?? (options.config ? 0 : 2);
  status.update(`fluster: starting a controller${workers > 0 ? ` and ${workers} worker(s)` : ""}${options.config ? ` with the scale groups of ${options.config}` : ""}…`);
  let cluster: LocalCluster;
  try {
    cluster = await LocalCluster.start({
      workers,
      ...(options.config ? { config: options.config } : {}),
      // Run from the command line, the cluster says what it does (a LocalCluster in a program says only what goes wrong).
      logLevel: options.logLevel ?? checkLogLevel(process.env.FLUSTER_LOG_LEVEL || "info", "FLUSTER_LOG_LEVEL"),
      ...(options.logFormat ? { logFormat: options.logFormat } : {}),
      ...(options.port !== undefined ? { port: options.port } : {}),
      ...(options.stateDir ? { stateDir: options.stateDir } : {}),
    });
  } finally {
    status.stop();
  }
  process.stdout.write(
    [
      `Fluster local cluster is up: controller ${cluster.address}, ${cluster.workers.length} worker(s)${options.config ? `; scale groups from ${options.config} (see \`npx fluster vm list\`)` : ""}.`,
      `  dashboard: ${dashboardUrl(cluster.address)}`,
      `  export FLUSTER_CLUSTER_ADDRESS=${cluster.address}`,
      `  npx fluster job run -- node -e "console.log(42)"`,
      `Press Ctrl-C to stop.`,
      "",
    ].join("\n"),
  );
  const signal = await untilSignal();
  process.stderr.write(`\n${signal}: stopping the local cluster…\n`);
  await cluster.shutdown();
  process.stderr.write("stopped.\n");
}

// ------------------------------------------------------------------ controller / worker daemons

/** The dashboard's address: the controller serves it at its root. */
function dashboardUrl(controllerUrl: string): string {
  return `${controllerUrl}/`;
}

export async function controllerServe(options: ControllerServeOptions): Promise<void> {
  const server = await startController({
    logger: daemonLogger("controller", options),
    stateDir: options.stateDir ?? ".fluster",
    host: options.host ?? "127.0.0.1",
    port: options.port ?? 7070,
    ...(options.tlsCert ? { tlsCert: options.tlsCert } : {}),
    ...(options.tlsKey ? { tlsKey: options.tlsKey } : {}),
    ...(options.tlsCa ? { tlsCaFile: options.tlsCa } : {}),
    ...(options.maxRequestSize !== undefined ? { maxRequestBytes: parseByteSize(options.maxRequestSize, "--max-request-size") } : {}),
    ...(options.maxReplicas !== undefined ? { maxReplicas: options.maxReplicas } : {}),
    ...(options.maxEndpointsPerJob !== undefined ? { maxEndpointsPerJob: options.maxEndpointsPerJob } : {}),
    ...(options.lostWorkerRetention !== undefined ? { lostWorkerRetentionSeconds: options.lostWorkerRetention } : {}),
    ...(options.advertiseHost ? { advertiseHost: options.advertiseHost } : {}),
    ...(options.config ? { config: options.config } : {}),
  });
  process.stdout.write(`fluster controller serving at ${server.url} (state in ${options.stateDir ?? ".fluster"})\n`);
  process.stdout.write(`dashboard: ${dashboardUrl(server.url)}${server.token ? " (sign in with the token)" : ""}\n`);
  if (server.token && !process.env.FLUSTER_TOKEN) {
    process.stdout.write(`auth is on: workers, clients and the dashboard need the token in ${options.stateDir ?? ".fluster"}/token (FLUSTER_TOKEN)\n`);
  }
  await untilSignal();
  await server.shutdown();
}

/** Writes an online copy of the controller's state database and says what it holds. */
export async function controllerBackup(file: string, options: ControllerBackupOptions): Promise<void> {
  const summary = await backupStateDatabase(options.stateDir ?? ".fluster", file);
  process.stdout.write(
    `fluster controller backup: wrote ${summary.file} (${formatByteSize(summary.bytes)}): ${summary.jobs} job(s), ${summary.workers} worker(s), ${summary.endpoints} endpoint(s), schema ${summary.schemaVersion}\n`,
  );
}

/** The stderr logger of `controller serve` and `worker serve`, from --log-level and --log-format. */
function daemonLogger(component: LogComponent, options: LogOptions): Logger {
  return createLogger({ component, ...(options.logLevel ? { level: options.logLevel } : {}), ...(options.logFormat ? { format: options.logFormat } : {}) });
}

export async function workerServe(options: WorkerServeOptions): Promise<void> {
  const controllerUrl = options.controller;
  const daemon = new WorkerDaemon({
    logger: daemonLogger("worker", options),
    controllerUrl,
    host: options.host ?? "127.0.0.1",
    ...(options.advertiseHost ? { advertiseHost: options.advertiseHost } : {}),
    port: options.port ?? 0,
    labels: options.label,
    ...(options.gpu ? { gpu: options.gpu } : {}),
    ...(options.tpu ? { tpu: options.tpu } : {}),
    ...(options.cpu !== undefined ? { cpu: options.cpu } : {}),
    ...(options.memory !== undefined ? { memory: parseByteSize(options.memory, "--memory") } : {}),
    ...(options.workDir ? { workDir: options.workDir } : {}),
    ...(options.npmCache ? { npmCacheDir: options.npmCache } : {}),
    ...(options.npmOffline ? { npmOffline: true } : {}),
    ...(options.workerId ? { workerId: options.workerId } : {}),
    ...(options.tlsCa ? { tlsCaFile: options.tlsCa } : {}),
    ...(options.tlsCert ? { tlsCert: options.tlsCert } : {}),
    ...(options.tlsKey ? { tlsKey: options.tlsKey } : {}),
  });
  await daemon.start();
  process.stdout.write(`fluster worker ${daemon.workerId} serving at ${daemon.address}, registered with ${controllerUrl}\n`);
  await untilSignal();
  await daemon.shutdown();
}

// ------------------------------------------------------------------ jobs

/** Launches a command; unless --no-wait, streams its logs and exits with its status. */
export async function jobRun(argv: readonly string[], options: JobRunOptions): Promise<number> {
  if (argv.length === 0) throw new FlusterError("job run needs a command after --, e.g. `fluster job run -- node train.js`", "invalid_argument");
  const base = {
    ...(options.cpu !== undefined ? { cpu: options.cpu } : {}),
    ...(options.memory !== undefined ? { memory: options.memory } : {}),
    ...(options.disk !== undefined ? { disk: options.disk } : {}),
  };
  const resources = options.tpu
    ? ResourceConfig.withTpu(options.tpu, base)
    : options.gpu
      ? ResourceConfig.withGpu(options.gpu.variant, options.gpu.count, { ...base, ...(options.replicas ? { replicas: options.replicas } : {}) })
      : new ResourceConfig({ memory: "512m", ...base, ...(options.replicas ? { replicas: options.replicas } : {}) });
  const name = options.name ?? (argv[0] ?? "job").split("/").pop()?.replace(/[^A-Za-z0-9._-]/g, "-") ?? "job";
  return withCluster(options, async (cluster) => {
    const jobId = await cluster.launch({
      name,
      resources,
      entrypoint: Entrypoint.fromCommand(argv),
      // The command runs in the worker's copy of this directory, as it would run here.
      environment: { workspace: resolve(options.workspace ?? process.cwd()), envVars: options.env, ...(options.image !== undefined ? { image: options.image } : {}) },
      ...(options.timeout !== undefined ? { timeoutSeconds: options.timeout } : {}),
      ...(options.scheduleTimeout !== undefined ? { schedulingTimeoutSeconds: options.scheduleTimeout } : {}),
      ...(options.maxRetries !== undefined ? { maxRetriesFailure: options.maxRetries } : {}),
    });
    if (options.wait === false) {
      process.stdout.write(options.json ? `${JSON.stringify({ jobId })}\n` : `${jobId}\n`);
      return 0;
    }
    // With --json, stdout carries the JSON alone: the job's output goes to stderr.
    const out = options.json ? process.stderr : process.stdout;
    const status = new StatusLine(process.stderr);
    const stopWatching = showPending(cluster, jobId, status);
    const onSigint = () => {
      status.stop();
      process.stderr.write(`\nstopping ${jobId}…\n`);
      void cluster.terminate(jobId, "interrupted from the command line");
    };
    process.once("SIGINT", onSigint);
    try {
      for await (const line of cluster.logs(jobId, { follow: true })) {
        status.stop();
        (line.stream === "stderr" ? process.stderr : out).write(line.data);
      }
      status.stop();
      const info = await cluster.wait(jobId);
      if (options.json) printJson(info);
      if (info.status === "succeeded") return 0;
      process.stderr.write(`fluster: job ${jobId} ${info.status}${info.errorMessage ? `: ${info.errorMessage.split("\n")[0]}` : ""}\n`);
      return info.exitCode !== undefined && info.exitCode > 0 ? info.exitCode : 1;
    } finally {
      process.off("SIGINT", onSigint);
      stopWatching();
      status.stop();
    }
  });
}

/**
 * Shows why the job waits while it is pending (WatchJob snapshots): a live
 * line on a terminal; in a pipe, one line per new pending reason (a job that
 * is placed at once prints nothing). Stops when the job leaves pending.
 */
function showPending(cluster: Cluster, jobId: string, status: StatusLine): () => void {
  const watching = new AbortController();
  const live = process.stderr.isTTY === true;
  void (async () => {
    for await (const info of cluster.watch(jobId, { signal: watching.signal })) {
      if (info.status !== "pending") break;
      if (live) status.update(`${jobId}: pending${info.pendingReason ? ` — ${info.pendingReason}` : ""}`);
      else if (info.pendingReason) status.update(`fluster: job ${jobId} is pending: ${info.pendingReason}`);
    }
    status.stop();
  })().catch(() => undefined); // the log stream reports what matters
  return () => watching.abort();
}

export async function jobList(options: JobListOptions): Promise<void> {
  await withCluster(options, async (cluster) => {
    const jobs = await cluster.listJobs({ ...(options.prefix ? { prefix: options.prefix } : {}), ...(options.allNamespaces ? { allNamespaces: true } : {}) });
    if (options.json) return printJson(jobs);
    printTable(
      jobs.map((j) => ({
        id: j.jobId,
        name: j.name,
        status: j.status,
        tasks: String(j.tasks.length),
        duration: duration(j),
        submitted: j.submittedAt.toISOString(),
        note: j.pendingReason ?? j.errorMessage?.split("\n")[0] ?? "",
      })),
      "no jobs",
    );
  });
}

/**
 * The job a command names: by id, else by name when one job has it. A name
 * several jobs share, or nothing, is an error that says where to look.
 */
async function resolveJob(cluster: Cluster, idOrName: string): Promise<JobInfo> {
  try {
    return await cluster.poll(idOrName);
  } catch (err) {
    if (!(err instanceof FlusterError && err.code === "not_found")) throw err;
  }
  const similar = await cluster.listJobs({ prefix: idOrName });
  const named = similar.filter((j) => j.name === idOrName);
  if (named.length === 1 && named[0]) return named[0];
  const where = `in namespace "${cluster.namespace}"`;
  if (named.length > 1) {
    const ids = named.slice(0, 3).map((j) => j.jobId).join(", ");
    throw new CliError(`${named.length} jobs ${where} are named "${idOrName}" (${ids}${named.length > 3 ? ", …" : ""}): give a job id (see \`fluster job list --prefix ${idOrName}\`)`);
  }
  const look = similar.length > 0 ? `fluster job list --prefix ${idOrName}` : "fluster job list";
  throw new CliError(`job ${idOrName} not found: no job ${where} has that id or name (see \`${look}\`)`);
}

export async function jobStatus(idOrName: string, options: OutputOptions): Promise<void> {
  await withCluster(options, async (cluster) => {
    const info = await resolveJob(cluster, idOrName);
    if (options.json) return printJson(info);
    process.stdout.write(
      [
        `job:       ${info.jobId} (${info.name})`,
        `status:    ${info.status}${info.pendingReason ? ` — ${info.pendingReason}` : ""}`,
        `namespace: ${info.namespace ?? "default"}${info.parentJobId ? `, child of ${info.parentJobId}` : ""}`,
        ...(info.groupId ? [`group:     ${info.groupId}`] : []),
        ...(info.reservationId ? [`reserved:  in reservation ${info.reservationId}`] : []),
        `submitted: ${info.submittedAt.toISOString()}, duration ${duration(info)}`,
        ...(info.exitCode !== undefined ? [`exit code: ${info.exitCode}`] : []),
        ...(info.errorMessage ? [`error:     ${info.errorMessage}`] : []),
        "",
      ].join("\n"),
    );
    printTable(
      info.tasks.map((t) => ({
        task: String(t.taskIndex),
        state: t.state,
        worker: t.workerId ?? "",
        failures: String(t.failureCount),
        preemptions: String(t.preemptionCount),
        error: t.errorMessage?.split("\n")[0] ?? "",
      })),
      "no tasks",
    );
  });
}

export async function jobLogs(idOrName: string, options: JobLogsOptions): Promise<void> {
  await withCluster(options, async (cluster) => {
    const { jobId } = await resolveJob(cluster, idOrName);
    for await (const line of cluster.logs(jobId, { follow: options.follow ?? false, ...(options.task !== undefined ? { taskIndex: options.task } : {}) })) {
      if (options.json) process.stdout.write(`${JSON.stringify(line)}\n`);
      else (line.stream === "stderr" ? process.stderr : process.stdout).write(line.data);
    }
  });
}

export async function jobStop(idOrName: string, options: OutputOptions): Promise<void> {
  await withCluster(options, async (cluster) => {
    const { jobId } = await resolveJob(cluster, idOrName);
    const info = await cluster.terminate(jobId, "stopped from the command line");
    if (options.json) return printJson(info);
    process.stdout.write(`${info.jobId} ${info.status}\n`);
  });
}

/**
 * A function job's return values, one line per task (`task 0: { a: 1 }`,
 * as util.inspect shows them), or with --json an array in the tagged form
 * of json-values.ts. Waits for the job to finish, up to --timeout.
 */
export async function jobResults(idOrName: string, options: JobResultsOptions): Promise<void> {
  await withCluster(options, async (cluster) => {
    const { jobId } = await resolveJob(cluster, idOrName);
    const stopWatching = canDrawOn(process.stderr) ? showWaiting(cluster, jobId, new StatusLine(process.stderr)) : () => undefined;
    let values: unknown[];
    try {
      values = await cluster.results(jobId, options.timeout !== undefined ? { timeoutSeconds: options.timeout } : {});
    } finally {
      stopWatching();
    }
    if (options.json) return printJson(values.map((v) => toJsonValue(v)));
    for (const [index, value] of values.entries()) process.stdout.write(`task ${index}: ${oneLineInspect(value)}\n`);
  });
}

/** On a terminal, what an unfinished job is doing while `job results` waits for it (a pipe stays quiet: its reader wants the values). */
function showWaiting(cluster: Cluster, jobId: string, status: StatusLine): () => void {
  const watching = new AbortController();
  void (async () => {
    for await (const info of cluster.watch(jobId, { signal: watching.signal })) {
      if (isFinished(info.status)) break;
      status.update(`${jobId}: ${info.status}${info.pendingReason ? ` — ${info.pendingReason}` : ""}; waiting for it to finish`);
    }
  })()
    .catch(() => undefined) // results() reports what matters
    .finally(() => status.stop());
  return () => {
    watching.abort();
    status.stop();
  };
}

/**
 * `value` as util.inspect shows it, on one line, so that each task is one
 * line a script can split on: strings already show their line breaks as
 * `\n`; the only others (an Error's stack) are escaped the same way.
 */
export function oneLineInspect(value: unknown): string {
  return inspect(value, { depth: null, compact: true, breakLength: Number.POSITIVE_INFINITY, maxArrayLength: 1000 }).replace(/\n/g, "\\n");
}

// ------------------------------------------------------------------ workers and endpoints

export async function workerList(options: OutputOptions): Promise<void> {
  await withCluster(options, async (cluster) => {
    const workers = await cluster.listWorkers();
    if (options.json) return printJson(workers);
    printTable(
      workers.map((w) => ({
        id: w.workerId,
        address: w.address,
        health: w.healthReason ? `${w.health}: ${w.healthReason}` : w.health,
        cpu: `${w.usedCpu}/${w.cpu}`,
        memory: `${formatByteSize(w.usedMemory)}/${formatByteSize(w.memory)}`,
        device: w.deviceCount > 0 ? `${w.device}×${w.deviceCount}` : w.device,
        attempts: String(w.runningAttempts),
        "last seen": w.lastSeen?.toISOString() ?? "",
      })),
      "no workers",
    );
  });
}

export async function vmList(options: VmListOptions): Promise<void> {
  await withCluster(options, async (cluster) => {
    const { vms, groups } = await cluster.listVms();
    const shown = options.all ? vms : vms.filter((vm) => vm.state !== "released" && vm.state !== "failed");
    if (options.json) return printJson({ vms: shown, groups });
    if (groups.length === 0) {
      process.stdout.write("no scale groups: the controller runs without a cluster config (--config)\n");
      return;
    }
    printTable(
      shown.map((vm) => ({
        vm: vm.vmId,
        group: vm.group,
        state: vm.state,
        since: vm.since.toISOString(),
        workers: vm.workerIds.join(","),
        platform: vm.platformId ? `${vm.platform} (${vm.platformId})` : vm.platform,
        reason: vm.reason ?? "",
      })),
      options.all ? "no VMs" : "no live VMs (--all shows released and failed ones)",
    );
    process.stdout.write("\n");
    printTable(
      groups.map((g) => ({
        group: g.name,
        platform: g.platform,
        "min/max": `${g.minVms}/${g.maxVms}`,
        ready: String(g.vms.ready),
        booting: String(g.vms.requested + g.vms.booting),
        draining: String(g.vms.draining),
        status: g.reason,
      })),
      "no scale groups",
    );
  });
}

export async function endpointList(options: EndpointListOptions): Promise<void> {
  await withCluster(options, async (cluster) => {
    const endpoints = await cluster.listEndpoints(options.prefix ?? "", { allNamespaces: options.allNamespaces ?? false });
    if (options.json) return printJson(endpoints);
    printTable(
      endpoints.map((e) => ({ name: e.name, address: e.address, namespace: e.namespace, job: e.jobId ?? "", id: e.endpointId })),
      "no endpoints",
    );
  });
}

/** Removes every endpoint named `nameOrId` in the namespace, or the one with that id. */
export async function endpointRemove(nameOrId: string, options: OutputOptions): Promise<void> {
  await withCluster(options, async (cluster) => {
    const matches = (e: EndpointInfo) => e.endpointId === nameOrId || e.name === nameOrId;
    const found = (await cluster.listEndpoints("")).filter(matches);
    if (found.length === 0) {
      // Only the operator may look across namespaces (a job's credential may not): without that, the hint is a general one.
      const everywhere = await cluster.listEndpoints("", { allNamespaces: true }).catch(() => []);
      const elsewhere = [...new Set(everywhere.filter(matches).map((e) => e.namespace))];
      const hint = elsewhere.length > 0 ? `it is in namespace ${elsewhere.join(", ")}: add --namespace ${elsewhere[0]}` : "see `fluster endpoint list --all-namespaces`";
      throw new CliError(`no endpoint named "${nameOrId}" or with that id in namespace "${cluster.namespace}" (${hint})`);
    }
    for (const e of found) await cluster.unregisterEndpoint(e.endpointId);
    if (options.json) return printJson(found);
    for (const e of found) process.stdout.write(`removed ${e.name} ${e.address} (${e.endpointId})\n`);
  });
}

/** Every command's action, for `buildProgram`. */
// ------------------------------------------------------------------ group

function groupDuration(info: JobGroupInfo): string {
  const seconds = Math.max(0, ((info.finishedAt ?? new Date()).getTime() - info.createdAt.getTime()) / 1000);
  return seconds < 60 ? `${seconds.toFixed(1)}s` : `${Math.floor(seconds / 60)}m${Math.round(seconds % 60)}s`;
}

export async function groupList(options: GroupListOptions): Promise<void> {
  await withCluster(options, async (cluster) => {
    const groups = await cluster.listGroups({ ...(options.prefix ? { prefix: options.prefix } : {}), ...(options.allNamespaces ? { allNamespaces: true } : {}) });
    if (options.json) return printJson(groups);
    printTable(
      groups.map((g) => ({
        id: g.groupId,
        name: g.name,
        status: g.status,
        jobs: String(g.jobIds.length),
        duration: groupDuration(g),
        created: g.createdAt.toISOString(),
        note: g.pendingReason ?? g.errorMessage?.split("\n")[0] ?? "",
      })),
      "no job groups",
    );
  });
}

export async function groupStatus(groupId: string, options: OutputOptions): Promise<void> {
  await withCluster(options, async (cluster) => {
    const info = await cluster.getGroup(groupId);
    const jobs = await Promise.all(info.jobIds.map((id) => cluster.poll(id)));
    if (options.json) return printJson({ ...info, jobs });
    const locality = info.sameZone ? "one zone" : info.sameRegion ? "one region" : "anywhere";
    process.stdout.write(
      [
        `group:     ${info.groupId} (${info.name})`,
        `status:    ${info.status}${info.pendingReason ? ` — ${info.pendingReason}` : ""}`,
        `namespace: ${info.namespace}, placed in ${locality}${info.reservationId ? `, in reservation ${info.reservationId}` : ""}`,
        `created:   ${info.createdAt.toISOString()}, duration ${groupDuration(info)}`,
        ...(info.errorMessage ? [`error:     ${info.errorMessage}`] : []),
        "",
      ].join("\n"),
    );
    printTable(
      jobs.map((j) => ({ job: j.jobId, name: j.name, status: j.status, tasks: String(j.tasks.length), note: j.pendingReason ?? j.errorMessage?.split("\n")[0] ?? "" })),
      "no jobs",
    );
  });
}

export async function groupStop(groupId: string, options: OutputOptions): Promise<void> {
  await withCluster(options, async (cluster) => {
    const info = await cluster.terminateGroup(groupId, "stopped from the command line");
    if (options.json) return printJson(info);
    process.stdout.write(`${info.groupId} ${info.status}\n`);
  });
}

// ------------------------------------------------------------------ reservation

/** The slot shape and its bounds from the flags: a TPU reservation counts slices, each of its hosts a slot. */
export function reservationConfigFromOptions(options: ReservationCreateOptions) {
  const min = options.min ?? 1;
  const max = options.max ?? min;
  const base = {
    ...(options.cpu !== undefined ? { cpu: options.cpu } : {}),
    memory: options.memory ?? "512m",
    ...(options.disk !== undefined ? { disk: options.disk } : {}),
  };
  const bound = (count: number) =>
    options.tpu
      ? ResourceConfig.withTpu(options.tpu, { ...base, sliceCount: count })
      : options.gpu
        ? ResourceConfig.withGpu(options.gpu.variant, options.gpu.count, { ...base, replicas: count })
        : new ResourceConfig({ ...base, replicas: count });
  return {
    minResources: bound(min),
    maxResources: bound(max),
    ...(options.ttl !== undefined ? { ttlSeconds: options.ttl } : {}),
    ...(options.priority !== undefined ? { priority: options.priority } : {}),
    preemptible: options.preemptible,
  };
}

function reservationJson(r: ReservationInfo) {
  return {
    ...r,
    slot: r.allocatedResources.toInit(),
    allocatedResources: undefined,
    pendingResources: undefined,
    pendingReplicas: r.pendingResources.replicas,
  };
}

export async function reservationCreate(options: ReservationCreateOptions): Promise<void> {
  const config = reservationConfigFromOptions(options);
  await withCluster(options, async (cluster) => {
    const reservationId = await cluster.createReservation(config);
    if (options.json) return printJson(reservationJson(await cluster.getReservation(reservationId)));
    process.stdout.write(`${reservationId}\n`);
  });
}

export async function reservationList(options: ReservationListOptions): Promise<void> {
  await withCluster(options, async (cluster) => {
    const reservations = await cluster.listReservations({ ...(options.all ? { includeEnded: true } : {}), ...(options.allNamespaces ? { allNamespaces: true } : {}) });
    if (options.json) return printJson(reservations.map(reservationJson));
    printTable(
      reservations.map((r) => ({
        id: r.reservationId,
        state: r.state,
        slot: slotWords(r),
        "min-max": `${r.minReplicas}-${r.maxReplicas}`,
        used: String(r.usedReplicas),
        held: String(r.heldReplicas),
        pending: String(r.pendingResources.replicas),
        jobs: String(r.jobs.length),
        expires: r.expiresAt.toISOString(),
        note: r.message ?? "",
      })),
      options.all ? "no reservations" : "no active reservations (--all shows ended ones)",
    );
  });
}

function slotWords(r: ReservationInfo): string {
  const s = r.allocatedResources;
  const device = s.device.kind === "gpu" ? ` gpu=${s.device.variant}:${s.device.count}` : s.device.kind === "tpu" ? ` tpu=${s.device.variant}` : "";
  return `cpu=${s.cpu} mem=${formatByteSize(s.memory)}${device}`;
}

export async function reservationStatus(reservationId: string, options: OutputOptions): Promise<void> {
  await withCluster(options, async (cluster) => {
    const r = await cluster.getReservation(reservationId);
    if (options.json) return printJson(reservationJson(r));
    process.stdout.write(
      [
        `reservation: ${r.reservationId} (namespace ${r.namespace})`,
        `state:       ${r.state}${r.message ? ` — ${r.message}` : ""}`,
        `slot:        ${slotWords(r)}`,
        `slots:       ${r.usedReplicas} used, ${r.heldReplicas} held, ${r.pendingResources.replicas} pending (min ${r.minReplicas}, max ${r.maxReplicas})`,
        `priority:    ${r.priority}${r.preemptible ? "" : ", never on preemptible workers"}`,
        `expires:     ${r.expiresAt.toISOString()}`,
        `jobs:        ${r.jobs.length === 0 ? "none" : r.jobs.join(", ")}`,
        "",
      ].join("\n"),
    );
  });
}

export async function reservationRelease(reservationId: string, options: ReservationReleaseOptions): Promise<void> {
  await withCluster(options, async (cluster) => {
    await cluster.releaseReservation(reservationId, options.reason ?? "released from the command line");
    const r = await cluster.getReservation(reservationId);
    process.stdout.write(`${r.reservationId} ${r.state}\n`);
  });
}

export const actions: CommandActions = {
  "cluster start": clusterStart,
  "controller serve": controllerServe,
  "controller backup": controllerBackup,
  "worker serve": workerServe,
  "worker list": workerList,
  "vm list": vmList,
  "job run": jobRun,
  "job list": jobList,
  "job status": jobStatus,
  "job logs": jobLogs,
  "job stop": jobStop,
  "job results": jobResults,
  "group list": groupList,
  "group status": groupStatus,
  "group stop": groupStop,
  "reservation create": reservationCreate,
  "reservation list": reservationList,
  "reservation status": reservationStatus,
  "reservation release": reservationRelease,
  "endpoint list": endpointList,
  "endpoint remove": endpointRemove,
};
