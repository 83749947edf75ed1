// How an assignment becomes a process on this worker — a command as given, or
// a function entrypoint run by the bootstrap program — with the FLUSTER_*
// variables a job sees, and how a function's return value or error comes back.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join, resolve } from "node:path";
import { FlusterError, ValidationError } from "../../core/errors.js";
import { nodeEntryArgs } from "../../core/node-entry.js";
import { decodeValue } from "../../rpc/codec.js";
import type { JobSpec } from "../../rpc/gen/fluster/cluster/v1/types_pb.js";
import type { TaskAssignment } from "../../rpc/gen/fluster/worker/v1/worker_pb.js";
import { flusterMounts, type ContainerMount } from "./container.js";
import { environmentVariables, type EnvironmentCache } from "./environments.js";
import type { BundleCache } from "../bundle/checkout.js";
import { prepareWorkspace } from "./workspace.js";

/** The bootstrap program, with tsx always: it imports the user's modules, which may be TypeScript. */
const BOOTSTRAP_ARGS = nodeEntryArgs(import.meta.url, "./bootstrap", { importsUserCode: true });
const ARGS_FILE = "args.bin";
const RESULT_FILE = "result.bin";
const ERROR_FILE = "result.bin.error";

/** What the worker tells every task about where it runs. */
export interface TaskContext {
  controllerUrl: string;
  workerId: string;
  /** The worker's advertised host: servers in the task register addresses on it. */
  advertiseHost: string;
  /** The CA file the worker trusts for an https:// controller: the task gets it as FLUSTER_TLS_CA. */
  tlsCaFile?: string;
  /** This worker's bundle cache, for jobs that run in a workspace bundle. */
  bundles?: BundleCache;
}

/** How an attempt gets the environment its workspace and `packages` need. */
export interface TaskEnvironment {
  cache: EnvironmentCache;
  /** Stops waiting for the environment (the attempt was killed). */
  signal: AbortSignal;
  /** Called when the environment must be built first: the attempt is `building`. */
  onBuilding: () => void;
}

/** The process of one attempt. */
export interface TaskCommand {
  argv: string[];
  env: Record<string, string>;
  cwd: string;
  /**
   * For a job with `environment.image`: what its container mounts at the
   * same paths (the workspace, its environment, the attempt's directory, the
   * fluster package read-only, the CA file); `argv[0]` of a function job is
   * then the image's `node`.
   */
  mounts?: ContainerMount[];
}

/** The program, environment and working directory of an attempt; `dir` is the attempt's own directory. */
export async function taskCommand(assignment: TaskAssignment, spec: JobSpec, dir: string, context: TaskContext, environment?: TaskEnvironment): Promise<TaskCommand> {
  const { workspace, origin } = await workspaceOf(spec, context, environment?.onBuilding);
  const envVars = spec.environment?.envVars ?? {};
  // The workspace's dependencies and the job's packages, installed (once per key) before the task starts.
  const prepared = await environment?.cache.prepare({
    workspaceDir: workspace,
    packages: spec.environment?.packages ?? [],
    signal: environment.signal,
    onBuilding: environment.onBuilding,
  });
  const env: Record<string, string> = {
    ...envVars,
    // Where the job's tasks run (TPU_WORKER_ID, coordinator addresses): the controller's, over the job's own.
    ...assignment.env,
    ...(prepared ? environmentVariables(prepared, envVars.NODE_OPTIONS ?? process.env.NODE_OPTIONS, envVars.NODE_PATH) : {}),
    FLUSTER_WORKSPACE: workspace,
    ...(origin ? { FLUSTER_WORKSPACE_ORIGIN: origin } : {}),
    FLUSTER_CLUSTER_ADDRESS: context.controllerUrl,
    FLUSTER_JOB_ID: assignment.jobId,
    FLUSTER_JOB_NAME: assignment.jobName,
    FLUSTER_NAMESPACE: assignment.namespace,
    FLUSTER_TASK_INDEX: String(assignment.taskIndex),
    FLUSTER_NUM_TASKS: String(assignment.numTasks),
    FLUSTER_WORKER_ID: context.workerId,
    FLUSTER_ADVERTISE_HOST: context.advertiseHost,
    FLUSTER_ATTEMPT_ID: assignment.attemptId,
  };
  // The attempt's own credential, never the worker's cluster token: a job acts only inside its namespace and subtree.
  if (assignment.credential) env.FLUSTER_TOKEN = assignment.credential;
  if (assignment.clusterKey) env.FLUSTER_CLUSTER_KEY = assignment.clusterKey;
  if (context.tlsCaFile) env.FLUSTER_TLS_CA = context.tlsCaFile;
  for (const name of spec.ports) env[`FLUSTER_PORT_${name.toUpperCase()}`] = String(await freePort());
  const image = spec.environment?.image;
  const mounts: ContainerMount[] | undefined = image
    ? [
        { path: workspace },
        ...(prepared ? [{ path: prepared.dir }] : []),
        { path: dir },
        ...flusterMounts(),
        ...(context.tlsCaFile ? [{ path: context.tlsCaFile, readOnly: true }] : []),
      ].map((mount) => ({ ...mount, path: resolve(mount.path) }))
    : undefined;
  const kind = spec.entrypoint?.kind;
  if (kind?.case === "command") return { argv: [...kind.value.argv], env, cwd: workspace, ...(mounts ? { mounts } : {}) };
  if (kind?.case === "function") {
    const argsPath = join(dir, ARGS_FILE);
    writeFileSync(argsPath, kind.value.args);
    env.FLUSTER_ENTRYPOINT_MODULE = kind.value.module;
    env.FLUSTER_ENTRYPOINT_NAME = kind.value.name;
    env.FLUSTER_ENTRYPOINT_ARGS = argsPath;
    env.FLUSTER_RESULT_PATH = join(dir, RESULT_FILE);
    // In a container, the image's node (on its PATH) runs the bootstrap from the mounted fluster package.
    return { argv: [mounts ? "node" : process.execPath, ...BOOTSTRAP_ARGS], env, cwd: workspace, ...(mounts ? { mounts } : {}) };
  }
  throw new ValidationError("spec.entrypoint", "is required");
}

