// The job that runs one cluster-context task with resources of its own:
// calls the remote function by reference and returns its outcome as the
// job's value, so that a thrown error reaches the caller whole (class,
// message, cause, fields), as it does from the context's task pool, instead
// of as the one-line message a failed job keeps.
import { FlusterError } from "../core/errors.js";
import { isRemoteFunction, remote, resolveRemote, type RemoteRef } from "../core/remote.js";

/** What a task job returns: the function's value, or what it threw. */
export type TaskJobOutcome = { ok: true; value: unknown } | { ok: false; error: unknown };

export const runTaskJob = remote(import.meta.url, async function runTaskJob(ref: RemoteRef, args: unknown[]): Promise<TaskJobOutcome> {
  try {
    const fn: unknown = await resolveRemote(ref);
    if (!isRemoteFunction(fn)) throw new FlusterError(`${ref.name} in ${ref.module} is not a function marked with remote()`, "invalid_argument");
    return { ok: true, value: await (fn as unknown as (...a: unknown[]) => unknown)(...args) };
  } catch (error) {
    // The job itself succeeds (its value carries the error): its log says what happened, for whoever reads it.
    process.stderr.write(`task ${ref.name} threw: ${error instanceof Error ? (error.stack ?? `${error.name}: ${error.message}`) : String(error)}\n`);
    return { ok: false, error };
  }
});
