// Paths as Zephyr sees them: a local path, a `file://` URL, or an object
// URL (`s3://bucket/key`, `gs://bucket/key`). Anything else that looks like a
// URL is an error, never a local folder named "gs:".
import { isAbsolute, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ValidationError } from "../../core/errors.js";
import type { Scheme } from "./types.js";

const URL_SCHEME = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\//;

/** The store a path belongs to; throws a ValidationError naming an unknown scheme. */
export function schemeOf(path: string): Scheme {
  const match = URL_SCHEME.exec(path);
  if (!match) return "file";
  const scheme = (match[1] as string).toLowerCase();
  if (scheme === "s3" || scheme === "gs" || scheme === "file") return scheme;
  throw new ValidationError("path", `${JSON.stringify(path)} has an unknown scheme "${scheme}://"; Zephyr reads and writes local paths, file://, s3:// and gs://`);
}

/** True for an `s3://` or `gs://` path. */
export function isObjectUrl(path: string): boolean {
  const scheme = schemeOf(path);
  return scheme === "s3" || scheme === "gs";
}

/** An object URL's bucket and key (the key without a leading "/"). */
export function parseObjectUrl(path: string): { scheme: "s3" | "gs"; bucket: string; key: string } {
  const scheme = schemeOf(path);
  if (scheme === "file") throw new ValidationError("path", `${JSON.stringify(path)} is not an s3:// or gs:// URL`);
  const rest = path.slice(scheme.length + 3);
  const slash = rest.indexOf("/");
  const bucket = slash === -1 ? rest : rest.slice(0, slash);
  if (bucket === "") throw new ValidationError("path", `${JSON.stringify(path)} names no bucket (write ${scheme}://BUCKET/key)`);
  return { scheme, bucket, key: slash === -1 ? "" : rest.slice(slash + 1) };
}

/**
 * A path made absolute: a local path resolved against `cwd`, a `file://`
 * URL turned into its path, an object URL unchanged.
 */
export function absolutePath(path: string, cwd: string = process.cwd()): string {
  const scheme = schemeOf(path);
  if (scheme === "file") return URL_SCHEME.test(path) ? fileURLToPath(path) : isAbsolute(path) ? resolve(path) : resolve(cwd, path);
  return path;
}

/** `base` joined with `parts`: by the local path rules, or with "/" for an object URL. */
export function joinPath(base: string, ...parts: string[]): string {
  if (!isObjectUrl(base)) return join(absolutePath(base), ...parts);
  const trimmed = base.endsWith("/") ? base.slice(0, -1) : base;
  return [trimmed, ...parts.map((p) => p.replace(/^\/+|\/+$/g, "")).filter((p) => p !== "")].join("/");
}

/** The part of a path before its last "/" (an object URL's "directory", or a local dirname). */
export function parentPath(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash <= 0 ? path : path.slice(0, slash);
}
