// Per-attempt logs on disk: one append-only `output.jsonl` per attempt directory,
// so a restarted worker daemon can still serve the logs of attempts it no longer runs.
import { close as closeFd, fstatSync, mkdirSync, openSync, readSync, write as writeFd } from "node:fs";
import { open } from "node:fs/promises";
import { join, resolve } from "node:path";
import { StringDecoder } from "node:string_decoder";
import { FlusterError, ValidationError, describeValue } from "../../core/errors.js";

/** Which output stream of the task a chunk came from. */
export type OutputStream = "stdout" | "stderr";

/** One chunk of output, as the task wrote it. */
export interface LogEntry {
  /** When the worker received the chunk. */
  time: Date;
  stream: OutputStream;
  /** The chunk's text; multi-byte characters split across chunks are reassembled before they get here. */
  data: string;
  /**
   * Byte offset of this entry's record in the log. `read(offset)` and
   * `follow(offset)` start at this entry; pass `offset + 1` to start after it
   * (an offset inside a record skips to the next record).
   */
  offset: number;
}

/** A page of entries and where the next page starts. */
export interface LogPage {
  entries: LogEntry[];
  /** Byte offset just past the last record read; pass it to the next `read`. */
  nextOffset: number;
}

/** File name of the log inside an attempt directory. */
export const LOG_FILE_NAME = "output.jsonl";

// One JSON object per line: {"t":<epoch ms>,"s":"o"|"e","d":"<text>"}.
// JSON escapes every newline, so a raw 0x0A byte always ends a record.
interface LogRecord {
  t: number;
  s: "o" | "e";
  d: string;
}

const NEWLINE = 0x0a;
/** How much of the file one `read()` scans; bounds memory per page. */
const DEFAULT_PAGE_BYTES = 1024 * 1024;
/**
 * Characters of one entry: a longer chunk (a task printing megabytes without
 * a newline goes through `append` as one string) is split into entries of
 * at most this many, so no record is held whole beyond it.
 */
export const DEFAULT_MAX_ENTRY_CHARS = 64 * 1024;
/** Most `maxEntryChars` a log accepts; keeps every record below {@link MAX_RECORD_BYTES}. */
const MAX_ENTRY_CHARS_LIMIT = 1024 * 1024;
/**
 * A reader skips a record longer than this (a corrupt file, or one written
 * by something else) instead of buffering it whole: JSON escapes a character
 * as at most 6 bytes, so no record this log wrote comes near it.
 */
const MAX_RECORD_BYTES = 6 * MAX_ENTRY_CHARS_LIMIT + 1024;
/** Above this many unwritten bytes `append` asks the producer to pause. */
const HIGH_WATER_BYTES = 4 * 1024 * 1024;

// Writers living in this process, by resolved directory: a reader opened on
// the same directory (`new AttemptLog(dir)`) follows the writer's appends
// through events instead of stopping at the current end of the file.
const liveWriters = new Map<string, AttemptLog>();

/**
 * The log of one attempt. `AttemptLog.create(dir)` opens it for appending
 * (one writer per directory in a process); `new AttemptLog(dir)` opens it for
 * reading, including logs written by a previous daemon.
 *
 * Writes are batched: while one write is in flight, appended chunks collect
 * in memory and go out together in the next write, so a chatty task costs a
 * few large writes rather than one per chunk, and nothing is written
 * synchronously. Readers see an entry once it is on disk.
 */
export class AttemptLog {
  /** Absolute attempt directory. */
  readonly dir: string;
  /** Absolute path of `output.jsonl`. */
  readonly path: string;

