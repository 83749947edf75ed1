// The actor every WorkerPool worker hosts: it runs remote functions by
// reference, one call or a batch per message.
import { remote, resolveRemote, type RemoteRef } from "../core/remote.js";
import { currentCluster } from "../cluster/client/current.js";
import { ActorServer } from "../actor/server.js";

/**
 * Calls one worker runs at once. Tasks that wait on nested tasks hold a call
 * each while they wait, so this bounds how deep and wide nesting can go.
 */
export const EXECUTOR_CONCURRENCY = 1024;

/** The outcome of one task of a batch; a thrown error travels as the value of a failed outcome. */
export type TaskOutcome = { ok: true; value: unknown } | { ok: false; error: unknown };

export class TaskExecutor {
  private readonly functions = new Map<string, Promise<(...args: unknown[]) => unknown>>();

  /** Runs one task. */
  async run(ref: RemoteRef, args: unknown[]): Promise<unknown> {
    const fn = await this.resolve(ref);
    return fn(...args);
  }

  /** Runs tasks one after another; one failing does not stop the others. */
  async runBatch(tasks: Array<[ref: RemoteRef, args: unknown[]]>): Promise<TaskOutcome[]> {
    const outcomes: TaskOutcome[] = [];
    for (const [ref, args] of tasks) {
      try {
        const fn = await this.resolve(ref);
        outcomes.push({ ok: true, value: await fn(...args) });
      } catch (error) {
        outcomes.push({ ok: false, error });
      }
    }
    return outcomes;
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
