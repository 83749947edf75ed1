// The installed fluster package as a platform ships it to a machine that has
// none of it (a Docker image, an SSH host): which files, where they sit, and
// a hash that names one build of them.
import { createHash } from "node:crypto";
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The root of the installed fluster package (a checkout, or `node_modules/fluster`), with a trailing slash. */
export const FLUSTER_PACKAGE_DIR = fileURLToPath(new URL("../../..", import.meta.url));

/** What a worker needs of the package besides its dependencies. */
const PACKAGE_ENTRIES = ["package.json", "bin", "dist", "proto"];

/**
 * The package's files a worker runs from, relative to `root`: package.json,
 * bin/, dist/, proto/ (those present), and the directory of every production
 * dependency (nested `node_modules` kept where they are).
 */
export function packageEntries(root: string = FLUSTER_PACKAGE_DIR): string[] {
  const base = root.endsWith("/") ? root : `${root}/`;
  return [...PACKAGE_ENTRIES.filter((entry) => existsSync(join(base, entry))), ...productionDependencies(base).map((dir) => dir.slice(base.length))];
}

/**
 * A hash of the package's files (their paths, sizes and modification
 * times, links followed) naming this build: a copy elsewhere is current
 * when it was made from the same hash. 16 hex digits.
 */
export function packageHash(root: string = FLUSTER_PACKAGE_DIR): string {
  const hash = createHash("sha256");
  const visit = (relative: string): void => {
    const path = join(root, relative);
    const stat = statSync(path);
    if (stat.isDirectory()) {
      for (const name of readdirSync(path).sort()) visit(join(relative, name));
    } else {
      hash.update(`${relative}\0${stat.size}\0${stat.mtimeMs}\n`);
    }
  };
  for (const entry of packageEntries(root)) visit(entry);
  return hash.digest("hex").slice(0, 16);
}

/** Directories of the production dependencies of the package at `root`, transitively, as node would find them. */
export function productionDependencies(root: string): string[] {
  const found = new Set<string>();
  const visit = (packageDir: string, optionalToo: boolean): void => {
    const manifest = JSON.parse(readFileSync(join(packageDir, "package.json"), "utf8")) as {
      dependencies?: Record<string, string>;
      optionalDependencies?: Record<string, string>;
    };
    const names = [...Object.keys(manifest.dependencies ?? {}), ...(optionalToo ? Object.keys(manifest.optionalDependencies ?? {}) : [])];
    for (const name of names) {
      const dir = resolvePackageDir(packageDir, name);
      if (!dir || found.has(dir)) continue; // an optional one not installed here
      if (!dir.startsWith(root)) continue; // outside the package (a workspace link): not copied
      found.add(dir);
      visit(dir, true);
    }
  };
  visit(root, true);
  // A nested node_modules is copied with its parent package: keep only the outermost directories.
  const sorted = [...found].sort();
  return sorted.filter((dir, i) => !sorted.slice(0, i).some((parent) => dir.startsWith(`${parent}/`)));
}

/** Where `name` is installed as seen from `fromDir` (node's lookup up the node_modules folders). */
function resolvePackageDir(fromDir: string, name: string): string | undefined {
  let dir = fromDir;
  for (;;) {
    const candidate = join(dir, "node_modules", name);
    if (existsSync(join(candidate, "package.json"))) return candidate;
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}
