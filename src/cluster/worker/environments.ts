// A worker's environment cache: a job's npm dependencies (its workspace's
// package.json and lockfile, plus the job's `packages`) installed once per
// key, atomically, and shared by every attempt that needs the same key.
//
// Layout under the root (`<workDir>/envs` by default):
//   <key>/                 a finished environment: node_modules/, the package.json
//                          and lockfile it was made from, env.json, the resolve hooks
//   <key>.lock             held (created with O_EXCL) by the process building <key>
//   .build-<key>-<pid>-<n>/  a build in progress, renamed to <key> when complete
//   logs/<key>.log         npm's output of each build of <key>
//   npm-cache/             npm's cache, shared by every build (`--cache`)
//
// How the task finds the packages: Node resolves a bare import by walking up
// from the importing module's real path looking for node_modules, and the
// workspace must not be touched (on a LocalCluster it is the user's own
// project; a bundle's copy is shared by attempts whose `packages` differ).
// So the environment is offered as a fallback: the task gets
// `NODE_OPTIONS=--import <env>/register.mjs`, a resolve hook that retries a
// bare specifier the normal lookup could not find as if it were imported from
// `<env>/`, and `NODE_PATH=<env>/node_modules` for CommonJS `require`. What
// the workspace resolves itself (its own node_modules) wins; only Node
// processes see the environment, which is what an npm environment is for.
//
// A workspace with its own node_modules (a LocalCluster running in the user's
// project) is taken as installed: its environment holds only `packages`.
//
// `fluster`: a job imports it, and its lockfile need not provide it. An
// environment without one gets a symlink to the fluster package the worker
// runs from; one whose install brought a fluster of another version fails
// (two versions would disagree on the wire), the same version is kept.
//
// Install scripts run (native dependencies need them), as `npm ci` does by
// default; `ignoreScripts` turns them off for a worker that must not run them.
// devDependencies are installed too: the workspace ran with them where it was written.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { closeSync, createWriteStream, existsSync, openSync, readFileSync, realpathSync, writeSync, type WriteStream } from "node:fs";
import { mkdir, readdir, rename, rm, symlink, unlink, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { sleep } from "../../core/backoff.js";
import { FlusterError, ValidationError, describeValue } from "../../core/errors.js";
import { signalGroup } from "./process-group.js";

/** Options of {@link EnvironmentCache}. */
export interface EnvironmentCacheOptions {
  /** Directory holding the environments; created if missing. */
  root: string;
  /** npm's cache directory, shared by every build. @default `<root>/npm-cache` */
  npmCacheDir?: string;
  /** Install from the npm cache only (`--offline`), never the network. @default false: `--prefer-offline` */
  offline?: boolean;
  /** Do not run packages' install scripts (`--ignore-scripts`); native dependencies then do not build. @default false */
  ignoreScripts?: boolean;
  /** Builds of different keys that may run at once. @default 2 */
  concurrency?: number;
  /** Program and leading arguments that run npm. @default the npm next to this node, else `npm` on PATH */
  npmCommand?: readonly string[];
}

/** What {@link EnvironmentCache.prepare} makes an environment for. */
export interface PrepareEnvironmentRequest {
  /** The job's workspace directory: its package.json and lockfile say what to install. */
  workspaceDir: string;
  /** npm package specs installed on top (`"left-pad@1.3.0"`). @default [] */
  packages?: readonly string[];
  /** Stops waiting (the build itself goes on for others and for the cache). */
  signal?: AbortSignal;
  /** Called once when the environment is not ready and this call waits for it to be built. */
  onBuilding?: () => void;
}

/** A ready environment. */
export interface PreparedEnvironment {
  /** sha256 (hex) of what went into it. */
  key: string;
  /** The environment's directory. */
  dir: string;
  /** Its node_modules directory. */
  nodeModulesDir: string;
  /** Whether this call's wait included a build (by this cache or another process); false for a cache hit. */
  built: boolean;
}

/** What a cache has done, for tests and metrics. */
export interface EnvironmentCacheCounters {
  /** npm installs this cache ran to completion. */
  installs: number;
  /** prepare() calls answered by an environment that was already there. */
  hits: number;
  /** prepare() calls that had to wait for a build (by this cache or another process). */
  misses: number;
  /** Builds that failed. */
  failures: number;
}

/** What goes into an environment: files read from the workspace and the extra packages. */
export interface EnvironmentInputs {
  packageJson: string | undefined;
  lockfile: { name: LockfileName; text: string } | undefined;
  packages: readonly string[];
}

type LockfileName = "npm-shrinkwrap.json" | "package-lock.json";
const LOCKFILES: readonly LockfileName[] = ["npm-shrinkwrap.json", "package-lock.json"];
const DEPENDENCY_FIELDS = ["dependencies", "devDependencies", "optionalDependencies", "peerDependencies", "overrides"] as const;
const ERROR_TAIL_LINES = 20;
const LOCK_POLL_MS = 200;

/**
 * What a workspace needs installed; undefined when nothing (no package.json,
 * or its own node_modules, and no packages).
 */
export function environmentInputs(workspaceDir: string, packages: readonly string[] = []): EnvironmentInputs | undefined {
  const own = existsSync(join(workspaceDir, "node_modules"));
  const read = (name: string) => (own ? undefined : readOptional(join(workspaceDir, name)));
  const packageJson = read("package.json");
  let lockfile: EnvironmentInputs["lockfile"];
  for (const name of LOCKFILES) {
    const text = read(name);
    if (text !== undefined) {
      lockfile = { name, text };
      break;
    }
  }
  if (packageJson === undefined && packages.length === 0) return undefined;
  return { packageJson, lockfile, packages: [...packages].sort() };
}

/**
 * The environment's key: sha256 of the lockfile, package.json's dependency
 * fields, the sorted packages, Node's major.minor, the platform and
 * architecture, and the fluster the worker links in.
 */
export function environmentKey(inputs: EnvironmentInputs, extra: Record<string, unknown> = {}): string {
  const [major, minor] = process.versions.node.split(".");
  let dependencies: unknown = null;
  if (inputs.packageJson !== undefined) {
    const parsed = parseJsonObject(inputs.packageJson);
    dependencies = parsed === undefined ? inputs.packageJson : Object.fromEntries(DEPENDENCY_FIELDS.map((f) => [f, parsed[f] ?? null]));
  }
  const material = {
    lockfile: inputs.lockfile ? [inputs.lockfile.name, inputs.lockfile.text] : null,
    dependencies,
    packages: inputs.packages,
    node: `${major}.${minor}`,
    platform: `${process.platform}-${process.arch}`,
    ...extra,
  };
  return createHash("sha256").update(JSON.stringify(material)).digest("hex");
}

/**
 * The variables that make a task's Node processes resolve packages from `env`
 * after their own: `nodeOptions` is the task's NODE_OPTIONS otherwise.
 */
export function environmentVariables(env: PreparedEnvironment, nodeOptions: string | undefined, nodePath: string | undefined): Record<string, string> {
  const register = pathToFileURL(join(env.dir, REGISTER_FILE)).href;
  return {
    NODE_OPTIONS: [nodeOptions, `--import=${register}`].filter((s) => s).join(" "),
    NODE_PATH: [env.nodeModulesDir, nodePath].filter((s) => s).join(":"),
  };
}

/** Installs environments with npm; one cache per worker daemon (several daemons may share a root). */
export class EnvironmentCache {
  readonly root: string;
  private readonly npmCacheDir: string;
  private readonly offline: boolean;
  private readonly ignoreScripts: boolean;
  private readonly concurrency: number;
  private readonly npmCommand: readonly string[];
  private readonly building = new Map<string, Promise<void>>();
  /** Aborted by close(): stops waits and kills npm. */
  private readonly closing = new AbortController();
  private readonly slotWaiters: (() => void)[] = [];
  private activeBuilds = 0;
  private buildSerial = 0;
  private readonly countersValue: EnvironmentCacheCounters = { installs: 0, hits: 0, misses: 0, failures: 0 };

  constructor(options: EnvironmentCacheOptions) {
    if (typeof options.root !== "string" || options.root === "") throw new ValidationError("root", `must be a directory, got ${describeValue(options.root)}`);
    this.root = options.root;
    this.npmCacheDir = options.npmCacheDir ?? join(options.root, "npm-cache");
    this.offline = options.offline ?? false;
    this.ignoreScripts = options.ignoreScripts ?? false;
    this.concurrency = options.concurrency ?? 2;
    if (!Number.isInteger(this.concurrency) || this.concurrency < 1) throw new ValidationError("concurrency", `must be a positive integer, got ${describeValue(options.concurrency)}`);
    this.npmCommand = options.npmCommand ?? findNpm();
  }

  /** A copy of the counters. */
  get counters(): EnvironmentCacheCounters {
    return { ...this.countersValue };
  }

  /**
   * The environment the workspace (and `packages`) needs, built if missing;
   * undefined when it needs none. A failed build throws a FlusterError with
   * npm's error tail and leaves no environment behind (only its log).
   */
  async prepare(request: PrepareEnvironmentRequest): Promise<PreparedEnvironment | undefined> {
    const inputs = environmentInputs(request.workspaceDir, request.packages ?? []);
    if (!inputs) return undefined;
    const key = environmentKey(inputs, { fluster: FLUSTER_ROOT, ignoreScripts: this.ignoreScripts });
    const dir = join(this.root, key);
    const prepared = (built: boolean): PreparedEnvironment => ({ key, dir, nodeModulesDir: join(dir, "node_modules"), built });
    if (existsSync(dir)) {
      this.countersValue.hits++;
      return prepared(false);
    }
    this.countersValue.misses++;
    request.onBuilding?.();
    let build = this.building.get(key);
    if (!build) {
      build = this.buildOrWait(key, inputs).finally(() => this.building.delete(key));
      this.building.set(key, build);
    }
    await untilAborted(build, request.signal);
    return prepared(true);
  }

  /** Kills the builds in progress (their attempts fail) and stops waiting for other processes' builds. */
  async close(): Promise<void> {
    this.closing.abort();
    await Promise.allSettled([...this.building.values()]);
  }

  /** Builds `key` unless another process is building it, in which case waits for that build. */
  private async buildOrWait(key: string, inputs: EnvironmentInputs): Promise<void> {
    const dir = join(this.root, key);
    const lockPath = join(this.root, `${key}.lock`);
    await mkdir(this.root, { recursive: true });
    for (;;) {
      this.throwIfClosed();
      if (existsSync(dir)) return;
      if (takeLock(lockPath)) {
        try {
          if (existsSync(dir)) return;
          // Holding the lock, no one else builds this key: what builds of it left (a daemon killed mid-build) goes.
          for (const leftover of (await readdir(this.root)).filter((f) => f.startsWith(`.build-${key}-`))) {
            await rm(join(this.root, leftover), { recursive: true, force: true });
          }
          await this.withSlot(() => this.install(key, inputs));
          return;
        } finally {
          await unlink(lockPath).catch(() => undefined);
        }
      }
      // Another process builds it: wait for its result, or for its lock to go
      // (it failed, or died) and try ourselves. Nothing announces either.
      if (!lockHolderAlive(lockPath)) await unlink(lockPath).catch(() => undefined);
      else await sleep(LOCK_POLL_MS, this.closing.signal).catch(() => undefined);
    }
  }

  private async withSlot<T>(fn: () => Promise<T>): Promise<T> {
    while (this.activeBuilds >= this.concurrency) await new Promise<void>((wake) => this.slotWaiters.push(wake));
    this.activeBuilds++;
    try {
      return await fn();
    } finally {
      this.activeBuilds--;
      this.slotWaiters.shift()?.();
    }
  }

  private async install(key: string, inputs: EnvironmentInputs): Promise<void> {
    const build = join(this.root, `.build-${key}-${process.pid}-${this.buildSerial++}`);
    const logDir = join(this.root, "logs");
    await mkdir(logDir, { recursive: true });
    await rm(build, { recursive: true, force: true });
    await mkdir(build, { recursive: true });
    // Appended to: the log keeps every build of the key, each under its own header.
    const log = createWriteStream(join(logDir, `${key}.log`), { flags: "a" });
    log.write(`# build of environment ${key} by pid ${process.pid} at ${new Date().toISOString()}\n`);
    try {
      await writeFile(join(build, "package.json"), buildManifest(inputs.packageJson));
      if (inputs.lockfile) await writeFile(join(build, inputs.lockfile.name), inputs.lockfile.text);
      if (inputs.lockfile) await this.npm(key, build, log, ["ci"]);
      else if (declaresDependencies(inputs.packageJson)) await this.npm(key, build, log, ["install"]);
      else await mkdir(join(build, "node_modules")); // nothing to install: the environment only links fluster in
      if (inputs.packages.length > 0) await this.npm(key, build, log, ["install", "--no-save", ...inputs.packages]);
      await linkFluster(key, join(build, "node_modules"));
      await writeHooks(build);
      await writeFile(join(build, "env.json"), `${JSON.stringify({ key, packages: inputs.packages, lockfile: inputs.lockfile?.name ?? null, node: process.version, builtAt: new Date().toISOString() }, null, 2)}\n`);
      try {
        await rename(build, join(this.root, key));
      } catch (err) {
        // Someone else's build of the same key got there first (a lock taken over from a live holder): theirs stands.
        if (!existsSync(join(this.root, key))) throw err;
        await rm(build, { recursive: true, force: true });
      }
      this.countersValue.installs++;
    } catch (err) {
      this.countersValue.failures++;
      log.write(`\n${err instanceof Error ? err.message : String(err)}\n`);
      await rm(build, { recursive: true, force: true }).catch(() => undefined);
      throw err;
    } finally {
      await new Promise<void>((done) => log.end(done));
    }
  }

  /** Runs npm in `cwd`; rejects with npm's error tail when it fails. */
  private npm(key: string, cwd: string, log: WriteStream, args: readonly string[]): Promise<void> {
    this.throwIfClosed();
    const [program = "npm", ...lead] = this.npmCommand;
    const flags = ["--no-audit", "--no-fund", "--cache", this.npmCacheDir, this.offline ? "--offline" : "--prefer-offline", ...(this.ignoreScripts ? ["--ignore-scripts"] : [])];
    const argv = [...lead, ...args, ...flags];
    log.write(`$ npm ${[...args, ...flags].join(" ")}\n`);
    return new Promise((resolveRun, reject) => {
      // Detached: npm and the install scripts it starts form one group, killed together on close().
      const child = spawn(program, argv, { cwd, env: npmEnv(), detached: true, stdio: ["ignore", "pipe", "pipe"] });
      let stderr = "";
      child.stdout.on("data", (chunk: Buffer) => log.write(chunk));
      child.stderr.on("data", (chunk: Buffer) => {
        log.write(chunk);
        stderr = (stderr + chunk.toString("utf8")).slice(-16_384);
      });
      const onClose = () => {
        if (child.pid !== undefined) signalGroup(child.pid, "SIGKILL");
      };
      this.closing.signal.addEventListener("abort", onClose, { once: true });
      child.once("error", (err) => {
        this.closing.signal.removeEventListener("abort", onClose);
        reject(new FlusterError(`installing the job's dependencies failed: cannot run npm (${this.npmCommand.join(" ")}): ${err.message} (environment ${key})`, "failed_precondition", { cause: err }));
      });
      child.once("close", (code, signal) => {
        this.closing.signal.removeEventListener("abort", onClose);
        if (code === 0) return resolveRun();
        if (this.closing.signal.aborted) return reject(new FlusterError(`installing the job's dependencies was stopped: the worker is shutting down (environment ${key})`, "cancelled"));
        const how = code !== null ? `exited ${code}` : `was killed by ${signal ?? "a signal"}`;
        const tail = stderr.trimEnd().split("\n").slice(-ERROR_TAIL_LINES).join("\n");
        reject(new FlusterError(`installing the job's dependencies failed (npm ${args[0]} ${how}; environment ${key}):\n${tail}`, "failed_precondition"));
      });
    });
  }

  private throwIfClosed(): void {
    if (this.closing.signal.aborted) throw new FlusterError("the environment cache is closed: the worker is shutting down", "cancelled");
  }
}

// ---------------------------------------------------------------- helpers

const REGISTER_FILE = "register.mjs";
const RESOLVE_FILE = "resolve.mjs";

/** The fluster package this code runs from (src/ or dist/ below it). */
const FLUSTER_ROOT = findPackageRoot(dirname(fileURLToPath(import.meta.url)));

function findPackageRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const manifest = parseJsonObject(readOptional(join(dir, "package.json")) ?? "");
    if (manifest?.name === "fluster") return dir;
    if (dirname(dir) === dir) throw new FlusterError(`cannot find the fluster package above ${from}`, "internal");
  }
}

