// Streaming file input and output for Zephyr pipelines: line and JSONL
// readers, an atomic line writer, shard-name patterns and input globs, over
// any store (local disk, s3://, gs://; see fs/). Nothing here holds a whole
// file in memory; compression follows the extension.
import { pipeline, Readable, type Transform, type Writable } from "node:stream";
import { StringDecoder } from "node:string_decoder";
import { createGunzip, createGzip, type ZlibOptions } from "node:zlib";
import { CompressStream } from "zstd-napi";
import zstd from "zstd-napi/binding.js";
import { FlusterError, ValidationError } from "../core/errors.js";
import { absolutePath, globPaths, storeFor, type ObjectSink } from "./fs/index.js";

export type Compression = "none" | "gzip" | "zstd";

/** By extension: .gz → gzip, .zst/.zstd → zstd, else none. */
export function compressionOf(path: string): Compression {
  if (path.endsWith(".gz")) return "gzip";
  if (path.endsWith(".zst") || path.endsWith(".zstd")) return "zstd";
  return "none";
}

// ------------------------------------------------------------------ reading

/**
 * Bytes per decompressed chunk out of gunzip. Each chunk is one job on
 * libuv's thread pool and one callback here; zlib's default (16 KiB) makes
 * the jobs so small that they spend their time waiting for this thread.
 */
const GUNZIP_CHUNK = 512 * 1024;
/** Bytes per decompressed chunk out of zstd (its recommended output size). */
const ZSTD_CHUNK = zstd.dStreamOutSize();
/** A batch is yielded once it holds this many lines... */
const BATCH_LINES = 1024;
/** ...or this many characters, whichever comes first, so long lines keep memory bounded. */
const BATCH_CHARS = 1024 * 1024;

/**
 * The file's lines in batches (arrays of strings, each batch covering one or
 * more read chunks), decompressing by extension. "\n" and "\r\n" both end
 * lines; a last line without a newline is included; a trailing empty line
 * after the final "\n" is not emitted. Throws a FlusterError naming the path
 * when the file is missing or the compressed data is corrupt.
 */
export async function* readLines(path: string): AsyncIterable<string[]> {
  const compression = compressionOf(path);
  let bytesRead = 0;
  const store = storeFor(path);
  // The stores yield Buffers (a Uint8Array subclass) from disk and from HTTP bodies.
  const chunks = (async function* (): AsyncGenerator<Buffer> {
    for await (const chunk of store.read(path)) {
      bytesRead += chunk.byteLength;
      yield chunk as Buffer;
    }
  })();
  let source: AsyncIterable<Buffer> = chunks;
  let gunzip: Readable | undefined;
  if (compression === "gzip") {
    // pipeline forwards an error of either stream (a missing file, corrupt data) to gunzip,
    // whose iterator then throws it; the callback only keeps the error from going unhandled.
    gunzip = pipeline(Readable.from(chunks, { objectMode: false }), createGunzip({ chunkSize: GUNZIP_CHUNK }), () => {});
    source = gunzip;
  } else if (compression === "zstd") {
    source = zstdDecompress(chunks);
  }
  const decoder = new StringDecoder("utf8");
  let carry = ""; // the unterminated start of a line, from earlier chunks
  let batch: string[] = [];
  let batchChars = 0;
  try {
    for await (const chunk of source) {
      const text = decoder.write(chunk);
      let nl = text.indexOf("\n");
      if (nl === -1) {
        carry += text;
        continue;
      }
      // The first line may continue one begun in earlier chunks.
      batch.push(trimCr(carry.length > 0 ? carry + text.slice(0, nl) : text.slice(0, nl)));
      let start = nl + 1;
      nl = text.indexOf("\n", start);
      while (nl !== -1) {
        batch.push(trimCr(text.slice(start, nl)));
        start = nl + 1;
        nl = text.indexOf("\n", start);
      }
      carry = text.slice(start);
      batchChars += text.length;
      if (batch.length >= BATCH_LINES || batchChars >= BATCH_CHARS) {
        if (batch.length > 0) yield batch;
        batch = [];
        batchChars = 0;
      }
    }
  } catch (err) {
    // gunzip calls a zero-byte file truncated; zstd and plain text call it empty, and so do we.
    if (!(compression === "gzip" && bytesRead === 0 && (err as NodeJS.ErrnoException).code === "Z_BUF_ERROR")) {
      throw readError(path, compression, err);
    }
  } finally {
    // An early return (take(n)) ends iteration here; release the file (or connection) and the decompressor.
    gunzip?.destroy();
    await chunks.return(undefined);
  }
  carry += decoder.end();
  if (carry.length > 0) batch.push(carry);
  if (batch.length > 0) yield batch;
}

/**
 * Non-empty lines parsed as JSON, in batches. A bad line throws a
 * ValidationError naming the file, the 1-based line number and the JSON error.
 */
