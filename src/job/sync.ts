// The sync context: every task runs inline, in this process, when `run` is
// called — for debugging and for nested tasks inside a worker thread.
import { ValidationError } from "../core/errors.js";
import { runWithTaskSignal } from "../core/task-signal.js";
import {
  ActorNames,
  BaseJobContext,
  type TaskFuture,
  inProcessActor,
  resolveArgs,
  withJobContext,
  type ActorHandle,
  type CompiledTaskOptions,
  type CreateActorOptions,
} from "./context.js";

export class SyncContext extends BaseJobContext {
  readonly kind = "sync" as const;
  private readonly actors = new ActorNames<ActorHandle<object>>();

  /**
   * Resources were checked by withOptions; nothing here runs elsewhere, so
   * they do not matter. Inline code cannot be stopped from outside: a
   * cancelled task's `taskSignal()` aborts, and its future rejects at once.
   */
  protected runTask(fn: (...args: never[]) => unknown, args: readonly unknown[], options: CompiledTaskOptions): TaskFuture<unknown> {
    if (typeof fn !== "function") throw new ValidationError("fn", "must be a function");
    // Any function works here: nothing crosses a process boundary.
    // Nested tasks (getJobContext() inside fn) run here too.
    return this.track(
      (signal) => resolveArgs(args).then((values) => withJobContext(this, () => runWithTaskSignal(signal, () => (fn as (...a: unknown[]) => unknown)(...values)))),
      options.signal,
    );
  }

  createActor<C extends new (...args: never[]) => object>(cls: C, args: ConstructorParameters<C>, options: CreateActorOptions = {}): Promise<ActorHandle<InstanceType<C>>> {
    const closed = this.closedError("create an actor");
    if (closed) return Promise.reject(closed);
    return this.actors.create(options, async () => inProcessActor(new cls(...(args as never[]))), cls.name) as Promise<ActorHandle<InstanceType<C>>>;
  }

  protected async release(): Promise<void> {}
}
