// Google Cloud Storage as an ObjectStore, through @google-cloud/storage.
// Reads stream ranged downloads; streaming writes are resumable uploads sent
// in chunks (each chunk kept until GCS acknowledges it, so a throttled or
// failed chunk is resent), which GCS makes visible only when they finish.
// The library honours STORAGE_EMULATOR_HOST; `configureStorage({ gcs })` sets
// the endpoint, project and retry policy in code. The library loads on first
// use: a pipeline that never touches gs:// never pays for it.
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { buffer } from "node:stream/consumers";
import type { Storage, StorageOptions } from "@google-cloud/storage";

import { FlusterError } from "../../core/errors.js";
import { parseObjectUrl } from "./paths.js";
import { countingSink } from "./sink.js";
import type { ByteRange, ObjectInfo, ObjectSink, ObjectStore } from "./types.js";

/**
 * How Zephyr talks to GCS: the library's own options (apiEndpoint,
 * projectId, keyFilename, credentials, retryOptions, …) and the chunk size
 * of streaming writes. Fields left out come from the environment
 * (STORAGE_EMULATOR_HOST, GOOGLE_APPLICATION_CREDENTIALS, the metadata server).
 */
export interface GcsStoreOptions extends StorageOptions {
  /** Bytes per request of a streaming (resumable) upload; a multiple of 256 KiB. @default 8 MiB */
  chunkSize?: number;
}

const CHUNK_GRANULE = 256 * 1024;
const DEFAULT_CHUNK_SIZE = 8 << 20;
/** Deletes of one removeTree in flight at once (the JSON API deletes one object per request). */
const DELETE_CONCURRENCY = 16;

/** Retries of a request after its first attempt. */
const MAX_RETRIES = 5;

/** What the library's errors (ApiError, gaxios errors) carry. */
interface GcsError {
  code?: number | string;
  message?: string;
}

function statusOf(err: unknown): number | undefined {
  const code = (err as GcsError | undefined)?.code;
  return typeof code === "number" ? code : undefined;
}

/** A FlusterError for a failed GCS request (after the library's retries), naming the URL. */
export function gcsError(action: string, url: string, err: unknown): FlusterError {
  if (err instanceof FlusterError) return err;
  const e = (err ?? {}) as GcsError;
  const status = statusOf(err);
  const what = e.message?.split("\n")[0] ?? String(err);
  if (status === 404) return new FlusterError(`${url} does not exist`, "not_found", { cause: err });
  if (status === undefined && /default credentials/i.test(what)) {
    return new FlusterError(`${action} ${url}: no Google Cloud credentials (set GOOGLE_APPLICATION_CREDENTIALS, or run where the metadata server gives them): ${what}`, "unauthenticated", { cause: err });
  }
  if (status === 401 || status === 403) return new FlusterError(`${action} ${url}: permission denied (${what})`, "permission_denied", { cause: err });
  if (status === undefined || status === 408 || status === 429 || status >= 500) {
    return new FlusterError(`${action} ${url} failed after retries: ${what}`, "unavailable", { cause: err });
  }
  return new FlusterError(`${action} ${url} failed: ${what} (HTTP ${status})`, "internal", { cause: err });
}

/** A GCS bucket as an ObjectStore; paths are `gs://bucket/name`. */
export class GcsStore implements ObjectStore {
  readonly scheme = "gs" as const;
  private readonly chunkSize: number;
  private readonly options: StorageOptions;
  private loaded: Promise<Storage> | undefined;

  constructor(options: GcsStoreOptions = {}) {
    const { chunkSize = DEFAULT_CHUNK_SIZE, ...storage } = options;
    if (!Number.isInteger(chunkSize) || chunkSize < CHUNK_GRANULE || chunkSize % CHUNK_GRANULE !== 0) {
      throw new FlusterError(`gcs chunkSize must be a positive multiple of 256 KiB, got ${String(chunkSize)}`, "invalid_argument");
    }
    this.chunkSize = chunkSize;
    this.options = storage;
  }

  /**
   * The client. Its retry policy: up to 5 retries with the library's
   * exponential backoff on 408/429/5xx and reset connections, for every
   * request — RetryAlways, not the library's default (only requests with a
   * generation precondition): Zephyr puts whole objects it alone writes, so
   * repeating a write is harmless.
   */
  private storage(): Promise<Storage> {
    this.loaded ??= import("@google-cloud/storage").then(
      ({ IdempotencyStrategy, Storage }) =>
        new Storage({
          ...this.options,
          retryOptions: { autoRetry: true, maxRetries: MAX_RETRIES, idempotencyStrategy: IdempotencyStrategy.RetryAlways, ...this.options.retryOptions },
        }),
    );
    return this.loaded;
  }

