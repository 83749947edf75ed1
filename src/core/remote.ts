// Remote functions: TypeScript functions cannot be serialised, so a function
// travels as a reference (defining module URL + name) that another process imports and calls.
import { AsyncLocalStorage } from "node:async_hooks";
import { realpathSync, statSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { isMainThread } from "node:worker_threads";
import { ERROR_BRAND, FlusterError, ValidationError, describeValue } from "./errors.js";

/** Where a remote function lives: enough for another process to import and call it. */
export interface RemoteRef {
  /** The defining module's file URL, as `import.meta.url` gives it (query and hash dropped). */
  readonly module: string;
  /** The function's own name (`function square() {}` → `"square"`). */
  readonly name: string;
}

// Symbol.for, not Symbol(): a worker can load two copies of fluster (the daemon's
// and the job workspace's), and functions marked by one must be recognised by the other.
const REMOTE_BRAND: unique symbol = Symbol.for("fluster.remoteFunction");
const REGISTRY_KEY = Symbol.for("fluster.remoteRegistry.v1");
const IMPORTING_KEY = Symbol.for("fluster.importingByReference.v1");

/**
 * A function marked with {@link remote}. Calling it runs the function in this
 * process (a sync function stays sync); `ref` says where another process finds it.
 *
 * The defaults (`never` arguments) make the bare `RemoteFunction` mean "any remote
 * function", to which every `RemoteFunction<A, R>` is assignable.
 */
export type RemoteFunction<A extends unknown[] = never, R = unknown> = ((...args: A) => R) & {
  readonly ref: RemoteRef;
  readonly [REMOTE_BRAND]: true;
};

/** A function the registry holds; its argument types are known only to its author. */
type AnyRemoteFunction = RemoteFunction<unknown[], unknown>;

/** Source text kept to tell a module evaluated twice from two functions sharing a name. */
interface RegistryEntry {
  readonly fn: AnyRemoteFunction;
  readonly source: string;
}

/** Module URL → function name → entry, shared by every copy of fluster in the process. */
type Registry = Map<string, Map<string, RegistryEntry>>;

function registry(): Registry {
  const holder = globalThis as { [REGISTRY_KEY]?: Registry };
  return (holder[REGISTRY_KEY] ??= new Map());
}

/**
 * The reference whose module is being imported, for code that module runs
 * while it loads (its top level, and whatever that starts). One store for
 * every copy of fluster in the process, like the registry.
 */
function importingStore(): AsyncLocalStorage<RemoteRef> {
  const holder = globalThis as { [IMPORTING_KEY]?: AsyncLocalStorage<RemoteRef> };
  return (holder[IMPORTING_KEY] ??= new AsyncLocalStorage());
}

/**
 * A reference could not be turned into a function: its module failed to import,
 * or the module defines no remote function of that name.
 */
export class RemoteResolutionError extends FlusterError {
  static override readonly [ERROR_BRAND]: string = "fluster.RemoteResolutionError";
  override name = "RemoteResolutionError";
  /** The reference as it was looked up (after any rebase). */
  readonly ref: RemoteRef;

  constructor(ref: RemoteRef, message: string, options?: ErrorOptions) {
    super(message, "not_found", options);
    this.ref = ref;
  }
}

/**
 * Marks `fn` as callable from other processes. Pass the defining module's
 * `import.meta.url` and a named function:
 *
 * ```ts
 * export const square = remote(import.meta.url, function square(x: number) { return x * x; });
 * ```
 *
 * The name is the lookup key on the other side, so it must be non-empty and
 * unique within the module. Call `remote()` at module level: a worker finds the
 * function by importing the module, which only re-runs module-level code.
 */
export function remote<C extends new (...args: never[]) => object>(moduleUrl: string, cls: C): RemoteClass<C>;
export function remote<A extends unknown[], R>(moduleUrl: string, fn: (...args: A) => R): RemoteFunction<A, R>;
export function remote(moduleUrl: string, fn: unknown): unknown {
  if (typeof fn === "function" && isClass(fn)) return remoteClass(moduleUrl, fn as new (...args: never[]) => object);
  return remoteFunction(moduleUrl, fn as (...args: unknown[]) => unknown);
}

function remoteFunction<A extends unknown[], R>(moduleUrl: string, fn: (...args: A) => R): RemoteFunction<A, R> {
  const module = normaliseModuleUrl(moduleUrl, "moduleUrl");
  validateFunction(fn);
  const name = fn.name;
  const ref: RemoteRef = Object.freeze({ module, name });

  // A wrapper rather than the user's own object: marking must not mutate what the user passed.
  const wrapper = function (this: unknown, ...args: A): R {
    return fn.apply(this, args);
  };
  Object.defineProperties(wrapper, {
    name: { value: name },
    length: { value: fn.length },
    ref: { value: ref, enumerable: true },
    [REMOTE_BRAND]: { value: true },
  });
  const marked = wrapper as RemoteFunction<A, R>;

  return register(module, name, Function.prototype.toString.call(fn), marked as unknown as AnyRemoteFunction) as unknown as RemoteFunction<A, R>;
}

/**
 * A class marked with {@link remote}: constructible as usual, and its `ref`
 * lets another process construct it (e.g. to host it as an actor).
 */
export type RemoteClass<C extends new (...args: never[]) => object = new (...args: never[]) => object> = C & {
  readonly ref: RemoteRef;
  readonly [REMOTE_CLASS_BRAND]: true;
};

const REMOTE_CLASS_BRAND: unique symbol = Symbol.for("fluster.remoteClass");

function remoteClass<C extends new (...args: never[]) => object>(moduleUrl: string, cls: C): RemoteClass<C> {
  const module = normaliseModuleUrl(moduleUrl, "moduleUrl");
  const name = cls.name;
  if (typeof name !== "string" || name === "") {
    throw new ValidationError("cls", "must be a named class (`class Counter {...}`): its name is how other processes find it");
  }
  // A subclass rather than the user's own class, so marking does not mutate it;
  // instances are still instances of the original.
  const marked = { [name]: class extends (cls as unknown as new (...args: unknown[]) => object) {} }[name] as unknown as C;
  Object.defineProperties(marked, {
    ref: { value: Object.freeze({ module, name }), enumerable: true },
    [REMOTE_CLASS_BRAND]: { value: true },
  });
  return register(module, name, Function.prototype.toString.call(cls), marked as unknown as AnyRemoteFunction) as unknown as RemoteClass<C>;
}

/** Whether `value` is a class marked with {@link remote}. */
export function isRemoteClass(value: unknown): value is RemoteClass {
  return typeof value === "function" && (value as Partial<Record<typeof REMOTE_CLASS_BRAND, unknown>>)[REMOTE_CLASS_BRAND] === true;
}

function isClass(fn: unknown): boolean {
  return typeof fn === "function" && /^class\b/.test(Function.prototype.toString.call(fn));
}

/** Adds a marked function or class to the process-wide registry (idempotent when a module is evaluated again). */
function register(module: string, name: string, source: string, marked: AnyRemoteFunction): AnyRemoteFunction {
  const byName = registry().get(module) ?? new Map<string, RegistryEntry>();
  const existing = byName.get(name);
  if (existing !== undefined && existing.source !== source) {
    throw new ValidationError(
      "fn",
      `is a second remote function named "${name}" in ${module}; remote function names must be unique within a module`,
    );
  }
  // Same name and same source: the module was evaluated again (e.g. under another
  // query string); the first definition stays so earlier lookups remain valid.
  if (existing !== undefined) return existing.fn;
  byName.set(name, { fn: marked, source });
  registry().set(module, byName);
  return marked;
}

/** Whether `value` was made by {@link remote} (in this or another copy of fluster). */
export function isRemoteFunction(value: unknown): value is RemoteFunction {
  return typeof value === "function" && (value as Partial<Record<typeof REMOTE_BRAND, unknown>>)[REMOTE_BRAND] === true;
}

/** The reference another process needs to call `fn`. */
export function remoteRef(fn: unknown): RemoteRef {
  if (!isRemoteFunction(fn)) {
    throw new ValidationError(
      "fn",
      `must be a remote function: wrap it as \`export const f = remote(import.meta.url, function f() {...})\`, got ${describeValue(fn)}`,
    );
  }
  return fn.ref;
}

/** Options of {@link resolveRemote}. */
export interface ResolveRemoteOptions {
  /**
   * Rewrites the start of the reference's module URL before importing it: a job's
   * workspace can sit at another path on a worker than on the machine that
   * launched it. `from` and `to` are directories (file URLs or absolute paths);
   * only whole path segments match, and a module outside `from` is imported as is.
   * @default from `FLUSTER_WORKSPACE_ORIGIN` to `FLUSTER_WORKSPACE` when both are
   * set, as a worker sets them for a job that runs in a workspace bundle: the
   * client's workspace root and the worker's copy of it. Otherwise none.
   */
  rebase?: { from: string; to: string };
}

/**
 * Imports `ref.module` and returns its remote function `ref.name`. Works for
 * `.js`/`.mjs` modules, and for `.ts`/`.mts` ones when the process runs with
 * tsx's loader (`node --import tsx`), as every Fluster process does.
 *
 * Functions marked with `remote()` at module level resolve even when not
 * exported; an exported remote function whose export name or ref name matches
 * resolves too (e.g. a module reached through a symlinked path).
 *
 * @throws RemoteResolutionError when the module fails to import or lacks the function.
 */
export async function resolveRemote(ref: RemoteRef, options: ResolveRemoteOptions = {}): Promise<RemoteFunction<unknown[], unknown>> {
  const requested = validateRef(ref);
  const rebase = options.rebase ?? workspaceRebase();
  const rebased = rebase ? rebaseModuleUrl(requested.module, rebase) : requested.module;
  const target: RemoteRef = Object.freeze({ module: ownPackageModule(rebased) ?? rebased, name: requested.name });
  const what = `remote function "${target.name}" from module ${target.module}`;

  let namespace: Record<string, unknown>;
  try {
    namespace = (await importingStore().run(target, () => import(target.module))) as Record<string, unknown>;
  } catch (err) {
    // The module started a program while it loaded: that error already says what to do.
    if (err instanceof ProgramOnImportError) throw err;
    const cause = err instanceof Error ? err : new Error(String(err));
    const hint =
      (cause as NodeJS.ErrnoException).code === "ERR_UNKNOWN_FILE_EXTENSION"
        ? " (TypeScript modules need tsx's loader: run node with --import tsx)"
        : "";
    throw new RemoteResolutionError(target, `cannot resolve ${what}: importing the module failed: ${cause.message}${hint}`, {
      cause,
    });
  }

  // Node keys modules by real path, so a module imported through a symlink registered under its real URL.
  const registered = [target.module, realModuleUrl(target.module)].map((url) => registry().get(url));
  for (const byName of registered) {
    const found = byName?.get(target.name);
    if (found !== undefined) return found.fn;
  }
  const exported = Object.entries(namespace).filter((entry): entry is [string, AnyRemoteFunction] =>
    isRemoteFunction(entry[1]),
  );
  const byExport = exported.find(([key, fn]) => key === target.name || fn.ref.name === target.name);
  if (byExport !== undefined) return byExport[1];

  const available = new Set<string>();
  for (const byName of registered) for (const name of byName?.keys() ?? []) available.add(name);
  for (const [, fn] of exported) available.add(fn.ref.name);
  const listing =
    available.size > 0
      ? `it defines: ${[...available].sort().join(", ")}`
      : "it defines no remote functions (mark one with remote(import.meta.url, function name() {...}))";
  throw new RemoteResolutionError(target, `cannot resolve ${what}: the module has no remote function "${target.name}"; ${listing}`);
}

/**
 * The reference whose module this code runs inside the import of: set while
 * {@link resolveRemote} imports a module (a worker thread or process finding
 * a task, an actor class or a pipeline by reference) for the code the
 * module runs as it loads; `undefined` everywhere else, the program's own
 * entry module included.
 */
export function importingByReference(): RemoteRef | undefined {
  return importingStore().getStore();
}

/**
 * A module imported by reference started a program as it loaded (a job
 * context, a LocalCluster, a pipeline run). Every worker imports that module
 * to find what it defines, so the program would start again in each of
 * them, and again in the workers those start, without end.
 */
export class ProgramOnImportError extends FlusterError {
  static override readonly [ERROR_BRAND]: string = "fluster.ProgramOnImportError";
  override name = "ProgramOnImportError";
  /** The reference whose module was being imported. */
  readonly ref: RemoteRef;

  constructor(ref: RemoteRef, what: string) {
    const where = isMainThread ? "process" : "worker thread";
    super(
      `${what} while this ${where} was importing ${displayModule(ref.module)} to find "${ref.name}" by reference. ` +
        "Workers import the module that defines a remote function, class or pipeline, so the code at the top of that module runs again in each of them, " +
        "and this would start again in every worker, without end. Run the program only when the module is the entry point:\n\n" +
        '  import { isMain } from "fluster";\n\n' +
        "  if (isMain(import.meta)) {\n" +
        "    // … what creates job contexts, clusters and pipelines, runs tasks, awaits results\n" +
        "  }\n\n" +
        "or move the program to a module of its own (a main.ts that imports this one).",
      "failed_precondition",
    );
    this.ref = ref;
  }
}

/**
 * Throws a {@link ProgramOnImportError} when called while a module is being
 * imported by reference; `what` starts its message, e.g. `createJobContext("threads") was called`.
 */
export function refuseWhileImportingByReference(what: string): void {
  const ref = importingByReference();
  if (ref !== undefined) throw new ProgramOnImportError(ref, what);
}

function displayModule(moduleUrl: string): string {
  try {
    return fileURLToPath(moduleUrl);
  } catch {
    return moduleUrl;
  }
}

/**
 * Whether the module owning `meta` is the program this process was started
 * with, so a module can hold both remote functions and a program that uses
 * them, and a worker importing it does not run the program:
 *
 * ```ts
 * if (isMain(import.meta)) await main();
 * ```
 *
 * Always false in worker threads: their `process.argv` repeats the main
 * thread's, yet they never run the program.
 */
export function isMain(meta: ImportMeta): boolean {
  const entry = process.argv[1];
  if (!isMainThread || entry === undefined || entry === "" || !meta.url.startsWith("file:")) return false;
  let modulePath: string;
  try {
    modulePath = realPath(fileURLToPath(meta.url));
  } catch {
    return false;
  }
  return entryCandidates(resolve(entry)).some((candidate) => realPath(candidate) === modulePath);
}

// Node and tsx accept the entry file without its extension (`tsx tasks`), so try the ones they would.
const ENTRY_EXTENSIONS = [".ts", ".mts", ".cts", ".tsx", ".js", ".mjs", ".cjs", ".jsx"];

function entryCandidates(entry: string): string[] {
  if (isFile(entry)) return [entry];
  const files = ENTRY_EXTENSIONS.map((ext) => entry + ext).filter(isFile);
  if (files.length > 0) return files;
  return ENTRY_EXTENSIONS.map((ext) => join(entry, `index${ext}`)).filter(isFile);
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function realPath(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

function realModuleUrl(moduleUrl: string): string {
  return pathToFileURL(realPath(fileURLToPath(moduleUrl))).href;
}

/** Canonical file URL for a module: `file:` URLs and absolute paths, without query or hash. */
function normaliseModuleUrl(value: unknown, field: string): string {
  const expected = "must be a file: URL (pass import.meta.url) or an absolute path";
  if (typeof value !== "string" || value === "") throw new ValidationError(field, `${expected}, got ${describeValue(value)}`);
  if (isAbsolute(value) && !value.startsWith("file:")) return pathToFileURL(value).href;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ValidationError(field, `${expected}, got ${describeValue(value)}`);
  }
  if (url.protocol !== "file:") throw new ValidationError(field, `${expected}, got ${describeValue(value)}`);
  url.search = "";
  url.hash = "";
  try {
    // Round-trip through a path so equivalent spellings (%-escapes, host "localhost") compare equal.
    return pathToFileURL(fileURLToPath(url)).href;
  } catch (err) {
    throw new ValidationError(field, `${expected}, got ${describeValue(value)}: ${(err as Error).message}`);
  }
}

function validateFunction(fn: unknown): asserts fn is (...args: never) => unknown {
  if (typeof fn !== "function") {
    throw new ValidationError("fn", `must be a function, got ${describeValue(fn)}`);
  }
  if (/^class\b/.test(Function.prototype.toString.call(fn))) {
    throw new ValidationError("fn", `must be a function, got class ${fn.name || "(anonymous)"}`);
  }
  if (typeof fn.name !== "string" || fn.name === "") {
    throw new ValidationError(
      "fn",
      "must have a name, which is how other processes find it: use a named `function name() {}` instead of an anonymous function",
    );
  }
}

function validateRef(ref: unknown): RemoteRef {
  if (ref === null || typeof ref !== "object") {
    throw new ValidationError("ref", `must be { module, name }, got ${describeValue(ref)}`);
  }
  const { module, name } = ref as Partial<Record<keyof RemoteRef, unknown>>;
  if (typeof name !== "string" || name === "") {
    throw new ValidationError("ref.name", `must be a non-empty string, got ${describeValue(name)}`);
  }
  return { module: normaliseModuleUrl(module, "ref.module"), name };
}

function rebaseModuleUrl(moduleUrl: string, rebase: unknown): string {
  if (rebase === null || typeof rebase !== "object") {
    throw new ValidationError("rebase", `must be { from, to }, got ${describeValue(rebase)}`);
  }
  const { from: rawFrom, to: rawTo } = rebase as Partial<Record<"from" | "to", unknown>>;
  const from = asDirectoryUrl(normaliseModuleUrl(rawFrom, "rebase.from"));
  const to = asDirectoryUrl(normaliseModuleUrl(rawTo, "rebase.to"));
  return moduleUrl.startsWith(from) ? to + moduleUrl.slice(from.length) : moduleUrl;
}

/** This fluster package's root (this module is `src/core/remote.ts` or `dist/core/remote.js` in it). */
const OWN_PACKAGE_ROOT = fileURLToPath(new URL("../../", import.meta.url));
const RUNS_FROM_SOURCE = import.meta.url.endsWith(".ts");

/**
 * Fluster's own remote functions (WorkerPool's executor, Zephyr's shard
 * runner, the actor and task hosts) are referenced at the client's install of
 * fluster, which a worker on another machine or in a container has at
 * another path, or not at all. A module that is not here, whose path ends
 * like one of this install's modules (`…/src/pool/executor.ts`,
 * `…/dist/pool/executor.js`), is imported from this install; the function
 * must still be registered there under its name. Undefined otherwise.
 */
function ownPackageModule(moduleUrl: string): string | undefined {
  if (!moduleUrl.startsWith("file:")) return undefined;
  const path = fileURLToPath(moduleUrl);
  try {
    statSync(path);
    return undefined; // it is here: import it as it is
  } catch {
    // not on this machine: maybe one of fluster's own modules
  }
  for (const match of path.matchAll(/[\\/](?:src|dist)[\\/]/g)) {
    const relative = path.slice((match.index ?? 0) + match[0].length).replace(/\.(?:ts|mts|js|mjs)$/, "");
    const built = join(OWN_PACKAGE_ROOT, "dist", `${relative}.js`);
    const source = join(OWN_PACKAGE_ROOT, "src", `${relative}.ts`);
    // The flavour this process runs (a checkout's tests run src/ through tsx), so the function is the one it already loaded.
    for (const candidate of RUNS_FROM_SOURCE ? [source, built] : [built, source]) {
      try {
        if (statSync(candidate).isFile()) return pathToFileURL(candidate).href;
      } catch {
        // not this one
      }
    }
  }
  return undefined;
}

/** Inside a job that runs in a bundle: the client's workspace root → this worker's copy. */
function workspaceRebase(): { from: string; to: string } | undefined {
  const from = process.env.FLUSTER_WORKSPACE_ORIGIN;
  const to = process.env.FLUSTER_WORKSPACE;
  return from && to && from !== to ? { from, to } : undefined;
}

// A trailing slash makes the prefix match whole segments: /ws must not rebase /ws2/x.ts.
function asDirectoryUrl(url: string): string {
  return url.endsWith("/") ? url : `${url}/`;
}
