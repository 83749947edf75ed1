// The controller's bundle store: content-addressed blobs and bundle
// manifests under its state directory, written to a temporary file and
// renamed into place, so a reader never sees half a blob. Bundles and blobs
// that no live job uses are swept once they are older than an age limit.
import { randomBytes } from "node:crypto";
import { createReadStream, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { FlusterError, ValidationError } from "../../core/errors.js";
import { receiveBlobs, type Chunk } from "./blob-stream.js";
import { CHUNK_BYTES, bundleIdOf, isSha256, validateManifest, type BundleFile } from "./manifest.js";

/** One chunk of a blob, as the wire carries it. */
export type { Chunk } from "./blob-stream.js";

/** What one sweep removed. */
/** Blobs younger than this are never swept for size: the bundle they were uploaded for may be registering. */
const FRESH_BLOB_MS = 10 * 60_000;

export interface SweepResult {
  bundles: number;
  blobs: number;
}

/**
 * Layout under `dir`: `blobs/ab/abcdef…` (named by sha256), `manifests/<id>.json`,
 * `tmp/` for blobs being received.
 */
export class BundleStore {
  readonly dir: string;
  /** Blobs stored since this store opened (a blob uploaded again while held does not count). */
  blobsStored = 0;
  private readonly now: () => number;

  constructor(dir: string, options: { now?: () => number } = {}) {
    this.dir = dir;
    this.now = options.now ?? Date.now;
    mkdirSync(join(dir, "blobs"), { recursive: true });
    mkdirSync(join(dir, "manifests"), { recursive: true });
    // Blobs a previous controller was receiving when it stopped are not whole.
    rmSync(join(dir, "tmp"), { recursive: true, force: true });
    mkdirSync(join(dir, "tmp"), { recursive: true });
  }

  private blobPath(sha256: string): string {
    return join(this.dir, "blobs", sha256.slice(0, 2), sha256);
  }

  private manifestPath(bundleId: string): string {
    return join(this.dir, "manifests", `${bundleId}.json`);
  }

  /**
   * Marks bundle `bundleId` used now (its sweep age starts over), as a launch
   * that names it does; false when the store does not have it.
   */
  touchBundle(bundleId: string): boolean {
    if (!isSha256(bundleId)) return false;
    const path = this.manifestPath(bundleId);
    if (!existsSync(path)) return false;
    const at = new Date(this.now());
    utimesSync(path, at, at);
    return true;
  }

  hasBlob(sha256: string): boolean {
    return isSha256(sha256) && existsSync(this.blobPath(sha256));
  }

  /** The hashes of `hashes` this store does not hold. */
  missingBlobs(hashes: readonly string[]): string[] {
    for (const [i, h] of hashes.entries()) if (!isSha256(h)) throw new ValidationError(`sha256[${i}]`, `must be a sha256 in hex, got ${JSON.stringify(h)}`);
    return [...new Set(hashes)].filter((h) => !this.hasBlob(h));
  }

  /**
   * Receives blobs as runs of chunks. Each blob is written to a temporary
   * file, checked against its hash when its last chunk arrives, and only then
   * renamed into place; on any error (a mismatch, a broken stream) nothing of
   * the unfinished blobs is kept. Resolves to the number of blobs stored.
   */
  async receive(messages: AsyncIterable<readonly Chunk[]>): Promise<number> {
    let stored = 0;
    await receiveBlobs(messages, {
      tempPath: (sha256) => join(this.dir, "tmp", `${sha256}.${randomBytes(6).toString("hex")}`),
      check: (chunk, first) => {
        if (first && !isSha256(chunk.sha256)) throw new ValidationError("chunks.sha256", `must be a sha256 in hex, got ${JSON.stringify(chunk.sha256)}`);
        if (chunk.data.length > CHUNK_BYTES) throw new ValidationError("chunks.data", `must be at most ${CHUNK_BYTES} bytes, got ${chunk.data.length}`);
      },
      interrupted: (sha256, next) => new ValidationError("chunks", `blob ${sha256} ended without a last chunk before blob ${next} began`),
      mismatch: (sha256, actual) => new FlusterError(`blob ${sha256} was refused: its content hashes to ${actual}; nothing of it was kept`, "invalid_argument"),
      place: async (sha256, tmp) => {
        if (this.hasBlob(sha256)) return rm(tmp, { force: true });
        mkdirSync(join(this.dir, "blobs", sha256.slice(0, 2)), { recursive: true });
        await rename(tmp, this.blobPath(sha256));
        // Stored now by the store's clock, as manifests are: the sweep judges both by it.
        const at = new Date(this.now());
        utimesSync(this.blobPath(sha256), at, at);
        stored += 1;
        this.blobsStored += 1;
      },
      unfinished: (sha256) => new ValidationError("chunks", `the upload ended in the middle of blob ${sha256}`),
    });
    return stored;
  }

  /** Registers a manifest whose blobs are all here; resolves to its bundle id. */
  putBundle(given: readonly BundleFile[]): string {
    const files = validateManifest(given);
    const absent = files.filter((f) => !this.hasBlob(f.sha256));
    if (absent.length > 0) {
      const named = absent.slice(0, 3).map((f) => `${f.path} (${f.sha256})`).join(", ");
      throw new FlusterError(`bundle refused: ${absent.length} blob(s) were never uploaded: ${named}${absent.length > 3 ? ", …" : ""}`, "failed_precondition");
    }
    const bundleId = bundleIdOf(files);
    const path = this.manifestPath(bundleId);
    if (existsSync(path)) {
      const at = new Date(this.now());
      utimesSync(path, at, at); // used again: the sweep's age starts over
    } else {
      const tmp = join(this.dir, "tmp", `${bundleId}.${randomBytes(6).toString("hex")}.json`);
      writeFileSync(tmp, JSON.stringify(files));
      renameSync(tmp, path);
    }
    return bundleId;
  }

  /** The manifest of a registered bundle. */
  getBundle(bundleId: string): BundleFile[] {
    if (!isSha256(bundleId)) throw new ValidationError("bundleId", `must be a sha256 in hex, got ${JSON.stringify(bundleId)}`);
    let text: string;
    try {
      text = readFileSync(this.manifestPath(bundleId), "utf8");
    } catch {
      throw new FlusterError(`bundle ${bundleId} is not in the controller's store`, "not_found");
    }
    return JSON.parse(text) as BundleFile[];
  }

  /** The blobs asked for, as messages of chunks of at most 1 MiB in all. */
  async *readBlobs(hashes: readonly string[]): AsyncGenerator<Chunk[]> {
    for (const sha256 of hashes) {
      if (!this.hasBlob(sha256)) throw new FlusterError(`blob ${sha256} is not in the controller's store`, "not_found");
    }
    let batch: Chunk[] = [];
    let bytes = 0;
    for (const sha256 of hashes) {
      let pending: Buffer | undefined;
      const emit = function* (chunk: Chunk): Generator<Chunk[]> {
        if (bytes + chunk.data.length > CHUNK_BYTES && batch.length > 0) {
          yield batch;
          batch = [];
          bytes = 0;
        }
        batch.push(chunk);
        bytes += chunk.data.length;
      };
      for await (const data of createReadStream(this.blobPath(sha256), { highWaterMark: CHUNK_BYTES })) {
        if (pending) yield* emit({ sha256, data: pending, last: false });
        pending = data as Buffer;
      }
      yield* emit({ sha256, data: pending ?? new Uint8Array(0), last: true });
    }
    if (batch.length > 0) yield batch;
  }

  /**
   * Removes bundles not in `live` whose manifest was last registered more
   * than `maxAgeMs` ago, then blobs no remaining manifest lists that are as
   * old (a blob uploaded for a bundle not registered yet is young). With
   * `maxBytes`, while the blobs take more than that, unused bundles go too,
   * least recently used first, and with them the blobs only they listed
   * (those uploaded in the last `FRESH_BLOB_MS` excepted: their bundle may
   * be registering). Bundles in `live` always stay, whatever they weigh.
   */
  sweep(live: ReadonlySet<string>, maxAgeMs: number, maxBytes = Number.POSITIVE_INFINITY): SweepResult {
    const now = this.now();
    const cutoff = now - maxAgeMs;
    const result: SweepResult = { bundles: 0, blobs: 0 };
    const manifests = join(this.dir, "manifests");
    const remaining: Array<{ bundleId: string; path: string; usedAt: number; blobs: string[] }> = [];
    for (const name of readdirSync(manifests)) {
      const bundleId = name.replace(/\.json$/, "");
      const path = join(manifests, name);
      const usedAt = mtimeOf(path);
      if (!live.has(bundleId) && usedAt < cutoff) {
        rmSync(path, { force: true });
        result.bundles += 1;
        continue;
      }
      let blobs: string[] = [];
      try {
        blobs = this.getBundle(bundleId).map((f) => f.sha256);
      } catch {
        // A manifest that cannot be read protects nothing.
      }
      remaining.push({ bundleId, path, usedAt, blobs });
    }
    const stored = new Map<string, { path: string; size: number; mtime: number }>();
    const blobs = join(this.dir, "blobs");
    for (const prefix of readdirSync(blobs)) {
      for (const sha256 of readdirSync(join(blobs, prefix))) {
        const path = join(blobs, prefix, sha256);
        try {
          const stat = statSync(path);
          stored.set(sha256, { path, size: stat.size, mtime: stat.mtimeMs });
        } catch {
          // removed meanwhile
        }
      }
    }
    const listedBy = (bundles: typeof remaining) => new Set(bundles.flatMap((b) => b.blobs));
    const removeUnlisted = (kept: Set<string>, olderThan: number) => {
      for (const [sha256, blob] of stored) {
        if (kept.has(sha256) || blob.mtime >= olderThan) continue;
        rmSync(blob.path, { force: true });
        stored.delete(sha256);
        result.blobs += 1;
      }
    };
    removeUnlisted(listedBy(remaining), cutoff);
    // Over the size limit: drop unused bundles, least recently used first, until the blobs fit.
    const total = () => [...stored.values()].reduce((sum, b) => sum + b.size, 0);
    const unused = remaining.filter((b) => !live.has(b.bundleId)).sort((a, b) => a.usedAt - b.usedAt);
    while (total() > maxBytes && unused.length > 0) {
      const victim = unused.shift() as (typeof remaining)[number];
      rmSync(victim.path, { force: true });
      remaining.splice(remaining.indexOf(victim), 1);
      result.bundles += 1;
      removeUnlisted(listedBy(remaining), now - FRESH_BLOB_MS);
    }
    return result;
  }
}

function mtimeOf(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return Infinity;
  }
}
