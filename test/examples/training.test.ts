// Runs examples/training as a user would: a real child process that starts its
// own LocalCluster (CPU workers only), so an accelerator job must fail clearly
// and a --cpu run must train to the end.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Processes of this run still alive after it exited (worker daemons, tasks). */
  leftovers: number[];
}

const strays: number[] = [];

/**
 * Runs the example in a child process (no cluster address: it starts its own),
 * optionally interrupts it, and checks what it leaves behind.
 */
async function runExample(args: string[], options: { interruptOn?: RegExp; timeoutMs?: number } = {}): Promise<Run> {
  const marker = randomUUID();
  // A clean environment, as on a fresh machine: no cluster address (nor any
  // other FLUSTER_* variable, e.g. of a job running these tests), no loader flags.
  const env: NodeJS.ProcessEnv = { EXAMPLE_TEST_RUN: marker };
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith("FLUSTER_") && key !== "NODE_OPTIONS" && key !== "NODE_TEST_CONTEXT") env[key] = value;
  }
  const child = spawn(process.execPath, ["--import", "tsx", "examples/training/main.ts", ...args], { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
    // Ctrl-C as a user would press it, once the run has got somewhere.
    if (options.interruptOn?.test(stdout) && !child.killed) child.kill("SIGINT");
  });
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  // A hung run is stopped the way a user would (Ctrl-C), then for good.
  const timer = setTimeout(() => {
    child.kill("SIGINT");
    setTimeout(() => child.kill("SIGKILL"), 15_000).unref();
  }, options.timeoutMs ?? 50_000);
  const code = await new Promise<number | null>((resolve) => child.on("close", (c) => resolve(c)));
  clearTimeout(timer);
  const address = /cluster: LocalCluster at (\S+)/.exec(stdout)?.[1];
  const leftovers = await survivors(marker, address);
  strays.push(...leftovers);
  return { code, stdout, stderr, leftovers };
}

/** Pids whose environment carries the run's marker (worker daemons) or its cluster address (tasks), after a short grace. */
async function survivors(marker: string, address: string | undefined): Promise<number[]> {
  const needles = [`EXAMPLE_TEST_RUN=${marker}`, ...(address ? [`FLUSTER_CLUSTER_ADDRESS=${address}`] : [])];
  let found: number[] = [];
  for (let i = 0; i < 30; i++) {
    found = processesWith(needles);
    if (found.length === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return found;
}

function processesWith(needles: string[]): number[] {
  let pids: string[];
  try {
    pids = readdirSync("/proc").filter((name) => /^\d+$/.test(name));
  } catch {
    return []; // no /proc: nothing to check here
  }
  return pids.map(Number).filter((pid) => {
    try {
      const environ = readFileSync(`/proc/${pid}/environ`, "latin1").split("\0");
      return needles.some((needle) => environ.includes(needle));
    } catch {
      return false;
    }
  });
}

describe("examples/training", { timeout: 120_000 }, () => {
  after(() => {
    for (const pid of strays) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  });

  test("on a cluster without TPUs the job is unschedulable: it says which device is missing and exits non-zero", async () => {
    const run = await runExample(["--steps", "3", "--schedule-timeout", "3"]);
    assert.equal(run.code, 1, `exit code; stderr:\n${run.stderr}`);
    assert.match(run.stdout, /launched .*TPU v5litepod-16 \(4 task\(s\), 16 chips\)/);
    assert.match(run.stdout, /waiting for a worker: no worker has a tpu/);
    assert.match(run.stderr, /error: no worker fits this job \(TPU v5litepod-16\): not scheduled within 3s: no worker has a tpu/);
    assert.match(run.stderr, /hint: pass --cpu/);
    assert.doesNotMatch(run.stdout, /step 1\//);
    assert.deepEqual(run.leftovers, [], "no process left behind");
  });

  test("--cpu trains on CPU workers: loss per step, a checkpoint, exit 0", async () => {
    const run = await runExample(["--cpu", "--steps", "3", "--step-ms", "50"]);
    assert.equal(run.code, 0, `exit code; stderr:\n${run.stderr}`);
    for (const step of [1, 2, 3]) assert.match(run.stdout, new RegExp(`^step ${step}/3 loss=\\d+\\.\\d{4}$`, "m"));
    assert.match(run.stdout, /^checkpoint saved: demo\/step-3 /m);
    assert.match(run.stdout, /^training \S+ succeeded in [\d.]+s \(3 steps on CPU\)$/m);
    assert.equal(run.stderr, "");
    assert.deepEqual(run.leftovers, [], "no process left behind");
  });

  test("Ctrl-C mid-training stops the job and the local cluster, and exits 130", async () => {
    const run = await runExample(["--cpu", "--steps", "200", "--step-ms", "100"], { interruptOn: /^step 2\/200 /m });
    assert.equal(run.code, 130, `exit code; stderr:\n${run.stderr}`);
    assert.match(run.stderr, /^interrupted \(SIGINT\): stopping the training job$/m);
    assert.doesNotMatch(run.stdout, /checkpoint saved/);
    assert.doesNotMatch(run.stderr, /error:/);
    assert.deepEqual(run.leftovers, [], "no process left behind");
  });
});
