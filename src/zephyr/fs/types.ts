// The storage interface every Zephyr input, output and intermediate chunk
// goes through. A path is a local path, or a URL whose scheme names the
// store: `s3://bucket/key`, `gs://bucket/key`. Stores stream: nothing here
// holds a whole object in memory except the calls that say so (small
// objects: chunks, manifests, a Parquet footer).
import type { Writable } from "node:stream";

/** The schemes Zephyr reads and writes. `file` is a local path (or a `file://` URL). */
export type Scheme = "file" | "s3" | "gs";

/** One object, as a listing sees it. */
export interface ObjectInfo {
  /** Its full path: a local absolute path, or a URL with the store's scheme. */
  readonly path: string;
  readonly size: number;
}

/** A byte range: `start` inclusive, `end` exclusive. */
export interface ByteRange {
  readonly start?: number;
  readonly end?: number;
}

/** Options of a whole-object write. */
export interface WriteOptions {
  /**
   * Create missing parent directories (local disk; object stores have
   * none). False makes a write below a removed directory fail with
   * `not_found` instead of bringing the directory back. @default true
   */
  readonly createParents?: boolean;
}

/**
 * A streaming write. Bytes go into `stream` (honour its backpressure);
 * nothing is visible at the path until `commit()` resolves (a local file
 * is renamed into place, an S3 multipart upload completed, a GCS resumable
 * upload finished), so a reader never sees half an object. `abort()`
 * discards what was written; it is safe after a failure and more than once.
 */
export interface ObjectSink {
  readonly stream: Writable;
  /** Ends the stream, waits for the store to hold the object; resolves with its size in bytes. */
  commit(): Promise<number>;
  abort(): Promise<void>;
}

/**
 * A store of objects: the local disk, an S3 bucket, a GCS bucket. Errors are
 * FlusterErrors naming the path: `not_found` for a missing object,
 * `unavailable` for a transient failure (throttling, 5xx, a reset
 * connection) that outlived the client's own retries.
 */
export interface ObjectStore {
  readonly scheme: Scheme;
  /** The object's size, or undefined when there is none at `path`. */
  size(path: string): Promise<number | undefined>;
  /** The object's bytes (or a range of them), streamed in chunks. */
  read(path: string, range?: ByteRange): AsyncIterable<Uint8Array>;
  /** A range of the object's bytes, whole: for small reads (a footer, a page). */
  readRange(path: string, start: number, end: number): Promise<Uint8Array>;
  /**
   * Several ranges of one object, each whole, in the order given (each read
   * once the previous one was taken): a local file is opened once for all
   * of them.
   */
  readRanges(path: string, ranges: ReadonlyArray<{ readonly start: number; readonly end: number }>): AsyncIterable<Uint8Array>;
  /** A small object, whole. */
  readAll(path: string): Promise<Uint8Array>;
  /** Writes a small object whole, atomically. */
  writeAll(path: string, data: Uint8Array, options?: WriteOptions): Promise<void>;
  /** A streaming, atomic write (see {@link ObjectSink}). Parent "directories" are made as needed. */
  openWrite(path: string): Promise<ObjectSink>;
  /** Every object whose path starts with `prefix`, sorted by path. Missing prefixes list nothing. */
  list(prefix: string): Promise<ObjectInfo[]>;
  /** Removes one object; a missing one is not an error. */
  remove(path: string): Promise<void>;
  /** Removes every object under `prefix` treated as a directory (`prefix/…`); nothing there is not an error. */
  removeTree(prefix: string): Promise<void>;
}
