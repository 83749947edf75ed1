// The JobContext facade (seeds 000–002): one API to run tasks, wait for them,
// pass values and create actors, whether inline (sync), on worker threads
// (threads) or on a Fluster cluster (cluster).
import { AsyncLocalStorage } from "node:async_hooks";
import { randomUUID } from "node:crypto";
import { FlusterError, ValidationError, describeValue } from "../core/errors.js";
import type { RemoteFunction } from "../core/remote.js";
import { ResourceConfig, type ResourceConfigInit } from "../core/resources.js";
import { checkInteger, checkNonNegative } from "../core/validate.js";
import { abortable, checkSignal, onAbort } from "../core/abort.js";
import type { ActorProxy } from "../actor/pool.js";

export type JobContextKind = "sync" | "threads" | "cluster";

/** A task's eventual result: await it, or pass it to `get`/`wait`, or as an argument to another task. */
export class TaskFuture<T> implements PromiseLike<T> {
  readonly id = randomUUID();
  private settled = false;
  private readonly promise: Promise<T>;

  constructor(promise: Promise<T>) {
    this.promise = promise.finally(() => {
      this.settled = true;
    });
    // Failures surface where the future is awaited, not as unhandled rejections.
    this.promise.catch(() => undefined);
  }

  /** True once the task has finished (successfully or not). */
  done(): boolean {
    return this.settled;
  }

  then<A = T, B = never>(onFulfilled?: ((value: T) => A | PromiseLike<A>) | null, onRejected?: ((reason: unknown) => B | PromiseLike<B>) | null): Promise<A | B> {
    return this.promise.then(onFulfilled, onRejected);
  }
}

/**
 * A value handed to `put`. Passed as an argument to `run`, it arrives as the
 * value itself. Values stay in memory (an inline reference); storage-backed
 * references for large data belong to Zephyr's storage-first execution.
 */
export class ObjectRef<T> {
  readonly id = randomUUID();
  constructor(readonly value: T) {}
}

/** A handle to an actor: its methods return promises. */
export type ActorHandle<T> = ActorProxy<T>;

export interface CreateActorOptions {
  /** Register the actor under this name (unique in the context). @default a generated name */
  name?: string;
  /**
   * With `name`: return the existing actor of that name instead of failing.
   * On `cluster` that is an actor registered under the name in the
   * cluster's namespace, or one whose job (`actor/<name>`) is alive but has
   * no endpoint at the moment (it is starting, or restarting after a
   * failure): createActor waits for it to come up, as for a fresh one, and
   * launches nothing. Only when no such job and no endpoint exist is a new
   * actor started; one whose job has ended (its restarts spent, or stopped)
   * is replaced by a fresh one. @default false
   */
  getIfExists?: boolean;
  /**
   * On `cluster`: how many times the actor's job starts it again after its
   * process fails (exits non-zero, throws, is killed by a signal such as
   * SIGKILL or the OOM killer), and, counted apart, after its worker is lost
   * or preempted. The job's `maxRetriesFailure` and `maxRetriesPreemption`
   * are both set to it. A restarted actor runs its constructor again with the
   * same `args` under the same name: its state is not kept. Handles keep
   * working across a restart (they find the actor by name), but a call in
   * flight when the process died fails, and calls made while no endpoint is
   * up may fail. Once the budget is spent the job ends `failed` and stays so.
   * An actor whose very first start fails (its module or constructor
   * throws) is not restarted: createActor rejects with that error at once.
   * `0`: never restart. `sync` and `threads` keep actors in this process,
   * which cannot fail apart from it: they check the value and ignore it.
   * @default 3
   */
  maxRestarts?: number;
  /**
   * Resources of the job that hosts the actor on `cluster` (`replicas` must
   * be 1). `sync` and `threads` keep actors in this process: they check the
   * value and ignore it. @default the cluster context's `actorResources`
   */
  resources?: ResourceConfig | ResourceConfigInit;
}