  private fd: number | undefined;
  private closing: Promise<void> | undefined;
  private readonly decoders = { stdout: new StringDecoder("utf8"), stderr: new StringDecoder("utf8") };
  /** Encoded records waiting for the next write. */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private writing = false;
  /** Bytes of the file known to be on disk (only meaningful for a writer). */
  private durableSize = 0;
  /** Woken when `durableSize` grows or the writer closes. */
  private readonly waiters = new Set<() => void>();
  private drainWaiters: Array<() => void> = [];
  private flushWaiters: Array<() => void> = [];
  private writeError: Error | undefined;
  private maxEntryChars = DEFAULT_MAX_ENTRY_CHARS;

  /** Opens the log in `dir` for reading. */
  constructor(dir: string) {
    if (typeof dir !== "string" || dir === "") throw new ValidationError("dir", `must be a non-empty path, got ${describeValue(dir)}`);
    this.dir = resolve(dir);
    this.path = join(this.dir, LOG_FILE_NAME);
  }

  /**
   * Opens the log in `dir` for appending, creating the directory and file.
   * An existing log is continued, never truncated.
   */
  static create(dir: string, options: { maxEntryChars?: number } = {}): AttemptLog {
    const log = new AttemptLog(dir);
    if (options.maxEntryChars !== undefined) {
      const max = options.maxEntryChars;
      if (!Number.isSafeInteger(max) || max < 1 || max > MAX_ENTRY_CHARS_LIMIT) {
        throw new ValidationError("maxEntryChars", `must be a whole number from 1 to ${MAX_ENTRY_CHARS_LIMIT}, got ${describeValue(max)}`);
      }
      log.maxEntryChars = max;
    }
    if (liveWriters.has(log.dir)) {
      throw new FlusterError(`the log in ${log.dir} already has a writer in this process`, "already_exists");
    }
    let fd: number;
    let size: number;
    let last = NEWLINE;
    try {
      mkdirSync(log.dir, { recursive: true });
      fd = openSync(log.path, "a+");
      size = fstatSync(fd).size;
      if (size > 0) {
        const byte = Buffer.alloc(1);
        readSync(fd, byte, 0, 1, size - 1);
        last = byte[0] ?? NEWLINE;
      }
    } catch (err) {
      throw new FlusterError(`cannot open the log in ${log.dir}: ${err instanceof Error ? err.message : String(err)}`, "failed_precondition", { cause: err });
    }
    // A previous writer that died mid-write leaves a partial record; end it
    // so that it cannot swallow our first record (readers skip it as corrupt).
    if (last !== NEWLINE) {
      log.pending.push(Buffer.from("\n"));
      log.pendingBytes += 1;
    }
    log.fd = fd;
    log.durableSize = size;
    liveWriters.set(log.dir, log);
    return log;
  }

  /** True while this instance accepts `append` (created by `create` and not closed). */
  get writable(): boolean {
    return this.fd !== undefined && this.closing === undefined;
  }

  /**
   * Records a chunk of the task's output; bytes go through a UTF-8 decoder
   * per stream, a string is taken as is. Returns false when too much output
   * is waiting to be written: the producer should pause until `drained()`.
   */
  append(stream: OutputStream, chunk: Uint8Array | string): boolean {
    if (!this.writable) throw new FlusterError(`the log in ${this.dir} is not open for appending`, "failed_precondition");
    const text = typeof chunk === "string" ? chunk : this.decoders[stream].write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    this.enqueue(stream, text);
    return this.pendingBytes < HIGH_WATER_BYTES;
  }

  /** Resolves once the unwritten output is below the high-water mark again. */
  drained(): Promise<void> {
    if (this.pendingBytes < HIGH_WATER_BYTES || this.fd === undefined) return Promise.resolve();
    return new Promise((resolveDrain) => this.drainWaiters.push(resolveDrain));
  }

