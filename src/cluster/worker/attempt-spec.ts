// What an attempt runs, checked before anything starts: the spec's fields,
// the task's environment (what it inherits from the daemon and what it is
// given), and the program found on the task's PATH like execvp would.
import { accessSync, constants, statSync } from "node:fs";
import { delimiter, join, resolve } from "node:path";
import { ValidationError, describeValue } from "../../core/errors.js";
import type { ContainerSpec } from "./container.js";

/** What to run for one attempt. */
export interface AttemptSpec {
  /** Unique id of the attempt; also exported to the task as `FLUSTER_ATTEMPT_ID`. */
  attemptId: string;
  /** Program and arguments; run without a shell. `argv[0]` is looked up on the task's `PATH`. */
  argv: string[];
  /** Working directory of the task. */
  cwd: string;
  /** Variables set for the task, over those it inherits ({@link INHERITED_ENV_VARS}). */
  env: Record<string, string>;
  /** Wall-clock limit; past it the process group is killed and the attempt fails. @default no limit */
  timeoutSeconds?: number;
  /** The attempt's own directory: its log (`output.jsonl`) and `pgid` file live here. Created if missing. */
  logDir: string;
  /** Time between SIGTERM and SIGKILL when the attempt is killed or times out. @default the runtime's, 5000 */
  killGraceMs?: number;
  /**
   * Run `argv` in a container of this image (`environment.image`) rather
   * than as a process here; `argv[0]` is then looked up on the image's PATH,
   * and the task gets `env` (and FLUSTER_ATTEMPT_ID) over the image's own
   * variables, none of the daemon's. @default a process on this machine
   */
  container?: ContainerSpec;
}

/**
 * Families of variables a task inherits from the daemon whole: the
 * accelerator runtime's (`TPU_*` on a TPU VM, `NVIDIA_*` for the NVIDIA
 * container runtime and drivers).
 */
export const INHERITED_ENV_PREFIXES: readonly string[] = Object.freeze(["TPU_", "NVIDIA_"]);

/**
 * Variables a task inherits from the daemon, besides {@link INHERITED_ENV_PREFIXES};
 * everything else comes from the spec, so a daemon's secrets and test-runner state do not leak into tasks.
 * Enough for programs to find binaries and shared libraries, a home, locale,
 * time zone and temp space, proxies and CA bundles, and for Node tasks to
 * keep the daemon's loader flags (`NODE_OPTIONS`).
 */
export const INHERITED_ENV_VARS: readonly string[] = Object.freeze([
  "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR",
  "LD_LIBRARY_PATH", "NODE_OPTIONS", "NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE", "SSL_CERT_DIR",
  "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
]);

const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/** setTimeout fires at once beyond this (about 24.8 days), so longer waits are re-armed or refused. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export function validateSpec(spec: AttemptSpec): void {
  if (typeof spec !== "object" || spec === null) throw new ValidationError("spec", `must be an object, got ${describeValue(spec)}`);
  // Control characters would corrupt the pgid file and the environment.
  if (typeof spec.attemptId !== "string" || spec.attemptId === "" || /[\0-\x1f]/.test(spec.attemptId)) {
    throw new ValidationError("spec.attemptId", `must be a non-empty string without control characters, got ${describeValue(spec.attemptId)}`);
  }
  if (!Array.isArray(spec.argv) || spec.argv.length === 0 || spec.argv[0] === "" || !spec.argv.every((a) => typeof a === "string")) {
    throw new ValidationError("spec.argv", `must be a non-empty array of strings with a program first, got ${describeValue(spec.argv)}`);
  }
  if (typeof spec.cwd !== "string" || spec.cwd === "") throw new ValidationError("spec.cwd", `must be a non-empty path, got ${describeValue(spec.cwd)}`);
  if (typeof spec.logDir !== "string" || spec.logDir === "") throw new ValidationError("spec.logDir", `must be a non-empty path, got ${describeValue(spec.logDir)}`);
  if (typeof spec.env !== "object" || spec.env === null) throw new ValidationError("spec.env", `must be an object of strings, got ${describeValue(spec.env)}`);
  for (const [key, value] of Object.entries(spec.env)) {
    if (typeof value !== "string") throw new ValidationError(`spec.env.${key}`, `must be a string, got ${describeValue(value)}`);
  }
  if (spec.timeoutSeconds !== undefined && !(Number.isFinite(spec.timeoutSeconds) && spec.timeoutSeconds > 0)) {
    throw new ValidationError("spec.timeoutSeconds", `must be a positive number, got ${describeValue(spec.timeoutSeconds)}`);
  }
  if (spec.killGraceMs !== undefined) checkGrace("spec.killGraceMs", spec.killGraceMs);
  if (spec.container !== undefined) {
    const { image, mounts } = spec.container;
    // It becomes an argument of `docker run`: nothing that reads as an option.
    if (typeof image !== "string" || image === "" || image.startsWith("-") || /\s/.test(image)) {
      throw new ValidationError("spec.container.image", `must be an image reference, got ${describeValue(image)}`);
    }
    if (!Array.isArray(mounts) || !mounts.every((m) => typeof m?.path === "string" && m.path.startsWith("/") && !m.path.includes(","))) {
      throw new ValidationError("spec.container.mounts", `must be absolute paths without commas, got ${describeValue(mounts)}`);
    }
  }
}

export function checkGrace(field: string, value: number): void {
  if (!(Number.isFinite(value) && value >= 0 && value <= MAX_TIMER_MS)) {
    throw new ValidationError(field, `must be a non-negative number of milliseconds, got ${describeValue(value)}`);
  }
}

export function taskEnv(spec: AttemptSpec): Record<string, string> {
  const env: Record<string, string> = { PATH: DEFAULT_PATH };
  for (const name of INHERITED_ENV_VARS) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  for (const [name, value] of Object.entries(process.env)) {
    if (value !== undefined && INHERITED_ENV_PREFIXES.some((prefix) => name.startsWith(prefix))) env[name] = value;
  }
  return { ...env, ...spec.env, FLUSTER_ATTEMPT_ID: spec.attemptId };
}

export function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Finds the program like execvp would, so that "not found" is reported the
 * same with or without the setpriv wrapper.
 */
export function findExecutable(command: string, pathVar: string, cwd: string): { path: string } | { problem: string } {
  const candidates = command.includes("/")
    ? [resolve(cwd, command)]
    : pathVar.split(delimiter).filter((dir) => dir !== "").map((dir) => join(resolve(cwd, dir), command));
  let denied = false;
  for (const candidate of candidates) {
    try {
      if (!statSync(candidate).isFile()) continue;
    } catch {
      continue;
    }
    try {
      accessSync(candidate, constants.X_OK);
      return { path: candidate };
    } catch {
      denied = true;
    }
  }
  return { problem: denied ? "permission denied" : "not found" };
}