/** Options of the tasks and actors of a {@link JobContext.withOptions} view. */
export interface TaskOptions {
  /**
   * Resources of each task (and actor) started through the view. On
   * `cluster` such a task runs as a function job of its own with these
   * resources, not on the context's task pool; `replicas` must be 1. `sync`
   * and `threads` run everything in this process: they check the value and
   * ignore it. @default the context's task pool
   */
  resources?: ResourceConfig | ResourceConfigInit;
  /**
   * Cancels each task run through the view when it aborts: its future
   * rejects at once with `signal.reason` (an already-aborted signal starts
   * nothing), and the task is stopped where it runs — `sync`: its
   * `taskSignal()` aborts (inline code cannot be stopped otherwise);
   * `threads`: a queued task is dropped, a running one's thread is
   * terminated; `cluster`: a pool task is cancelled on its worker (its
   * `taskSignal()` aborts; see `WorkerPool`), a task with resources of its
   * own has its job terminated (it ends `killed`). It applies to `run`
   * only: `createActor` ignores it. @default none
   */
  signal?: AbortSignal;
}

/** Options of {@link JobContext.get}. */
export interface GetOptions {
  /** Stops waiting when it aborts: rejects with `signal.reason`; the tasks run on (cancel them with `withOptions({ signal })`). @default none */
  signal?: AbortSignal;
}

/** `run` and `createActor` of a context with {@link TaskOptions} applied: what `ctx.withOptions(...)` returns. */
export interface JobContextWithOptions {
  /** As {@link JobContext.run}, with the view's options. */
  run<A extends unknown[], R>(fn: RemoteFunction<A, R>, ...args: { [K in keyof A]: Arg<A[K]> }): TaskFuture<Awaited<R>>;
  /** As {@link JobContext.createActor}; the view's resources apply unless `options.resources` says otherwise. */
  createActor<C extends new (...args: never[]) => object>(cls: C, args: ConstructorParameters<C>, options?: CreateActorOptions): Promise<ActorHandle<InstanceType<C>>>;
}

/** Task options once checked: resources built (and validated) once. */
export interface CompiledTaskOptions {
  readonly resources?: ResourceConfig;
  readonly signal?: AbortSignal;
}

const TASK_OPTION_KEYS = ["resources", "signal"] as const;

/**
 * Checks the resources of one task or actor; throws a ValidationError naming
 * the field (`resources.cpu`). One task runs once, so `replicas` must be 1.
 */
export function compileTaskResources(resources: ResourceConfig | ResourceConfigInit | undefined, field = "resources"): ResourceConfig | undefined {
  if (resources === undefined) return undefined;
  const config = resources instanceof ResourceConfig ? resources : new ResourceConfig(resources, field);
  if (config.replicas !== 1) {
    throw new ValidationError(`${field}.replicas`, `must be 1: a task or an actor runs once (launch a job with cluster.launch for several replicas), got ${config.replicas}`);
  }
  return config;
}

/** Checks {@link TaskOptions}: an object of known keys with valid resources. */
export function compileTaskOptions(options: TaskOptions): CompiledTaskOptions {
  if (options === null || typeof options !== "object") throw new ValidationError("options", `must be an object like { resources: { cpu: 2 } }, got ${describeValue(options)}`);
  for (const key of Object.keys(options)) {
    if (!(TASK_OPTION_KEYS as readonly string[]).includes(key)) throw new ValidationError(`options.${key}`, `is not a task option (known: ${TASK_OPTION_KEYS.join(", ")})`);
  }
  const resources = compileTaskResources(options.resources);
  const signal = checkSignal(options.signal, "options.signal");
  return { ...(resources ? { resources } : {}), ...(signal ? { signal } : {}) };
}

export interface WaitOptions {
  /** Return once this many futures are done. @default 1 */
  numReturns?: number;
  /** Return what is done after this long, even if fewer than `numReturns`. @default no limit */
  timeoutSeconds?: number;
  /** Stops waiting when it aborts: rejects with `signal.reason`; the tasks run on. @default none */
  signal?: AbortSignal;
}

export interface CloseOptions {
  /**
   * How long close() waits for tasks still in flight (awaited or not) before
   * it cancels them. @default 30
   */
  timeoutSeconds?: number;
}

const DEFAULT_CLOSE_TIMEOUT_SECONDS = 30;

type Unwrap<T> = T extends TaskFuture<infer V> ? V : T extends ObjectRef<infer V> ? V : T;
type Arg<T> = T | TaskFuture<T> | ObjectRef<T>;

