// The ObjectSink of an object store's streaming upload: a stream that counts
// the bytes written into it and feeds the upload, commit() that ends it and
// waits for the store, abort() that stops the upload. The object stores
// differ only in how the upload starts and stops.
import { Transform, type Readable } from "node:stream";
import { FlusterError } from "../../core/errors.js";
import type { ObjectSink } from "./types.js";

/** An upload under way: it reads the stream it was given, and settles when the store holds the object (or failed). */
export interface RunningUpload {
  readonly done: Promise<void>;
  abort(): Promise<void>;
}

/** An ObjectSink over the upload `start` makes of a byte stream. */
export function countingSink(path: string, start: (bytes: Readable) => RunningUpload): ObjectSink {
  let bytes = 0;
  const stream = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      bytes += chunk.byteLength;
      callback(null, chunk);
    },
  });
  stream.on("error", () => {}); // the upload sees it and fails; commit() reports that
  const upload = start(stream);
  let failure: unknown;
  const settled = upload.done.then(
    () => undefined,
    (err: unknown) => {
      failure = err;
      // A writer blocked on backpressure would otherwise wait for a reader that is gone.
      stream.destroy(err instanceof Error ? err : new Error(String(err)));
    },
  );
  let state: "open" | "committing" | "committed" | "aborted" = "open";
  return {
    stream,
    commit: async () => {
      if (state !== "open") throw new FlusterError(`cannot commit ${path}: the write was ${state}`, "failed_precondition");
      state = "committing";
      if (!stream.writableEnded) stream.end();
      await settled;
      if (failure !== undefined) {
        state = "aborted";
        throw failure;
      }
      state = "committed";
      return bytes;
    },
    abort: async () => {
      if (state === "committed" || state === "aborted") return;
      state = "aborted";
      await upload.abort().catch(() => undefined);
      stream.destroy();
      await settled;
    },
  };
}
