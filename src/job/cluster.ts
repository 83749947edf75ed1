// The cluster context: tasks run on a WorkerPool of the current cluster,
// except a task with resources of its own, which runs as a function job with
// them; each actor is a job hosting its class by reference, found by name.
import { defaultWorkspace } from "../cluster/bundle/workspace.js";
import type { Cluster } from "../cluster/client/cluster.js";
import { currentCluster } from "../cluster/client/current.js";
import { onAbort } from "../core/abort.js";
import { Entrypoint } from "../core/entrypoint.js";
import { FlusterError, ValidationError } from "../core/errors.js";
import type { JobId, JobInfo } from "../core/job.js";
import { isFinished } from "../core/status.js";
import { isRemoteClass, isRemoteFunction, remoteRef, type RemoteFunction } from "../core/remote.js";
import type { ResourceConfig, ResourceConfigInit } from "../core/resources.js";
import { checkInteger, checkPositive } from "../core/validate.js";
import type { ActorPool } from "../actor/pool.js";
import { ClusterResolver } from "../actor/resolver.js";
import { WorkerPool } from "../pool/worker-pool.js";
import { hostActor } from "./actor-host.js";
import { runTaskJob, type TaskJobOutcome } from "./task-host.js";
import {
  ActorNames,
  BaseJobContext,
  compileTaskResources,
  resolveArgs,
  type ActorHandle,
  type CompiledTaskOptions,
  type CreateActorOptions,
  type TaskFuture,
} from "./context.js";

/** Restarts of an actor's job after failures, when createActor's `maxRestarts` is not given. */
const DEFAULT_MAX_RESTARTS = 3;

/** The name of the job that hosts the actor `name`; getIfExists finds a restarting actor by it. */
function actorJobName(name: string): string {
  return `actor/${name}`;
}

export interface ClusterContextOptions {
  /** The cluster to use. @default currentCluster() */
  cluster?: Cluster;
  /** Task workers. @default 2 */
  maxWorkers?: number;
  /** Resources of each task worker. @default { cpu: 1, memory: "512m" } */
  workerResources?: ResourceConfigInit;
  /** Resources of each actor's job. @default { cpu: 0.5, memory: "256m" } */
  actorResources?: ResourceConfigInit;
  /** How long createActor waits for the actor to come up. @default 120 */
  actorStartTimeoutSeconds?: number;
}

/** Why a cancelled task's job is terminated, from the abort's reason. */
function cancelReason(reason: unknown): string {
  const text = reason instanceof Error ? `${reason.name}: ${reason.message}` : String(reason);
  return text.includes("task cancelled") ? text : `task cancelled by its caller (${text})`;
}

export class ClusterContext extends BaseJobContext {
  readonly kind = "cluster" as const;
  private readonly options: ClusterContextOptions;
  private clusterPromise: Promise<Cluster> | undefined;
  private poolPromise: Promise<WorkerPool> | undefined;
  private readonly actorJobs: JobId[] = [];
  /** Jobs of tasks with resources of their own, while they run. */
  private readonly taskJobs = new Set<JobId>();
  /** The task pool's name once it is up (the one this process works for, inside a pool worker). */
  private poolName: string | undefined = process.env.FLUSTER_WORKER_POOL || undefined;
  /** Terminations of cancelled task jobs, awaited by release(). */
  private readonly terminations: Promise<unknown>[] = [];
  private readonly actors = new ActorNames<ActorHandle<object>>();
  /** The job of each actor this context handed out, by name: getIfExists replaces one whose job has ended. */
  private readonly actorJobByName = new Map<string, JobId>();

  /** Checks the options at once; nothing starts until the first task or actor. */
  constructor(options: ClusterContextOptions = {}) {
    super();
    if (options.maxWorkers !== undefined) checkInteger(options.maxWorkers, "maxWorkers", 1);
    if (options.actorStartTimeoutSeconds !== undefined) checkPositive(options.actorStartTimeoutSeconds, "actorStartTimeoutSeconds");
    this.options = options;
  }

  private cluster(): Promise<Cluster> {
    this.clusterPromise ??= this.options.cluster ? Promise.resolve(this.options.cluster) : currentCluster();
    return this.clusterPromise;
  }

  /** Inside a pool worker, nested tasks go to the same pool; otherwise a pool of our own starts on first use. */
  private pool(): Promise<WorkerPool> {
    this.poolPromise ??= (async () => {
      const cluster = await this.cluster();
      const existing = process.env.FLUSTER_WORKER_POOL;
      const pool = existing
        ? WorkerPool.attach(cluster, existing)
        : new WorkerPool(cluster, { numWorkers: this.options.maxWorkers ?? 2, resources: this.options.workerResources ?? { cpu: 1, memory: "512m" }, namePrefix: "ctx" });
      await pool.waitForWorkers(existing ? 1 : undefined, { timeoutSeconds: 300 });
      this.poolName = pool.name;
      return pool;
    })();
    return this.poolPromise;
  }

