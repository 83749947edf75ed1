// The local disk as an ObjectStore. Writes go to a dot-named temporary file
// in the same directory and are renamed into place on commit, so a reader
// never sees half a file and input globs never pick the temporary up.
import { randomUUID } from "node:crypto";
import { createReadStream, createWriteStream, type WriteStream } from "node:fs";
import { mkdir, open, readFile, readdir, rename, rm, stat, writeFile, type FileHandle } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { FlusterError } from "../../core/errors.js";
import { absolutePath } from "./paths.js";
import type { ByteRange, ObjectInfo, ObjectSink, ObjectStore, WriteOptions } from "./types.js";

/** Bytes per read from disk. */
const READ_CHUNK = 256 * 1024;

/** A FlusterError for a failed local operation, naming the path. */
export function localError(action: string, path: string, err: unknown): FlusterError {
  if (err instanceof FlusterError) return err;
  const e = err as NodeJS.ErrnoException;
  if (e.code === "ENOENT") return new FlusterError(`${path} does not exist`, "not_found", { cause: err });
  if (e.code === "EISDIR") return new FlusterError(`${path} is a directory`, "invalid_argument", { cause: err });
  if (e.code === "EACCES" || e.code === "EPERM") return new FlusterError(`${action} ${path}: permission denied`, "permission_denied", { cause: err });
  return new FlusterError(`${action} ${path} failed: ${e.message}`, "internal", { cause: err });
}

/** A dot name ending in .tmp beside `path`. */
function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${randomUUID().slice(0, 8)}.tmp`);
}

export class LocalStore implements ObjectStore {
  readonly scheme = "file" as const;

  async size(path: string): Promise<number | undefined> {
    const info = await stat(absolutePath(path)).catch(() => undefined);
    return info?.isFile() ? info.size : undefined;
  }

  async *read(path: string, range: ByteRange = {}): AsyncIterable<Uint8Array> {
    const file = absolutePath(path);
    if (range.end !== undefined && range.end <= (range.start ?? 0)) return;
    const stream = createReadStream(file, {
      highWaterMark: READ_CHUNK,
      ...(range.start !== undefined ? { start: range.start } : {}),
      ...(range.end !== undefined ? { end: range.end - 1 } : {}),
    });
    try {
      for await (const chunk of stream) yield chunk as Buffer;
    } catch (err) {
      throw localError("reading", file, err);
    } finally {
      stream.destroy();
    }
  }

  async readRange(path: string, start: number, end: number): Promise<Uint8Array> {
    for await (const bytes of this.readRanges(path, [{ start, end }])) return bytes;
    throw new FlusterError(`reading ${absolutePath(path)}: no range was read`, "internal");
  }

  async *readRanges(path: string, ranges: ReadonlyArray<{ readonly start: number; readonly end: number }>): AsyncIterable<Uint8Array> {
    const file = absolutePath(path);
    let handle: FileHandle;
    try {
      handle = await open(file, "r");
    } catch (err) {
      throw localError("reading", file, err);
    }
    try {
      for (const { start, end } of ranges) {
        const length = Math.max(0, end - start);
        const buffer = Buffer.allocUnsafe(length);
        let done = 0;
        try {
          while (done < length) {
            const { bytesRead } = await handle.read(buffer, done, length - done, start + done);
            if (bytesRead === 0) break;
            done += bytesRead;
          }
        } catch (err) {
          throw localError("reading", file, err);
        }
        yield buffer.subarray(0, done);
      }
    } finally {
      await handle.close();
    }
  }

  async readAll(path: string): Promise<Uint8Array> {
    const file = absolutePath(path);
    return readFile(file).catch((err: unknown) => {
      throw localError("reading", file, err);
    });
  }

  async writeAll(path: string, data: Uint8Array, options: WriteOptions = {}): Promise<void> {
    const file = absolutePath(path);
    const temp = tempPathFor(file);
    try {
      if (options.createParents !== false) await mkdir(dirname(file), { recursive: true });
      await writeFile(temp, data);
      await rename(temp, file);
    } catch (err) {
      await rm(temp, { force: true });
      throw localError("writing", file, err);
    }
  }

  async openWrite(path: string): Promise<ObjectSink> {
    const file = absolutePath(path);
    const temp = tempPathFor(file);
    let stream: WriteStream;
    try {
      await mkdir(dirname(file), { recursive: true });
      stream = createWriteStream(temp);
      // Wait for the temporary file, so that a path that cannot be written fails here.
      await new Promise<void>((resolve, reject) => {
        stream.once("ready", resolve);
        stream.once("error", reject);
      });
    } catch (err) {
      await rm(temp, { force: true });
      throw localError("writing", file, err);
    }
    const closed = new Promise<Error | undefined>((resolve) => {
      stream.once("close", () => resolve(stream.errored ?? undefined));
    });
    stream.on("error", () => {}); // kept by `stream.errored`, reported by commit()
    let state: "open" | "committed" | "aborted" = "open";
    return {
      stream,
      commit: async () => {
        if (state !== "open") throw new FlusterError(`cannot commit ${file}: the write was ${state}`, "failed_precondition");
        if (!stream.writableEnded) stream.end();
        const failure = await closed;
        if (failure) {
          state = "aborted";
          await rm(temp, { force: true });
          throw localError("writing", file, failure);
        }
        try {
          await rename(temp, file);
        } catch (err) {
          state = "aborted";
          await rm(temp, { force: true });
          throw localError("writing", file, err);
        }
        state = "committed";
        return stream.bytesWritten;
      },
      abort: async () => {
        if (state !== "open") return;
        state = "aborted";
        stream.destroy();
        await closed;
        await rm(temp, { force: true });
      },
    };
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    const base = absolutePath(prefix);
    // A prefix ending in "/" is a directory; otherwise list its directory and keep what starts with it.
    const dir = prefix.endsWith("/") ? base : dirname(base);
    const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT" || err.code === "ENOTDIR") return [];
      throw localError("listing", dir, err);
    });
    const out: ObjectInfo[] = [];
    for (const entry of entries) {
      if (!entry.isFile()) continue;
      // `parentPath` (Node ≥ 20.12) and `path` name the entry's directory.
      const path = join((entry as { parentPath?: string }).parentPath ?? entry.path, entry.name);
      if (!path.startsWith(base)) continue;
      const info = await stat(path).catch(() => undefined);
      if (info) out.push({ path, size: info.size });
    }
    return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }

  async remove(path: string): Promise<void> {
    await rm(absolutePath(path), { force: true });
  }

  async removeTree(prefix: string): Promise<void> {
    // Retried: a shard of a cancelled run may add a file while the tree is being removed (ENOTEMPTY).
    await rm(absolutePath(prefix), { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
  }
}