/** Runs tasks and actors somewhere; see {@link createJobContext}. */
export interface JobContext {
  readonly kind: JobContextKind;
  /**
   * Runs `fn(...args)` as a task. Futures and refs among the arguments are
   * resolved first. To make it cancellable, run it through
   * `withOptions({ signal })` (see {@link TaskOptions.signal}).
   */
  run<A extends unknown[], R>(fn: RemoteFunction<A, R>, ...args: { [K in keyof A]: Arg<A[K]> }): TaskFuture<Awaited<R>>;
  /**
   * The value of a future or ref, or of each in an array. `options.signal`
   * stops the wait (rejecting with its reason), not the tasks.
   */
  get<T>(ref: TaskFuture<T> | ObjectRef<T>, options?: GetOptions): Promise<T>;
  get<T extends readonly unknown[]>(refs: T, options?: GetOptions): Promise<{ [K in keyof T]: Unwrap<T[K]> }>;
  /**
   * Waits until `numReturns` futures are done (or the timeout). `done` holds at
   * most `numReturns` of them, in completion order (as Ray's `wait`), and
   * `pending` the rest, in the given order, finished or not. `options.signal`
   * stops the wait (rejecting with its reason), not the tasks.
   */
  wait<T>(futures: readonly TaskFuture<T>[], options?: WaitOptions): Promise<{ done: TaskFuture<T>[]; pending: TaskFuture<T>[] }>;
  /** A reference to `value` that tasks receive as the value itself. */
  put<T>(value: T): ObjectRef<T>;
  /** Creates an actor from `cls` and `args`; on `cluster` the class must be marked with `remote()`. */
  createActor<C extends new (...args: never[]) => object>(cls: C, args: ConstructorParameters<C>, options?: CreateActorOptions): Promise<ActorHandle<InstanceType<C>>>;
  /**
   * `run` and `createActor` with per-call options, as Ray's `f.options(...)`
   * (`run` takes the task's arguments as rest parameters, so options cannot
   * follow them): `ctx.withOptions({ resources: { cpu: 2 } }).run(f, x)`;
   * a cancellable task: `ctx.withOptions({ signal }).run(f, x)` (see
   * {@link TaskOptions.signal}). The options are checked here, once: a
   * ValidationError names a bad field.
   */
  withOptions(options: TaskOptions): JobContextWithOptions;
  /**
   * Closes the context: it takes no more tasks (`run` and `createActor`
   * throw), waits up to `timeoutSeconds` (default 30) for the tasks still in
   * flight, whose futures settle with their results as usual, then cancels
   * the rest: their futures reject with a FlusterError of code `cancelled`
   * (a rejection nobody awaits is not an unhandled rejection). Then it
   * releases the threads, task pool and actor jobs it started. Calling it
   * again returns the same promise.
   */
  close(options?: CloseOptions): Promise<void>;
}

// ------------------------------------------------------------------ shared parts

/**
 * What every context does alike: futures and refs are values of this
 * process, so `get`, `wait` and `put` never depend on where tasks run.
 */
export abstract class BaseJobContext implements JobContext {
  abstract readonly kind: JobContextKind;
  /** Runs one task with its options; `run` and `withOptions(...).run` both come here. */
  protected abstract runTask(fn: (...args: never[]) => unknown, args: readonly unknown[], options: CompiledTaskOptions): TaskFuture<unknown>;
  abstract createActor<C extends new (...args: never[]) => object>(cls: C, args: ConstructorParameters<C>, options?: CreateActorOptions): Promise<ActorHandle<InstanceType<C>>>;
  /** Releases what the context started (threads, pool, actor jobs), once no task is in flight. */
  protected abstract release(): Promise<void>;

  run<A extends unknown[], R>(fn: RemoteFunction<A, R>, ...args: { [K in keyof A]: Arg<A[K]> }): TaskFuture<Awaited<R>> {
    return this.runTask(fn as unknown as (...args: never[]) => unknown, args, {}) as TaskFuture<Awaited<R>>;
  }

  withOptions(options: TaskOptions): JobContextWithOptions {
    const compiled = compileTaskOptions(options);
    const runTask = (fn: (...args: never[]) => unknown, args: readonly unknown[]) => this.runTask(fn, args, compiled);
    const createActor = <C extends new (...args: never[]) => object>(cls: C, args: ConstructorParameters<C>, given: CreateActorOptions = {}) => {
      // The call's own resources win; an explicit `resources: undefined` does not erase the view's.
      const resources = given.resources ?? compiled.resources;
      return this.createActor(cls, args, { ...given, ...(resources ? { resources } : {}) });
    };
    return {
      run: <A extends unknown[], R>(fn: RemoteFunction<A, R>, ...args: { [K in keyof A]: Arg<A[K]> }) => runTask(fn as unknown as (...a: never[]) => unknown, args) as TaskFuture<Awaited<R>>,
      createActor,
    };
  }

