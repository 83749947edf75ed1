// createJobContext: picks the context for a kind ("auto" looks at where the
// program runs); getJobContext: the scoped one, else a process-wide "auto" one.
import { isMainThread } from "node:worker_threads";
import { ValidationError } from "../core/errors.js";
import { refuseWhileImportingByReference } from "../core/remote.js";
import { ClusterContext, type ClusterContextOptions } from "./cluster.js";
import { scopedJobContext, type JobContext, type JobContextKind } from "./context.js";
import { SyncContext } from "./sync.js";
import { ThreadsContext, type ThreadsContextOptions } from "./threads.js";

export type JobContextOptions = ThreadsContextOptions & ClusterContextOptions;

/**
 * A job context of `kind`. `auto` is `cluster` inside a Fluster job or when
 * FLUSTER_CLUSTER_ADDRESS is set, `sync` inside a threads-context worker
 * thread (nested tasks run inline rather than wait for a busy thread), else
 * `threads`.
 *
 * @throws ProgramOnImportError when called while this thread or process is
 * importing a module by reference (the module runs a program as it loads;
 * guard it with `if (isMain(import.meta)) { … }`).
 */
export function createJobContext(kind: JobContextKind | "auto" = "auto", options: JobContextOptions = {}): JobContext {
  // A module that creates a context as it loads would create one in every worker that imports it.
  refuseWhileImportingByReference(`createJobContext(${JSON.stringify(kind)}) was called`);
  const chosen = kind === "auto" ? autoKind() : kind;
  switch (chosen) {
    case "sync":
      return new SyncContext();
    case "threads":
      return new ThreadsContext(options);
    case "cluster":
      return new ClusterContext(options);
    default:
      throw new ValidationError("kind", `must be "auto", "sync", "threads" or "cluster", got ${JSON.stringify(kind)}`);
  }
}

function autoKind(): JobContextKind {
  if (!isMainThread && process.env.FLUSTER_THREAD_WORKER) return "sync";
  if (process.env.FLUSTER_JOB_ID || process.env.FLUSTER_CLUSTER_ADDRESS) return "cluster";
  return "threads";
}

let fallback: JobContext | undefined;

/** The context of the enclosing `withJobContext`, else a process-wide `auto` context. */
export function getJobContext(): JobContext {
  return scopedJobContext() ?? (fallback ??= createJobContext("auto"));
}

export {
  withJobContext,
  TaskFuture,
  ObjectRef,
  type JobContext,
  type JobContextKind,
  type JobContextWithOptions,
  type TaskOptions,
  type ActorHandle,
  type CreateActorOptions,
  type WaitOptions as JobWaitOptions,
  type GetOptions as JobGetOptions,
} from "./context.js";
