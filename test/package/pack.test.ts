// The package as a user gets it: `npm pack`, the tarball installed into an
// empty project offline (from the npm cache only), then used with plain node:
// a LocalCluster running a command job and function jobs from a .js and a .ts
// file, the threads job context, the `fluster` bin, and the type declarations.
// A module-load probe in every process shows that neither the library nor the
// bin loads tsx: only the processes that import user code by reference do.
//
// Offline, npm cannot resolve version ranges (it needs registry metadata the
// cache does not hold), so the project gets a lockfile: fluster from the
// tarball and its dependencies at the versions package-lock.json pins, nested
// under node_modules/fluster so that nothing (tsx included) is reachable from
// the project's own node_modules. Native dependencies install through their
// own install scripts; prebuild-install is handed the binaries the
// repository's install built (same versions, this Node) as prebuilt ones,
// which saves minutes of compiling; without them it compiles from source.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = fileURLToPath(new URL("../../", import.meta.url));
const fixtures = fileURLToPath(new URL("../fixtures/package/", import.meta.url));
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as PackageJson;

interface PackageJson {
  name: string;
  version: string;
  license?: string;
  dependencies?: Record<string, string>;
  bin?: Record<string, string>;
  engines?: Record<string, string>;
}

interface LockEntry {
  name?: string;
  version?: string;
  resolved?: string;
  integrity?: string;
  dev?: boolean;
  link?: boolean;
  [field: string]: unknown;
}

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

/** Runs a command to completion (killing its whole process group past `timeoutMs`). */
function run(command: string, args: string[], options: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs: number }): Promise<RunResult> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      stderr += `\n[pack test: killed after ${options.timeoutMs} ms]`;
      if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
    }, options.timeoutMs);
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, seconds: (Date.now() - started) / 1000 });
    });
  });
}

function describeRun(what: string, result: RunResult): string {
  return `${what} exited ${result.code} after ${result.seconds.toFixed(1)} s\n--- stdout\n${result.stdout.slice(-6000)}\n--- stderr\n${result.stderr.slice(-6000)}`;
}

/**
 * The environment of every command here: no test-runner loader or context,
 * no cluster address, and none of the variables `npm test` sets for its own
 * package (npm's configuration, such as its cache, is kept).
 */
function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (key === "NODE_OPTIONS" || key === "NODE_TEST_CONTEXT" || key.startsWith("FLUSTER_")) continue;
    if (key.startsWith("npm_") && (!key.startsWith("npm_config_") || key === "npm_config_local_prefix")) continue;
    env[key] = value;
  }
  return { ...env, ...extra };
}

/**
 * The empty project's lockfile: fluster from `tarball` (a file in the
 * project's folder), and under
 * node_modules/fluster/ every package of `repoLock` that is not dev-only, with
 * its registry URL so npm takes the tarball from its cache by integrity.
 */
function projectLock(project: PackageJson, tarball: string, repoLock: { packages: Record<string, LockEntry> }, registry: string): object {
  const spec = `file:${basename(tarball)}`;
  const packages: Record<string, unknown> = {
    "": { name: project.name, version: project.version, dependencies: { [pkg.name]: spec } },
    [`node_modules/${pkg.name}`]: {
      version: pkg.version,
      resolved: spec,
      integrity: `sha512-${createHash("sha512").update(readFileSync(tarball)).digest("base64")}`,
      license: pkg.license,
      dependencies: pkg.dependencies,
      bin: pkg.bin,
      engines: pkg.engines,
    },
  };
  for (const [path, entry] of Object.entries(repoLock.packages)) {
    if (path === "" || entry.dev === true) continue;
    const name = entry.name ?? path.slice(path.lastIndexOf("node_modules/") + "node_modules/".length);
    if (entry.link || !entry.version || !entry.integrity) throw new Error(`package-lock.json: ${path} is not a registry package with a version and an integrity`);
    const resolved = entry.resolved ?? `${registry.replace(/\/?$/, "/")}${name}/-/${name.split("/").pop()}-${entry.version}.tgz`;
    packages[`node_modules/${pkg.name}/${path}`] = { ...entry, resolved };
  }
  return { name: project.name, version: project.version, lockfileVersion: 3, requires: true, packages };
}

/** Native dependencies whose install script (prebuild-install) takes a prebuilt binary, and where the repository's build put theirs. */
const NATIVE = [
  { name: "better-sqlite3", runtime: "node", binary: "build/Release/better_sqlite3.node" },
  { name: "zstd-napi", runtime: "napi", binary: "build/Release/binding.node" },
] as const;

