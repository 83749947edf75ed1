// A worker daemon's options, checked once, up front: from the CLI, from a
// program, or as JSON from the process that spawned the daemon.
import { homedir, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { ValidationError, describeValue } from "../../core/errors.js";
import { tpuTopology } from "../../core/tpu.js";
import { checkLogger, createLogger, type Logger } from "../../core/logger.js";
import { checkInteger, checkNonNegative, checkPlainObject, checkPort, checkPositive, checkString } from "../../core/validate.js";
import { normalizeBaseUrl, readPemFile } from "../../rpc/transport.js";
import { hostNetwork, type HostNetwork } from "./advertise-host.js";
import { compileWorkerFaults, type WorkerFaults } from "./faults.js";
import type { GpuInfo, TpuInfo } from "./host-resources.js";

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
  /**
   * Host other machines (the controller, other workers' tasks) use to reach
   * this worker and the servers its tasks run; tasks get it as
   * `FLUSTER_ADVERTISE_HOST`. @default the bind host; for a wildcard bind
   * (`0.0.0.0`, `::`) the machine's primary address: the default route's
   * interface, else the first non-loopback IPv4 address, else 127.0.0.1
   * with a warning
   */
  advertiseHost?: string;
  /**
   * Directory for attempt logs and results; kept across restarts so a new
   * daemon can reap what an old one left running.
   * @default `$XDG_CACHE_HOME/fluster/workers/<id>` (`~/.cache/…`), never the working directory
   */
  workDir?: string;
  /** Where job environments (npm installs) are kept; daemons on one machine may share it. @default `<workDir>/envs` */
  environmentsDir?: string;
  /** npm's cache for environment installs. @default `<environmentsDir>/npm-cache` */
  npmCacheDir?: string;
  /** Install environments from the npm cache only, never the network. @default false */
  npmOffline?: boolean;
  /** Do not run install scripts of the packages jobs need (native dependencies then do not build). @default false */
  npmIgnoreScripts?: boolean;
  /** Override detected CPU cores. */
  cpu?: number;
  /** Override detected memory, in bytes. */
  memory?: number;
  /** Attributes for scheduling constraints (`region`, `zone`, user labels). @default {} */
  labels?: Record<string, string>;
  /**
   * The GPUs to advertise instead of asking nvidia-smi (`--gpu H100:2`):
   * tests and fake machines use it, and a host whose driver tools are not
   * on PATH. Not with `tpu`. @default detected
   */
  gpu?: { variant: string; count: number };
  /**
   * The TPU variant to advertise instead of reading `TPU_ACCELERATOR_TYPE`
   * (`--tpu v5litepod-16`); the host has that variant's chips per host.
   * Not with `gpu`. @default detected
   */
  tpu?: string;
  /** Bearer token for the controller. @default process.env.FLUSTER_TOKEN */
  token?: string;
  /**
   * PEM file of CA certificates an https:// controller's certificate may
   * chain to, besides the system's; the worker's tasks get it as
   * FLUSTER_TLS_CA, to call the controller back. @default process.env.FLUSTER_TLS_CA
   */
  tlsCaFile?: string;
  /**
   * PEM certificate chain (with `tlsKey`) to serve WorkerService over TLS:
   * the worker registers an https:// address, and the controller verifies
   * it against the system CAs plus its own `tlsCaFile`. @default plain HTTP
   */
  tlsCert?: string;
  /** PEM private key of `tlsCert`. */
  tlsKey?: string;
  /** Seconds between SIGTERM and SIGKILL when an attempt is killed. @default 5 */
  killGraceSeconds?: number;
  /** Bytes of one request to the daemon; a larger one gets `resource_exhausted`. @default 8 MiB */
  maxRequestBytes?: number;
  /**
   * Where the daemon's structured lines go: registration, attempts starting
   * and ending, kills, lease and fence events, the controller unreachable
   * (docs/logging.md); they carry `workerId` once it is known.
   * @default `createLogger({ component: "worker" })`: stderr, JSON off a terminal, level from FLUSTER_LOG_LEVEL else info
   */
  logger?: Logger;
  /**
   * Reads the machine's interfaces and routes, for the advertised host of a
   * wildcard bind (tests pass a table). @default `os.networkInterfaces()` and `/proc/net/route`
   */
  hostNetwork?: () => HostNetwork;
  /** Fault injection, for tests only (worker/faults.ts): drop or delay the RPCs it serves, kill attempts. @default none */
  faults?: WorkerFaults;
}

