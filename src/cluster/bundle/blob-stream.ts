// Blobs arriving as runs of chunks (an upload to the controller, a worker's
// download from it): each is written to a temporary file, checked against its
// sha256 when its last chunk arrives, and only then handed over to be put in
// place; on any error nothing of an unfinished blob is kept.
import { createHash } from "node:crypto";
import { open, rm, type FileHandle } from "node:fs/promises";

/** One piece of a blob on the wire. */
export interface Chunk {
  sha256: string;
  data: Uint8Array;
  last: boolean;
}

/** What differs between the places that receive blobs. */
export interface BlobSink {
  /** Where a blob is written until it is checked. */
  tempPath(sha256: string): string;
  /** Checks a chunk before it is written (the first of a blob, or any); throws to refuse it. */
  check(chunk: Chunk, first: boolean): void;
  /** The error for a blob that ended before its last chunk, when another began. */
  interrupted(sha256: string, next: string): Error;
  /** The error for a blob whose bytes do not hash to its name. */
  mismatch(sha256: string, actual: string): Error;
  /** Puts a checked blob in place (renames `tmp`, or removes it when the blob is already there). */
  place(sha256: string, tmp: string): Promise<void>;
  /** The error for a stream that ended in the middle of a blob; none means the caller checks what arrived. */
  unfinished?(sha256: string): Error;
}

/** Writes every blob of `messages` through `sink`. */
export async function receiveBlobs(messages: AsyncIterable<readonly Chunk[]>, sink: BlobSink): Promise<void> {
  let current: { sha256: string; file: FileHandle; tmp: string; hash: ReturnType<typeof createHash> } | undefined;
  try {
    for await (const chunks of messages) {
      for (const chunk of chunks) {
        if (current && current.sha256 !== chunk.sha256) throw sink.interrupted(current.sha256, chunk.sha256);
        sink.check(chunk, !current);
        if (!current) {
          const tmp = sink.tempPath(chunk.sha256);
          current = { sha256: chunk.sha256, file: await open(tmp, "wx"), tmp, hash: createHash("sha256") };
        }
        current.hash.update(chunk.data);
        await current.file.write(chunk.data);
        if (!chunk.last) continue;
        const { sha256, file, tmp, hash } = current;
        current = undefined;
        await file.close();
        const actual = hash.digest("hex");
        if (actual !== sha256) {
          await rm(tmp, { force: true });
          throw sink.mismatch(sha256, actual);
        }
        await sink.place(sha256, tmp);
      }
    }
    if (current && sink.unfinished) throw sink.unfinished(current.sha256);
  } finally {
    if (current) {
      await current.file.close().catch(() => undefined);
      await rm(current.tmp, { force: true });
    }
  }
}
