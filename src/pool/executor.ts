// The actor every WorkerPool worker hosts: it runs remote functions by
// reference, one call or a batch per message, and cancels them on request.
import { remote, resolveRemote, type RemoteRef } from "../core/remote.js";
import { currentCluster } from "../cluster/client/current.js";
import { ActorServer } from "../actor/server.js";
import { FlusterError } from "../core/errors.js";
import { runWithTaskSignal } from "../core/task-signal.js";

/**
 * Calls one worker runs at once. Tasks that wait on nested tasks hold a call
 * each while they wait, so this bounds how deep and wide nesting can go.
 */
export const EXECUTOR_CONCURRENCY = 1024;

/** The outcome of one task of a batch; a thrown error travels as the value of a failed outcome. */
export type TaskOutcome = { ok: true; value: unknown } | { ok: false; error: unknown };

/** One task as a message carries it: the function, its arguments, and the id a cancel message names it by. */
export type TaskCall = [ref: RemoteRef, args: unknown[], taskId?: string];

/** What one worker's executor has done so far. */
export interface TaskExecutorStats {
  /** Tasks begun (a task cancelled before it began is not counted). */
  started: number;
  succeeded: number;
  failed: number;
  /** Tasks cancelled: stopped early, skipped before they began, or finished after the cancel (their result dropped). */
  cancelled: number;
  /** Tasks running now. */
  running: number;
}

/** A cancel that names a task not (yet) running here is kept this long, for the task's message arriving after it. */
const EARLY_CANCEL_TTL_MS = 60_000;
/** At most this many early cancels are kept. */
const EARLY_CANCEL_MAX = 10_000;

export class TaskExecutor {
  private readonly functions = new Map<string, Promise<(...args: unknown[]) => unknown>>();
  /** Running tasks by id: their signal aborts on a cancel message. */
  private readonly running = new Map<string, AbortController>();
  /**
   * Cancelled ids of tasks not running yet: a task waiting behind others in
   * its batch, or whose message the cancel overtook (it travels on a call of
   * its own). Such a task is never begun. Id → when the cancel came.
   */
  private readonly cancelledEarly = new Map<string, number>();
  private readonly counts = { started: 0, succeeded: 0, failed: 0, cancelled: 0 };

  /** Runs one task; `taskId` lets {@link cancel} reach it. */
  async run(ref: RemoteRef, args: unknown[], taskId?: string): Promise<unknown> {
    const outcome = await this.runOne([ref, args, taskId]);
    if (outcome.ok) return outcome.value;
    throw outcome.error;
  }

  /** Runs tasks one after another; one failing does not stop the others. */
  async runBatch(tasks: TaskCall[]): Promise<TaskOutcome[]> {
    const outcomes: TaskOutcome[] = [];
    for (const task of tasks) outcomes.push(await this.runOne(task));
    return outcomes;
  }

  /**
   * The cancel message: aborts the signal (`taskSignal()`) of each named
   * task running here, and marks the others so they are never begun. Returns
   * how many were running.
   */
  cancel(taskIds: string[]): number {
    this.forgetOldCancels();
    let stopped = 0;
    for (const id of taskIds) {
      const task = this.running.get(id);
      if (task) {
        stopped += 1;
        task.abort(new FlusterError(`task ${id} was cancelled by its submitter`, "cancelled"));
      } else if (this.cancelledEarly.size < EARLY_CANCEL_MAX) this.cancelledEarly.set(id, Date.now());
    }
    return stopped;
  }

  /** Task counts of this worker so far. */
  stats(): TaskExecutorStats {
    return { ...this.counts, running: this.running.size };
  }

  private async runOne([ref, args, taskId]: TaskCall): Promise<TaskOutcome> {
    if (taskId !== undefined && this.cancelledEarly.delete(taskId)) {
      this.counts.cancelled += 1;
      return { ok: false, error: new FlusterError(`task ${taskId} was cancelled before it began`, "cancelled") };
    }
    const controller = new AbortController();
    if (taskId !== undefined) this.running.set(taskId, controller);
    this.counts.started += 1;
    try {
      const fn = await this.resolve(ref);
      const value = await runWithTaskSignal(controller.signal, () => fn(...args));
      // Its submitter gave up on it: what it returned goes nowhere.
      if (controller.signal.aborted) return this.cancelled(controller.signal);
      this.counts.succeeded += 1;
      return { ok: true, value };
    } catch (error) {
      if (controller.signal.aborted) return this.cancelled(controller.signal);
      this.counts.failed += 1;
      return { ok: false, error };
    } finally {
      if (taskId !== undefined) this.running.delete(taskId);
    }
  }

  private cancelled(signal: AbortSignal): TaskOutcome {
    this.counts.cancelled += 1;
    return { ok: false, error: signal.reason };
  }

  private forgetOldCancels(): void {
    const before = Date.now() - EARLY_CANCEL_TTL_MS;
    for (const [id, at] of this.cancelledEarly) {
      if (at >= before) break; // in insertion order, so the rest are newer
      this.cancelledEarly.delete(id);
    }
  }

  /** Imports each function's module once. */
  private resolve(ref: RemoteRef): Promise<(...args: unknown[]) => unknown> {
    const key = `${ref.module}#${ref.name}`;
    let fn = this.functions.get(key);
    if (!fn) {
      fn = resolveRemote(ref) as Promise<(...args: unknown[]) => unknown>;
      this.functions.set(key, fn);
      fn.catch(() => this.functions.delete(key));
    }
    return fn;
  }
}

/** A WorkerPool worker's job: host a TaskExecutor under the pool's name until stopped. */
export const hostTaskExecutor = remote(import.meta.url, async function hostTaskExecutor(poolName: string) {
  const server = new ActorServer(await currentCluster());
  // Tasks running here find their pool by this name (nested submissions).
  process.env.FLUSTER_WORKER_POOL = poolName;
  // Calls overlap so a task awaiting tasks it submitted does not block the
  // worker that would run them; batches still run their tasks in order.
  await server.register(poolName, new TaskExecutor(), { metadata: { role: "task-executor" }, maxConcurrency: EXECUTOR_CONCURRENCY });
  const stop = () => void server.shutdown();
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
  await server.serve();
});
