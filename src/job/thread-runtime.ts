// Runs one task inside a threads-context worker thread: resolves the remote
// function by reference (once per thread) and calls it. Values cross the
// thread boundary by structured clone; a thrown error travels encoded by the
// value codec so its class, cause and fields survive.
import { resolveRemote, type RemoteRef } from "../core/remote.js";
import { encodeValue } from "../rpc/codec.js";

/** What the main thread sends: the function's reference and its arguments. */
export interface ThreadTask {
  ref: RemoteRef;
  args: unknown[];
}

export type ThreadOutcome = { ok: true; value: unknown } | { ok: false; error: Uint8Array };

// Nested `ctx.run` inside a task runs inline rather than queueing behind the
// thread that waits for it (see createJobContext("auto")).
process.env.FLUSTER_THREAD_WORKER = "1";

const functions = new Map<string, Promise<(...args: unknown[]) => unknown>>();

export async function runTask(task: ThreadTask): Promise<ThreadOutcome> {
  const key = `${task.ref.module}#${task.ref.name}`;
  try {
    let fn = functions.get(key);
    if (!fn) {
      fn = resolveRemote(task.ref) as Promise<(...args: unknown[]) => unknown>;
      functions.set(key, fn);
      fn.catch(() => functions.delete(key));
    }
    return { ok: true, value: await (await fn)(...task.args) };
  } catch (error) {
    return { ok: false, error: encodeValue(error instanceof Error ? error : new Error(String(error))) };
  }
}