/** The options with every default filled in, except what is known only once the daemon serves (its id and work dir). */
export interface CompiledWorkerDaemonOptions {
  controllerUrl: string;
  workerId: string | undefined;
  host: string;
  port: number;
  advertiseHost: string | undefined;
  workDir: string | undefined;
  environmentsDir: string | undefined;
  npmCacheDir: string | undefined;
  npmOffline: boolean;
  npmIgnoreScripts: boolean;
  cpu: number | undefined;
  memory: number | undefined;
  labels: Record<string, string>;
  /** The GPUs or TPU to advertise instead of detecting them. */
  gpu: GpuInfo | undefined;
  tpu: TpuInfo | undefined;
  token: string | undefined;
  /** Absolute path of the extra CA file, if any. */
  tlsCaFile: string | undefined;
  /** The certificate chain and key to serve TLS with (PEM text), if any. */
  tls: { cert: string; key: string } | undefined;
  killGraceMs: number;
  maxRequestBytes: number | undefined;
  logger: Logger;
  hostNetwork: () => HostNetwork;
  faults: WorkerFaults | undefined;
}

/**
 * Checks worker daemon options (also untyped JSON) and fills in defaults;
 * throws a ValidationError naming the first bad field.
 */
export function compileWorkerDaemonOptions(raw: unknown): CompiledWorkerDaemonOptions {
  const o = checkPlainObject(raw, "worker options") as Partial<Record<keyof WorkerDaemonOptions, unknown>>;
  const known = new Set(["controllerUrl", "workerId", "host", "port", "advertiseHost", "workDir", "environmentsDir", "npmCacheDir", "npmOffline", "npmIgnoreScripts", "cpu", "memory", "labels", "gpu", "tpu", "token", "tlsCaFile", "tlsCert", "tlsKey", "killGraceSeconds", "maxRequestBytes", "logger", "hostNetwork", "faults"]);
  for (const key of Object.keys(o)) if (!known.has(key)) throw new ValidationError(key, `is not a worker option (known: ${[...known].join(", ")})`);
  const optionalString = (key: keyof WorkerDaemonOptions) => (o[key] === undefined ? undefined : checkString(o[key], key, { nonEmpty: true }));
  const workerId = optionalString("workerId");
  if (workerId !== undefined && /[\0-\x1f/]/.test(workerId)) throw new ValidationError("workerId", `must not contain "/" or control characters, got ${describeValue(workerId)}`);
  const labels = o.labels === undefined ? {} : checkPlainObject(o.labels, "labels");
  for (const [key, value] of Object.entries(labels)) checkString(value, `labels.${key}`);
  if (o.hostNetwork !== undefined && typeof o.hostNetwork !== "function") throw new ValidationError("hostNetwork", `must be a function, got ${describeValue(o.hostNetwork)}`);
  const optionalDir = (key: "workDir" | "environmentsDir" | "npmCacheDir") => (o[key] === undefined ? undefined : resolve(checkString(o[key], key, { nonEmpty: true })));
  const flag = (key: "npmOffline" | "npmIgnoreScripts") => {
    if (o[key] !== undefined && typeof o[key] !== "boolean") throw new ValidationError(key, `must be true or false, got ${describeValue(o[key])}`);
    return o[key] === true;
  };
  const devices = devicesOf(o.gpu, o.tpu);
  const positive = (key: "cpu" | "memory") => (o[key] === undefined ? undefined : checkPositive(o[key], key));
  return {
    controllerUrl: normalizeBaseUrl(checkString(o.controllerUrl, "controllerUrl", { nonEmpty: true })),
    workerId,
    host: optionalString("host") ?? "127.0.0.1",
    port: o.port === undefined ? 0 : checkPort(o.port),
    advertiseHost: optionalString("advertiseHost"),
    workDir: optionalDir("workDir"),
    environmentsDir: optionalDir("environmentsDir"),
    npmCacheDir: optionalDir("npmCacheDir"),
    npmOffline: flag("npmOffline"),
    npmIgnoreScripts: flag("npmIgnoreScripts"),
    cpu: positive("cpu"),
    memory: positive("memory"),
    labels: labels as Record<string, string>,
    ...devices,
    token: optionalString("token") ?? (process.env.FLUSTER_TOKEN || undefined),
    tlsCaFile: tlsCaFileOf(optionalString("tlsCaFile") ?? (process.env.FLUSTER_TLS_CA || undefined)),
    tls: tlsOf(optionalString("tlsCert"), optionalString("tlsKey")),
    killGraceMs: Math.round(1000 * (o.killGraceSeconds === undefined ? 5 : checkNonNegative(o.killGraceSeconds, "killGraceSeconds"))),
    maxRequestBytes: o.maxRequestBytes === undefined ? undefined : checkInteger(o.maxRequestBytes, "maxRequestBytes", 1),
    logger: o.logger === undefined ? createLogger({ component: "worker" }) : checkLogger(o.logger),
    hostNetwork: (o.hostNetwork as (() => HostNetwork) | undefined) ?? hostNetwork,
    faults: o.faults === undefined ? undefined : compileWorkerFaults(o.faults),
  };
}

