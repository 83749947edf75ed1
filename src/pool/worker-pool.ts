// WorkerPool: stateless task executors as cluster jobs. Tasks go to idle
// workers first; queued tasks travel in batches; a worker lost mid-task has
// its tasks re-run on another.
import { randomUUID } from "node:crypto";
import { setMaxListeners } from "node:events";
import type { Cluster } from "../cluster/client/cluster.js";
import { Entrypoint } from "../core/entrypoint.js";
import { validateEnvironment, type EnvironmentConfig } from "../core/environment.js";
import { FlusterError, ValidationError } from "../core/errors.js";
import type { JobId } from "../core/job.js";
import { isRemoteFunction, remoteRef, type RemoteFunction, type RemoteRef } from "../core/remote.js";
import { ResourceConfig, type ResourceConfigInit } from "../core/resources.js";
import { checkInteger } from "../core/validate.js";
import { checkSignal, onAbort } from "../core/abort.js";
import { backoffDelay } from "../core/backoff.js";
import { ActorError } from "../actor/errors.js";
import { CallNotDeliveredError } from "../actor/errors.js";
import type { ActorEndpoint, ActorPool } from "../actor/pool.js";
import { ClusterResolver } from "../actor/resolver.js";
import { EXECUTOR_CONCURRENCY, hostTaskExecutor, type TaskCall, type TaskExecutor, type TaskOutcome } from "./executor.js";

/** Options of {@link WorkerPool}. */
export interface WorkerPoolOptions {
  /** Worker jobs to launch. */
  numWorkers: number;
  /** Resources of each worker. @default { cpu: 1, memory: "512m" } */
  resources?: ResourceConfig | ResourceConfigInit;
  /** Environment of each worker job. @default the caller's npm project as workspace (see `Cluster.launch`) */
  environment?: EnvironmentConfig;
  /** Prefix of the pool's actor and job names. @default "pool" */
  namePrefix?: string;
  /** Tasks sent to one worker in one message, at most. @default 64 */
  maxBatchSize?: number;
  /** Messages in flight to one worker at once, so the next batch is ready when one ends. @default 2 */
  pipelineDepth?: number;
}

/** WorkerPool options checked and with their defaults. */
export interface CompiledWorkerPoolOptions {
  numWorkers: number;
  resources: ResourceConfig;
  environment: EnvironmentConfig | undefined;
  namePrefix: string;
  maxBatchSize: number;
  pipelineDepth: number;
}

/** Checks WorkerPool options up front; throws a ValidationError naming the first bad field. */
export function compileWorkerPoolOptions(options: WorkerPoolOptions): CompiledWorkerPoolOptions {
  if (options === null || typeof options !== "object") throw new ValidationError("options", "must be an object such as { numWorkers: 4 }");
  const numWorkers = checkInteger(options.numWorkers, "numWorkers", 1);
  const namePrefix = options.namePrefix ?? "pool";
  if (typeof namePrefix !== "string" || !/^[A-Za-z0-9._-]+$/.test(namePrefix)) {
    throw new ValidationError("namePrefix", `must be letters, digits, ".", "_" or "-", got ${JSON.stringify(namePrefix)}`);
  }
  const resources = options.resources instanceof ResourceConfig ? options.resources : new ResourceConfig({ cpu: 1, memory: "512m", ...(options.resources ?? {}) });
  if (resources.replicas !== 1) throw new ValidationError("resources.replicas", "must be 1: each worker is its own job (use numWorkers)");
  return {
    numWorkers,
    resources,
    environment: options.environment === undefined ? undefined : validateEnvironment(options.environment),
    namePrefix,
    maxBatchSize: checkInteger(options.maxBatchSize ?? 64, "maxBatchSize", 1),
    pipelineDepth: checkInteger(options.pipelineDepth ?? 2, "pipelineDepth", 1),
  };
}