  private readonly inFlight = new Set<InFlightTask>();
  private closing: Promise<void> | undefined;

  /**
   * Runs one task of this context: `work` starts it (and may stop it when
   * the signal it gets aborts). The future settles with its outcome, or
   * rejects `cancelled` when close() stops waiting for it, or with
   * `caller.reason` when the caller's signal aborts (an aborted one starts nothing).
   */
  protected track<T>(work: (signal: AbortSignal) => Promise<T>, caller?: AbortSignal): TaskFuture<T> {
    this.checkOpen("run a task");
    if (caller?.aborted) return new TaskFuture(Promise.reject(caller.reason as Error));
    const abort = new AbortController();
    let cancel: (reason: unknown) => void = () => undefined;
    const cancelled = new Promise<never>((_, reject) => (cancel = reject));
    const started = (async () => work(abort.signal))();
    const task: InFlightTask = {
      settled: Promise.race([started, cancelled]),
      cancel: (reason) => {
        cancel(reason);
        abort.abort(reason);
      },
    };
    this.inFlight.add(task);
    const unlink = onAbort(caller, (reason) => task.cancel(reason));
    const forget = () => {
      unlink();
      this.inFlight.delete(task);
    };
    task.settled.then(forget, forget);
    return new TaskFuture(task.settled as Promise<T>);
  }

  /** Throws when the context is closed (or closing). */
  protected checkOpen(what: string): void {
    const closed = this.closedError(what);
    if (closed) throw closed;
  }

  /** The error for `what` once the context is closed (or closing); undefined while it is open. */
  protected closedError(what: string): FlusterError | undefined {
    return this.closing ? new FlusterError(`cannot ${what}: this ${this.kind} job context is closed (create another one)`, "failed_precondition") : undefined;
  }

  close(options: CloseOptions = {}): Promise<void> {
    const timeoutSeconds = checkNonNegative(options.timeoutSeconds ?? DEFAULT_CLOSE_TIMEOUT_SECONDS, "timeoutSeconds");
    this.closing ??= (async () => {
      await settledWithin([...this.inFlight].map((t) => t.settled), timeoutSeconds);
      const reason = new FlusterError(
        `task cancelled: the ${this.kind} job context was closed and the task had not finished ${timeoutSeconds}s later (close({ timeoutSeconds }) sets how long close waits)`,
        "cancelled",
      );
      for (const task of this.inFlight) task.cancel(reason);
      await this.release();
    })();
    return this.closing;
  }

  get<T>(ref: TaskFuture<T> | ObjectRef<T>, options?: GetOptions): Promise<T>;
  get<T extends readonly unknown[]>(refs: T, options?: GetOptions): Promise<{ [K in keyof T]: Unwrap<T[K]> }>;
  get(refs: unknown, options: GetOptions = {}): Promise<unknown> {
    let signal: AbortSignal | undefined;
    try {
      signal = checkSignal(options.signal, "options.signal");
    } catch (err) {
      return Promise.reject(err as Error);
    }
    return abortable(getValues(refs), signal);
  }

  wait<T>(futures: readonly TaskFuture<T>[], options?: WaitOptions): Promise<{ done: TaskFuture<T>[]; pending: TaskFuture<T>[] }> {
    return waitFor(futures, options);
  }

  put<T>(value: T): ObjectRef<T> {
    return new ObjectRef(value);
  }
}

/** A task close() waits for, and cancels if it must (or its caller's signal does). */
interface InFlightTask {
  readonly settled: Promise<unknown>;
  cancel(reason: unknown): void;
}

