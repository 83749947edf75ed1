// The `fluster` command tree of SPEC §4, built without running it so tests can
// inspect it. What each command does is one entry of a CommandActions map.
import { readFileSync } from "node:fs";
import { Command, Option, type ParseOptions } from "commander";
import { LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from "../core/logger.js";
import { CliError, oneLine } from "./output.js";
import {
  collectKeyValue,
  parseGpu,
  parseMemory,
  parseNonNegativeInt,
  parsePort,
  parsePositiveInt,
  parsePositiveNumber,
  parseTpu,
  type GpuSpec,
} from "./parse.js";

/** Options every command accepts. */
export interface GlobalOptions {
  /** Controller URL. @default the FLUSTER_CLUSTER_ADDRESS environment variable */
  controller?: string;
  /** Namespace for jobs and endpoint lookups. @default FLUSTER_NAMESPACE, else "default" */
  namespace?: string;
  /** PEM file of CA certificates an https:// controller may chain to, besides the system's. @default the FLUSTER_TLS_CA environment variable */
  tlsCa?: string;
}

/** Options of commands that print results. */
export interface OutputOptions extends GlobalOptions {
  /** Print machine-readable JSON instead of text. @default false */
  json?: boolean;
}

/** How a command that runs a daemon logs (docs/logging.md). */
export interface LogOptions {
  /** Least severe level written to stderr. @default the FLUSTER_LOG_LEVEL environment variable, else "info" */
  logLevel?: LogLevel;
  /** `json`, `pretty` or `auto` (pretty on a terminal). @default the FLUSTER_LOG_FORMAT environment variable, else "auto" */
  logFormat?: LogFormat;
}

export interface ClusterStartOptions extends GlobalOptions, LogOptions {
  /** Always true: only local clusters start from the command line (checked before the action runs). */
  local: true;
  /** Number of local worker processes. @default chosen by the action */
  workers?: number;
  /** Controller port. @default a free port */
  port?: number;
  /** Controller state directory, kept after exit. @default a temporary directory */
  stateDir?: string;
  /** Cluster config file (scale groups the autoscaler sizes). @default none */
  config?: string;
}

export interface ControllerServeOptions extends GlobalOptions, LogOptions {
  /** Port to listen on. @default chosen by the action */
  port?: number;
  /** Directory of the controller's durable state. @default chosen by the action */
  stateDir?: string;
  /** Address to bind; a non-loopback address turns on token auth. @default "127.0.0.1" */
  host?: string;
  /** Largest request, as given (`"8m"`; checked to parse). @default "8m" */
  maxRequestSize?: string;
  /** Most tasks one job may have. @default 10000 */
  maxReplicas?: number;
  /** Most endpoints one job may hold. @default 1000 */
  maxEndpointsPerJob?: number;
  /** Seconds a lost worker's record is kept. @default 86400 */
  lostWorkerRetention?: number;
  /** PEM certificate chain to serve TLS with (with `tlsKey`). @default plain HTTP */
  tlsCert?: string;
  /** PEM private key of `tlsCert`. */
  tlsKey?: string;
  /** Cluster config file (scale groups the autoscaler sizes). @default none */
  config?: string;
  /** Address workers and jobs use to reach the controller (VMs on other machines need it). @default the bind host */
  advertiseHost?: string;
}

export interface VmListOptions extends OutputOptions {
  /** Also VMs released or failed in the last day. @default false */
  all?: boolean;
}

export interface ControllerBackupOptions extends GlobalOptions {
  /** Directory of the controller's durable state. @default chosen by the action */
  stateDir?: string;
}

export interface WorkerServeOptions extends GlobalOptions, LogOptions {
  /** Controller to register with (checked present before the action runs). */
  controller: string;
  /** CPU cores to advertise. @default detected */
  cpu?: number;
  /** Memory to advertise, as given (`"8g"`; checked to parse). @default detected */
  memory?: string;
  /** Worker labels from `--label k=v`. @default {} */
  label: Record<string, string>;
  /** GPUs to offer instead of those nvidia-smi finds (`--gpu H100:2`). @default detected */
  gpu?: GpuSpec;
  /** TPU variant to offer instead of `TPU_ACCELERATOR_TYPE` (`--tpu v5litepod-16`). @default detected */
  tpu?: string;
  /** Address to bind. @default "127.0.0.1" */
  host?: string;
  /** Address the controller and other machines reach this worker at. @default the bind address; for 0.0.0.0 or :: the machine's primary address */
  advertiseHost?: string;
  /** Port to bind. @default a free port */
  port?: number;
  /** npm cache for job environments, e.g. ~/.npm to share the user's. @default <work dir>/envs/npm-cache */
  npmCache?: string;
  /** Install job environments from the npm cache only, never the network. @default false */
  npmOffline?: boolean;
  /** Directory for attempt logs. @default `$XDG_CACHE_HOME/fluster/workers/<id>` (`~/.cache/…`) */
  workDir?: string;
  /** Stable worker id. @default <hostname>-<port> */
  workerId?: string;
  /** PEM certificate chain to serve WorkerService over TLS (with `tlsKey`). @default plain HTTP */
  tlsCert?: string;
  /** PEM private key of `tlsCert`. */
  tlsKey?: string;
}

export interface JobRunOptions extends OutputOptions {
  /** CPU cores per replica. */
  cpu?: number;
  /** Memory per replica, as given (`"8g"`; checked to parse). */
  memory?: string;
  /** GPUs per replica, from `--gpu H100:8`. */
  gpu?: GpuSpec;
  /** TPU variant (checked against the topology table), e.g. `v5litepod-16`. */
  tpu?: string;
  /** Number of tasks. @default 1 */
  replicas?: number;
  /** Environment variables from `-e K=V`. @default {} */
  env: Record<string, string>;
  /** Wait for the job and stream its logs; `--no-wait` prints the job id and returns. @default true */
  wait: boolean;
  /** Job name. @default the program's name */
  name?: string;
  /** Scratch disk per replica (`"10g"`). */
  disk?: string;
  /** Kill and fail an attempt after this many seconds. */
  timeout?: number;
  /** Seconds the job may wait to be scheduled; then it ends `unschedulable` with the last pending reason. @default no limit */
  scheduleTimeout?: number;
  /** Retries after a failed attempt. @default 0 */
  maxRetries?: number;
  /** Directory packed into the job's bundle; the command runs in the worker's copy of it. @default the current directory */
  workspace?: string;
  /** Docker image to run the command in (`environment.image`); it must be on the worker. @default none: a process on the worker */
  image?: string;
}

export interface JobListOptions extends OutputOptions {
  /** Only jobs whose name starts with this. */
  prefix?: string;
  /** Jobs of every namespace. @default false */
  allNamespaces?: boolean;
}

export interface JobLogsOptions extends OutputOptions {
  /** Keep streaming until the job finishes. @default false */
  follow?: boolean;
  /** Only this task's logs. */
  task?: number;
}

export interface JobResultsOptions extends OutputOptions {
  /** Seconds to wait for an unfinished job before giving up. @default no limit */
  timeout?: number;
}

export interface EndpointListOptions extends OutputOptions {
  /** Only endpoints whose name starts with this. */
  prefix?: string;
  /** Endpoints of every namespace. @default false */
  allNamespaces?: boolean;
}

export interface GroupListOptions extends OutputOptions {
  /** Only groups whose name starts with this. */
  prefix?: string;
  /** Groups of every namespace. @default false */
  allNamespaces?: boolean;
}

export interface ReservationCreateOptions extends OutputOptions {
  /** CPU cores per slot. @default 1 */
  cpu?: number;
  /** Memory per slot (`"8g"`). @default 512m */
  memory?: string;
  /** Scratch disk per slot. */
  disk?: string;
  /** GPUs per slot, from `--gpu H100:8`. */
  gpu?: GpuSpec;
  /** TPU variant per slice; `--min`/`--max` then count slices. */
  tpu?: string;
  /** Slots held at least (TPU: slices). @default 1 */
  min?: number;
  /** Most slots its jobs may use (TPU: slices). @default `min` */
  max?: number;
  /** Seconds until it expires. @default 3600 */
  ttl?: number;
  /** Higher is filled first. @default 0 */
  priority?: number;
  /** Whether slots may be held on preemptible workers (`--no-preemptible`). @default true */
  preemptible: boolean;
}

export interface ReservationListOptions extends OutputOptions {
  /** Also expired and released ones. @default false */
  all?: boolean;
  /** Reservations of every namespace. @default false */
  allNamespaces?: boolean;
}

export interface ReservationReleaseOptions extends OutputOptions {
  /** Why; shown as its message. @default "released from the command line" */
  reason?: string;
}

/** What an action returns: nothing, or the process exit status. */
export type ActionResult = number | void | Promise<number | void>;

/** One function per leaf command, keyed by its path below `fluster`. */
export interface CommandActions {
  "cluster start": (options: ClusterStartOptions) => ActionResult;
  "controller serve": (options: ControllerServeOptions) => ActionResult;
  "controller backup": (file: string, options: ControllerBackupOptions) => ActionResult;
  "worker serve": (options: WorkerServeOptions) => ActionResult;
  "worker list": (options: OutputOptions) => ActionResult;
  "job run": (command: string[], options: JobRunOptions) => ActionResult;
  "job list": (options: JobListOptions) => ActionResult;
  "job status": (jobId: string, options: OutputOptions) => ActionResult;
  "job logs": (jobId: string, options: JobLogsOptions) => ActionResult;
  "job stop": (jobId: string, options: OutputOptions) => ActionResult;
  "job results": (jobId: string, options: JobResultsOptions) => ActionResult;
  "group list": (options: GroupListOptions) => ActionResult;
  "group status": (groupId: string, options: OutputOptions) => ActionResult;
  "group stop": (groupId: string, options: OutputOptions) => ActionResult;
  "reservation create": (options: ReservationCreateOptions) => ActionResult;
  "reservation list": (options: ReservationListOptions) => ActionResult;
  "reservation status": (reservationId: string, options: OutputOptions) => ActionResult;
  "reservation release": (reservationId: string, options: ReservationReleaseOptions) => ActionResult;
  "endpoint list": (options: EndpointListOptions) => ActionResult;
  "endpoint remove": (nameOrId: string, options: OutputOptions) => ActionResult;
  "vm list": (options: VmListOptions) => ActionResult;
}

export type CommandPath = keyof CommandActions;

/** Every leaf command, in the order `fluster --help` shows them. */
export const COMMAND_PATHS: readonly CommandPath[] = [
  "cluster start",
  "controller serve",
  "controller backup",
  "worker serve",
  "worker list",
  "job run",
  "job list",
  "job status",
  "job logs",
  "job stop",
  "job results",
  "group list",
  "group status",
  "group stop",
  "reservation create",
  "reservation list",
  "reservation status",
  "reservation release",
  "endpoint list",
  "endpoint remove",
  "vm list",
];

/** The action of a command built without one (tests build partial programs): one line, exit status 2. */
export function notBuiltYet(commandPath: string): never {
  throw new CliError(`"${commandPath}" has no action in this build of the command line`, 2);
}

/** Where commander writes help and errors; tests capture them. @default process.stdout / process.stderr */
export interface ProgramOutput {
  writeOut?: (text: string) => void;
  writeErr?: (text: string) => void;
}

/**
 * Builds the `fluster` program. Commands missing from `actions` answer with
 * {@link notBuiltYet}. Commander errors are thrown (exitOverride) after being
 * printed as one line, so the caller decides how to exit.
 */
export function buildProgram(actions: Partial<CommandActions> = {}, output: ProgramOutput = {}): Command {
  const program = new FlusterProgram("fluster")
    .description("Distributed jobs, actors and data pipelines for TypeScript on Node.js.")
    .version(packageVersion(), "-V, --version", "print the fluster version")
    .helpOption("-h, --help", "show help for a command")
    .addOption(
      new Option("--controller <url>", "controller to talk to").env("FLUSTER_CLUSTER_ADDRESS"),
    )
    .addOption(new Option("--namespace <ns>", "namespace for jobs and endpoints (default: \"default\")").env("FLUSTER_NAMESPACE"))
    .addOption(new Option("--tls-ca <file>", "CA certificates (PEM) an https:// controller may chain to, besides the system's").env("FLUSTER_TLS_CA"))
    .configureHelp({ showGlobalOptions: true })
    .configureOutput({
      ...(output.writeOut ? { writeOut: output.writeOut } : {}),
      ...(output.writeErr ? { writeErr: output.writeErr } : {}),
      // Commander writes the error, then the showHelpAfterError hint set on
      // every command: leaving the error unterminated puts both on one line.
      outputError: (message, write) => write(`fluster: ${oneLine(message.replace(/^error: /, ""))} `),
    })
    .exitOverride();
  withHelpHint(program);
  program.helpCommand("help [command]", "show help for a command");

  const run = <P extends CommandPath>(path: P): CommandActions[P] =>
    actions[path] ?? ((() => notBuiltYet(path)) as CommandActions[P]);

  // ------------------------------------------------------------------ cluster
  const cluster = subcommand(program, "cluster", "start a whole cluster");
  subcommand(cluster, "start", "start a controller and N workers on this machine; prints the dashboard URL")
    .usage("--local [--workers <n>] [--config <file>] [--port <port>] [--state-dir <dir>] [--log-level <level>] [--log-format <format>]")
    .option("--local", "run the controller on this machine (the only mode for now)")
    .option("--workers <n>", "number of worker processes (default: 2, or 0 with --config)", parseNonNegativeInt)
    .option("--config <file>", "cluster config (YAML): scale groups the autoscaler sizes on their platforms (local, docker, ssh, gcp)")
    .option("--port <port>", "controller port (default: a free port)", parsePort)
    .option("--state-dir <dir>", "controller state directory, kept after exit (default: temporary)")
    .addOption(logLevelOption())
    .addOption(logFormatOption())
    .action(async (opts: { local?: boolean; workers?: number; port?: number; stateDir?: string; config?: string } & LogOptions, cmd: Command) => {
      if (!opts.local) {
        cmd.error("cluster start needs --local; on real machines run `fluster controller serve` and `fluster worker serve` on each host");
      }
      return finish(await run("cluster start")({ ...globals(cmd), ...opts, local: true }));
    });

  // ------------------------------------------------------------------ controller
  const controller = subcommand(program, "controller", "run the controller daemon");
  subcommand(controller, "serve", "serve the controller: job store, scheduler, endpoint registry, dashboard")
    .usage("[--port <port>] [--host <addr>] [--advertise-host <addr>] [--state-dir <dir>] [--config <file>] [--tls-cert <file> --tls-key <file>] [--max-request-size <size>] [--max-replicas <n>] [--max-endpoints-per-job <n>] [--lost-worker-retention <seconds>] [--log-level <level>] [--log-format <format>]")
    .option("--port <port>", "port to listen on (default: 7070)", parsePort)
    .option("--host <addr>", "address to bind; non-loopback (as it resolves) turns on token auth (default: 127.0.0.1)")
    .option("--advertise-host <addr>", "address workers (also on VMs the autoscaler starts) and jobs reach the controller at (default: the --host)")
    .option("--state-dir <dir>", "directory for the controller's durable state (default: .fluster)")
    .option("--config <file>", "cluster config (YAML): scale groups the autoscaler sizes on their platforms (local, docker, ssh, gcp)")
    .option("--tls-cert <file>", "serve HTTPS with this PEM certificate chain (with --tls-key); clients then use https:// and --tls-ca for a private CA")
    .option("--tls-key <file>", "the PEM private key of --tls-cert")
    .option("--max-request-size <size>", "largest request accepted, e.g. 16m; larger ones get resource_exhausted (default: 8m)", parseMemory)
    .option("--max-replicas <n>", "most tasks one job may have (default: 10000)", parsePositiveInt)
    .option("--max-endpoints-per-job <n>", "most endpoints one job may hold at once (default: 1000)", parsePositiveInt)
    .option("--lost-worker-retention <seconds>", "seconds a lost worker's record is kept before it is forgotten (default: 86400)", parsePositiveNumber)
    .addOption(logLevelOption())
    .addOption(logFormatOption())
    .action(async (opts: Omit<ControllerServeOptions, keyof GlobalOptions>, cmd: Command) =>
      finish(await run("controller serve")({ ...globals(cmd), ...opts })),
    );
  subcommand(controller, "backup", "copy the controller's state database to FILE, safely while it runs")
    .usage("<file> [--state-dir <dir>]")
    .argument("<file>", "where to write the copy (must not exist)")
    .option("--state-dir <dir>", "the controller's state directory (default: .fluster)")
    .addHelpText(
      "after",
      `
The copy holds everything in the controller's database: jobs with their
tasks, attempts and results, workers, endpoints. To restore, put it in an
empty state directory as controller.sqlite and start the controller there
(on the same port, so workers find it): workers re-register and their
running attempts are adopted. Not in the copy: the token file (<state-dir>/token,
written when auth is on and FLUSTER_TOKEN is not set: copy it too, or give
the same FLUSTER_TOKEN) and the workspace bundles (<state-dir>/bundles: jobs
not yet started need theirs, so copy that directory too, or relaunch them).`,
    )
    .action(async (file: string, opts: { stateDir?: string }, cmd: Command) => finish(await run("controller backup")(file, { ...globals(cmd), ...opts })));

  // ------------------------------------------------------------------ worker
  const worker = subcommand(program, "worker", "run or list worker daemons");
  subcommand(worker, "serve", "serve a worker daemon on this machine, registered with a controller")
    .usage("--controller <url> [--cpu <n>] [--memory <size>] [--gpu <variant[:count]> | --tpu <variant>] [--label <k=v> ...] [--host <addr>] [--advertise-host <addr>] [--port <port>] [--work-dir <dir>] [--npm-cache <dir>] [--npm-offline] [--worker-id <id>] [--tls-cert <file> --tls-key <file>] [--log-level <level>] [--log-format <format>]")
    .option("--cpu <n>", "CPU cores to offer (default: all)", parsePositiveInt)
    .option("--memory <size>", "memory to offer, e.g. 8g (default: all)", parseMemory)
    .addOption(new Option("--gpu <variant[:count]>", "GPUs to offer instead of those nvidia-smi finds, e.g. H100:2").argParser(parseGpu).conflicts("tpu"))
    .addOption(new Option("--tpu <variant>", "TPU to offer instead of the one TPU_ACCELERATOR_TYPE names, e.g. v5litepod-16 (its chips per host)").argParser(parseTpu))
    .option("--label <k=v>", "worker label for scheduling constraints (repeatable)", collectKeyValue)
    .option("--host <addr>", "address to bind, e.g. 0.0.0.0 for every interface (default: 127.0.0.1)")
    .option("--advertise-host <addr>", "address the controller and other hosts reach this worker and its tasks' servers at (default: the --host; for 0.0.0.0 the default route's address)")
    .option("--port <port>", "port to listen on (default: a free port)", parsePort)
    .option("--work-dir <dir>", "directory for attempt logs, workspaces and job environments (default: ~/.cache/fluster/workers/<id>)")
    .option("--npm-cache <dir>", "npm cache for installing jobs' dependencies, e.g. ~/.npm (default: one under the work dir)")
    .option("--npm-offline", "install jobs' dependencies from the npm cache only, never the network")
    .option("--worker-id <id>", "stable worker id (default: <hostname>-<port>)")
    .option("--tls-cert <file>", "serve over TLS with this PEM certificate chain (with --tls-key); the controller needs its CA (--tls-ca)")
    .option("--tls-key <file>", "the PEM private key of --tls-cert")
    .addOption(logLevelOption())
    .addOption(logFormatOption())
    .action(async (opts: Omit<WorkerServeOptions, "controller" | "label"> & { label?: Record<string, string> }, cmd: Command) => {
      const { controller: url } = globals(cmd);
      if (!url) cmd.error("worker serve needs --controller <url> (or FLUSTER_CLUSTER_ADDRESS)");
      const { tlsCa } = globals(cmd);
      return finish(await run("worker serve")({ ...opts, controller: url, label: opts.label ?? {}, ...(tlsCa ? { tlsCa } : {}) }));
    });
  subcommand(worker, "list", "list workers with their resources, load and health")
    .usage("[--json]")
    .option("--json", "print JSON")
    .action(async (opts: { json?: boolean }, cmd: Command) => finish(await run("worker list")({ ...globals(cmd), ...opts })));

  // ------------------------------------------------------------------ job
  const job = subcommand(program, "job", "run, inspect and stop jobs");
  subcommand(job, "run", "run a command as a job; shows why it waits, then streams its logs, unless --no-wait")
    .usage("[--name <name>] [--cpu <n>] [--memory <size>] [--disk <size>] [--gpu <variant[:count]>] [--tpu <variant>] [--replicas <n>] [-e <K=V> ...] [--timeout <s>] [--schedule-timeout <s>] [--max-retries <n>] [--workspace <dir>] [--image <ref>] [--no-wait] [--json] -- <command...>")
    .argument("<command...>", "the command and its arguments, after --")
    .option("--name <name>", "job name (default: the program's name)")
    .option("--cpu <n>", "CPU cores per replica", parsePositiveNumber)
    .option("--memory <size>", "memory per replica, e.g. 8g", parseMemory)
    .option("--disk <size>", "scratch disk per replica, e.g. 10g", parseMemory)
    .option("--timeout <s>", "kill and fail an attempt after this many seconds", parsePositiveNumber)
    .option("--schedule-timeout <s>", "give up (exit 1, job unschedulable) if the job is not scheduled within this many seconds", parsePositiveNumber)
    .option("--max-retries <n>", "retries after a failed attempt (default: 0)", parseNonNegativeInt)
    .addOption(new Option("--gpu <variant[:count]>", "GPUs per replica, e.g. H100:8").argParser(parseGpu).conflicts("tpu"))
    .addOption(new Option("--tpu <variant>", "TPU slice, e.g. v5litepod-16").argParser(parseTpu))
    .option("--replicas <n>", "number of tasks", parsePositiveInt)
    .option("-e, --env <K=V>", "environment variable for the job (repeatable)", collectKeyValue)
    .option("--workspace <dir>", "directory to pack and run the command in on the worker (default: the current directory; .gitignore honoured)")
    .option("--image <ref>", "run the command in a container of this Docker image, which must be on the worker (with the task's cpu and memory as limits)")
    .option("--no-wait", "print the job id and return without waiting")
    .option("--json", "print the job's final state as JSON on stdout; the job's own output goes to stderr")
    .action(async (command: string[], opts: Omit<JobRunOptions, "controller" | "env"> & { env?: Record<string, string> }, cmd: Command) =>
      finish(await run("job run")(command, { ...globals(cmd), ...opts, env: opts.env ?? {} })),
    );
  subcommand(job, "list", "list jobs with their status and duration")
    .usage("[--prefix <prefix>] [--all-namespaces] [--json]")
    .option("--prefix <prefix>", "only jobs whose name starts with this")
    .option("--all-namespaces", "jobs of every namespace")
    .option("--json", "print JSON")
    .action(async (opts: { json?: boolean; prefix?: string; allNamespaces?: boolean }, cmd: Command) =>
      finish(await run("job list")({ ...globals(cmd), ...opts })),
    );
  subcommand(job, "status", "show a job's status and its tasks")
    .usage("<id> [--json]")
    .argument("<id>", "job id (or a job name that only one job has)")
    .option("--json", "print JSON")
    .action(async (id: string, opts: { json?: boolean }, cmd: Command) =>
      finish(await run("job status")(id, { ...globals(cmd), ...opts })),
    );
  subcommand(job, "logs", "print a job's logs")
    .usage("<id> [--follow] [--task <n>] [--json]")
    .argument("<id>", "job id (or a job name that only one job has)")
    .option("--follow", "keep streaming until the job finishes")
    .option("--task <n>", "only this task's logs", parseNonNegativeInt)
    .option("--json", "print one JSON object per log line")
    .action(async (id: string, opts: { follow?: boolean; json?: boolean; task?: number }, cmd: Command) =>
      finish(await run("job logs")(id, { ...globals(cmd), ...opts })),
    );
  subcommand(job, "stop", "stop a job and its children")
    .usage("<id> [--json]")
    .argument("<id>", "job id (or a job name that only one job has)")
    .option("--json", "print JSON")
    .action(async (id: string, opts: { json?: boolean }, cmd: Command) =>
      finish(await run("job stop")(id, { ...globals(cmd), ...opts })),
    );
  subcommand(job, "results", "print a function job's return value per task (waits for it to finish)")
    .usage("<id> [--timeout <s>] [--json]")
    .argument("<id>", "job id (or a job name that only one job has)")
    .option("--timeout <s>", "give up if the job has not finished within this many seconds", parsePositiveNumber)
    .option("--json", "print a JSON array; Map, Date, bigint and bytes become tagged objects ({\"$date\": …}, see README)")
    .action(async (id: string, opts: { json?: boolean; timeout?: number }, cmd: Command) =>
      finish(await run("job results")(id, { ...globals(cmd), ...opts })),
    );

  // ------------------------------------------------------------------ group
  const group = subcommand(program, "group", "inspect and stop job groups (launched with cluster.launchGroup)");
  subcommand(group, "list", "list job groups with their status")
    .usage("[--prefix <prefix>] [--all-namespaces] [--json]")
    .option("--prefix <prefix>", "only groups whose name starts with this")
    .option("--all-namespaces", "groups of every namespace")
    .option("--json", "print JSON")
    .action(async (opts: { json?: boolean; prefix?: string; allNamespaces?: boolean }, cmd: Command) =>
      finish(await run("group list")({ ...globals(cmd), ...opts })),
    );
  subcommand(group, "status", "show a group's status and its jobs")
    .usage("<id> [--json]")
    .argument("<id>", "group id")
    .option("--json", "print JSON")
    .action(async (id: string, opts: { json?: boolean }, cmd: Command) => finish(await run("group status")(id, { ...globals(cmd), ...opts })));
  subcommand(group, "stop", "stop every unfinished job of a group")
    .usage("<id> [--json]")
    .argument("<id>", "group id")
    .option("--json", "print JSON")
    .action(async (id: string, opts: { json?: boolean }, cmd: Command) => finish(await run("group stop")(id, { ...globals(cmd), ...opts })));

  // ------------------------------------------------------------------ reservation
  const reservation = subcommand(program, "reservation", "hold capacity for jobs to come");
  subcommand(reservation, "create", "hold slots of one shape (--cpu/--memory/--gpu/--tpu) between --min and --max; prints its id")
    .usage("[--cpu <n>] [--memory <size>] [--disk <size>] [--gpu <variant[:count]> | --tpu <variant>] [--min <n>] [--max <n>] [--ttl <s>] [--priority <n>] [--no-preemptible] [--json]")
    .option("--cpu <n>", "CPU cores per slot (default: 1)", parsePositiveNumber)
    .option("--memory <size>", "memory per slot, e.g. 8g (default: 512m)", parseMemory)
    .option("--disk <size>", "scratch disk per slot, e.g. 10g", parseMemory)
    .addOption(new Option("--gpu <variant[:count]>", "GPUs per slot, e.g. H100:8").argParser(parseGpu).conflicts("tpu"))
    .addOption(new Option("--tpu <variant>", "a TPU slice per unit, e.g. v5litepod-16; --min and --max then count slices").argParser(parseTpu))
    .option("--min <n>", "slots held at least (default: 1)", parsePositiveInt)
    .option("--max <n>", "most slots its jobs may use (default: --min)", parsePositiveInt)
    .option("--ttl <s>", "seconds until it expires (default: 3600)", parsePositiveInt)
    .option("--priority <n>", "higher reservations are filled first (default: 0)", parseNonNegativeInt)
    .option("--no-preemptible", "never hold slots on preemptible workers")
    .option("--json", "print the reservation as JSON")
    .addHelpText(
      "after",
      `
Examples:
  # Two 2-core slots now, room for four; jobs launched into it start at once
  fluster reservation create --cpu 2 --memory 1g --min 2 --max 4 --ttl 3600
  # One v5litepod-16 slice, kept off preemptible machines
  fluster reservation create --tpu v5litepod-16 --min 1 --no-preemptible
Launch into it with cluster.launch(request, { reservationId }).`,
    )
    .action(async (opts: Omit<ReservationCreateOptions, "controller">, cmd: Command) => finish(await run("reservation create")({ ...globals(cmd), ...opts })));
  subcommand(reservation, "list", "list reservations: used, held and pending slots")
    .usage("[--all] [--all-namespaces] [--json]")
    .option("--all", "also expired and released ones")
    .option("--all-namespaces", "reservations of every namespace")
    .option("--json", "print JSON")
    .action(async (opts: { json?: boolean; all?: boolean; allNamespaces?: boolean }, cmd: Command) =>
      finish(await run("reservation list")({ ...globals(cmd), ...opts })),
    );
  subcommand(reservation, "status", "show a reservation: its slots, its jobs, why part of it waits")
    .usage("<id> [--json]")
    .argument("<id>", "reservation id")
    .option("--json", "print JSON")
    .action(async (id: string, opts: { json?: boolean }, cmd: Command) => finish(await run("reservation status")(id, { ...globals(cmd), ...opts })));
  subcommand(reservation, "release", "end a reservation now; its jobs run on as ordinary jobs")
    .usage("<id> [--reason <text>]")
    .argument("<id>", "reservation id")
    .option("--reason <text>", "why, shown as its message")
    .action(async (id: string, opts: { reason?: string; json?: boolean }, cmd: Command) =>
      finish(await run("reservation release")(id, { ...globals(cmd), ...opts })),
    );

  // ------------------------------------------------------------------ endpoint
  const endpoint = subcommand(program, "endpoint", "inspect the endpoint registry");
  subcommand(endpoint, "list", "list registered endpoints (name, address, job)")
    .usage("[--prefix <prefix>] [--all-namespaces] [--json]")
    .option("--prefix <prefix>", "only names starting with this")
    .option("--all-namespaces", "endpoints of every namespace")
    .option("--json", "print JSON")
    .action(async (opts: { prefix?: string; json?: boolean; allNamespaces?: boolean }, cmd: Command) =>
      finish(await run("endpoint list")({ ...globals(cmd), ...opts })),
    );
  subcommand(endpoint, "remove", "remove the endpoints with this name, or the one with this id, from the namespace")
    .usage("<name|id> [--json]")
    .argument("<name|id>", "an endpoint name (every endpoint under it) or an endpoint id (ep-…)")
    .option("--json", "print the removed endpoints as JSON")
    .action(async (nameOrId: string, opts: { json?: boolean }, cmd: Command) =>
      finish(await run("endpoint remove")(nameOrId, { ...globals(cmd), ...opts })),
    );

  // ------------------------------------------------------------------ vm
  const vm = subcommand(program, "vm", "inspect the VMs the autoscaler runs (with a cluster config)");
  subcommand(vm, "list", "list VMs with their scale group, state and workers, then each scale group's status")
    .usage("[--all] [--json]")
    .option("--all", "also VMs released or failed in the last day")
    .option("--json", "print JSON")
    .action(async (opts: { all?: boolean; json?: boolean }, cmd: Command) => finish(await run("vm list")({ ...globals(cmd), ...opts })));

  program.addHelpText("after", () => `\nCommand tree:\n${commandTree(program)}`);
  return program;
}

/**
 * Every leaf command below `root`, with its usage line (written next to its
 * options above, like SPEC §4) and its description on the line after.
 */
export function commandTree(root: Command): string {
  const lines: string[] = [];
  const visit = (command: Command): void => {
    const children = command.commands.filter((c) => c.name() !== "help");
    if (children.length === 0 && command !== root) {
      lines.push(`  ${commandPath(command)} ${command.usage()}`, `      ${command.description()}`);
    }
    children.forEach(visit);
  };
  visit(root);
  return `${lines.join("\n")}\n`;
}

/**
 * The `fluster` program: commander's Command, but a `job run` whose command
 * has options of its own and no `--` before it is refused before commander
 * parses it, since commander would take those options for fluster's own
 * (`fluster job run node -e 1` would read `-e 1` as an environment variable,
 * `… node --version` would print fluster's version).
 */
class FlusterProgram extends Command {
  override parse(argv?: readonly string[], parseOptions?: ParseOptions): this {
    this.refuseMissingDashDash(argv, parseOptions);
    return super.parse(argv, parseOptions);
  }

  override async parseAsync(argv?: readonly string[], parseOptions?: ParseOptions): Promise<this> {
    this.refuseMissingDashDash(argv, parseOptions);
    return super.parseAsync(argv, parseOptions);
  }

  private refuseMissingDashDash(argv: readonly string[] | undefined, parseOptions: ParseOptions | undefined): void {
    const all = argv ?? process.argv;
    const args = parseOptions?.from === "user" ? all : all.slice(2);
    const runCommand = this.commands.find((c) => c.name() === "job")?.commands.find((c) => c.name() === "run");
    const fixed = runCommand ? missingDashDash(args, this, runCommand) : undefined;
    if (fixed && runCommand) runCommand.error(`put \`--\` before the command: ${fixed}`);
  }
}

/**
 * When `args` run a job whose command has options and no `--` before it,
 * the command line as it should have been typed; otherwise undefined (and
 * commander reports whatever else is wrong).
 */
export function missingDashDash(args: readonly string[], program: Command, runCommand: Command): string | undefined {
  const takesValue = (command: Command, arg: string): boolean | undefined => {
    const flag = arg.split("=")[0] ?? arg;
    const option = command.options.find((o) => o.long === flag || o.short === flag);
    if (!option) return undefined;
    return (option.required || option.optional) && !arg.includes("=");
  };
  let i = 0;
  // Global options, then `job run`.
  for (; i < args.length && (args[i] ?? "").startsWith("-"); i++) {
    const value = takesValue(program, args[i] ?? "");
    if (value === undefined) return undefined;
    if (value) i++;
  }
  if (args[i] !== "job" || args[i + 1] !== "run") return undefined;
  for (i += 2; i < args.length; i++) {
    const arg = args[i] ?? "";
    if (arg === "--") return undefined;
    if (!arg.startsWith("-")) break;
    const value = takesValue(runCommand, arg) ?? takesValue(program, arg);
    if (value === undefined) return undefined; // an unknown option: commander says so
    if (value) i++;
  }
  const command = args.slice(i);
  if (!command.some((arg) => arg.startsWith("-"))) return undefined;
  return ["fluster", ...args.slice(0, i), "--", ...command].map(shellQuote).join(" ");
}

/** An argument as a POSIX shell needs it: bare when safe, else in single quotes. */
function shellQuote(arg: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, "'\\''")}'`;
}