export async function* readJsonl<T = unknown>(path: string): AsyncIterable<T[]> {
  let lineBase = 0; // lines before the current batch
  for await (const lines of readLines(path)) {
    const records: T[] = [];
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i] as string;
      if (line.length === 0) continue;
      try {
        records.push(JSON.parse(line) as T);
      } catch (err) {
        // Off the hot path: a whitespace-only line counts as empty.
        if (line.trim().length > 0) {
          throw new ValidationError(`${path} line ${lineBase + i + 1}`, `is not valid JSON: ${(err as Error).message}`);
        }
      }
    }
    lineBase += lines.length;
    if (records.length > 0) yield records;
  }
}

/**
 * Decompresses zstd chunk by chunk, yielding at most ZSTD_CHUNK bytes at a time.
 * Not zstd-napi's DecompressStream: it pushes all the output of an input chunk
 * at once, ignoring backpressure, so a highly compressed file would land in memory whole.
 */
async function* zstdDecompress(compressed: AsyncIterable<Buffer>): AsyncIterable<Buffer> {
  const dctx = new zstd.DCtx();
  let inFrame = false;
  for await (const chunk of compressed) {
    let input: Buffer = chunk;
    for (;;) {
      const output = Buffer.allocUnsafe(ZSTD_CHUNK);
      const [left, produced, consumed] = dctx.decompressStream(output, input);
      if (produced > 0) yield output.subarray(0, produced);
      input = input.subarray(consumed);
      // Done with this chunk once it is consumed and the output buffer was not filled (nothing left to flush).
      if (input.length === 0 && (produced < output.length || left === 0)) {
        inFrame = left !== 0;
        break;
      }
    }
  }
  if (inFrame) throw new Error("the data ends in the middle of a zstd frame");
}

/** Drops the "\r" of a "\r\n" line end. */
function trimCr(line: string): string {
  return line.charCodeAt(line.length - 1) === 13 ? line.slice(0, -1) : line;
}

function readError(path: string, compression: Compression, err: unknown): FlusterError {
  if (err instanceof FlusterError) {
    // The stores name the object; say that it was an input.
    if (err.code === "not_found") return new FlusterError(`input file ${path} does not exist`, "not_found", { cause: err });
    if (err.code === "invalid_argument" && err.message.endsWith(" is a directory")) return new FlusterError(`input file ${path} is a directory`, "invalid_argument", { cause: err });
    return err;
  }
  const e = err as NodeJS.ErrnoException;
  if (compression !== "none" && (e.syscall === undefined || e.code?.startsWith("Z_"))) {
    return new FlusterError(`input file ${path} is not valid ${compression} data: ${e.message}`, "invalid_argument", { cause: err });
  }
  return new FlusterError(`reading ${path} failed: ${e.message}`, "internal", { cause: err });
}

// ------------------------------------------------------------------ shard patterns

/**
 * Substitutes the shard number: "{shard}" → "7", "{shard:05d}" → "00007" (any
 * width N in {shard:0Nd}). Any other "{...}" placeholder throws a ValidationError naming it.
 */
export function formatShardPattern(pattern: string, shard: number): string {
  if (!Number.isSafeInteger(shard) || shard < 0) throw new ValidationError("shard", `must be a non-negative integer, got ${shard}`);
  return pattern.replace(/\{([^{}]*)\}/g, (placeholder: string, spec: string) => {
    if (spec === "shard") return String(shard);
    const padded = /^shard:0(\d+)d$/.exec(spec);
    if (padded) return String(shard).padStart(Number(padded[1]), "0");
    throw new ValidationError("pattern", `${JSON.stringify(pattern)} has an unknown placeholder ${placeholder}; use {shard} or {shard:05d}`);
  });
}

// ------------------------------------------------------------------ writing

/** Text gathered before one write into the stream: small batches would each cost a compressor call. */
const WRITE_CHUNK = 1024 * 1024;
/** Text buffered ahead of the gzip compressor before `write` waits for it. */
const GZIP_WRITE_BUFFER = 4 << 20;
/**
 * Bytes per compressed chunk out of gzip. A job on the thread pool runs
 * until its input (one WRITE_CHUNK) is used up or this buffer is full; big
 * jobs keep deflate busy between this thread's turns of the event loop.
 */
const GZIP_CHUNK = 256 * 1024;

/**
 * - `open`: accepting writes into the store's sink (nothing visible yet).
 * - `closing`: close() is flushing; no more writes.
 * - `closed`: committed (renamed into place, upload completed); nothing left to release.
 * - `aborted`: stopped by abort() or by a close() that failed; nothing was made visible.
 * A stream failure while `open` is kept and thrown by the next write() or close().
 */
type LineWriterState = "open" | "closing" | "closed" | "aborted";

/**
 * Writes lines (each followed by "\n") to `path` — a local path or an
 * `s3://`/`gs://` URL — compressing by extension. It writes through the
 * store's atomic sink (a temporary dot file renamed into place on close, an
 * upload completed on close), so a reader never sees half a file and a
 * re-run never leaves one; local parent directories are created. Writes
 * honour backpressure.
 */