/** Options of one submission: `map(fn, items, options)`, or `withOptions(options).submit(fn, ...args)`. */
export interface SubmitOptions {
  /**
   * Cancels the task(s) when it aborts: a task not yet sent to a worker is
   * never sent; a running one is cancelled on its worker (its
   * `taskSignal()` aborts; one that ignores it runs to the end and its
   * result is dropped, and the worker counts it cancelled). The promise rejects at once with `signal.reason`
   * (a DOMException named "AbortError" unless the caller gave another
   * reason); an already-aborted signal rejects without sending anything.
   * @default none: tasks run to the end
   */
  signal?: AbortSignal;
}

/** `submit` and `map` with {@link SubmitOptions} applied: what `pool.withOptions(...)` returns. */
export interface WorkerPoolWithOptions {
  /** As {@link WorkerPool.submit}, with the view's options. */
  submit<A extends unknown[], R>(fn: RemoteFunction<A, R>, ...args: A): Promise<Awaited<R>>;
  /** As {@link WorkerPool.map}, with the view's options. */
  map<T, R>(fn: RemoteFunction<[T], R>, items: Iterable<T>): Promise<Awaited<R>>[];
}

/** Checks SubmitOptions up front; throws a ValidationError naming the bad field. */
function compileSubmitOptions(options: SubmitOptions): SubmitOptions {
  if (options === null || typeof options !== "object") throw new ValidationError("options", "must be an object such as { signal }");
  const signal = checkSignal(options.signal, "options.signal");
  return signal ? { signal } : {};
}

/**
 * Lifecycle:
 * - `running`: worker jobs launched (they join as they start); accepts tasks.
 * - `stopping`: no new tasks; worker jobs being terminated.
 * - `stopped`: every worker job terminated; queued tasks rejected.
 */
export type WorkerPoolState = "running" | "stopping" | "stopped";

interface QueuedTask {
  /** Names the task in a cancel message. */
  id: string;
  ref: RemoteRef;
  args: unknown[];
  /** Settle the task's promise; after the first call they do nothing (a cancelled task's late answer is dropped). */
  resolve: (value: unknown) => void;
  reject: (reason: unknown) => void;
  /** Times the task was lost with its worker. */
  losses: number;
  /** The task's promise has settled (an answer, a failure, or its signal aborted). */
  settled: boolean;
  /** The worker it was last sent to, while it is there. */
  slot?: WorkerSlot;
}

interface WorkerSlot {
  endpoint: ActorEndpoint;
  inFlight: number;
  /** A call to it failed without an answer; it gets no tasks until tried again after a backoff. */
  dead: boolean;
  /** Failed calls in a row, for the backoff. */
  failures: number;
  retryTimer?: NodeJS.Timeout;
}

/** A task lost with this many workers in a row is failed rather than re-run again. */
const MAX_LOSSES = 5;
/**
 * A batch is sized to take about this long on its worker (its tasks run one
 * after another there), from the task time measured so far. A worker lost
 * mid-batch loses the whole batch, so a long one wastes much work and its
 * tasks come back late: 64 tasks of 200 ms (12.8 s) barely ever finished
 * while a worker died every 10 s, and the pool's throughput collapsed.
 */
const BATCH_TARGET_MS = 1_000;
/** Tasks in a batch before any task time is known. */
const FIRST_BATCH_MAX = 4;
/** A pool with nothing to do keeps following its workers this long, so bursts of work do not re-open the watch. */
const WATCH_LINGER_MS = 5_000;

export class WorkerPool {
  readonly name: string;
  private stateValue: WorkerPoolState = "running";
  private readonly cluster: Cluster;
  private readonly options: CompiledWorkerPoolOptions;
  private readonly actors: ActorPool<TaskExecutor>;
  private readonly queue: QueuedTask[] = [];
  private readonly slots = new Map<string, WorkerSlot>();
  private readonly launched: Promise<JobId[]>;
  /** Follows the pool's registered workers while it has work (and a little after). */
  private watching: AbortController | undefined;
  private lingerTimer: NodeJS.Timeout | undefined;
  private readonly counters = { submitted: 0, succeeded: 0, failed: 0, cancelled: 0, rerun: 0 };
  /** Ids of cancelled tasks per worker, sent as one cancel message per worker at the end of the current turn. */
  private readonly cancels = new Map<WorkerSlot, string[]>();
  /** Task ids: the pool's name and a counter. */
  private nextTaskId = 0;
  /** Moving average of a task's time on a worker (a batch's round trip over its size); undefined until a batch has come back. */
  private taskMs: number | undefined;
  /** False for a pool attached by name: its workers belong to another process. */
  private readonly owner: boolean;