/** The variable that tells prebuild-install, installing `name`, where to find prebuilt binaries. */
const localPrebuildsVar = (name: string) => `npm_config_${name.replace(/[^a-zA-Z0-9]/g, "_")}_local_prebuilds`;

/**
 * Packs the repository's built binaries of NATIVE into `dir` under the names
 * prebuild-install looks for, and returns the variables that point it there.
 * A dependency whose version differs from the lockfile's, or whose binary is
 * missing, is left out (it then compiles from source); prebuild-install
 * itself loads a Node-runtime binary before accepting it.
 */
async function localPrebuilds(dir: string, repoLock: { packages: Record<string, LockEntry> }): Promise<NodeJS.ProcessEnv> {
  const env: NodeJS.ProcessEnv = {};
  const glibc = process.platform !== "linux" || Boolean((process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime);
  if (!glibc) return env;
  mkdirSync(dir, { recursive: true });
  for (const { name, runtime, binary } of NATIVE) {
    const installed = join(root, "node_modules", name);
    const version = repoLock.packages[`node_modules/${name}`]?.version;
    if (!existsSync(join(installed, binary)) || !existsSync(join(installed, "package.json"))) continue;
    const manifest = JSON.parse(readFileSync(join(installed, "package.json"), "utf8")) as { version: string; binary?: { napi_versions?: number[] } };
    if (manifest.version !== version) continue;
    const napi = Math.max(...(manifest.binary?.napi_versions ?? []).filter((v) => v <= Number(process.versions.napi)));
    const abi = runtime === "node" ? process.versions.modules : String(napi);
    const tarball = join(dir, `${name}-v${version}-${runtime}-v${abi}-${process.platform}-${process.arch}.tar.gz`);
    const packed = await run("tar", ["-czf", tarball, "-C", installed, binary], { cwd: dir, env: cleanEnv(), timeoutMs: 60_000 });
    if (packed.code !== 0) continue;
    env[localPrebuildsVar(name)] = dir;
  }
  return env;
}

/** One module load seen by the probe: which process (and thread) loaded which file under node_modules. */
interface Load {
  pid: number;
  thread: number;
  entry: string;
  url: string;
}

/** Files for `node --import`: registers a load hook that appends each node_modules module a process loads to `log`. */
function writeProbe(dir: string, log: string): string {
  writeFileSync(
    join(dir, "probe-hooks.mjs"),
    `import { appendFileSync } from "node:fs";
let data;
export function initialize(value) { data = value; }
export async function load(url, context, nextLoad) {
  if (url.startsWith("file:") && url.includes("/node_modules/")) appendFileSync(${JSON.stringify(log)}, JSON.stringify({ ...data, url }) + "\\n");
  return nextLoad(url, context);
}
`,
  );
  const probe = join(dir, "probe.mjs");
  writeFileSync(
    probe,
    `import { register } from "node:module";
import { threadId } from "node:worker_threads";
register("./probe-hooks.mjs", import.meta.url, { data: { pid: process.pid, thread: threadId, entry: process.argv[1] ?? "" } });
`,
  );
  return probe;
}

function readLoads(log: string): Load[] {
  if (!existsSync(log)) return [];
  return readFileSync(log, "utf8").split("\n").filter(Boolean).map((line) => JSON.parse(line) as Load);
}

const isTsx = (load: Load) => /\/node_modules\/tsx\//.test(load.url);

/** What the program below prints as its last line: each job's output and the threads context's result. */
interface ProgramResult {
  command: string;
  square: string;
  cube: string;
  threads: number;
}

// The project's main.mjs, run with plain node: no loader, only what "fluster" exports.
const PROGRAM = `
import { pathToFileURL } from "node:url";
import { Entrypoint, LocalCluster, createJobContext } from "fluster";
import { square } from "./tasks.js";

const cluster = await LocalCluster.start({ workers: 1 });
try {
  const resources = { cpu: 0.1, memory: "128m" };
  const output = async (entrypoint) => {
    const jobId = await cluster.launch({ name: "pack-test", resources, entrypoint });
    await cluster.wait(jobId, { timeoutSeconds: 90, raiseOnFailure: true });
    let text = "";
    for await (const line of cluster.logs(jobId)) text += line.data;
    return text.trim();
  };
  const command = await output(Entrypoint.fromCommand(["node", "-e", "console.log('command says', 6 * 7)"]));
  const squared = await output(Entrypoint.fromFunction(square, 7));
  // A .ts module cannot be imported here (plain node), but a job can run it by reference.
  const cube = await output({ kind: "function", ref: { module: pathToFileURL("cube.ts").href, name: "cube" }, args: [3] });
  const ctx = createJobContext("threads", { maxWorkers: 1 });
  const threads = await ctx.get(ctx.run(square, 5));
  await ctx.close();
  console.log(JSON.stringify({ command, square: squared, cube, threads }));
} finally {
  await cluster.shutdown();
}
`;

describe("the npm package, installed into an empty project", { timeout: 20 * 60_000 }, () => {
  let dir = "";
  let project = "";
  let probeLog = "";
  let probeOptions = "";
  let packedFiles: string[] = [];
  let installSeconds = 0;
  let prebuiltNames: string[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "fluster-pack-"));
    project = join(dir, "project");
    mkdirSync(project);

    // prepare (the build) runs first, so the tarball carries current dist/.
    const packed = await run("npm", ["pack", "--json", "--pack-destination", project], { cwd: root, env: cleanEnv(), timeoutMs: 5 * 60_000 });
    assert.equal(packed.code, 0, describeRun("npm pack", packed));
    const [info] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf("["))) as Array<{ filename: string; files: Array<{ path: string }> }>;
    assert.ok(info, packed.stdout);
    packedFiles = info.files.map((f) => f.path);
    const tarball = join(project, info.filename);

    const manifest: PackageJson = { name: "fluster-pack-test", version: "1.0.0" };
    writeFileSync(join(project, "package.json"), `${JSON.stringify({ ...manifest, private: true, type: "module", dependencies: { [pkg.name]: `file:${info.filename}` } }, null, 2)}\n`);
    const repoLock = JSON.parse(readFileSync(join(root, "package-lock.json"), "utf8")) as { packages: Record<string, LockEntry> };
    const registry = process.env.npm_config_registry || "https://registry.npmjs.org/";
    writeFileSync(join(project, "package-lock.json"), `${JSON.stringify(projectLock(manifest, tarball, repoLock, registry), null, 2)}\n`);
    for (const file of readdirSync(fixtures)) copyFileSync(join(fixtures, file), join(project, file));
    writeFileSync(join(project, "main.mjs"), PROGRAM);

    // --offline: packages come from the npm cache or not at all. The proxy
    // settings point at a closed port, so nothing an install script tries
    // (prebuild-install's download from GitHub) leaves the machine; native
    // modules take the repository's binaries, or else compile from source.
    const offline = "http://127.0.0.1:9";
    const prebuilds = await localPrebuilds(join(dir, "prebuilds"), repoLock);
    const install = await run("npm", ["install", "--offline", "--no-audit", "--no-fund"], {
      cwd: project,
      env: cleanEnv({ ...prebuilds, npm_config_proxy: offline, npm_config_https_proxy: offline, npm_config_noproxy: "", npm_config_update_notifier: "false", JOBS: "max" }),
      timeoutMs: 12 * 60_000,
    });
    const hint = /ENOTCACHED/.test(install.stderr) ? "\n(the npm cache lacks a package: `npm install` in the repository fills it)" : "";
    assert.equal(install.code, 0, describeRun("npm install --offline of the tarball", install) + hint);
    installSeconds = install.seconds;
    prebuiltNames = NATIVE.map((n) => n.name).filter((name) => localPrebuildsVar(name) in prebuilds);

    probeLog = join(dir, "loads.jsonl");
    probeOptions = `--import=${pathToFileURL(writeProbe(dir, probeLog)).href}`;
  });

  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("the tarball holds what users need and nothing else", () => {
    for (const file of ["package.json", "README.md", "bin/fluster.js", "dist/index.js", "dist/index.d.ts", "dist/index.js.map", "dist/cli/main.js", "dist/job/thread-worker.mjs", "proto/fluster/cluster/v1/controller.proto"]) {
      assert.ok(packedFiles.includes(file), `the tarball lacks ${file}`);
    }
    const unexpected = packedFiles.filter((file) => !/^(dist|bin|proto)\//.test(file) && !["package.json", "README.md"].includes(file));
    assert.deepEqual(unexpected, [], "files outside dist/, bin/ and proto/");
    assert.ok(!packedFiles.some((file) => file.endsWith(".ts") && !file.endsWith(".d.ts")), "TypeScript sources in the tarball");
  });

  test("installs with its dependencies inside it, none in the project's own node_modules", () => {
    const installed = join(project, "node_modules");
    assert.ok(existsSync(join(installed, "fluster", "dist", "index.js")));
    assert.ok(existsSync(join(installed, ".bin", "fluster")), "npm linked no fluster bin");
    assert.ok(existsSync(join(installed, "fluster", "node_modules", "tsx", "package.json")), "tsx is not under node_modules/fluster");
    assert.deepEqual(readdirSync(installed).filter((name) => !name.startsWith(".")), ["fluster"]);
    console.log(`# npm install --offline of the tarball took ${installSeconds.toFixed(1)} s (prebuilt from the repository: ${prebuiltNames.join(", ") || "none"})`);
  });

  test("plain node runs a LocalCluster with command, .js and .ts function jobs and threads; only user-code processes load tsx", async () => {
    rmSync(probeLog, { force: true });
    const result = await run(process.execPath, ["main.mjs"], { cwd: project, env: cleanEnv({ NODE_OPTIONS: probeOptions }), timeoutMs: 3 * 60_000 });
    assert.equal(result.code, 0, describeRun("the program", result));
    const lines = result.stdout.trim().split("\n");
    const outcome = JSON.parse(lines[lines.length - 1] ?? "") as ProgramResult;
    assert.deepEqual(outcome, { command: "command says 42", square: "square(7) = 49", cube: "cube(3) = 27", threads: 25 });

    const loads = readLoads(probeLog);
    const fluster = (suffix: string) => (load: Load) => load.url.endsWith(`/node_modules/fluster/dist/${suffix}`);
    // The program itself (the main thread of the process run above).
    const main = loads.filter((load) => load.entry === join(project, "main.mjs") && load.thread === 0);
    assert.ok(main.some(fluster("index.js")), "the probe saw the program not import fluster's dist/index.js");
    assert.deepEqual(main.filter(isTsx).map((l) => l.url), [], "the library loaded tsx into the program");
    // Worker daemons run dist/ with plain node.
    const daemons = loads.filter((load) => load.entry.endsWith("/node_modules/fluster/dist/cluster/worker/main.js"));
    assert.ok(daemons.some(fluster("cluster/worker/daemon.js")), "the probe saw no worker daemon");
    assert.deepEqual(daemons.filter(isTsx).map((l) => l.url), [], "a worker daemon loaded tsx");
    // tsx is loaded only where user modules are imported: the function
    // bootstrap, and the threads context's worker threads in the program.
    const bootstrap = (load: Load) => load.thread === 0 && load.entry.endsWith("/node_modules/fluster/dist/cluster/worker/bootstrap.js");
    const programPid = main[0]?.pid;
    const programThread = (load: Load) => load.thread !== 0 && load.pid === programPid;
    assert.ok(loads.filter(bootstrap).some(isTsx), "the probe saw no function bootstrap load tsx");
    const elsewhere = loads.filter((load) => isTsx(load) && !bootstrap(load) && !programThread(load));
    assert.deepEqual(elsewhere.map((l) => `${l.entry} (thread ${l.thread}): ${l.url}`), [], "tsx was loaded outside the processes that import user code");
  });

  test("npx fluster --help and --version work without loading tsx", async () => {
    rmSync(probeLog, { force: true });
    const env = cleanEnv({ NODE_OPTIONS: probeOptions });
    const help = await run("npx", ["--offline", "fluster", "--help"], { cwd: project, env, timeoutMs: 60_000 });
    assert.equal(help.code, 0, describeRun("npx fluster --help", help));
    assert.match(help.stdout, /^Usage: fluster /m);
    assert.match(help.stdout, /cluster start/);
    const version = await run("npx", ["--offline", "fluster", "--version"], { cwd: project, env, timeoutMs: 60_000 });
    assert.equal(version.code, 0, describeRun("npx fluster --version", version));
    assert.equal(version.stdout.trim(), pkg.version);

    const loads = readLoads(probeLog);
    const cli = loads.filter((load) => load.entry.endsWith("/node_modules/.bin/fluster"));
    assert.ok(cli.some((load) => load.url.endsWith("/node_modules/fluster/dist/cli/main.js")), "the probe saw no fluster bin run dist/cli/main.js");
    assert.deepEqual(loads.filter(isTsx).map((l) => `${l.entry}: ${l.url}`), [], "tsx was loaded");
  });

  test("the type declarations resolve and type-check a user's TypeScript", async () => {
    const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
    const typeRoots = join(root, "node_modules", "@types");
    writeFileSync(
      join(project, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: { target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", strict: true, noEmit: true, types: ["node"], typeRoots: [typeRoots], skipLibCheck: false },
        files: ["types-check.ts", "cube.ts"],
      }),
    );
    const result = await run(process.execPath, [tsc, "-p", "tsconfig.json", "--traceResolution"], { cwd: project, env: cleanEnv(), timeoutMs: 3 * 60_000 });
    assert.equal(result.code, 0, describeRun("tsc", result));
    assert.match(result.stdout, /Module name 'fluster' was successfully resolved to '[^']*\/node_modules\/fluster\/dist\/index\.d\.ts'/);
  });
});
