// Running an attempt in a Docker container (`environment.image`): the
// `docker run` command line, the host paths mounted into the container, and
// removing the containers that an attempt or a previous daemon left behind.
import { execFile, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync, realpathSync, rmSync } from "node:fs";
import { readFile, readdir, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { promisify } from "node:util";
import { findExecutable } from "./attempt-spec.js";
import { flusterInstallation } from "./workspace.js";

const execFileAsync = promisify(execFile);

/** An attempt run in a container records the container's name in this file of its directory, for the reaping after a daemon restart. */
export const CONTAINER_FILE_NAME = "container";
/** The variables of a containerized task, for `docker run --env-file`; removed when the attempt ends. */
export const CONTAINER_ENV_FILE_NAME = "container.env";
/** Label naming the worker that started a container. */
export const WORKER_LABEL = "fluster.worker";
/**
 * Label naming the worker's attempts directory (a hash of its path): worker
 * ids repeat across clusters on one machine (every LocalCluster has a
 * `local-0`), so a daemon reaps only containers of its own directory.
 */
export const WORKER_DIR_LABEL = "fluster.worker-dir";

/** The {@link WORKER_DIR_LABEL} value of a worker whose attempts live in `attemptsDir`. */
export function workerDirKey(attemptsDir: string): string {
  let path = attemptsDir;
  try {
    path = realpathSync(attemptsDir);
  } catch {
    // not made yet: its path as given
  }
  return createHash("sha256").update(path).digest("hex").slice(0, 16);
}

/** Label naming the attempt a container runs. */
export const ATTEMPT_LABEL = "fluster.attempt";
/** How long a `docker` housekeeping command (kill, inspect, rm, ps) may take. */
const DOCKER_COMMAND_TIMEOUT_MS = 30_000;
const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/** Variables of the daemon that the `docker` client itself needs; the task's own go into the container. */
const DOCKER_CLIENT_ENV = ["PATH", "HOME", "DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CONTEXT", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY"];

/** A host path mounted into the container at the same path. */
export interface ContainerMount {
  path: string;
  /** @default false */
  readOnly?: boolean;
}

/** How an attempt runs in a container. */
export interface ContainerSpec {
  /** Docker image reference, already validated (`environment.image`). */
  image: string;
  /** The worker starting it, for the `fluster.worker` label. */
  workerId: string;
  /** The worker's attempts directory, for the `fluster.worker-dir` label. */
  attemptsDir: string;
  /** CPU cores, as `--cpus`; 0 or absent: no limit. */
  cpu?: number;
  /** Memory in bytes, as `--memory` and `--memory-swap` (no swap beyond it); 0 or absent: no limit. */
  memoryBytes?: number;
  /** Host paths mounted at the same paths (workspace, environment, attempt directory, the fluster package). */
  mounts: readonly ContainerMount[];
  /** `--user`. @default the daemon's own uid:gid, so files the task writes into the mounts belong to the worker */
  user?: string;
}

/** What {@link dockerRunArgs} turns into a `docker run` command line. */
export interface DockerRunInput {
  attemptId: string;
  /** The task's program and arguments, run as the container's entrypoint. */
  argv: readonly string[];
  /** Working directory inside the container (a mounted path). */
  cwd: string;
  container: ContainerSpec;
  /** `--env-file`, holding the variables {@link splitContainerEnv} put in the file. */
  envFile?: string;
  /** Variables passed by name (`-e NAME`): the `docker` client's own environment holds their values. */
  envNames?: readonly string[];
}

/** The container name of an attempt: `fluster-attempt-<attemptId>`, made safe for Docker (with a hash when it had to be changed). */
export function containerName(attemptId: string): string {
  const safe = attemptId.replace(/[^A-Za-z0-9_.-]/g, "-");
  if (safe === attemptId) return `fluster-attempt-${attemptId}`;
  return `fluster-attempt-${safe}-${createHash("sha256").update(attemptId).digest("hex").slice(0, 8)}`;
}

/**
 * The arguments of `docker run` (after `docker`) for an attempt: host
 * networking, the task's resources as limits (memory without extra swap, so
 * a runaway task meets its limit rather than starving its neighbours), the
 * mounts at their own paths, labels the worker finds its containers by, an
 * init process that forwards signals (SIGTERM reaches the task), and no pull:
 * the image must be on the worker. Not `--rm`: the worker inspects the ended
 * container (was it killed for memory?) and removes it itself.
 */
export function dockerRunArgs(input: DockerRunInput): string[] {
  const { container } = input;
  const args = ["run", "--name", containerName(input.attemptId), "--label", `${WORKER_LABEL}=${container.workerId}`, "--label", `${WORKER_DIR_LABEL}=${workerDirKey(container.attemptsDir)}`, "--label", `${ATTEMPT_LABEL}=${input.attemptId}`];
  args.push("--network", "host", "--init", "--pull", "never", "--log-driver", "none");
  if (container.cpu !== undefined && container.cpu > 0) args.push("--cpus", String(container.cpu));
  if (container.memoryBytes !== undefined && container.memoryBytes > 0) {
    args.push("--memory", `${container.memoryBytes}b`, "--memory-swap", `${container.memoryBytes}b`);
  }
  const user = container.user ?? defaultUser();
  if (user !== undefined) args.push("--user", user);
  for (const mount of normalizeMounts(container.mounts)) {
    args.push("--mount", `type=bind,source=${mount.path},target=${mount.path}${mount.readOnly ? ",readonly" : ""}`);
  }
  if (input.envFile !== undefined) args.push("--env-file", input.envFile);
  for (const name of input.envNames ?? []) args.push("-e", name);
  const [program = "", ...rest] = input.argv;
  args.push("-w", input.cwd, "--entrypoint", program, container.image, ...rest);
  return args;
}

/**
 * Splits a task's variables between an `--env-file` (whose format has one
 * `NAME=value` per line) and names passed with `-e NAME` whose values the
 * `docker` client's environment carries (those with a line break). Neither
 * puts a value on the command line, where any user of the machine could read it.
 */
export function splitContainerEnv(env: Readonly<Record<string, string>>): { fileText: string; byName: Record<string, string> } {
  let fileText = "";
  const byName: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (/[\r\n\0]/.test(value)) byName[name] = value.replace(/\0/g, "");
    else fileText += `${name}=${value}\n`;
  }
  return { fileText, byName };
}

/** The environment of the `docker` client process: what it needs from the daemon, plus `extra` (values of `-e NAME`). */
export function dockerClientEnv(attemptId: string, extra: Readonly<Record<string, string>>): Record<string, string> {
  const env: Record<string, string> = { PATH: DEFAULT_PATH };
  for (const name of DOCKER_CLIENT_ENV) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  // FLUSTER_ATTEMPT_ID marks the client as the attempt's process, as reapOrphans and the lease supervisor check.
  return { ...env, ...extra, FLUSTER_ATTEMPT_ID: attemptId };
}

/**
 * Mounts at distinct paths: a path given twice is mounted once, writable
 * if any of them was (Docker refuses a duplicate mount point).
 */
function normalizeMounts(mounts: readonly ContainerMount[]): ContainerMount[] {
  const byPath = new Map<string, boolean>();
  for (const { path, readOnly } of mounts) {
    const previous = byPath.get(path);
    byPath.set(path, previous === undefined ? readOnly === true : previous && readOnly === true);
  }
  return [...byPath].map(([path, readOnly]) => (readOnly ? { path, readOnly } : { path }));
}

function defaultUser(): string | undefined {
  return typeof process.getuid === "function" && typeof process.getgid === "function" ? `${process.getuid()}:${process.getgid()}` : undefined;
}

/**
 * The fluster package the worker runs, read-only, so that a function job's
 * bootstrap (and its `import "fluster"`) resolves inside the container:
 * an installed fluster with the `node_modules` it sits in, a checkout with
 * its own `node_modules` (and where that links to, if elsewhere).
 */
export function flusterMounts(): ContainerMount[] {
  const installation = flusterInstallation();
  if (!installation) return [];
  if (basename(dirname(installation)) === "node_modules") return [{ path: dirname(installation), readOnly: true }];
  const mounts: ContainerMount[] = [{ path: installation, readOnly: true }];
  const own = join(installation, "node_modules");
  try {
    const real = realpathSync(own);
    if (real !== own && !real.startsWith(`${installation}/`)) mounts.push({ path: real, readOnly: true });
  } catch {
    // No node_modules: nothing more to mount.
  }
  return mounts;
}

/** The `docker` command on the daemon's PATH, if there is one. */
export function findDocker(): string | undefined {
  const found = findExecutable("docker", process.env.PATH ?? DEFAULT_PATH, "/");
  return "path" in found ? found.path : undefined;
}

/** What `docker inspect` says of an ended container; undefined when it cannot say (no such container). */
export interface ContainerEnd {
  oomKilled: boolean;
  exitCode: number;
  /** Whether the container ever started (false: it was created, then `docker run` failed). */
  started: boolean;
}

export async function inspectEndedContainer(docker: string, name: string): Promise<ContainerEnd | undefined> {
  try {
    const { stdout } = await execFileAsync(docker, ["inspect", "-f", "{{.State.OOMKilled}} {{.State.ExitCode}} {{.State.StartedAt}}", name], { timeout: DOCKER_COMMAND_TIMEOUT_MS });
    const [oom = "", code = "", startedAt = ""] = stdout.trim().split(" ");
    return { oomKilled: oom === "true", exitCode: Number(code), started: !startedAt.startsWith("0001-") };
  } catch {
    return undefined;
  }
}

/** Sends `signal` to a container's init, which passes it on to the task. Never throws: a container not there (yet, or any more) is no error here. */
export async function killContainer(docker: string, name: string, signal: NodeJS.Signals): Promise<boolean> {
  try {
    await execFileAsync(docker, ["kill", "--signal", signal, name], { timeout: DOCKER_COMMAND_TIMEOUT_MS });
    return true;
  } catch {
    return false;
  }
}

/** Removes containers, killing those still running. Never throws: returns whether docker said it removed them all. */
export async function removeContainers(docker: string, names: readonly string[]): Promise<boolean> {
  if (names.length === 0) return true;
  try {
    await execFileAsync(docker, ["rm", "--force", ...names], { timeout: DOCKER_COMMAND_TIMEOUT_MS });
    return true;
  } catch {
    return false;
  }
}

/** {@link removeContainers} for the lease supervisor, which must finish its kills before anything else runs. */
export function removeContainersSync(docker: string, names: readonly string[]): void {
  if (names.length > 0) spawnSync(docker, ["rm", "--force", ...names], { stdio: "ignore", timeout: DOCKER_COMMAND_TIMEOUT_MS });
}

/** The container an attempt directory records, if any. */
export function recordedContainer(logDir: string): string | undefined {
  try {
    return readFileSync(join(logDir, CONTAINER_FILE_NAME), "utf8").trim() || undefined;
  } catch {
    return undefined;
  }
}

/** A container removed by {@link reapContainers}. */
export interface ReapedContainer {
  name: string;
  /** Its attempt, from its label or its attempt directory. */
  attemptId?: string;
}

/**
 * Removes the containers a previous incarnation of the daemon left: every
 * container labelled `fluster.worker=<workerId>` and with this attempts
 * directory's `fluster.worker-dir` (a restarted daemon adopts
 * no attempt: the controller retries them elsewhere) and every container
 * recorded in `<rootDir>/<attempt>/container` (in case the worker id
 * changed), and deletes those records. Does nothing where there is no
 * `docker`; call it before starting attempts.
 */
export async function reapContainers(rootDir: string, workerId: string, docker = findDocker()): Promise<ReapedContainer[]> {
  const recorded = new Map<string, string | undefined>();
  const files: string[] = [];
  for (const name of await readdir(rootDir).catch(() => [] as string[])) {
    const file = join(rootDir, name, CONTAINER_FILE_NAME);
    const container = (await readFile(file, "utf8").catch(() => "")).trim();
    if (container) {
      recorded.set(container, undefined);
      files.push(file);
    }
  }
  if (!docker) return [];
  try {
    const filters = ["--filter", `label=${WORKER_LABEL}=${workerId}`, "--filter", `label=${WORKER_DIR_LABEL}=${workerDirKey(rootDir)}`];
    const { stdout } = await execFileAsync(docker, ["ps", "--all", ...filters, "--format", `{{.Names}}\t{{.Label "${ATTEMPT_LABEL}"}}`], {
      timeout: DOCKER_COMMAND_TIMEOUT_MS,
    });
    for (const line of stdout.split("\n")) {
      const [name = "", attemptId = ""] = line.split("\t");
      if (name) recorded.set(name, attemptId || undefined);
    }
  } catch {
    // The engine is not running: the recorded ones are tried anyway, and fail the same way.
  }
  const existing = await existingContainers(docker, [...recorded.keys()]);
  await removeContainers(docker, existing);
  for (const file of files) await rm(file, { force: true });
  return existing.map((name) => ({ name, ...(recorded.get(name) ? { attemptId: recorded.get(name) } : {}) }));
}

/** Which of `names` are containers now (so that the count of reaped ones is true). */
async function existingContainers(docker: string, names: readonly string[]): Promise<string[]> {
  if (names.length === 0) return [];
  try {
    const { stdout } = await execFileAsync(docker, ["ps", "--all", "--format", "{{.Names}}"], { timeout: DOCKER_COMMAND_TIMEOUT_MS });
    const all = new Set(stdout.split("\n"));
    return names.filter((name) => all.has(name));
  } catch {
    return [];
  }
}

/** Removes the recorded containers of the given attempt directories now, synchronously (the lease supervisor's fence). */
export function removeRecordedContainersSync(logDirs: readonly string[]): void {
  const names = logDirs.map(recordedContainer).filter((n): n is string => n !== undefined);
  const docker = names.length > 0 ? findDocker() : undefined;
  if (docker) removeContainersSync(docker, names);
}

/** Deletes the container record and env file of an attempt directory. */
export function forgetContainer(logDir: string): void {
  for (const name of [CONTAINER_FILE_NAME, CONTAINER_ENV_FILE_NAME]) rmSync(join(logDir, name), { force: true });
}