  /**
   * A client of a pool another process created, found by its name (e.g. a
   * task submitting more tasks to its own pool). It launches and stops nothing.
   */
  static attach(cluster: Cluster, name: string, options: Omit<WorkerPoolOptions, "numWorkers" | "resources" | "environment" | "namePrefix"> = {}): WorkerPool {
    // Tasks submitted from tasks usually wait on what they submit: a small
    // per-worker window would let the waiting parents fill it and starve the
    // children they wait for. Workers accept EXECUTOR_CONCURRENCY calls.
    return new WorkerPool(cluster, { numWorkers: 1, pipelineDepth: EXECUTOR_CONCURRENCY / 4, ...options }, name);
  }

  /** Checks the options at once (a ValidationError names a bad one) and launches the worker jobs. */
  constructor(cluster: Cluster, options: WorkerPoolOptions, attachTo?: string) {
    this.options = compileWorkerPoolOptions(options);
    this.cluster = cluster;
    this.name = attachTo ?? `${this.options.namePrefix}-${randomUUID().slice(0, 8)}`;
    this.owner = attachTo === undefined;
    this.actors = new ClusterResolver(cluster).lookup<TaskExecutor>(this.name);
    const { resources, environment } = this.options;
    this.launched = Promise.all(
      Array.from({ length: this.owner ? this.options.numWorkers : 0 }, (_, i) =>
        cluster.launch({
          name: `${this.name}/worker-${i}`,
          resources,
          entrypoint: Entrypoint.fromFunction(hostTaskExecutor, this.name),
          environment: environment ?? {},
          ports: ["actor"],
          // A worker process that dies is started again; its tasks go to the others meanwhile.
          maxRetriesFailure: 3,
        }),
      ),
    );
    // Surfaced by waitForWorkers/submit; keep an unobserved failure from crashing the process.
    this.launched.catch(() => undefined);
  }

  get state(): WorkerPoolState {
    return this.stateValue;
  }

  /** Workers that have joined and are not known to be dead. */
  get size(): number {
    return [...this.slots.values()].filter((s) => !s.dead).length;
  }

  /** Task counts so far; `cancelled` counts tasks whose signal aborted; `rerun` counts tasks sent again after their worker was lost. */
  get stats(): { submitted: number; succeeded: number; failed: number; cancelled: number; rerun: number; queued: number } {
    return { ...this.counters, queued: this.queue.length };
  }

  /** The pool's view of its workers, for diagnostics: each joined worker's address, calls in flight and whether it is held back as dead; tasks queued; whether it follows the registry. */
  describe(): { workers: Array<{ address: string; inFlight: number; dead: boolean; failures: number }>; queued: number; watching: boolean } {
    return {
      workers: [...this.slots.values()].map((s) => ({ address: s.endpoint.address, inFlight: s.inFlight, dead: s.dead, failures: s.failures })),
      queued: this.queue.length,
      watching: this.watching !== undefined,
    };
  }

  /** Ids of the worker jobs. */
  async jobIds(): Promise<JobId[]> {
    return this.launched;
  }

  /** Waits until `min` workers (default: all) have joined. */
  async waitForWorkers(min = this.owner ? this.options.numWorkers : 1, options: { timeoutSeconds?: number } = {}): Promise<void> {
    await this.launched;
    this.updateSlots(await this.actors.waitForSize(min, { timeoutSeconds: options.timeoutSeconds ?? 300 }));
  }

