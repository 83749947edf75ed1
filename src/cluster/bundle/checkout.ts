// A worker's bundle cache: each bundle is fetched once into
// `<dir>/<bundle id>/`, from blobs kept in `<dir>/blobs/` (shared by every
// bundle, so a new bundle downloads only the files that changed). A tree is
// unpacked into a temporary directory and renamed into place, so a task
// never sees half of one; concurrent checkouts of a bundle share one fetch.
import type { Client } from "@connectrpc/connect";
import { randomBytes } from "node:crypto";
import { constants, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { chmod, copyFile, mkdir, readFile, rename, rm, symlink } from "node:fs/promises";
import { dirname, join } from "node:path";
import { FlusterError } from "../../core/errors.js";
import type { ControllerService } from "../../rpc/gen/fluster/cluster/v1/controller_pb.js";
import { receiveBlobs } from "./blob-stream.js";
import { SYMLINK_MODE, bundleIdOf, isSha256, validateManifest, type BundleFile } from "./manifest.js";
import { bundleFileFromProto } from "./upload.js";

const UNPACK_CONCURRENCY = 32;
/** Marks the cache as a cache, so a workspace that contains it never packs it. */
const CACHE_TAG = "Signature: 8a477f597d28d172789f06886806bc55\n# Fluster's bundle cache; see https://bford.info/cachedir/\n";

export class BundleCache {
  readonly dir: string;
  private readonly client: () => Client<typeof ControllerService>;
  private readonly inFlight = new Map<string, Promise<string>>();
  /** Blobs downloaded since this cache opened. */
  blobsFetched = 0;
  /** Checkouts that found their bundle here already, since this cache opened. */
  hits = 0;
  /** Checkouts that had to fetch their bundle (or wait for a fetch in progress), since this cache opened. */
  misses = 0;

  /** `client` is asked for the controller's client at each fetch (the daemon's channel may change). */
  constructor(dir: string, client: () => Client<typeof ControllerService>) {
    this.dir = dir;
    this.client = client;
    mkdirSync(join(dir, "blobs"), { recursive: true });
    writeFileSync(join(dir, "CACHEDIR.TAG"), CACHE_TAG);
    // Trees and blobs a previous daemon was writing when it stopped are incomplete.
    for (const name of readdirSync(dir)) if (name.startsWith(".tmp-")) rmSync(join(dir, name), { recursive: true, force: true });
  }

  /** Whether bundle `bundleId` is here already (a checkout will not fetch). */
  has(bundleId: string): boolean {
    return isSha256(bundleId) && existsSync(join(this.dir, bundleId));
  }

  /** The directory of bundle `bundleId`, fetched and unpacked if this worker does not have it yet. */
  checkout(bundleId: string): Promise<string> {
    if (!isSha256(bundleId)) return Promise.reject(new FlusterError(`bundle id ${JSON.stringify(bundleId)} is not a sha256`, "invalid_argument"));
    const target = join(this.dir, bundleId);
    if (existsSync(target)) {
      this.hits += 1;
      return Promise.resolve(target);
    }
    this.misses += 1;
    let pending = this.inFlight.get(bundleId);
    if (!pending) {
      pending = this.fetch(bundleId, target).finally(() => this.inFlight.delete(bundleId));
      this.inFlight.set(bundleId, pending);
    }
    return pending;
  }

  private async fetch(bundleId: string, target: string): Promise<string> {
    const client = this.client();
    const files = validateManifest((await client.getBundle({ bundleId })).files.map(bundleFileFromProto));
    if (bundleIdOf(files) !== bundleId) throw new FlusterError(`the controller's manifest of bundle ${bundleId} does not hash to its id`, "internal");
    const missing = [...new Set(files.map((f) => f.sha256))].filter((h) => !existsSync(this.blobPath(h)));
    if (missing.length > 0) await this.download(client, missing);
    const tmp = join(this.dir, `.tmp-${bundleId}-${randomBytes(4).toString("hex")}`);
    try {
      await this.unpack(files, tmp);
      await rename(tmp, target);
    } catch (err) {
      await rm(tmp, { recursive: true, force: true });
      // Another process (a daemon restarted meanwhile) unpacked it first: theirs is as good.
      if (existsSync(target)) return target;
      throw err;
    }
    return target;
  }

  private blobPath(sha256: string): string {
    return join(this.dir, "blobs", sha256.slice(0, 2), sha256);
  }

  /** Downloads blobs, each checked against its hash before it is renamed into the blob cache. */
  private async download(client: Client<typeof ControllerService>, hashes: readonly string[]): Promise<void> {
    const wanted = new Set(hashes);
    const answer = async function* () {
      for await (const res of client.getBlobs({ sha256: [...hashes] })) yield res.chunks;
    };
    await receiveBlobs(answer(), {
      tempPath: (sha256) => join(this.dir, `.tmp-blob-${sha256}-${randomBytes(4).toString("hex")}`),
      check: (chunk, first) => {
        if (first && !wanted.has(chunk.sha256)) throw new FlusterError(`the controller sent blob ${chunk.sha256}, which was not asked for`, "internal");
      },
      interrupted: (sha256) => new FlusterError(`blob ${sha256} ended early in the controller's answer`, "internal"),
      mismatch: (sha256) => new FlusterError(`blob ${sha256} from the controller does not match its hash`, "internal"),
      place: async (sha256, tmp) => {
        await mkdir(dirname(this.blobPath(sha256)), { recursive: true });
        await rename(tmp, this.blobPath(sha256));
        wanted.delete(sha256);
        this.blobsFetched += 1;
      },
    });
    if (wanted.size > 0) throw new FlusterError(`the controller did not send ${wanted.size} blob(s) of the bundle`, "internal");
  }


  /**
   * Writes the tree: copies of the cached blobs (never hard links, which a
   * task writing to its workspace would turn into a corrupt cache; a
   * copy-on-write clone where the file system offers one), modes, symlinks.
   */
  private async unpack(files: readonly BundleFile[], root: string): Promise<void> {
    await mkdir(root, { recursive: true });
    const dirs = new Set(files.map((f) => dirname(join(root, f.path))));
    for (const dir of [...dirs].sort()) await mkdir(dir, { recursive: true });
    const write = async (f: BundleFile): Promise<void> => {
      const path = join(root, f.path);
      if (f.mode === SYMLINK_MODE) {
        await symlink(await readFile(this.blobPath(f.sha256), "utf8"), path);
        return;
      }
      await copyFile(this.blobPath(f.sha256), path, constants.COPYFILE_FICLONE);
      await chmod(path, f.mode);
    };
    // A bounded number at a time: a large tree must not exhaust file descriptors.
    for (let i = 0; i < files.length; i += UNPACK_CONCURRENCY) await Promise.all(files.slice(i, i + UNPACK_CONCURRENCY).map(write));
  }
}
