// A workspace bundle's manifest: the sorted list of its files with their
// content hashes. The bundle id is the sha256 of the canonical manifest, so
// the same tree always has the same id, wherever it was packed.
import { createHash } from "node:crypto";
import { ValidationError, describeValue } from "../../core/errors.js";

/** One file of a bundle. */
export interface BundleFile {
  /** Relative to the workspace root, `/`-separated, never `..`. */
  readonly path: string;
  /** sha256 of the content, hex; for a symlink, of its target text. */
  readonly sha256: string;
  readonly size: number;
  /** {@link FILE_MODE}, {@link EXECUTABLE_MODE} or {@link SYMLINK_MODE}. */
  readonly mode: number;
}

export const FILE_MODE = 0o644;
export const EXECUTABLE_MODE = 0o755;
/** A symlink: its blob is the link's target, a relative path that stays inside the bundle. */
export const SYMLINK_MODE = 0o120777;
/** The most bytes of blob data one message carries. */
export const CHUNK_BYTES = 1024 * 1024;

const SHA256 = /^[0-9a-f]{64}$/;

/** Whether `value` is a sha256 in hex, as blobs and bundles are named. */
export function isSha256(value: unknown): value is string {
  return typeof value === "string" && SHA256.test(value);
}

export function sha256Hex(data: Uint8Array | string): string {
  return createHash("sha256").update(data).digest("hex");
}

/** The manifest as the bytes its id hashes: one JSON array of [path, sha256, size, mode], sorted by path. */
export function canonicalManifest(files: readonly BundleFile[]): string {
  const sorted = [...files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return JSON.stringify(sorted.map((f) => [f.path, f.sha256, f.size, f.mode]));
}

export function bundleIdOf(files: readonly BundleFile[]): string {
  return sha256Hex(canonicalManifest(files));
}

/**
 * Checks a manifest received from elsewhere: safe relative paths (no `..`,
 * no absolute path, no duplicate, no file under another file), known modes,
 * hex hashes. Returns it sorted by path.
 */
export function validateManifest(files: readonly BundleFile[], field = "files"): BundleFile[] {
  const out: BundleFile[] = [];
  const seen = new Set<string>();
  for (const [i, f] of files.entries()) {
    const at = `${field}[${i}]`;
    if (!isSafeRelativePath(f.path)) throw new ValidationError(`${at}.path`, `must be a relative path inside the workspace, got ${describeValue(f.path)}`);
    if (seen.has(f.path)) throw new ValidationError(`${at}.path`, `is listed twice: ${f.path}`);
    seen.add(f.path);
    if (!isSha256(f.sha256)) throw new ValidationError(`${at}.sha256`, `must be a sha256 in hex, got ${describeValue(f.sha256)}`);
    if (!Number.isSafeInteger(f.size) || f.size < 0) throw new ValidationError(`${at}.size`, `must be a byte count, got ${describeValue(f.size)}`);
    if (f.mode !== FILE_MODE && f.mode !== EXECUTABLE_MODE && f.mode !== SYMLINK_MODE) {
      throw new ValidationError(`${at}.mode`, `must be 0o644, 0o755 or 0o120777 (symlink), got ${describeValue(f.mode)}`);
    }
    out.push({ path: f.path, sha256: f.sha256, size: f.size, mode: f.mode });
  }
  for (const f of out) {
    const parts = f.path.split("/");
    for (let n = 1; n < parts.length; n++) {
      const parent = parts.slice(0, n).join("/");
      if (seen.has(parent)) throw new ValidationError(field, `lists ${f.path} under ${parent}, which is a file`);
    }
  }
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

function isSafeRelativePath(path: unknown): path is string {
  if (typeof path !== "string" || path === "" || path.startsWith("/") || path.includes("\\") || path.includes("\0")) return false;
  return path.split("/").every((part) => part !== "" && part !== "." && part !== "..");
}

/** How a launch naming a bundle the controller does not have is refused; a client that sees it uploads the bundle again. */
export const BUNDLE_MISSING = "the controller has no workspace bundle";
