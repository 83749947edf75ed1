// Packs a workspace into a bundle manifest: the files git would track
// (.gitignore files honoured at every level, inside a git repository or not),
// hashed, with their executable bit. Hashes are cached per file by
// (size, mtime, inode), so packing an unchanged tree again reads no file.
import { createHash } from "node:crypto";
import { createReadStream, lstatSync } from "node:fs";
import { lstat, readFile, readdir, readlink, realpath } from "node:fs/promises";
import { isAbsolute, join, posix, resolve } from "node:path";
import ignore, { type Ignore } from "ignore";
import { FlusterError } from "../../core/errors.js";
import { formatByteSize } from "../../core/quantity.js";
import { EXECUTABLE_MODE, FILE_MODE, SYMLINK_MODE, bundleIdOf, sha256Hex, type BundleFile } from "./manifest.js";

/** Names never packed, at any level: dependencies, git's own data, Fluster's default state directory. */
const NEVER_PACKED = new Set(["node_modules", ".git", ".fluster"]);
/**
 * A directory holding one of these is state, not source: a controller's
 * state directory (`controller.lock`) or a cache (`CACHEDIR.TAG`, which a
 * worker's bundle cache carries).
 */
const STATE_MARKERS = ["controller.lock", "CACHEDIR.TAG"];
/** The default limit on a bundle's total size. */
export const DEFAULT_MAX_BUNDLE_BYTES = 100 * 1024 * 1024;
const HASH_CONCURRENCY = 16;

/** Where the bytes of one blob are read from. */
export type BlobSource = { kind: "file"; path: string } | { kind: "text"; text: string };

/** A packed workspace: its manifest and where each blob's bytes are. */
export interface PackedWorkspace {
  /** The workspace's real path. */
  readonly root: string;
  readonly bundleId: string;
  /** Sorted by path. */
  readonly files: readonly BundleFile[];
  readonly totalBytes: number;
  /** sha256 → where to read it. */
  readonly sources: ReadonlyMap<string, BlobSource>;
}

export interface PackOptions {
  /** Refuse a workspace whose files add up to more. @default 100 MiB */
  maxBytes?: number;
}

interface CachedHash {
  size: number;
  mtimeMs: number;
  ino: number;
  sha256: string;
}

/** Per-process hash cache: path → hash as of (size, mtime, inode). */
const hashCache = new Map<string, CachedHash>();

interface Found {
  path: string;
  abs: string;
  size: number;
  mode: number;
  mtimeMs: number;
  ino: number;
  link?: string;
}

/** A .gitignore's rules, for paths relative to the directory holding it. */
interface Rules {
  base: string;
  ig: Ignore;
}

/**
 * Packs `workspace`: lists what git would track, checks the size limit (an
 * error names the biggest files and folders), and hashes the files.
 *
 * Symlinks: one whose target (relative) stays inside the workspace is kept
 * as a link; one that points outside it (or is absolute) is refused, with
 * the path to leave out in .gitignore. Sockets, FIFOs and devices are skipped.
 */
export async function packWorkspace(workspace: string, options: PackOptions = {}): Promise<PackedWorkspace> {
  let root: string;
  try {
    root = await realpath(resolve(workspace));
  } catch (err) {
    throw new FlusterError(`cannot pack workspace ${workspace}: ${(err as Error).message}`, "failed_precondition", { cause: err });
  }
  if (!(await lstat(root)).isDirectory()) throw new FlusterError(`cannot pack workspace ${root}: not a directory`, "failed_precondition");
  const found: Found[] = [];
  await walk(root, root, "", [], found);
  const totalBytes = found.reduce((sum, f) => sum + f.size, 0);
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BUNDLE_BYTES;
  if (totalBytes > maxBytes) throw tooLarge(root, found, totalBytes, maxBytes);

  const files: BundleFile[] = new Array(found.length);
  const sources = new Map<string, BlobSource>();
  let next = 0;
  const hashOne = async (): Promise<void> => {
    while (next < found.length) {
      const i = next++;
      const f = found[i] as Found;
      const sha256 = f.link !== undefined ? sha256Hex(f.link) : await hashFile(f);
      files[i] = { path: f.path, sha256, size: f.size, mode: f.mode };
      if (!sources.has(sha256)) sources.set(sha256, f.link !== undefined ? { kind: "text", text: f.link } : { kind: "file", path: f.abs });
    }
  };
  await Promise.all(Array.from({ length: HASH_CONCURRENCY }, hashOne));
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { root, bundleId: bundleIdOf(files), files, totalBytes, sources };
}