/**
 * Where the task runs: its bundle, checked out into this worker's cache and
 * prepared; `origin` is the client's path of the workspace, which remote
 * references are rebased from. A spec without a bundle (one a client that
 * packs nothing sent) runs in the path it names, which must exist here.
 */
async function workspaceOf(spec: JobSpec, context: TaskContext, onFetching?: () => void): Promise<{ workspace: string; origin?: string }> {
  const bundleId = spec.environment?.bundleId;
  if (bundleId) {
    if (!context.bundles) throw new FlusterError(`worker ${context.workerId} has no bundle cache for bundle ${bundleId}`, "failed_precondition");
    // Fetching is part of getting ready, as building the environment is: the attempt shows `building` meanwhile.
    if (!context.bundles.has(bundleId)) onFetching?.();
    let workspace: string;
    try {
      workspace = await context.bundles.checkout(bundleId);
    } catch (err) {
      throw new FlusterError(`worker ${context.workerId} could not fetch the job's workspace bundle ${bundleId}: ${(err as Error).message}`, "unavailable", { cause: err });
    }
    await prepareWorkspace(workspace, spec);
    return { workspace, ...(spec.environment?.workspace ? { origin: spec.environment.workspace } : {}) };
  }
  const workspace = spec.environment?.workspace || process.cwd();
  if (!existsSync(workspace)) throw new FlusterError(`workspace ${workspace} does not exist on worker ${context.workerId}`, "failed_precondition");
  return { workspace };
}

/** A function entrypoint's encoded return value, when the attempt left one. */
export function functionResult(dir: string): Uint8Array | undefined {
  const path = join(dir, RESULT_FILE);
  return existsSync(path) ? readFileSync(path) : undefined;
}

/** "Name: message" of the error a function entrypoint threw, when it left one that decodes. */
export function functionError(dir: string): string | undefined {
  const path = join(dir, ERROR_FILE);
  if (!existsSync(path)) return undefined;
  try {
    const error = decodeValue(readFileSync(path));
    return error instanceof Error ? `${error.name}: ${error.message}` : undefined;
  } catch {
    return undefined; // the runtime's message (exit code and stderr tail) stands
  }
}

/**
 * Ports for FLUSTER_PORT_<NAME> come from below Linux's ephemeral range
 * (32768–60999), the way Ray keeps its worker ports apart: a port the
 * kernel picked with `listen(0)` is free only until the job binds it, and
 * meanwhile any outgoing connection on the machine may be given it as its
 * local port. Ports handed out in the last minute are not handed out again,
 * so two attempts starting together never get the same one.
 */
const PORT_RANGE = { first: 20_000, last: 32_767 } as const;
const PORT_PROBES = 64;
const PORT_REUSE_AFTER_MS = 60_000;
const recentlyGiven = new Map<number, number>();

/** A free TCP port on this machine, for FLUSTER_PORT_<NAME>. */
async function freePort(): Promise<number> {
  const now = Date.now();
  for (const [port, at] of recentlyGiven) if (now - at > PORT_REUSE_AFTER_MS) recentlyGiven.delete(port);
  const span = PORT_RANGE.last - PORT_RANGE.first + 1;
  const start = Math.floor(Math.random() * span);
  for (let i = 0; i < PORT_PROBES; i++) {
    const port = PORT_RANGE.first + ((start + i * 7919) % span);
    if (recentlyGiven.has(port) || !(await canListen(port))) continue;
    recentlyGiven.set(port, now);
    return port;
  }
  // The range is crowded: any port the kernel finds free.
  return listenOnce(0);
}

function canListen(port: number): Promise<boolean> {
  return listenOnce(port).then(
    () => true,
    () => false,
  );
}

/** Binds `port` (0: any) on every interface, closes it again, and answers the port bound. */
function listenOnce(port: number): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen(port, () => {
      const address = server.address();
      const bound = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolvePort(bound));
    });
  });
}