  /**
   * Runs `fn(...args)` on a worker. To cancel it, submit through
   * {@link withOptions}: `pool.withOptions({ signal }).submit(fn, x)`
   * (`args` are rest parameters, so options cannot follow them).
   */
  submit<A extends unknown[], R>(fn: RemoteFunction<A, R>, ...args: A): Promise<Awaited<R>> {
    return this.submitTask(fn, args, undefined) as Promise<Awaited<R>>;
  }

  /**
   * Runs `fn(item)` for every item; one promise per item, in order. When
   * `options.signal` aborts, every task of the call is cancelled (see
   * {@link SubmitOptions.signal}) and every promise not yet settled rejects
   * with `signal.reason`.
   */
  map<T, R>(fn: RemoteFunction<[T], R>, items: Iterable<T>, options: SubmitOptions = {}): Promise<Awaited<R>>[] {
    const { signal } = compileSubmitOptions(options);
    return this.mapTasks(fn, items, signal) as Promise<Awaited<R>>[];
  }

  /**
   * `submit` and `map` with per-call options, as `JobContext.withOptions`:
   * `pool.withOptions({ signal }).submit(fn, x)`. The options are checked
   * here, once: a ValidationError names a bad field.
   */
  withOptions(options: SubmitOptions): WorkerPoolWithOptions {
    const { signal } = compileSubmitOptions(options);
    return {
      submit: <A extends unknown[], R>(fn: RemoteFunction<A, R>, ...args: A) => this.submitTask(fn, args, signal) as Promise<Awaited<R>>,
      map: <T, R>(fn: RemoteFunction<[T], R>, items: Iterable<T>) => this.mapTasks(fn, items, signal) as Promise<Awaited<R>>[],
    };
  }

  /**
   * One task per item. The tasks listen to a signal of the call's own, tied
   * to the caller's by one listener (removed once every task has settled),
   * so a map of many items adds one listener to the caller's signal, not one per item.
   */
  private mapTasks(fn: unknown, items: Iterable<unknown>, signal: AbortSignal | undefined): Promise<unknown>[] {
    if (!signal) return Array.from(items, (item) => this.submitTask(fn, [item], undefined));
    const own = new AbortController();
    setMaxListeners(0, own.signal);
    const unlink = onAbort(signal, (reason) => own.abort(reason));
    const promises = Array.from(items, (item) => this.submitTask(fn, [item], own.signal));
    void Promise.allSettled(promises).then(unlink);
    return promises;
  }

  /** Queues one task; `signal` cancels it (see {@link SubmitOptions.signal}). */
  private submitTask(fn: unknown, args: unknown[], signal: AbortSignal | undefined): Promise<unknown> {
    if (!isRemoteFunction(fn)) {
      return Promise.reject(new ValidationError("fn", "must be a remote function: `export const f = remote(import.meta.url, function f() {...})`"));
    }
    if (this.stateValue !== "running") return Promise.reject(new FlusterError(`worker pool ${this.name} is ${this.stateValue}`, "failed_precondition"));
    if (signal?.aborted) return Promise.reject(signal.reason as Error);
    this.counters.submitted += 1;
    return new Promise<unknown>((resolve, reject) => {
      let dispose: () => void = () => undefined;
      const task: QueuedTask = {
        id: `${this.name}/${this.nextTaskId++}`,
        ref: remoteRef(fn),
        args,
        losses: 0,
        settled: false,
        resolve: (value) => {
          if (task.settled) return;
          task.settled = true;
          dispose();
          this.counters.succeeded += 1;
          resolve(value);
        },
        reject: (reason) => {
          if (task.settled) return;
          task.settled = true;
          dispose();
          this.counters.failed += 1;
          reject(reason);
        },
      };
      this.queue.push(task);
      dispose = onAbort(signal, (reason) => this.cancel(task, reason, reject));
      this.pump();
    });
  }