  protected runTask(fn: (...args: never[]) => unknown, args: readonly unknown[], options: CompiledTaskOptions): TaskFuture<unknown> {
    if (!isRemoteFunction(fn)) {
      throw new ValidationError(
        "fn",
        "must be a remote function on the cluster context (workers import it by reference): `export const f = remote(import.meta.url, function f() {...})`",
      );
    }
    const remoteFn = fn as unknown as RemoteFunction<unknown[], unknown>;
    const { resources } = options;
    // The pool's workers all have the same size: a task that asks for its own resources gets a job of its own.
    if (resources) return this.track((signal) => this.runAsJob(remoteFn, args, resources, signal), options.signal);
    // `signal` aborts when the caller's does or close() gives up on the task: the pool then cancels it on its worker.
    return this.track(async (signal) => {
      const pool = await this.pool();
      const values = await resolveArgs(args);
      return pool.withOptions({ signal }).submit(remoteFn, ...values);
    }, options.signal);
  }

  /** Runs one task as a function job with `resources`; `signal` (the caller's, or close() gave up on it) terminates the job. */
  private async runAsJob(fn: RemoteFunction<unknown[], unknown>, args: readonly unknown[], resources: ResourceConfig, signal: AbortSignal): Promise<unknown> {
    const cluster = await this.cluster();
    const ref = remoteRef(fn);
    const jobId = await cluster.launch({
      name: `task/${ref.name.replace(/[^A-Za-z0-9._-]/g, "-") || "anonymous"}`,
      resources,
      entrypoint: Entrypoint.fromFunction(runTaskJob, ref, await resolveArgs(args)),
      environment: {
        // The task's project, not Fluster's (whose module runs it).
        workspace: defaultWorkspace(ref.module),
        // Tasks it runs go to this context's pool, when there is one, as they would from a pool worker.
        ...(this.poolName ? { envVars: { FLUSTER_WORKER_POOL: this.poolName } } : {}),
      },
    });
    this.taskJobs.add(jobId);
    // Kept for release(), so that close() resolves only once the job is stopped.
    const stop = () => void this.terminations.push(cluster.terminate(jobId, cancelReason(signal.reason)).catch(() => undefined));
    const stopOnAbort = onAbort(signal, stop);
    try {
      const [outcome] = await cluster.results<TaskJobOutcome>(jobId, { signal });
      if (!outcome) throw new FlusterError(`task job ${jobId} returned no outcome`, "internal");
      if (!outcome.ok) throw outcome.error;
      return outcome.value;
    } finally {
      stopOnAbort();
      this.taskJobs.delete(jobId);
    }
  }

  createActor<C extends new (...args: never[]) => object>(cls: C, args: ConstructorParameters<C>, options: CreateActorOptions = {}): Promise<ActorHandle<InstanceType<C>>> {
    if (!isRemoteClass(cls)) {
      return Promise.reject(
        new ValidationError(
          "cls",
          `must be a class marked with remote() on the cluster context, so a job can construct it: \`export const ${cls.name || "Counter"} = remote(import.meta.url, class ${cls.name || "Counter"} {...})\``,
        ),
      );
    }
    const closed = this.closedError("create an actor");
    if (closed) return Promise.reject(closed);
    return this.actors.create(options, async (name) => {
      const cluster = await this.cluster();
      const pool = new ClusterResolver(cluster).lookup<InstanceType<C>>(name);
      if (options.getIfExists) {
        const found = await this.findActor(cluster, name);
        if (found) {
          if (found.jobId) this.actorJobByName.set(name, found.jobId);
          if (!found.serving) await this.waitForActor(cluster, pool, name, found.jobId, { firstStart: false });
          return pool.call() as ActorHandle<object>;
        }
      }
      const maxRestarts = options.maxRestarts ?? DEFAULT_MAX_RESTARTS;
      const jobId = await cluster.launch({
        name: actorJobName(name),
        resources: compileTaskResources(options.resources) ?? this.options.actorResources ?? { cpu: 0.5, memory: "256m" },
        entrypoint: Entrypoint.fromFunction(hostActor, cls.ref, [...(args as unknown[])], name),
        // The actor class's project, not Fluster's (whose module hosts it).
        environment: { workspace: defaultWorkspace(cls.ref.module) },
        ports: ["actor"],
        // The job's retries are the actor's restarts: each runs hostActor, so the constructor, again.
        maxRetriesFailure: maxRestarts,
        maxRetriesPreemption: maxRestarts,
      });
      this.actorJobs.push(jobId);
      this.actorJobByName.set(name, jobId);
      await this.waitForActor(cluster, pool, name, jobId, { firstStart: true });
      return pool.call() as ActorHandle<object>;
    }, cls.name, (name) => this.actorGone(name)) as Promise<ActorHandle<InstanceType<C>>>;
  }

