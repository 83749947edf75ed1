// Runs examples/pipeline as a user would: a real child process that starts its
// own LocalCluster and runs a Zephyr pipeline over generated files on a
// WorkerPool there. The
// expected output is computed here from the same seeded generator.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";
import { makeDocuments } from "../../examples/pipeline/corpus.js";

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
  const child = spawn(process.execPath, ["--import", "tsx", "examples/pipeline/main.ts", ...args], { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
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

/** Records the pipeline keeps (more than `minWords` words), from `files` files starting at file `first`. */
function expectedIds(files: number, records: number, seed: number, minWords: number, first = 0): string[] {
  const ids: string[] = [];
  for (let f = first; f < first + files; f++) {
    for (const doc of makeDocuments(f, records, seed)) if (doc.text.split(" ").length > minWords) ids.push(doc.id);
  }
  return ids.sort();
}

describe("examples/pipeline", { timeout: 120_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), "fluster-pipeline-test-"));
  after(() => {
    rmSync(dir, { recursive: true, force: true });
    for (const pid of strays) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  });

  test("3 files over 2 workers: one output file per input, the expected records kept, totals printed", async () => {
    const output = join(dir, "out");
    const run = await runExample(["--files", "3", "--workers", "2", "--records", "200", "--seed", "7", "--work-dir", dir, "--output", output]);
    assert.equal(run.code, 0, `exit code; stderr:\n${run.stderr}`);

    const expected = expectedIds(3, 200, 7, 10);
    assert.ok(expected.length > 0 && expected.length < 600, "the filter keeps some records and drops others");

    // Output files exist, one per input, and hold exactly the expected records.
    assert.deepEqual(readdirSync(output).sort(), ["part-00000.jsonl.gz", "part-00001.jsonl.gz", "part-00002.jsonl.gz"]);
    const kept = readdirSync(output).flatMap((name) =>
      gunzipSync(readFileSync(join(output, name)))
        .toString("utf8")
        .split("\n")
        .filter(Boolean)
        .map((line) => JSON.parse(line) as { id: string; text: string; words: number }),
    );
    assert.deepEqual(kept.map((r) => r.id).sort(), expected);
    for (const r of kept) assert.equal(r.words, r.text.split(" ").length);

    // The plan, each file as its shard finishes (with its own count), and the totals line.
    assert.match(run.stdout, /^stage 0 \(one shard per file\): files \S+docs-\*\.jsonl\.gz → loadJsonl → map → filter → writeJsonl \S+part-\{shard:05d\}\.jsonl\.gz$/m);
    const perFile = [...run.stdout.matchAll(/^part-0000(\d)\.jsonl\.gz: (\d+) records kept \(\d\/3 files done/gm)].map((m) => [Number(m[1]), Number(m[2])]);
    assert.deepEqual(
      perFile.sort((a, b) => a[0]! - b[0]!),
      [0, 1, 2].map((f) => [f, expectedIds(1, 200, 7, 10, f).length]),
      run.stdout,
    );
    assert.match(run.stdout, new RegExp(`^total: ${expected.length} records kept \\(more than 10 words\\) in 3 file\\(s\\), cluster with 2 worker\\(s\\)`, "m"));
    assert.match(run.stdout, new RegExp(`^output: ${output.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`, "m"));
    assert.equal(run.stderr, "");
    assert.deepEqual(run.leftovers, [], "no process left behind");
  });
});