const FLUSTER_VERSION = String(parseJsonObject(readFileSync(join(FLUSTER_ROOT, "package.json"), "utf8"))?.version ?? "");

/**
 * The package.json the build installs from: the workspace's without its
 * scripts (npm would run its install/prepare scripts, whose files are not
 * in the build directory), or an empty project for `packages` alone.
 */
function buildManifest(packageJson: string | undefined): string {
  const manifest = packageJson === undefined ? { name: "fluster-environment", private: true } : parseJsonObject(packageJson);
  if (!manifest) return packageJson ?? ""; // npm says what is wrong with it
  const { scripts: _scripts, ...rest } = manifest;
  return `${JSON.stringify(rest, null, 2)}\n`;
}

/** Links the worker's fluster as `fluster` unless the install brought one, which must be the same version. */
async function linkFluster(key: string, nodeModules: string): Promise<void> {
  const target = join(nodeModules, "fluster");
  const installed = parseJsonObject(readOptional(join(target, "package.json")) ?? "");
  if (installed) {
    if (installed.version === FLUSTER_VERSION) return;
    throw new FlusterError(
      `the job's dependencies pin fluster ${String(installed.version)} but this worker runs fluster ${FLUSTER_VERSION}: ` +
        `depend on fluster ${FLUSTER_VERSION}, or leave fluster out and the worker provides its own (environment ${key})`,
      "failed_precondition",
    );
  }
  await mkdir(nodeModules, { recursive: true });
  await rm(target, { recursive: true, force: true });
  await symlink(realpathSync(FLUSTER_ROOT), target, "dir");
}

