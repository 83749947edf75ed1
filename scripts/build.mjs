#!/usr/bin/env node
// Builds dist/ from src/ with tsc (tsconfig.build.json): the JavaScript, .d.ts
// files and source maps that the package's exports and the `fluster` bin point
// at. `npm install` (prepare) and `npm test` run it; it does nothing while
// dist/ is newer than every input, and always builds with --force.
//
//   node scripts/build.mjs [--force]
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readdirSync, realpathSync, renameSync, rmSync, statSync, utimesSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, sep } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const src = join(root, "src");
const dist = join(root, "dist");
/** tsc writes here first, so dist/ is always a whole build (or absent), never half of one. */
const partial = join(root, "dist.partial");
/** A built file whose mtime is set to the build's start: an input changed after it makes dist/ stale. */
const STAMP = "index.js";
/** Files besides src/ whose change changes the output. */
const CONFIG = ["tsconfig.json", "tsconfig.build.json", "scripts/build.mjs"];

/** Why dist/ must be rebuilt, or undefined when it is up to date. */
export function staleReason() {
  const stamp = join(dist, STAMP);
  if (!existsSync(stamp)) return "dist/ is missing";
  const built = statSync(stamp).mtimeMs;
  // Folders count too: adding, removing or renaming a file changes its folder's mtime.
  const inputs = [src, ...readdirSync(src, { recursive: true }).map((entry) => join(src, String(entry))), ...CONFIG.map((f) => join(root, f))];
  const changed = inputs.find((path) => statSync(path).mtimeMs > built);
  return changed === undefined ? undefined : `${changed.slice(root.length)} changed since the last build`;
}

/** Compiles src/ into a fresh dist/; throws when tsc reports errors (dist/ is then left as it was). */
export function build() {
  const started = Date.now();
  let tsc;
  try {
    tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  } catch {
    throw new Error("build: typescript is not installed; run `npm install` (with dev dependencies) first");
  }
  rmSync(partial, { recursive: true, force: true });
  const result = spawnSync(process.execPath, [tsc, "-p", join(root, "tsconfig.build.json"), "--outDir", partial], { cwd: root, stdio: "inherit" });
  if (result.status !== 0) {
    rmSync(partial, { recursive: true, force: true });
    throw new Error(`build: tsc failed (${result.signal ?? `exit ${result.status}`})`);
  }
  buildDashboard(join(partial, "dashboard"));
  // tsc emits only what it compiles; plain JavaScript modules under src/ (a worker thread's entry) are copied.
  for (const entry of readdirSync(src, { recursive: true }).map(String)) {
    if (/\.[cm]?js$/.test(entry) && !entry.startsWith(`dashboard${sep}`)) {
      const target = join(partial, entry);
      mkdirSync(dirname(target), { recursive: true });
      cpSync(join(src, entry), target);
    }
  }
  const seconds = started / 1000;
  utimesSync(join(partial, STAMP), seconds, seconds);
  rmSync(dist, { recursive: true, force: true });
  renameSync(partial, dist);
}

/**
 * The dashboard (src/dashboard/, browser code): type-checked with its own
 * tsconfig, bundled by esbuild into `<out>/assets/app.js`, beside its static
 * files (src/dashboard/public/). The controller serves `<out>` as is.
 */
function buildDashboard(out) {
  const dashboard = join(src, "dashboard");
  const require = createRequire(import.meta.url);
  const check = spawnSync(process.execPath, [require.resolve("typescript/bin/tsc"), "-p", join(dashboard, "tsconfig.json")], { cwd: root, stdio: "inherit" });
  if (check.status !== 0) throw new Error(`build: tsc failed on the dashboard (${check.signal ?? `exit ${check.status}`})`);
  cpSync(join(dashboard, "public"), out, { recursive: true });
  let esbuild;
  try {
    esbuild = require("esbuild");
  } catch {
    throw new Error("build: esbuild is not installed; run `npm install` (with dev dependencies) first");
  }
  esbuild.buildSync({
    entryPoints: [join(dashboard, "main.tsx")],
    outfile: join(out, "assets", "app.js"),
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    minify: true,
    sourcemap: true,
    jsx: "automatic",
    jsxImportSource: "preact",
    tsconfig: join(dashboard, "tsconfig.json"),
    legalComments: "linked",
    logLevel: "warning",
  });
}

/** Builds when dist/ is stale; returns whether it did. */
export function buildIfStale({ log = (line) => console.error(line) } = {}) {
  const reason = staleReason();
  if (reason === undefined) return false;
  log(`build: ${reason}; compiling src/ to dist/`);
  const started = Date.now();
  build();
  log(`build: done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return true;
}

const invokedDirectly = process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
if (invokedDirectly) {
  try {
    if (process.argv.includes("--force")) {
      build();
      console.error("build: dist/ built");
    } else if (!buildIfStale()) {
      console.error("build: dist/ is up to date");
    }
  } catch (err) {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(1);
  }
}
