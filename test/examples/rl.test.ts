// Runs examples/rl as a real program — its own LocalCluster, a coordinator job,
// a trainer and rollout jobs — and checks what it prints and what it leaves behind.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { readFileSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const MAIN = "examples/rl/main.ts";

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

describe("examples/rl", { timeout: 120_000 }, () => {
  test("--steps 3 --rollouts 2 trains to version 3 with rewards from both rollout workers", async () => {
    const outcome = await runExample(["--steps", "3", "--rollouts", "2"]);
    assert.equal(outcome.code, 0, `exit code 0\n--- stdout\n${outcome.stdout}\n--- stderr\n${outcome.stderr}`);
    const out = outcome.stdout;
    assert.match(out, /starting a local cluster/);
    assert.match(out, /\[coordinator\] serving "curriculum" and "weight-coordinator"/);
    assert.match(out, /\[trainer\] 2 rollout worker\(s\) reporting: rollout-0, rollout-1/);
    for (const step of [1, 2, 3]) assert.match(out, new RegExp(`\\[trainer\\] step ${step}/3: .* published weights v${step}\\b`));
    // Rollouts poll for new weights; each picks up at least one published version.
    assert.match(out, /\[rollout-0\] loaded weights v[1-3]\b/);
    assert.match(out, /\[rollout-1\] loaded weights v[1-3]\b/);
    assert.match(out, /^training steps\s+3$/m);
    assert.match(out, /^weights version\s+3 \[/m);
    assert.match(out, /^final difficulty\s+\d+$/m);
    const rewards = /^rewards reported\s+rollout-0: (\d+), rollout-1: (\d+) \((\d+) total/m.exec(out);
    assert.ok(rewards, `a per-worker reward line in:\n${out}`);
    const [, first, second, total] = rewards.map(Number);
    assert.ok(first! > 0 && second! > 0, "both rollout workers reported rewards");
    assert.equal(first! + second!, total);
    await assertNothingLeftBehind(outcome);
  });

  test("--help prints usage; a bad flag is one error line and exit 2", async () => {
    const help = await runExample(["--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^Usage: node --import tsx examples\/rl\/main\.ts/);
    assert.match(help.stdout, /--rollouts N/);

    const bad = await runExample(["--steps", "0"]);
    assert.equal(bad.code, 2);
    assert.equal(bad.stdout, "");
    assert.equal(bad.stderr.trim().split("\n").length, 1, bad.stderr);
    assert.match(bad.stderr, /--steps must be a whole number ≥ 1, got "0"/);
  });
});