  /** A task's signal aborted: a queued task leaves the queue unsent; a sent one is cancelled on its worker. Either way its promise rejects now. */
  private cancel(task: QueuedTask, reason: unknown, reject: (reason: unknown) => void): void {
    if (task.settled) return;
    task.settled = true;
    this.counters.cancelled += 1;
    const queued = this.queue.indexOf(task);
    if (queued >= 0) this.queue.splice(queued, 1);
    else if (task.slot) this.sendCancel(task.slot, task.id);
    reject(reason);
  }

  /** Gathers the cancelled ids of one turn (a map's abort cancels all its tasks at once) into one message per worker. */
  private sendCancel(slot: WorkerSlot, taskId: string): void {
    const ids = this.cancels.get(slot);
    if (ids) {
      ids.push(taskId);
      return;
    }
    this.cancels.set(slot, [taskId]);
    queueMicrotask(() => {
      const batch = this.cancels.get(slot) ?? [];
      this.cancels.delete(slot);
      // Best effort: a worker that cannot be reached is not running the task either (or is being replaced).
      this.actors.invokeOn(slot.endpoint, "cancel", [batch]).catch(() => undefined);
    });
  }

  /** Terminates the worker jobs; tasks not yet finished are rejected. */
  async shutdown(): Promise<void> {
    if (this.stateValue !== "running") return;
    this.stateValue = "stopping";
    this.stopWatching();
    for (const slot of this.slots.values()) clearTimeout(slot.retryTimer);
    const ids = this.owner ? await this.launched.catch(() => [] as JobId[]) : [];
    await Promise.allSettled(ids.map((id) => this.cluster.terminate(id, `worker pool ${this.name} shut down`)));
    for (const task of this.queue.splice(0)) task.reject(new FlusterError(`worker pool ${this.name} shut down`, "cancelled"));
    // The connections to the workers' executors go once no other pool uses them.
    this.actors.close();
    this.stateValue = "stopped";
  }

  /** Sends queued tasks to workers with room: idle workers first, a batch per message. */
  private pump(): void {
    if (this.queue.length > 0) this.followWorkers();
    while (this.queue.length > 0 && this.stateValue === "running") {
      const slot = this.pickSlot();
      // None free: the next completion or the next worker to join pumps again.
      if (!slot) return;
      // Spread a short queue over idle workers rather than batching it onto one.
      const idle = [...this.slots.values()].filter((s) => !s.dead && s.inFlight === 0).length;
      const share = Math.max(1, Math.ceil(this.queue.length / Math.max(1, idle)));
      const batch = this.queue.splice(0, Math.min(this.batchLimit(), share));
      this.send(slot, batch);
    }
    if (this.queue.length === 0 && [...this.slots.values()].every((s) => s.inFlight === 0)) this.lingerThenUnfollow();
  }

  /** Tasks one message may carry: maxBatchSize, fewer where the tasks measured so far would make a batch run long. */
  private batchLimit(): number {
    const { maxBatchSize } = this.options;
    if (this.taskMs === undefined) return Math.min(maxBatchSize, FIRST_BATCH_MAX);
    return Math.max(1, Math.min(maxBatchSize, Math.floor(BATCH_TARGET_MS / Math.max(this.taskMs, 0.001))));
  }

  private pickSlot(): WorkerSlot | undefined {
    let best: WorkerSlot | undefined;
    for (const slot of this.slots.values()) {
      if (slot.dead || slot.inFlight >= this.options.pipelineDepth) continue;
      if (!best || slot.inFlight < best.inFlight) best = slot;
      if (slot.inFlight === 0) break;
    }
    return best;
  }

