// The sync context: every task runs inline, in this process, when `run` is
// called — for debugging and for nested tasks inside a worker thread.
import { ValidationError } from "../core/errors.js";
import { ActorNames, BaseJobContext, type TaskFuture, inProcessActor, resolveArgs, withJobContext, type ActorHandle, type CreateActorOptions } from "./context.js";

export class SyncContext extends BaseJobContext {
  readonly kind = "sync" as const;
  private readonly actors = new ActorNames<ActorHandle<object>>();

  /** Resources were checked by withOptions; nothing here runs elsewhere, so they do not matter. */
  protected runTask(fn: (...args: never[]) => unknown, args: readonly unknown[]): TaskFuture<unknown> {
    if (typeof fn !== "function") throw new ValidationError("fn", "must be a function");
    // Any function works here: nothing crosses a process boundary.
    // Nested tasks (getJobContext() inside fn) run here too.
    return this.track(() => resolveArgs(args).then((values) => withJobContext(this, () => (fn as (...a: unknown[]) => unknown)(...values))));
  }

  createActor<C extends new (...args: never[]) => object>(cls: C, args: ConstructorParameters<C>, options: CreateActorOptions = {}): Promise<ActorHandle<InstanceType<C>>> {
    const closed = this.closedError("create an actor");
    if (closed) return Promise.reject(closed);
    return this.actors.create(options, async () => inProcessActor(new cls(...(args as never[]))), cls.name) as Promise<ActorHandle<InstanceType<C>>>;
  }

  protected async release(): Promise<void> {}
}