export class LineWriter {
  /** The final path: absolute, or the object URL. */
  readonly path: string;
  private readonly sink: ObjectSink;
  /** Where text goes in: the compressor, or the sink itself. */
  private readonly head: Writable;
  /** Settles when every stream in the chain has finished or failed. */
  private readonly done: Promise<void>;
  private failure: Error | undefined;
  private state: LineWriterState = "open";
  private pending: string[] = [];
  private pendingChars = 0;
  private lineCount = 0;
  private aborting: Promise<void> | undefined;

  private constructor(path: string, sink: ObjectSink) {
    this.path = path;
    this.sink = sink;
    const compression = compressionOf(path);
    if (compression === "none") {
      this.head = sink.stream;
      this.done = Promise.resolve();
      sink.stream.on("error", (err) => {
        this.failure ??= err;
      });
    } else {
      // gzip runs on libuv's thread pool: a deep write buffer (zlib passes
      // stream options through) lets it compress earlier text while this
      // thread encodes the next records. zstd compresses on this thread.
      const compressor: Transform =
        compression === "gzip" ? createGzip({ chunkSize: GZIP_CHUNK, writableHighWaterMark: GZIP_WRITE_BUFFER } as ZlibOptions) : new CompressStream();
      this.head = compressor;
      this.done = new Promise((resolve) => {
        // Ends the sink's stream when the compressor ends; commit() then waits for the store.
        pipeline(compressor, sink.stream, (err) => {
          if (err) this.failure ??= err;
          resolve();
        });
      });
    }
  }

  /** Opens a writer; a path that cannot be written (or an unknown scheme) fails here. */
  static async open(path: string): Promise<LineWriter> {
    const target = absolutePath(path);
    let sink: ObjectSink;
    try {
      sink = await storeFor(target).openWrite(target);
    } catch (err) {
      if (err instanceof ValidationError) throw err;
      throw new FlusterError(`cannot write ${target}: ${(err as Error).message}`, err instanceof FlusterError ? err.code : "internal", { cause: err });
    }
    return new LineWriter(target, sink);
  }

  async write(lines: readonly string[]): Promise<void> {
    this.assertOpen("write");
    if (lines.length === 0) return;
    const text = lines.join("\n") + "\n";
    this.lineCount += lines.length;
    this.pending.push(text);
    this.pendingChars += text.length;
    if (this.pendingChars >= WRITE_CHUNK) await this.flushPending();
  }

  /** Flushes and commits; resolves with the final path, the bytes stored and the number of lines. */
  async close(): Promise<{ path: string; bytes: number; lines: number }> {
    this.assertOpen("close");
    this.state = "closing";
    let bytes: number;
    try {
      await this.flushPending();
      this.head.end();
      await this.done;
      if (this.failure) throw this.failure;
      bytes = await this.sink.commit();
    } catch (err) {
      await this.abort();
      throw new FlusterError(`writing ${this.path} failed: ${(err as Error).message}`, err instanceof FlusterError ? err.code : "internal", { cause: err });
    }
    this.state = "closed";
    return { path: this.path, bytes, lines: this.lineCount };
  }

  /** Stops and discards what was written; safe to call after a failure, and more than once. */
  abort(): Promise<void> {
    if (this.state === "closed") return Promise.resolve();
    this.aborting ??= (async () => {
      this.state = "aborted";
      this.pending = [];
      this.head.destroy();
      await this.sink.abort();
      await this.done;
    })();
    return this.aborting;
  }

  private assertOpen(action: string): void {
    if (this.state !== "open") throw new FlusterError(`cannot ${action} ${this.path}: the writer is ${this.state}`, "failed_precondition");
    if (this.failure) throw new FlusterError(`writing ${this.path} failed: ${this.failure.message}`, "internal", { cause: this.failure });
  }

  private async flushPending(): Promise<void> {
    if (this.pending.length === 0) return;
    const text = this.pending.length === 1 ? (this.pending[0] as string) : this.pending.join("");
    this.pending = [];
    this.pendingChars = 0;
    if (!this.head.write(text)) await drained(this.head);
    if (this.failure) throw this.failure;
  }
}

/** Resolves when `stream` drains; rejects if it fails or closes first. */
function drained(stream: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      stream.off("drain", onDrain);
      stream.off("error", onError);
      stream.off("close", onClose);
    };
    const onDrain = () => {
      cleanup();
      resolve();
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const onClose = () => {
      cleanup();
      reject(stream.errored ?? new Error("stream closed before it drained"));
    };
    if (stream.destroyed) return onClose();
    stream.on("drain", onDrain);
    stream.on("error", onError);
    stream.on("close", onClose);
  });
}

// ------------------------------------------------------------------ globs

/**
 * Files (or objects) matching a glob, sorted: absolute local paths (relative
 * patterns resolve against `cwd`) or `s3://`/`gs://` URLs. A pattern with no
 * glob characters that names an existing file matches it. No match throws a
 * ValidationError naming the pattern (and cwd). See {@link globPaths}.
 */
export function expandGlob(pattern: string, cwd: string = process.cwd()): Promise<string[]> {
  return globPaths(pattern, cwd);
}