  /**
   * Writes what is pending and closes the file; followers end once they have
   * read everything. Idempotent. A no-op on a reader.
   */
  close(): Promise<void> {
    if (this.fd === undefined) return Promise.resolve();
    this.closing ??= (async () => {
      // A stream that ended inside a multi-byte character keeps its replacement character.
      this.enqueue("stdout", this.decoders.stdout.end());
      this.enqueue("stderr", this.decoders.stderr.end());
      this.pump();
      await this.flushed();
      const fd = this.fd;
      this.fd = undefined;
      if (fd !== undefined) await new Promise<void>((done) => closeFd(fd, () => done()));
      if (liveWriters.get(this.dir) === this) liveWriters.delete(this.dir);
      this.wake();
      for (const resolveDrain of this.drainWaiters.splice(0)) resolveDrain();
    })();
    return this.closing;
  }

  /**
   * Reads complete records from `fromOffset` on, scanning about `maxBytes` of
   * the file (more if one record is longer). A log that does not exist yet
   * reads as empty. Records that do not parse are skipped.
   */
  async read(fromOffset = 0, maxBytes = DEFAULT_PAGE_BYTES): Promise<LogPage> {
    if (!Number.isSafeInteger(fromOffset) || fromOffset < 0) {
      throw new ValidationError("offset", `must be a non-negative integer, got ${describeValue(fromOffset)}`);
    }
    let handle;
    try {
      handle = await open(this.path, "r");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return { entries: [], nextOffset: fromOffset };
      throw err;
    }
    try {
      const entries: LogEntry[] = [];
      // An offset inside a record (e.g. `entry.offset + 1`) starts at the next record.
      let aligned = fromOffset === 0;
      if (!aligned) {
        const probe = Buffer.alloc(1);
        const { bytesRead } = await handle.read(probe, 0, 1, fromOffset - 1);
        aligned = bytesRead === 1 && probe[0] === NEWLINE;
      }
      let nextOffset = fromOffset;
      let carry = Buffer.alloc(0);
      let position = fromOffset;
      // Sized to what is there: followers read often, usually a few records.
      const available = (await handle.stat()).size - fromOffset;
      if (available <= 0) return { entries, nextOffset };
      const chunk = Buffer.allocUnsafe(Math.min(Math.max(available, 4096), Math.max(maxBytes, 4096)));
      while (entries.length === 0 || position - fromOffset < maxBytes) {
        const { bytesRead } = await handle.read(chunk, 0, chunk.length, position);
        if (bytesRead === 0) break;
        position += bytesRead;
        const data = carry.length > 0 ? Buffer.concat([carry, chunk.subarray(0, bytesRead)]) : chunk.subarray(0, bytesRead);
        const base = nextOffset;
        let lineStart = 0;
        for (let end = data.indexOf(NEWLINE); end !== -1; end = data.indexOf(NEWLINE, lineStart)) {
          if (aligned) {
            const entry = parseRecord(data.toString("utf8", lineStart, end), base + lineStart);
            if (entry) entries.push(entry);
          }
          aligned = true;
          lineStart = end + 1;
          nextOffset = base + lineStart;
        }
        // Copy: `chunk` is reused by the next read.
        carry = Buffer.from(data.subarray(lineStart));
        if (carry.length > MAX_RECORD_BYTES) {
          // Not a record of ours: skip to the next newline rather than hold it.
          carry = Buffer.alloc(0);
          aligned = false;
          nextOffset = position;
        }
      }
      return { entries, nextOffset };
    } finally {
      await handle.close();
    }
  }

  /**
   * Yields the entries from `fromOffset` on, then each new entry as it is
   * written, and ends when the log is closed (the attempt finished) or
   * `signal` aborts. When no writer for this log lives in this process (a
   * finished attempt, or one of a previous daemon) it ends at the end of the file.
   */
  async *follow(fromOffset = 0, signal?: AbortSignal): AsyncGenerator<LogEntry, void, undefined> {
    let offset = fromOffset;
    while (!signal?.aborted) {
      // Whether the writer is open is taken before reading: a read that
      // began after the writer closed has seen everything, so only then may
      // an empty read end the stream.
      const writer = liveWriters.get(this.dir);
      const writerOpen = writer?.fd !== undefined;
      const { entries, nextOffset } = await this.read(offset);
      for (const entry of entries) {
        if (signal?.aborted) return;
        yield entry;
      }
      const advanced = nextOffset > offset;
      offset = nextOffset;
      if (advanced) continue;
      if (!writer || !writerOpen) return;
      await writer.waitBeyond(offset, signal);
    }
  }

