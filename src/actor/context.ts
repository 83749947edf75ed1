// actorContext(): what an actor method can reach while it runs — its cluster,
// a resolver for other actors, its job and namespace — without globals.
import { AsyncLocalStorage } from "node:async_hooks";
import type { Cluster } from "../cluster/client/cluster.js";
import { FlusterError } from "../core/errors.js";
import type { Resolver } from "./resolver.js";

/** What a running actor method can reach. */
export interface ActorContext {
  /** The cluster the actor's server registered with; undefined for a server without one. */
  readonly cluster: Cluster | undefined;
  /** Finds other actors in the same namespace. */
  readonly resolver: Resolver;
  /** The job hosting the actor (`FLUSTER_JOB_ID`), if it runs in one. */
  readonly jobId: string | undefined;
  readonly namespace: string;
  /** The actor's registered name. */
  readonly actorName: string;
}

const storage = new AsyncLocalStorage<ActorContext>();

/** Runs `fn` with `context` as the actor context. */
export function runInActorContext<T>(context: ActorContext, fn: () => T): T {
  return storage.run(context, fn);
}

/** The context of the actor method now running; throws outside one. */
export function actorContext(): ActorContext {
  const context = storage.getStore();
  if (!context) throw new FlusterError("actorContext() called outside an actor method", "failed_precondition");
  return context;
}