/** The `gpu`/`tpu` overrides, checked: a GPU model and a positive count, or a known TPU variant (with its chips per host); not both. */
function devicesOf(gpu: unknown, tpu: unknown): { gpu: GpuInfo | undefined; tpu: TpuInfo | undefined } {
  if (gpu !== undefined && tpu !== undefined) throw new ValidationError("tpu", "must not be given with gpu: a worker advertises one kind of accelerator");
  let gpuInfo: GpuInfo | undefined;
  if (gpu !== undefined) {
    const g = checkPlainObject(gpu, "gpu") as { variant?: unknown; count?: unknown };
    const variant = checkString(g.variant, "gpu.variant", { nonEmpty: true });
    if (/\s/.test(variant)) throw new ValidationError("gpu.variant", `must be a GPU model without spaces (e.g. "H100"), got ${describeValue(variant)}`);
    gpuInfo = { variant, count: checkInteger(g.count, "gpu.count", 1) };
  }
  let tpuInfo: TpuInfo | undefined;
  if (tpu !== undefined) {
    const variant = checkString(tpu, "tpu", { nonEmpty: true });
    tpuInfo = { variant, chips: tpuTopology(variant, "tpu").chipsPerHost };
  }
  return { gpu: gpuInfo, tpu: tpuInfo };
}

/** The CA file as an absolute path, checked readable PEM now rather than at the first call. */
function tlsCaFileOf(path: string | undefined): string | undefined {
  if (path === undefined) return undefined;
  readPemFile(path, "CA file (tlsCaFile)");
  return resolve(path);
}

/** The certificate and key to serve with, read now so that a bad file fails the start naming it. */
function tlsOf(cert: string | undefined, key: string | undefined): { cert: string; key: string } | undefined {
  if (cert === undefined && key === undefined) return undefined;
  if (cert === undefined || key === undefined) {
    throw new ValidationError(cert === undefined ? "tlsCert" : "tlsKey", `must be given with ${cert === undefined ? "tlsKey" : "tlsCert"}: TLS needs both the certificate and its key`);
  }
  return { cert: readPemFile(cert, "TLS certificate (tlsCert)"), key: readPemFile(key, "TLS key (tlsKey)") };
}

/**
 * Where a worker keeps attempt logs when not told: the user's cache
 * directory (`$XDG_CACHE_HOME`, else `~/.cache`), else the temp directory.
 */
export function defaultWorkDir(workerId: string): string {
  const home = homedir();
  const cache = process.env.XDG_CACHE_HOME || (home ? join(home, ".cache") : tmpdir());
  return join(cache, "fluster", "workers", workerId.replace(/[^A-Za-z0-9._-]/g, "_"));
}