  /** Resolves when more than `offset` bytes are on disk, the writer closes, or `signal` aborts. */
  private waitBeyond(offset: number, signal: AbortSignal | undefined): Promise<void> {
    if (this.durableSize > offset || this.fd === undefined || signal?.aborted) return Promise.resolve();
    return new Promise((resolveWait) => {
      const done = () => {
        this.waiters.delete(check);
        signal?.removeEventListener("abort", done);
        resolveWait();
      };
      const check = () => {
        if (this.durableSize > offset || this.fd === undefined) done();
      };
      this.waiters.add(check);
      signal?.addEventListener("abort", done, { once: true });
    });
  }

  private wake(): void {
    for (const check of [...this.waiters]) check();
  }

  private enqueue(stream: OutputStream, text: string): void {
    const t = Date.now();
    const s = stream === "stdout" ? "o" : "e";
    for (let start = 0; start < text.length; ) {
      let end = Math.min(start + this.maxEntryChars, text.length);
      // Never split a surrogate pair between two entries.
      if (end < text.length && end - start > 1 && isHighSurrogate(text.charCodeAt(end - 1))) end--;
      const record: LogRecord = { t, s, d: text.slice(start, end) };
      const line = Buffer.from(`${JSON.stringify(record)}\n`, "utf8");
      this.pending.push(line);
      this.pendingBytes += line.length;
      start = end;
    }
    this.pump();
  }

  /** Starts a write of everything pending unless one is in flight; the next one picks up what arrives meanwhile. */
  private pump(): void {
    if (this.writing || this.pending.length === 0 || this.fd === undefined) return;
    const fd = this.fd;
    const batch = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending);
    this.pending = [];
    this.writing = true;
    const done = (err: Error | null) => {
      this.writing = false;
      this.pendingBytes -= batch.length;
      if (err) {
        // A full disk must not take the daemon down; the task keeps running
        // and the lost output is noted once.
        this.writeError ??= err;
      } else {
        this.durableSize += batch.length;
      }
      if (this.pendingBytes < HIGH_WATER_BYTES) for (const resolveDrain of this.drainWaiters.splice(0)) resolveDrain();
      this.wake();
      this.pump();
      if (!this.writing) for (const resolveFlush of this.flushWaiters.splice(0)) resolveFlush();
    };
    writeAll(fd, batch, done);
  }

  /** Resolves once nothing is pending or in flight. */
  private flushed(): Promise<void> {
    if (!this.writing && this.pending.length === 0) return Promise.resolve();
    return new Promise((resolveFlush) => this.flushWaiters.push(resolveFlush));
  }

  /** The first write error, if output was lost (e.g. the disk is full); the writer carries on. */
  get error(): Error | undefined {
    return this.writeError;
  }
}

/** Writes all of `buffer` at the end of the file, looping over short writes. */
function writeAll(fd: number, buffer: Buffer, done: (err: Error | null) => void, from = 0): void {
  writeFd(fd, buffer, from, buffer.length - from, null, (err, written) => {
    if (err) return done(err);
    if (from + written < buffer.length) return writeAll(fd, buffer, done, from + written);
    done(null);
  });
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

function parseRecord(line: string, offset: number): LogEntry | undefined {
  let record: unknown;
  try {
    record = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof record !== "object" || record === null) return undefined;
  const { t, s, d } = record as Partial<LogRecord>;
  if (typeof t !== "number" || (s !== "o" && s !== "e") || typeof d !== "string") return undefined;
  return { time: new Date(t), stream: s === "o" ? "stdout" : "stderr", data: d, offset };
}
