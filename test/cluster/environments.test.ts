// The worker's environment cache with real npm, offline: what it installs,
// what it shares, how a failed install reads, and how a task finds packages.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { FlusterError } from "../../src/core/errors.js";
import { EnvironmentCache, environmentVariables, workerFluster, type EnvironmentCacheOptions, type PreparedEnvironment } from "../../src/cluster/worker/environments.js";
import { REPO_ROOT } from "../helpers/index.js";
import { packTarball, repoPackage, userNpmCache, writeLockedWorkspace } from "../helpers/npm-workspaces.js";

const root = mkdtempSync(join(tmpdir(), "fluster-envs-"));
const npmCacheDir = userNpmCache();
const caches: EnvironmentCache[] = [];
let serial = 0;

after(async () => {
  await Promise.all(caches.map((c) => c.close()));
  rmSync(root, { recursive: true, force: true });
});

function newCache(options: Partial<EnvironmentCacheOptions> = {}): EnvironmentCache {
  const cache = new EnvironmentCache({ root: join(root, `envs-${serial++}`), npmCacheDir, offline: true, ...options });
  caches.push(cache);
  return cache;
}

function workspace(): string {
  const dir = join(root, `ws-${serial++}`);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Runs `node --input-type=module -e code` in `cwd`, with the environment's variables when given. */
function runIn(cwd: string, code: string, env?: PreparedEnvironment): { status: number | null; stdout: string; stderr: string } {
  const vars = env ? environmentVariables(env, undefined, undefined) : {};
  const result = spawnSync(process.execPath, ["--input-type=module", "-e", code], { cwd, encoding: "utf8", env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...vars } });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe("EnvironmentCache", () => {
  test("a workspace with no package.json and no packages needs no environment", async () => {
    const cache = newCache();
    assert.equal(await cache.prepare({ workspaceDir: workspace() }), undefined);
    assert.deepEqual(cache.counters, { installs: 0, hits: 0, misses: 0, failures: 0 });
  });

  test("installs a lockfile's packages once; the workspace's code imports them and fluster", async () => {
    assert.ok(!root.startsWith(REPO_ROOT), "the workspace must be outside the repository");
    const dir = workspace();
    writeLockedWorkspace(dir, ["debug"]);
    const code = `import debug from "debug"; import ms from "ms"; import { remote } from "fluster"; console.log(typeof debug, ms("2s"), typeof remote);`;
    assert.notEqual(runIn(dir, code).status, 0, "debug must not resolve from the workspace without its environment");

    const cache = newCache();
    let building = 0;
    const env = await cache.prepare({ workspaceDir: dir, onBuilding: () => building++ });
    assert.ok(env);
    assert.equal(env.built, true);
    assert.equal(building, 1);
    assert.match(env.key, /^[0-9a-f]{64}$/);
    assert.equal(JSON.parse(readFileSync(join(env.nodeModulesDir, "debug", "package.json"), "utf8")).version, repoPackage("debug").version);
    const run = runIn(dir, code, env);
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout.trim(), "function 2000 function");
    // CommonJS require finds them too.
    const cjs = spawnSync(process.execPath, ["-e", `console.log(require("ms")("1m"))`], { cwd: dir, encoding: "utf8", env: { PATH: process.env.PATH ?? "", ...environmentVariables(env, undefined, undefined) } });
    assert.equal(cjs.stdout.trim(), "60000", cjs.stderr);

    const again = await cache.prepare({ workspaceDir: dir, onBuilding: () => building++ });
    assert.deepEqual(again, { ...env, built: false });
    assert.equal(building, 1);
    assert.deepEqual(cache.counters, { installs: 1, hits: 1, misses: 1, failures: 0 });
    assert.deepEqual(readdirSync(cache.root).sort(), [env.key, "logs"].sort());
  });

  test("concurrent prepares of one key share one install; two caches on one root build it once", async () => {
    const dir = workspace();
    writeLockedWorkspace(dir, ["ms"]);
    const a = newCache();
    const b = new EnvironmentCache({ root: a.root, npmCacheDir, offline: true });
    caches.push(b);
    const envs = await Promise.all([a.prepare({ workspaceDir: dir }), a.prepare({ workspaceDir: dir }), b.prepare({ workspaceDir: dir })]);
    assert.equal(new Set(envs.map((e) => e?.key)).size, 1);
    assert.equal(a.counters.installs + b.counters.installs, 1);
    assert.ok(!existsSync(join(a.root, `${envs[0]!.key}.lock`)));
  });

  test("packages are installed on top, with or without a package.json, under their own key", async () => {
    const tarballs = workspace();
    const extra = packTarball(tarballs, "fluster-fixture-extra", "1.2.3");
    const cache = newCache();

    const bare = workspace();
    const alone = await cache.prepare({ workspaceDir: bare, packages: [extra] });
    assert.ok(alone);
    const run = runIn(bare, `import extra from "fluster-fixture-extra"; console.log(extra);`, alone);
    assert.equal(run.stdout.trim(), "fluster-fixture-extra@1.2.3", run.stderr);

    const locked = workspace();
    writeLockedWorkspace(locked, ["ms"]);
    const withLock = await cache.prepare({ workspaceDir: locked, packages: [extra] });
    const withoutPackages = await cache.prepare({ workspaceDir: locked });
    assert.ok(withLock && withoutPackages);
    assert.notEqual(withLock.key, withoutPackages.key);
    const both = runIn(locked, `import extra from "fluster-fixture-extra"; import ms from "ms"; console.log(extra, ms(1000));`, withLock);
    assert.equal(both.stdout.trim(), "fluster-fixture-extra@1.2.3 1s", both.stderr);
    assert.equal(runIn(locked, `import "fluster-fixture-extra";`, withoutPackages).status === 0, false);
    // Installing on top left the workspace's files alone.
    assert.deepEqual(readdirSync(locked).sort(), ["package-lock.json", "package.json"]);
  });

  test("a lockfile npm rejects fails with npm's error tail and the key, and leaves only a log", async () => {
    const dir = workspace();
    writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "broken", version: "1.0.0", dependencies: { ms: "^2.1.3" } }));
    writeFileSync(join(dir, "package-lock.json"), "this is { not a lockfile");
    const cache = newCache();
    const err = await cache.prepare({ workspaceDir: dir }).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof FlusterError, String(err));
    assert.equal(err.code, "failed_precondition");
    assert.match(err.message, /^installing the job's dependencies failed \(npm ci exited \d+; environment [0-9a-f]{64}\):\n/);
    assert.match(err.message, /npm error/);
    assert.deepEqual(readdirSync(cache.root), ["logs"]);
    const [log] = readdirSync(join(cache.root, "logs"));
    assert.match(readFileSync(join(cache.root, "logs", log!), "utf8"), /npm error/);
    assert.deepEqual(cache.counters, { installs: 0, hits: 0, misses: 1, failures: 1 });
  });

  test("a fluster of another version than the worker's is refused", async () => {
    const tarballs = workspace();
    const other = packTarball(tarballs, "fluster", "99.0.0");
    const cache = newCache();
    await assert.rejects(cache.prepare({ workspaceDir: workspace(), packages: [other] }), (err: Error) => {
      assert.match(err.message, new RegExp(`pin fluster 99\\.0\\.0 but this worker runs fluster ${workerFluster.version.replace(/\./g, "\\.")}`));
      return true;
    });
    assert.deepEqual(readdirSync(cache.root), ["logs"]);
  });

  test("a workspace with its own node_modules is taken as installed", async () => {
    const dir = workspace();
    writeLockedWorkspace(dir, ["ms"]);
    mkdirSync(join(dir, "node_modules"));
    const cache = newCache();
    assert.equal(await cache.prepare({ workspaceDir: dir }), undefined);
  });
});