  /**
   * The actor already named `name` in the cluster's namespace: one that
   * serves (an endpoint is registered; `jobId` is its job's, if it has one),
   * or the newest unfinished `actor/<name>` job, which is starting or
   * restarting and will register one. Undefined when there is neither.
   */
  private async findActor(cluster: Cluster, name: string): Promise<{ serving: true; jobId: JobId | undefined } | { serving: false; jobId: JobId } | undefined> {
    const [endpoint] = await cluster.lookupEndpoints(name);
    if (endpoint) return { serving: true as const, jobId: endpoint.jobId };
    const jobName = actorJobName(name);
    // The prefix also matches longer names (`actor/a` and `actor/ab`): only the exact one is this actor's job.
    const live = (await cluster.listJobs({ prefix: jobName })).find((job) => job.name === jobName && !isFinished(job.status));
    return live ? { serving: false as const, jobId: live.jobId } : undefined;
  }

  /** Whether the actor `name` handed out before has ended for good: its job finished (restarts spent, or stopped). */
  private async actorGone(name: string): Promise<boolean> {
    const jobId = this.actorJobByName.get(name);
    if (!jobId) return false;
    const cluster = await this.cluster();
    // A job the controller cannot tell about is kept: the handle's calls will say what is wrong.
    const info = await cluster.poll(jobId).catch(() => undefined);
    return info !== undefined && isFinished(info.status);
  }

  /**
   * Waits until the actor `name` of job `jobId` has an endpoint, or fails
   * saying why: the job ended first, the wait timed out (the context's
   * `actorStartTimeoutSeconds`), or, on its `firstStart`, its first attempt
   * failed. An actor that never came up has a broken module or constructor,
   * which a restart would only repeat: its job is stopped and the error
   * reported at once (as Ray does for a failed actor constructor).
   */
  private async waitForActor(cluster: Cluster, pool: ActorPool<object>, name: string, jobId: JobId, options: { firstStart: boolean }): Promise<void> {
    // The actor's job may end before the actor is up (its class's module failed to load, say): say why at once.
    const stop = new AbortController();
    const ended = (async () => {
      for await (const info of cluster.watch(jobId, { signal: stop.signal })) {
        if (isFinished(info.status) || (options.firstStart && info.tasks.some((task) => task.failureCount > 0))) return info;
      }
      return undefined;
    })().catch(() => undefined);
    let endedFirst: JobInfo | undefined;
    try {
      endedFirst = await Promise.race([pool.waitForSize(1, { timeoutSeconds: this.options.actorStartTimeoutSeconds ?? 120, signal: stop.signal }).then(() => undefined), ended]);
    } catch (err) {
      const info = await cluster.poll(jobId).catch(() => undefined);
      throw new FlusterError(`actor ${name} did not start${info ? ` (job ${jobId} ${info.status}${info.errorMessage ? `: ${info.errorMessage}` : ""})` : ""}`, "unavailable", { cause: err });
    } finally {
      stop.abort();
    }
    if (!endedFirst) return;
    if (isFinished(endedFirst.status)) {
      throw new FlusterError(`actor ${name} did not start: its job ${jobId} ended ${endedFirst.status}${endedFirst.errorMessage ? `: ${endedFirst.errorMessage}` : ""}`, "unavailable");
    }
    const failed = endedFirst.tasks.find((task) => task.failureCount > 0);
    const why = failed?.errorMessage ?? (failed?.exitCode !== undefined ? `exited with code ${failed.exitCode}` : "its process failed");
    await cluster.terminate(jobId, `actor ${name} failed at its first start (not restarted): ${why}`).catch(() => undefined);
    throw new FlusterError(`actor ${name} did not start: its job ${jobId} failed at its first start, so it was stopped, not restarted: ${why}`, "unavailable");
  }

  /** Stops the task pool and the actor jobs this context started. */
  protected async release(): Promise<void> {
    const cluster = this.clusterPromise ? await this.clusterPromise : undefined;
    const pool = this.poolPromise ? await this.poolPromise.catch(() => undefined) : undefined;
    await pool?.shutdown();
    if (cluster) await Promise.allSettled([...this.actorJobs, ...this.taskJobs].map((id) => cluster.terminate(id, "job context closed")));
    await Promise.allSettled(this.terminations);
  }
}
