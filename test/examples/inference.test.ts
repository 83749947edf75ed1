// Runs examples/inference as a user would: a real child process that starts
// its own LocalCluster, two server jobs and a client that streams results.
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

/** Runs the example in a child process (no cluster address: it starts its own) and checks what it leaves behind. */
async function runExample(args: string[], timeoutMs = 50_000): Promise<Run> {
  const marker = randomUUID();
  // A clean environment, as on a fresh machine: no cluster address (nor any
  // other FLUSTER_* variable, e.g. of a job running these tests), no loader flags.
  const env: NodeJS.ProcessEnv = { EXAMPLE_TEST_RUN: marker };
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith("FLUSTER_") && key !== "NODE_OPTIONS" && key !== "NODE_TEST_CONTEXT") env[key] = value;
  }
  const child = spawn(process.execPath, ["--import", "tsx", "examples/inference/main.ts", ...args], { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  // A hung run is stopped the way a user would (Ctrl-C), then for good.
  const timer = setTimeout(() => {
    child.kill("SIGINT");
    setTimeout(() => child.kill("SIGKILL"), 15_000).unref();
  }, timeoutMs);
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

describe("examples/inference", { timeout: 120_000 }, () => {
  after(() => {
    for (const pid of strays) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  });

  test("two servers share the batches; every prompt comes back; health from both; servers stopped", async () => {
    const run = await runExample(["--servers", "2", "--prompts", "12", "--batch-size", "3", "--batch-ms", "100"]);
    assert.equal(run.code, 0, `exit code; stderr:\n${run.stderr}`);
    assert.match(run.stdout, /pool inference_pool ready: 2 server\(s\)/);

    // Every prompt completed exactly once, by one of the two servers.
    const results = [...run.stdout.matchAll(/^ {2}\[(server-\d)\] "prompt (\d+): [^"]*" -> "[^"]*"$/gm)];
    assert.deepEqual(results.map((m) => Number(m[2])).sort((a, b) => a - b), Array.from({ length: 12 }, (_, i) => i + 1));
    assert.deepEqual(new Set(results.map((m) => m[1])), new Set(["server-0", "server-1"]), "both servers used");
    assert.equal(run.stdout.match(/^batch \d\/4 from server-\d in \d+ ms:$/gm)?.length, 4);

    // Results stream: each batch's lines follow its own header, before the summary.
    assert.ok(run.stdout.indexOf("batch 1/4") < run.stdout.indexOf("done:"));

    // Two health rounds (before and after), each with one line per endpoint.
    const health = run.stdout.match(/^health server-\d at http:\/\/\S+: healthy, \d+ batches, \d+ prompts, pid \d+$/gm) ?? [];
    assert.equal(health.length, 4, run.stdout);
    assert.match(run.stdout, /^health server-0 at .*: healthy, 2 batches, 6 prompts/m);
    assert.match(run.stdout, /^health server-1 at .*: healthy, 2 batches, 6 prompts/m);

    assert.match(run.stdout, /^done: 12\/12 prompts in 4 batches, [\d.]+s; per server: server-0 6, server-1 6$/m);
    assert.match(run.stdout, /^stopping 2 server job\(s\)$/m);
    assert.deepEqual(run.leftovers, [], "no process left behind");
  });
});