  private async file(path: string) {
    const { bucket, key } = parseObjectUrl(path);
    if (key === "") throw new FlusterError(`${path} names no object (write gs://BUCKET/name)`, "invalid_argument");
    return (await this.storage()).bucket(bucket).file(key);
  }

  async size(path: string): Promise<number | undefined> {
    try {
      const [metadata] = await (await this.file(path)).getMetadata();
      return Number(metadata.size ?? 0);
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw gcsError("reading", path, err);
    }
  }

  async *read(path: string, range: ByteRange = {}): AsyncIterable<Uint8Array> {
    const start = range.start ?? 0;
    if (range.end !== undefined && range.end <= start) return;
    const ranged = range.start !== undefined || range.end !== undefined;
    // The library's `end` is inclusive; ours is exclusive.
    const stream: Readable = (await this.file(path)).createReadStream({
      decompress: false,
      ...(ranged ? { start, ...(range.end !== undefined ? { end: range.end - 1 } : {}) } : {}),
    });
    try {
      for await (const chunk of stream) yield chunk as Uint8Array;
    } catch (err) {
      // A range that starts at or past the end reads as nothing, as it does on a local file.
      if (ranged && statusOf(err) === 416) return;
      throw gcsError("reading", path, err);
    } finally {
      stream.destroy();
    }
  }

  readRange(path: string, start: number, end: number): Promise<Uint8Array> {
    return buffer(this.read(path, { start, end }));
  }

  async *readRanges(path: string, ranges: ReadonlyArray<{ readonly start: number; readonly end: number }>): AsyncIterable<Uint8Array> {
    for (const { start, end } of ranges) yield await this.readRange(path, start, end);
  }

  async readAll(path: string): Promise<Uint8Array> {
    try {
      const [data] = await (await this.file(path)).download({ decompress: false });
      return data;
    } catch (err) {
      throw gcsError("reading", path, err);
    }
  }

  async writeAll(path: string, data: Uint8Array): Promise<void> {
    try {
      // One request (a multipart upload), retried whole by the library.
      await (await this.file(path)).save(Buffer.from(data.buffer, data.byteOffset, data.byteLength), { resumable: false, contentType: "application/octet-stream" });
    } catch (err) {
      throw gcsError("writing", path, err);
    }
  }

  async openWrite(path: string): Promise<ObjectSink> {
    const file = await this.file(path);
    return countingSink(path, (bytes) => {
      const stop = new AbortController();
      const upload = async (): Promise<void> => {
        // An object smaller than one chunk goes in one request (retried whole); a larger one as a resumable upload.
        const head: Buffer[] = [];
        let headBytes = 0;
        const chunks = bytes[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
        while (headBytes < this.chunkSize) {
          const next = await chunks.next();
          if (next.done) {
            await file.save(Buffer.concat(head, headBytes), { resumable: false, contentType: "application/octet-stream" });
            return;
          }
          head.push(next.value);
          headBytes += next.value.byteLength;
        }
        const rest = (async function* () {
          yield* head;
          for (let next = await chunks.next(); !next.done; next = await chunks.next()) yield next.value;
        })();
        // An unfinished resumable upload is never visible; GCS discards the session after a week.
        await pipeline(Readable.from(rest, { objectMode: false }), file.createWriteStream({ resumable: true, chunkSize: this.chunkSize, contentType: "application/octet-stream" }), {
          signal: stop.signal,
        });
      };
      return {
        done: upload().catch((err: unknown) => {
          throw gcsError("writing", path, err);
        }),
        abort: async () => stop.abort(new FlusterError(`writing ${path} was aborted`, "cancelled")),
      };
    });
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    const { bucket, key } = parseObjectUrl(prefix);
    try {
      const [files] = await (await this.storage()).bucket(bucket).getFiles({ prefix: key, autoPaginate: true });
      return files
        .map((f) => ({ path: `gs://${bucket}/${f.name}`, size: Number(f.metadata.size ?? 0) }))
        .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    } catch (err) {
      throw gcsError("listing", prefix, err);
    }
  }

  async remove(path: string): Promise<void> {
    try {
      await (await this.file(path)).delete({ ignoreNotFound: true });
    } catch (err) {
      throw gcsError("removing", path, err);
    }
  }

  async removeTree(prefix: string): Promise<void> {
    const objects = await this.list(prefix.endsWith("/") ? prefix : `${prefix}/`);
    let next = 0;
    const lanes = Array.from({ length: Math.min(DELETE_CONCURRENCY, objects.length) }, async () => {
      while (next < objects.length) await this.remove((objects[next++] as ObjectInfo).path);
    });
    await Promise.all(lanes);
  }
}