  private send(slot: WorkerSlot, batch: QueuedTask[]): void {
    slot.inFlight += 1;
    for (const task of batch) task.slot = slot;
    const call =
      batch.length === 1
        ? this.actors.invokeOn(slot.endpoint, "run", [batch[0]?.ref, batch[0]?.args, batch[0]?.id]).then((value): TaskOutcome[] => [{ ok: true, value }])
        : (this.actors.invokeOn(slot.endpoint, "runBatch", [batch.map((t): TaskCall => [t.ref, t.args, t.id])]) as Promise<TaskOutcome[]>);
    const sentAt = performance.now();
    call.then(
      (outcomes) => {
        slot.inFlight -= 1;
        slot.failures = 0;
        const perTask = (performance.now() - sentAt) / batch.length;
        this.taskMs = this.taskMs === undefined ? perTask : 0.8 * this.taskMs + 0.2 * perTask;
        batch.forEach((task, i) => {
          task.slot = undefined;
          const outcome = outcomes[i];
          if (outcome?.ok) task.resolve(outcome.value);
          else task.reject(taskError(outcome?.error, slot.endpoint));
        });
        this.pump();
      },
      (err: unknown) => {
        slot.inFlight -= 1;
        if (err instanceof ActorError) {
          // The task itself threw (single-task path): the worker is fine.
          for (const task of batch) task.slot = undefined;
          batch[0]?.reject(err);
          this.pump();
          return;
        }
        // The worker is gone or unreachable: put its tasks back. The registry
        // brings its replacement; the worker itself is tried again after a backoff.
        this.markDead(slot);
        for (const task of batch.reverse()) {
          task.slot = undefined;
          // A cancelled task is not sent again.
          if (task.settled) continue;
          task.losses += err instanceof CallNotDeliveredError ? 0 : 1;
          if (task.losses > MAX_LOSSES) task.reject(err);
          else {
            this.counters.rerun += 1;
            this.queue.unshift(task);
          }
        }
        this.pump();
      },
    );
  }

  /** Follows the registry while there is work: new workers join and gone ones leave as it changes. */
  private followWorkers(): void {
    clearTimeout(this.lingerTimer);
    this.lingerTimer = undefined;
    if (this.watching || this.stateValue !== "running") return;
    const watching = (this.watching = new AbortController());
    void (async () => {
      try {
        for await (const endpoints of this.actors.watch(watching.signal)) {
          this.updateSlots(endpoints);
          this.pump();
        }
      } catch (err) {
        // The registry stayed unreachable through every retry: fail what waits for a worker.
        for (const task of this.queue.splice(0)) task.reject(err);
      } finally {
        if (this.watching === watching) this.watching = undefined;
      }
    })();
  }

  private lingerThenUnfollow(): void {
    if (!this.watching || this.lingerTimer) return;
    this.lingerTimer = setTimeout(() => this.stopWatching(), WATCH_LINGER_MS);
    this.lingerTimer.unref();
  }

  private stopWatching(): void {
    clearTimeout(this.lingerTimer);
    this.lingerTimer = undefined;
    this.watching?.abort();
    this.watching = undefined;
  }

  private markDead(slot: WorkerSlot): void {
    slot.dead = true;
    clearTimeout(slot.retryTimer);
    slot.retryTimer = setTimeout(() => {
      slot.dead = false;
      this.pump();
    }, backoffDelay(slot.failures++, { initialMs: 50, maxMs: 1_000 }));
    slot.retryTimer.unref();
  }

  /** Takes the registry's current workers: new ones join, gone ones leave. */
  private updateSlots(endpoints: readonly ActorEndpoint[]): void {
    const live = new Set(endpoints.map((e) => e.address));
    for (const [address, slot] of this.slots) {
      if (live.has(address)) continue;
      clearTimeout(slot.retryTimer);
      this.slots.delete(address);
    }
    for (const endpoint of endpoints) if (!this.slots.has(endpoint.address)) this.slots.set(endpoint.address, { endpoint, inFlight: 0, dead: false, failures: 0 });
  }
}

/** A task's thrown error as the submitter sees it: an ActorError carrying the remote error. */
function taskError(error: unknown, endpoint: ActorEndpoint): ActorError {
  const e = error instanceof Error ? error : new Error(String(error));
  return new ActorError({
    remoteName: e.name,
    message: e.message,
    remoteStack: e.stack ?? "",
    actor: "task-executor",
    method: "run",
    address: endpoint.address,
    cause: e,
  });
}