/** `--log-level` of the commands that run a daemon; checked against the levels before the action runs. */
function logLevelOption(): Option {
  return new Option("--log-level <level>", "least severe log line written to stderr (default: FLUSTER_LOG_LEVEL, else info)").choices(LOG_LEVELS);
}

/** `--log-format` of the commands that run a daemon. */
function logFormatOption(): Option {
  return new Option("--log-format <format>", "log lines as json, pretty, or auto: pretty on a terminal, else JSON (default: FLUSTER_LOG_FORMAT, else auto)").choices(LOG_FORMATS);
}

function subcommand(parent: Command, name: string, description: string): Command {
  return withHelpHint(parent.command(name).description(description));
}

/** After a usage error, point at this command's own help (on the error's line). */
function withHelpHint(command: Command): Command {
  return command.showHelpAfterError(`(see '${commandPath(command)} --help')`);
}

function commandPath(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c; c = c.parent) names.unshift(c.name());
  return names.join(" ");
}

function globals(command: Command): GlobalOptions {
  const { controller, namespace, tlsCa } = command.optsWithGlobals<GlobalOptions>();
  return { ...(controller === undefined ? {} : { controller }), ...(namespace === undefined ? {} : { namespace }), ...(tlsCa === undefined ? {} : { tlsCa }) };
}

function finish(result: number | void): void {
  if (typeof result === "number") process.exitCode = result;
}

function packageVersion(): string {
  const pkg: unknown = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"));
  const version = typeof pkg === "object" && pkg !== null && "version" in pkg ? pkg.version : undefined;
  if (typeof version !== "string") throw new CliError("package.json has no version");
  return version;
}
