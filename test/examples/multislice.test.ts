// Runs examples/multislice as a real program — its own LocalCluster, a
// coordinator job and slice jobs, one of them killed and replaced — and checks
// what it prints and what it leaves behind.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { readFileSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const MAIN = "examples/multislice/main.ts";

interface Outcome {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Marks every process the run started (its env reaches the local workers). */
  marker: string;
}

/** Runs the example as a child process with a clean environment: no cluster address, no loader flags. */
function runExample(args: string[], timeoutMs = 90_000): Promise<Outcome> {
  const marker = randomUUID();
  const env: NodeJS.ProcessEnv = { EXAMPLE_TEST_RUN: marker };
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith("FLUSTER_") && key !== "NODE_OPTIONS" && key !== "NODE_TEST_CONTEXT") env[key] = value;
  }
  const child = spawn(process.execPath, ["--import", "tsx", MAIN, ...args], { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    // A hung run is stopped the way a user would (Ctrl-C), then for good.
    const timer = setTimeout(() => {
      child.kill("SIGINT");
      setTimeout(() => child.kill("SIGKILL"), 15_000).unref();
    }, timeoutMs);
    child.once("error", reject);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, marker });
    });
  });
}

/** Pids of live processes carrying the run's marker or its controller address (the local workers and their jobs). */
function leftovers(outcome: Outcome): number[] {
  const address = /cluster (http:\/\/127\.0\.0\.1:\d+)/.exec(outcome.stdout)?.[1];
  const needles = [`EXAMPLE_TEST_RUN=${outcome.marker}`, ...(address ? [`FLUSTER_CLUSTER_ADDRESS=${address}`] : [])];
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let environ: string[];
    try {
      environ = readFileSync(`/proc/${entry}/environ`, "utf8").split("\0");
    } catch {
      continue; // gone, or not ours
    }
    if (needles.some((needle) => environ.includes(needle))) found.push(Number(entry));
  }
  return found;
}

async function assertNothingLeftBehind(outcome: Outcome): Promise<void> {
  let pids = leftovers(outcome);
  for (let i = 0; i < 30 && pids.length > 0; i++) {
    await new Promise((r) => setTimeout(r, 100));
    pids = leftovers(outcome);
  }
  assert.deepEqual(pids, [], "no process of the run is left behind");
}

describe("examples/multislice", { timeout: 120_000 }, () => {
  test("--slices 2 --steps 6 kills a slice, a replacement joins, and step 6 is reached", async () => {
    const outcome = await runExample(["--slices", "2", "--steps", "6"]);
    assert.equal(outcome.code, 0, `exit code 0\n--- stdout\n${outcome.stdout}\n--- stderr\n${outcome.stderr}`);
    const out = outcome.stdout;
    assert.match(out, /kept between 1 and 2 by this driver/);
    assert.match(out, /slice-0 joined at step 1/);
    assert.match(out, /slice-1 joined at step 1/);
    // The kill after step 2 (a third of 6), seen from the job's status, then by the coordinator.
    assert.match(out, /step 2 complete on 2 slice\(s\)\n.*driver: killing slice-1 \(job /);
    assert.match(out, /driver: slice-1 job \S+ ended killed/);
    assert.match(out, /driver: launched slice-2 \(job \S+\) to replace slice-1/);
    assert.match(out, /coordinator dropped slice-1: no heartbeat for \d+\.\ds/);
    const joined = /slice-2 joined at step (\d+)/.exec(out);
    assert.ok(joined, `the replacement joined:\n${out}`);
    assert.ok(Number(joined[1]) >= 3 && Number(joined[1]) <= 6, "the replacement joins at the current step, not at step 1");
    assert.match(out, /step 6 complete on \d slice\(s\)/);
    assert.doesNotMatch(out, /step 7 complete/);
    assert.match(out, /^steps completed\s+6 \/ 6$/m);
    assert.match(out, /^slices killed\s+slice-1$/m);
    assert.match(out, /^replacements\s+slice-2 for slice-1$/m);
    await assertNothingLeftBehind(outcome);
  });

  test("--help prints usage; inconsistent min/max is one error line and exit 2", async () => {
    const help = await runExample(["--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^Usage: node --import tsx examples\/multislice\/main\.ts/);
    assert.match(help.stdout, /--min-slices M/);
    assert.match(help.stdout, /--tpu VARIANT/);

    const bad = await runExample(["--slices", "2", "--min-slices", "3"]);
    assert.equal(bad.code, 2);
    assert.equal(bad.stdout, "");
    assert.equal(bad.stderr.trim().split("\n").length, 1, bad.stderr);
    assert.match(bad.stderr, /--min-slices \(3\) must not exceed --slices \(2\)/);
  });
});