/**
 * The resolve hooks, as plain JavaScript so that any Node process loads them:
 * register.mjs registers resolve.mjs with the environment's directory.
 */
async function writeHooks(dir: string): Promise<void> {
  const resolveHook = `// Written by the fluster worker: resolves a bare specifier the normal lookup misses from this environment.
let base;
export function initialize(data) { base = data.base; }
const BARE = /^(?![./]|[a-zA-Z][a-zA-Z0-9+.-]*:)/;
export async function resolve(specifier, context, next) {
  try {
    return await next(specifier, context);
  } catch (err) {
    if (err?.code !== "ERR_MODULE_NOT_FOUND" || !BARE.test(specifier) || context.parentURL?.startsWith(base)) throw err;
    return next(specifier, { ...context, parentURL: base + "environment.mjs" });
  }
}
`;
  // The environment is renamed into place after this is written, so the base comes from where register.mjs is.
  const register = `// Written by the fluster worker: loaded with --import in a task that uses this environment.
import { register } from "node:module";
register("./${RESOLVE_FILE}", import.meta.url, { data: { base: new URL("./", import.meta.url).href } });
`;
  await writeFile(join(dir, RESOLVE_FILE), resolveHook);
  await writeFile(join(dir, REGISTER_FILE), register);
}

/** npm for this node: npm-cli.js beside process.execPath (run with this node), else `npm` on PATH. */
function findNpm(): readonly string[] {
  const binDir = dirname(process.execPath);
  for (const cli of [join(binDir, "..", "lib", "node_modules", "npm", "bin", "npm-cli.js"), join(binDir, "node_modules", "npm", "bin", "npm-cli.js")]) {
    if (existsSync(cli)) return [process.execPath, cli];
  }
  return ["npm"];
}

