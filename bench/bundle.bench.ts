// Bundle benchmark: pack + upload of a 2,000-file, 50 MB workspace to a real
// controller, beside `tar czf` (and `tar cf`) of the same tree in the same run.
// Each cold sample is a fresh controller (its own state directory) and a fresh
// client process (an empty hash cache); the same client then re-launches the
// unchanged workspace, and again after editing one file.
//   node --import tsx bench/bundle.bench.ts [--rounds 3] [--reps 7]
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { BundleStep } from "./servers/bundle-client.js";
import { machine, printTable, summarize } from "./stats.js";
import { writeWorkspaceTree } from "./workspace-tree.js";

const { values } = parseArgs({ options: { rounds: { type: "string", default: "3" }, reps: { type: "string", default: "7" } } });
const rounds = Number(values.rounds);
const reps = Number(values.reps);
const profile = process.env.BENCH_CPU_PROF_DIR ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_CPU_PROF_DIR}`] : [];

interface ClientResult {
  cold: BundleStep;
  unchanged: BundleStep[];
  touched: BundleStep[];
  launches: number[];
}

function run(argv: readonly string[]): Promise<number> {
  const start = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0] as string, argv.slice(1), { stdio: ["ignore", "ignore", "inherit"] });
    child.once("error", reject);
    child.once("exit", (code) => (code === 0 ? resolve(performance.now() - start) : reject(new Error(`${argv.join(" ")} exited with ${code}`))));
  });
}

/** A controller process with a fresh state directory; resolves to its URL and a stop function. */
async function startController(): Promise<{ url: string; stop: () => Promise<void> }> {
  const stateDir = mkdtempSync(join(tmpdir(), "fluster-bundle-bench-state-"));
  const main = fileURLToPath(new URL("../src/cluster/controller/main.ts", import.meta.url));
  const child = spawn(process.execPath, [...profile, "--import", "tsx", main, JSON.stringify({ stateDir, logLevel: "warn" })], { stdio: ["ignore", "pipe", "inherit"] });
  const url = await new Promise<string>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`controller exited with ${code}`)));
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      const match = /^fluster-controller-ready (.*)$/.exec(line);
      if (match?.[1]) resolve((JSON.parse(match[1]) as { url: string }).url);
    });
  });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
    }
    rmSync(stateDir, { recursive: true, force: true });
  };
  return { url, stop };
}

function runClient(url: string, workspace: string): Promise<ClientResult> {
  const script = fileURLToPath(new URL("./servers/bundle-client.ts", import.meta.url));
  const child = spawn(process.execPath, [...profile, "--import", "tsx", script, url, workspace, String(reps)], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  return new Promise((resolve, reject) => {
    let result: ClientResult | undefined;
    child.once("error", reject);
    child.on("message", (message) => (result = message as ClientResult));
    child.once("exit", (code) => (result ? resolve(result) : reject(new Error(`bundle client exited with ${code}`))));
  });
}

console.log(`machine: ${machine()}, load average ${loadavg().map((l) => l.toFixed(2)).join(" ")} at the start`);
const root = mkdtempSync(join(tmpdir(), "fluster-bundle-bench-"));
const workspace = join(root, "ws");
const written = writeWorkspaceTree(workspace);
console.log(`workspace: ${written.length} files + package.json + .gitignore, 50 MiB, in ${workspace}`);

const tarGz: number[] = [];
const tarPlain: number[] = [];
const results: ClientResult[] = [];
try {
  // Warm the page cache for both sides: every measurement reads the tree from memory.
  await run(["tar", "cf", "/dev/null", "-C", workspace, "."]);
  // Rounds interleave the three, so that load from other processes falls on each alike.
  for (let round = 0; round < rounds; round++) {
    tarGz.push(await run(["tar", "czf", join(root, "ws.tgz"), "-C", workspace, "."]));
    tarPlain.push(await run(["tar", "cf", join(root, "ws.tar"), "-C", workspace, "."]));
    const controller = await startController();
    try {
      results.push(await runClient(controller.url, workspace));
    } finally {
      await controller.stop();
    }
    console.log(`round ${round + 1}: tar czf ${tarGz.at(-1)?.toFixed(0)} ms, fluster cold ${results.at(-1)?.cold.totalMs.toFixed(0)} ms`);
  }
} finally {
  rmSync(root, { recursive: true, force: true });
}

const gz = summarize(tarGz).median;
const row = (measure: string, samples: number[], note = "") => {
  const s = summarize(samples);
  return { measure, "median ms": s.median, "min ms": Math.min(...samples), "max ms": Math.max(...samples), n: s.n, "vs tar czf": `${(s.median / gz).toFixed(2)}x`, note };
};
const cold = results.map((r) => r.cold);
const unchanged = results.flatMap((r) => r.unchanged);
const touched = results.flatMap((r) => r.touched);
printTable([
  row("tar czf (baseline)", tarGz),
  row("tar cf (no gzip)", tarPlain),
  row("cold pack + upload", cold.map((c) => c.totalMs), "fresh controller and client"),
  row("  of which pack (hash)", cold.map((c) => c.packMs)),
  row("  of which upload", cold.map((c) => c.uploadMs)),
  row("unchanged: pack + upload called directly", unchanged.map((c) => c.totalMs), "same client process"),
  row("  of which pack", unchanged.map((c) => c.packMs)),
  row("  of which upload (putBundle only)", unchanged.map((c) => c.uploadMs), "launch() skips it: see below"),
  row("one file edited: pack + upload", touched.map((c) => c.totalMs)),
  row("unchanged re-launch: whole launch()", results.flatMap((r) => r.launches), "pack + LaunchJob by bundle id"),
]);
const coldMedian = summarize(cold.map((c) => c.totalMs)).median;
// What a user's unchanged re-launch costs: launch() packs (hash cache: stats only) and names the bundle it registered
// before, so its bundle work is at most the whole launch (the LaunchJob call included).
const unchangedMedian = summarize(results.flatMap((r) => r.launches)).median;
console.log(`\ntargets: cold ≤ 1.5× tar czf → ${(coldMedian / gz).toFixed(2)}x ${coldMedian <= 1.5 * gz ? "met" : "NOT met"}; ` +
  `unchanged re-launch ≤ 50 ms → ${unchangedMedian.toFixed(1)} ms ${unchangedMedian <= 50 ? "met" : "NOT met"}`);
