// The threads context: tasks run on a Piscina pool of worker threads in this
// process, resolved by reference like on a cluster; actors live in this
// process (as the seeds' thread context keeps them).
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { Piscina } from "piscina";
import { ValidationError } from "../core/errors.js";
import { isRemoteFunction, remoteRef } from "../core/remote.js";
import { decodeValue } from "../rpc/codec.js";
import { ActorNames, BaseJobContext, ObjectRef, TaskFuture, inProcessActor, resolveArgs, type ActorHandle, type CompiledTaskOptions, type CreateActorOptions } from "./context.js";
import type { ThreadOutcome, ThreadTask } from "./thread-runtime.js";

export interface ThreadsContextOptions {
  /** Worker threads. @default the machine's cores */
  maxWorkers?: number;
}

const WORKER = fileURLToPath(new URL("./thread-worker.mjs", import.meta.url));

export class ThreadsContext extends BaseJobContext {
  readonly kind = "threads" as const;
  private readonly pool: Piscina;
  private readonly actors = new ActorNames<ActorHandle<object>>();

  constructor(options: ThreadsContextOptions = {}) {
    super();
    const threads = options.maxWorkers ?? availableParallelism();
    if (!Number.isInteger(threads) || threads < 1) throw new ValidationError("maxWorkers", `must be a whole number ≥ 1, got ${String(threads)}`);
    this.pool = new Piscina({ filename: WORKER, minThreads: threads, maxThreads: threads, idleTimeout: 30_000 });
    // A task's failure reaches its future; an error of the pool itself has no caller to tell, and must not crash the program.
    this.pool.on("error", () => undefined);
  }

  /**
   * Resources were checked by withOptions; nothing here runs elsewhere, so
   * they do not matter. A cancelled task (its caller's signal, or close())
   * leaves Piscina's queue, or has its thread terminated if it runs.
   */
  protected runTask(fn: (...args: never[]) => unknown, args: readonly unknown[], options: CompiledTaskOptions): TaskFuture<unknown> {
    if (!isRemoteFunction(fn)) {
      throw new ValidationError(
        "fn",
        "must be a remote function on the threads context (threads import it by reference): `export const f = remote(import.meta.url, function f() {...})`",
      );
    }
    const ref = remoteRef(fn);
    return this.track(async (signal) => {
      const values = args.some((a) => a instanceof TaskFuture || a instanceof ObjectRef) ? await resolveArgs(args) : [...args];
      const outcome = (await this.pool.run({ ref, args: values } satisfies ThreadTask, { signal })) as ThreadOutcome;
      if (outcome.ok) return outcome.value;
      throw decodeValue(outcome.error);
    }, options.signal);
  }

  createActor<C extends new (...args: never[]) => object>(cls: C, args: ConstructorParameters<C>, options: CreateActorOptions = {}): Promise<ActorHandle<InstanceType<C>>> {
    const closed = this.closedError("create an actor");
    if (closed) return Promise.reject(closed);
    return this.actors.create(options, async () => inProcessActor(new cls(...(args as never[]))), cls.name) as Promise<ActorHandle<InstanceType<C>>>;
  }

  /** close() has let every task settle or cancelled it (aborting it terminates its thread), so no answer can arrive late. */
  protected async release(): Promise<void> {
    await this.pool.destroy();
  }
}