/** The daemon's environment for npm, without what an outer npm (`npm test`) set for its own scripts; this node first on PATH. */
function npmEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!/^npm_/i.test(name) && name !== "INIT_CWD" && name !== "NODE_OPTIONS") env[name] = value;
  }
  env.PATH = [dirname(process.execPath), process.env.PATH].filter((s) => s).join(":");
  return env;
}

/** Takes the build lock (O_EXCL); false when another process holds it. */
function takeLock(path: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, "wx");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw err;
  }
  try {
    writeSync(fd, `${process.pid}\n`);
  } finally {
    closeSync(fd);
  }
  return true;
}

/** Whether the process named in a lock file lives; a lock being written (empty) counts as alive. */
function lockHolderAlive(path: string): boolean {
  const text = readOptional(path);
  if (text === undefined) return false;
  const pid = Number.parseInt(text, 10);
  if (!Number.isInteger(pid) || pid <= 0) return text === "";
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(FlusterError.from(signal.reason));
  return new Promise((resolveWait, reject) => {
    const onAbort = () => reject(FlusterError.from(signal.reason));
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolveWait(value);
      },
      (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(err);
      },
    );
  });
}

function readOptional(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

/** Whether a package.json (text) declares any dependency; one that does not parse does (npm will say what is wrong). */
function declaresDependencies(packageJson: string | undefined): boolean {
  if (packageJson === undefined) return false;
  const parsed = parseJsonObject(packageJson);
  if (!parsed) return true;
  return DEPENDENCY_FIELDS.some((field) => {
    const value = parsed[field];
    return typeof value !== "object" || value === null ? value !== undefined : Object.keys(value).length > 0;
  });
}

function parseJsonObject(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** For tests: the fluster package root and version the cache links into environments. */
export const workerFluster: { readonly root: string; readonly version: string } = Object.freeze({ root: FLUSTER_ROOT, version: FLUSTER_VERSION });