/** Resolves when every promise has settled, or after `seconds`, whichever comes first. */
async function settledWithin(promises: readonly Promise<unknown>[], seconds: number): Promise<void> {
  if (promises.length === 0) return;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, seconds * 1000)));
  try {
    await Promise.race([Promise.allSettled(promises), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves futures and refs among task arguments (top level, as Ray does). */
export async function resolveArgs(args: readonly unknown[]): Promise<unknown[]> {
  return Promise.all(args.map((a) => (a instanceof TaskFuture ? a : a instanceof ObjectRef ? a.value : a)));
}

async function getValues(refs: unknown): Promise<unknown> {
  if (Array.isArray(refs)) return Promise.all(refs.map((r) => getValues(r)));
  if (refs instanceof TaskFuture) return refs;
  if (refs instanceof ObjectRef) return refs.value;
  throw new ValidationError("ref", "must be a TaskFuture (from run), an ObjectRef (from put), or an array of them");
}

async function waitFor<T>(futures: readonly TaskFuture<T>[], options: WaitOptions = {}): Promise<{ done: TaskFuture<T>[]; pending: TaskFuture<T>[] }> {
  const want = options.numReturns ?? 1;
  if (!Number.isInteger(want) || want < 0) throw new ValidationError("numReturns", `must be a whole number ≥ 0, got ${String(want)}`);
  if (want > futures.length) throw new ValidationError("numReturns", `is ${want} but only ${futures.length} future(s) were given`);
  const signal = checkSignal(options.signal, "signal");
  signal?.throwIfAborted();
  const done: TaskFuture<T>[] = futures.filter((f) => f.done());
  if (done.length < want) {
    let timer: NodeJS.Timeout | undefined;
    let unlink: () => void = () => undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        timer = options.timeoutSeconds !== undefined ? setTimeout(resolve, options.timeoutSeconds * 1000) : undefined;
        unlink = onAbort(signal, reject);
        for (const future of futures) {
          if (future.done()) continue;
          const mark = () => {
            if (!done.includes(future)) done.push(future);
            if (done.length >= want) resolve();
          };
          future.then(mark, mark);
        }
      });
    } finally {
      clearTimeout(timer);
      unlink();
    }
  }
  // As Ray's wait: at most numReturns are returned done, even when more have finished.
  const returned = done.slice(0, want);
  return { done: returned, pending: futures.filter((f) => !returned.includes(f)) };
}

/** Runs calls to one in-process actor one at a time, in arrival order, like a remote actor. */
export function inProcessActor<T extends object>(instance: T): ActorHandle<T> {
  let tail: Promise<unknown> = Promise.resolve();
  return new Proxy({} as ActorHandle<T>, {
    get: (_target, method) => {
      if (typeof method !== "string" || method === "then") return undefined;
      return (...args: unknown[]) => {
        const run = async () => {
          const fn = (instance as Record<string, unknown>)[method];
          if (typeof fn !== "function") throw new TypeError(`actor ${instance.constructor.name} has no method ${JSON.stringify(method)}`);
          return fn.apply(instance, args);
        };
        const result = tail.then(run, run);
        tail = result.catch(() => undefined);
        return result;
      };
    },
  });
}

/** Named actors of one context: name → handle. */
export class ActorNames<H> {
  private readonly named = new Map<string, Promise<H>>();

  /**
   * The handle of the actor `name` (a new one from `make`, or with
   * `getIfExists` the one made before). `isGone(name)` says whether the actor
   * made before has ended for good (on `cluster`: its job finished), which
   * frees its name for a fresh one.
   */
  async create(options: CreateActorOptions, make: (name: string) => Promise<H>, className: string, isGone?: (name: string) => Promise<boolean>): Promise<H> {
    // Checked on every context, also where resources are ignored: a program that works inline works on a cluster.
    compileTaskResources(options.resources);
    if (options.maxRestarts !== undefined) checkInteger(options.maxRestarts, "maxRestarts", 0);
    const name = options.name ?? `${className}-${randomUUID().slice(0, 8)}`;
    if (options.name !== undefined && (typeof options.name !== "string" || options.name === "")) {
      throw new ValidationError("name", "must be a non-empty string");
    }
    let existing = this.named.get(name);
    if (existing && isGone && (await isGone(name))) {
      if (this.named.get(name) === existing) this.named.delete(name);
      // A create that ran while we asked may have taken the name already: that one is fresh.
      existing = this.named.get(name);
    }
    if (existing) {
      if (options.getIfExists) return existing;
      throw new FlusterError(`an actor named ${JSON.stringify(name)} already exists (pass getIfExists: true to use it)`, "already_exists");
    }
    const handle = make(name);
    this.named.set(name, handle);
    handle.catch(() => this.named.delete(name));
    return handle;
  }
}

// ------------------------------------------------------------------ the default context

const scoped = new AsyncLocalStorage<JobContext>();

/** Runs `fn` with `ctx` as the context `getJobContext()` returns inside it. */
export function withJobContext<T>(ctx: JobContext, fn: () => T): T {
  return scoped.run(ctx, fn);
}

/** The context of the enclosing `withJobContext`, if any. */
export function scopedJobContext(): JobContext | undefined {
  return scoped.getStore();
}
