// Job workspaces with npm dependencies that install with no network: a
// lockfile pinning packages the repository's own `npm ci` left in the user's
// npm cache (by integrity), and tarballs of tiny packages made on the spot.
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "./paths.js";

interface LockEntry {
  version: string;
  resolved?: string;
  integrity?: string;
  dependencies?: Record<string, string>;
}

const repoLock = JSON.parse(readFileSync(join(REPO_ROOT, "package-lock.json"), "utf8")) as { packages: Record<string, LockEntry> };

/** The user's npm cache, which holds the tarballs of the repository's dependencies after `npm ci`. */
export function userNpmCache(): string {
  return process.env.npm_config_cache || execFileSync("npm", ["config", "get", "cache"], { encoding: "utf8", env: { ...process.env, NODE_OPTIONS: "" } }).trim();
}

/** A package the repository depends on (transitively), with its version in the repository's lockfile. */
export function repoPackage(name: string): LockEntry {
  const entry = repoLock.packages[`node_modules/${name}`];
  if (!entry) throw new Error(`the repository's lockfile has no ${name}`);
  return entry;
}

/**
 * Writes package.json and package-lock.json into `dir` for a project that
 * depends on `names` (and what they depend on), all from the repository's lockfile.
 */
export function writeLockedWorkspace(dir: string, names: readonly string[], extra: Record<string, unknown> = {}): void {
  mkdirSync(dir, { recursive: true });
  const manifest = { name: "fixture-workspace", version: "1.0.0", private: true, type: "module", dependencies: Object.fromEntries(names.map((n) => [n, repoPackage(n).version])), ...extra };
  const packages: Record<string, unknown> = { "": manifest };
  const pending = [...names];
  while (pending.length > 0) {
    const name = pending.pop()!;
    if (packages[`node_modules/${name}`]) continue;
    const { version, resolved, integrity, dependencies } = repoPackage(name);
    packages[`node_modules/${name}`] = { version, ...(resolved ? { resolved } : {}), integrity, ...(dependencies ? { dependencies } : {}) };
    pending.push(...Object.keys(dependencies ?? {}));
  }
  writeFileSync(join(dir, "package.json"), `${JSON.stringify(manifest, null, 2)}\n`);
  writeFileSync(join(dir, "package-lock.json"), `${JSON.stringify({ name: manifest.name, version: "1.0.0", lockfileVersion: 3, requires: true, packages }, null, 2)}\n`);
}

/** Options of {@link packTarball}. */
export interface TarballOptions {
  /** The package's index.js. @default exports its name */
  source?: string;
  /** An install script that sleeps this long, to make the install slow. */
  installDelayMs?: number;
}

/** Makes `<dir>/<name>-<version>.tgz`, a CommonJS package, with npm pack (offline); returns its path. */
export function packTarball(dir: string, name: string, version: string, options: TarballOptions = {}): string {
  const source = join(dir, `${name}-${version}-src`);
  mkdirSync(source, { recursive: true });
  const scripts = options.installDelayMs ? { install: `node -e "setTimeout(() => {}, ${options.installDelayMs})"` } : undefined;
  writeFileSync(join(source, "package.json"), JSON.stringify({ name, version, main: "index.js", ...(scripts ? { scripts } : {}) }));
  writeFileSync(join(source, "index.js"), options.source ?? `module.exports = ${JSON.stringify(`${name}@${version}`)};\n`);
  const file = execFileSync("npm", ["pack", "--offline", "--silent", "--pack-destination", dir], { cwd: source, encoding: "utf8", env: { ...process.env, NODE_OPTIONS: "" } }).trim().split("\n").pop()!;
  return join(dir, file);
}