async function walk(root: string, dir: string, rel: string, inherited: readonly Rules[], out: Found[]): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true });
  const names = new Set(entries.map((e) => e.name));
  if (rel !== "" && STATE_MARKERS.some((marker) => names.has(marker))) return;
  let rules = inherited;
  if (names.has(".gitignore")) {
    const text = await readFile(join(dir, ".gitignore"), "utf8").catch(() => "");
    rules = [...inherited, { base: rel, ig: ignore().add(text) }];
  }
  const subdirs: Promise<void>[] = [];
  for (const entry of entries) {
    if (NEVER_PACKED.has(entry.name)) continue;
    const path = rel === "" ? entry.name : `${rel}/${entry.name}`;
    const abs = join(dir, entry.name);
    const isDir = entry.isDirectory();
    if (isIgnored(rules, path, isDir)) continue;
    if (isDir) {
      subdirs.push(walk(root, abs, path, rules, out));
    } else if (entry.isFile()) {
      // Synchronous on purpose: a stat of a local file takes microseconds, and through the thread
      // pool 2,000 of them cost ~100 ms of CPU against ~15 ms (a re-launch reads no file, only stats).
      const st = lstatSync(abs);
      out.push({ path, abs, size: st.size, mode: st.mode & 0o111 ? EXECUTABLE_MODE : FILE_MODE, mtimeMs: st.mtimeMs, ino: st.ino });
    } else if (entry.isSymbolicLink()) {
      const link = await readlink(abs);
      const target = posix.normalize(posix.join(posix.dirname(path), link));
      if (isAbsolute(link) || target === ".." || target.startsWith("../")) {
        throw new FlusterError(
          `cannot pack workspace ${root}: the symlink ${path} points outside it (to ${link}); a bundle keeps only links inside the workspace. ` +
            `Leave it out with a line "/${path}" in ${join(root, ".gitignore")}, or replace it with the files it points to.`,
          "failed_precondition",
        );
      }
      out.push({ path, abs, size: Buffer.byteLength(link), mode: SYMLINK_MODE, mtimeMs: 0, ino: 0, link });
    }
    // Sockets, FIFOs and devices are not source.
  }
  await Promise.all(subdirs);
}

/** Whether git would ignore `path`: each .gitignore, from the root down, may ignore it or (with `!`) take it back. */
function isIgnored(rules: readonly Rules[], path: string, isDir: boolean): boolean {
  let ignored = false;
  for (const { base, ig } of rules) {
    const local = base === "" ? path : path.slice(base.length + 1);
    const result = ig.test(isDir ? `${local}/` : local);
    if (result.ignored) ignored = true;
    else if (result.unignored) ignored = false;
  }
  return ignored;
}

async function hashFile(f: Found): Promise<string> {
  const cached = hashCache.get(f.abs);
  if (cached && cached.size === f.size && cached.mtimeMs === f.mtimeMs && cached.ino === f.ino) return cached.sha256;
  const hash = createHash("sha256");
  if (f.size <= 4 * 1024 * 1024) {
    hash.update(await readFile(f.abs));
  } else {
    for await (const chunk of createReadStream(f.abs)) hash.update(chunk as Buffer);
  }
  const sha256 = hash.digest("hex");
  hashCache.set(f.abs, { size: f.size, mtimeMs: f.mtimeMs, ino: f.ino, sha256 });
  return sha256;
}

function tooLarge(root: string, found: readonly Found[], totalBytes: number, maxBytes: number): FlusterError {
  const top = (sizes: Map<string, number>) =>
    [...sizes.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 5)
      .map(([path, size]) => `${path} (${formatByteSize(size)})`)
      .join(", ");
  const dirs = new Map<string, number>();
  for (const f of found) {
    const parts = f.path.split("/");
    for (let n = 1; n < parts.length; n++) {
      const dir = `${parts.slice(0, n).join("/")}/`;
      dirs.set(dir, (dirs.get(dir) ?? 0) + f.size);
    }
  }
  const files = new Map(found.map((f) => [f.path, f.size]));
  return new FlusterError(
    `workspace ${root} holds ${formatByteSize(totalBytes)} of files, over the bundle limit of ${formatByteSize(maxBytes)}. ` +
      `Largest files: ${top(files)}.${dirs.size > 0 ? ` Largest folders: ${top(dirs)}.` : ""} ` +
      `Leave out what the job does not need with a .gitignore (e.g. a line "/data/" in ${join(root, ".gitignore")}), ` +
      "keep data in storage the job reads, or raise the limit (the Cluster option maxBundleBytes).",
    "failed_precondition",
  );
}
