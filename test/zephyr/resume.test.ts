// Resumable runs: a run with a runId records its plan and each finished
// shard under its run directory; a driver killed mid-stage (SIGKILL, a real
// child process) or a failed run is continued with resume: true without
// recomputing the shards it finished, and gives the output an uninterrupted
// run gives. Shards count their work in files (one line per shard computed).
import { afterEach, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { execute, type ShardProgress } from "../../src/zephyr/index.js";
import { countedShuffle } from "../fixtures/zephyr/recovery-pipelines.js";
import { REPO_ROOT, flusterErrorOf } from "../helpers/index.js";

/** Each shard's count of computations in `<counterDir>/<stage>`, as [shard, times] sorted. */
function computed(counterDir: string, stage: "stage0" | "stage1"): Map<number, number> {
  const path = join(counterDir, stage);
  const counts = new Map<number, number>();
  if (!existsSync(path)) return counts;
  for (const line of readFileSync(path, "utf8").split("\n").filter((l) => l !== "")) counts.set(Number(line), (counts.get(Number(line)) ?? 0) + 1);
  return counts;
}

/** Every shard 0..n-1 computed exactly once. */
function once(n: number): Map<number, number> {
  return new Map(Array.from({ length: n }, (_, i) => [i, 1]));
}

function sorted(map: Map<number, number>): Array<[number, number]> {
  return [...map].sort((a, b) => a[0] - b[0]);
}

describe("resumable runs", { timeout: 60_000 }, () => {
  let dir: string;
  let storagePath: string;
  let flag: string;
  /** A fresh, empty counter directory. */
  let counters: (name: string) => string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "fluster-zephyr-resume-"));
    storagePath = join(dir, "storage");
    flag = join(dir, "fail-stage-1");
    counters = (name) => {
      const path = join(dir, name);
      mkdirSync(path);
      return path;
    };
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** The output of an uninterrupted run, and a check that it computed every shard once. */
  async function uninterrupted(): Promise<unknown[]> {
    const counterDir = counters("uninterrupted");
    const out = await execute(countedShuffle(counterDir, 0, 40, flag), { backend: "sync" });
    assert.deepEqual(sorted(computed(counterDir, "stage0")), sorted(once(8)));
    return out;
  }

  test("a driver killed part-way through the first stage resumes: the shards it finished are not recomputed, and the output matches an uninterrupted run's", async () => {
    const counterDir = counters("killed");
    const child = spawn(process.execPath, ["--import", "tsx", join(REPO_ROOT, "test/fixtures/zephyr/resume-driver.ts"), counterDir, storagePath, "nightly-1", "300"], {
      cwd: REPO_ROOT,
      stdio: ["ignore", "pipe", "inherit"],
    });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once("exit", (_code, signal) => resolve(signal)));
    // The shards the child reported finished (recorded before onShard) when it was killed.
    const reported: number[] = [];
    try {
      for await (const line of createInterface({ input: child.stdout })) {
        assert.notEqual(line, "done", "the child was killed before it finished");
        const event = JSON.parse(line) as ShardProgress;
        assert.equal(event.stage, 0);
        reported.push(event.shard);
        if (reported.length === 3) {
          child.kill("SIGKILL");
          break;
        }
      }
    } finally {
      child.kill("SIGKILL");
    }
    assert.equal(await exited, "SIGKILL");
    const runDir = join(storagePath, "run-nightly-1");
    assert.ok(existsSync(join(runDir, "manifest", "plan.json")), "the killed run's state stays");
    const before = computed(counterDir, "stage0");
    assert.ok(before.size >= 3 && before.size < 8, `some, not all, of stage 0 ran before the kill: ${JSON.stringify(sorted(before))}`);
    assert.equal(computed(counterDir, "stage1").size, 0);

    const events: ShardProgress[] = [];
    // The same pipeline, with the same arguments: a resumed run's plan must match.
    const out = await execute(countedShuffle(counterDir, 300, 40, join(counterDir, "no-flag")), {
      backend: "sync",
      maxParallelism: 2,
      spillThresholdBytes: 0,
      storagePath,
      runId: "nightly-1",
      resume: true,
      onShard: (e) => events.push(e),
    });
    assert.deepEqual(out, await uninterrupted());
    const after = computed(counterDir, "stage0");
    for (const shard of reported) assert.equal(after.get(shard), 1, `shard ${shard}, finished before the kill, was not computed again`);
    assert.equal(after.size, 8, "every shard of stage 0 was computed");
    // At most the two shards running at the kill were computed twice (finished, but not yet recorded).
    const twice = [...after.values()].filter((n) => n === 2).length;
    assert.ok(twice <= 2 && [...after.values()].every((n) => n <= 2), JSON.stringify(sorted(after)));
    assert.deepEqual(sorted(computed(counterDir, "stage1")), sorted(once(3)));
    const resumed = events.filter((e) => e.resumed).map((e) => e.shard);
    for (const shard of reported) assert.ok(resumed.includes(shard), `onShard reported shard ${shard} as resumed`);
    assert.ok(events.filter((e) => e.stage > 0).every((e) => !e.resumed));
    assert.equal(events.length, 8 + 3 + 1);
    assert.ok(!existsSync(runDir), "a successful run removes its run directory");
  });

  test("a failed run keeps its state, and resuming after the fix skips the shards it finished", async () => {
    const counterDir = counters("failed");
    writeFileSync(flag, "");
    const options = { backend: "sync" as const, spillThresholdBytes: 0, storagePath, runId: "fix-me" };
    await assert.rejects(execute(countedShuffle(counterDir, 0, 40, flag), options), (err) => err instanceof TypeError);
    const runDir = join(storagePath, "run-fix-me");
    assert.deepEqual(readdirSync(join(runDir, "manifest", "stage-0")).sort(), Array.from({ length: 8 }, (_, i) => `shard-${i}`).sort());
    assert.ok(readdirSync(join(runDir, "stage-0")).some((f) => f.endsWith(".chunk")), "stage 0's spilled chunks stay");
    assert.deepEqual(readdirSync(join(runDir, "manifest", "stage-1")).sort(), ["shard-0", "shard-1"], "stage 1's shards before the failing one were recorded");

    // Not resumed: the state is refused, and left as it is.
    const refused = await flusterErrorOf(() => execute(countedShuffle(counterDir, 0, 40, flag), options));
    assert.equal(refused.code, "already_exists");
    assert.equal(refused.message, `run fix-me already has state under ${runDir}; pass resume: true to continue it, or remove that directory to start over`);
    // Another plan: refused, naming the difference.
    const differs = await flusterErrorOf(() => execute(countedShuffle(counterDir, 0, 41, flag), { ...options, resume: true }));
    assert.equal(differs.code, "failed_precondition");
    assert.match(differs.message, /^run fix-me cannot resume: this pipeline's plan differs from the one recorded at .*plan\.json, at plan\.source\.items \(recorded 40, now 41\); remove .* to start over$/);

    rmSync(flag);
    const out = await execute(countedShuffle(counterDir, 0, 40, flag), { ...options, resume: true });
    assert.deepEqual(out, await uninterrupted());
    assert.deepEqual(sorted(computed(counterDir, "stage0")), sorted(once(8)), "stage 0 ran once in all");
    assert.deepEqual(sorted(computed(counterDir, "stage1")), sorted(once(3)), "stage 1 ran its failed shard only");
    assert.ok(!existsSync(runDir));
  });

  test("a recorded shard whose spilled chunks are gone runs again, and the later stages' records made from them are dropped", async () => {
    const counterDir = counters("lost");
    writeFileSync(flag, "");
    const options = { backend: "sync" as const, spillThresholdBytes: 0, storagePath, runId: "lost-chunk" };
    await assert.rejects(execute(countedShuffle(counterDir, 0, 40, flag), options), (err) => err instanceof TypeError);
    const stageDir = join(storagePath, "run-lost-chunk", "stage-0");
    const lost = readdirSync(stageDir).find((f) => f.startsWith("shard-00003-"));
    assert.ok(lost, "shard 3 of stage 0 spilled a chunk");
    rmSync(join(stageDir, lost));

    rmSync(flag);
    const out = await execute(countedShuffle(counterDir, 0, 40, flag), { ...options, resume: true });
    assert.deepEqual(out, await uninterrupted());
    assert.deepEqual(sorted(computed(counterDir, "stage0")), sorted(new Map([...once(8), [3, 2]])), "only shard 3 of stage 0 ran again");
    assert.deepEqual(sorted(computed(counterDir, "stage1")), [[0, 2], [1, 2], [2, 1]], "stage 1 ran again from the new stage 0 outputs");
  });

  test("resume with no state simply runs; a bad runId, and resume without one, are refused", async () => {
    const counterDir = counters("fresh");
    const out = await execute(countedShuffle(counterDir, 0, 40, flag), { backend: "sync", storagePath, runId: "first.run_2", resume: true });
    assert.deepEqual(out, await uninterrupted());
    assert.deepEqual(sorted(computed(counterDir, "stage0")), sorted(once(8)));
    assert.deepEqual(readdirSync(storagePath), [], "the successful run left nothing");
    for (const runId of ["", "a/b", "..", "x".repeat(65)]) {
      const err = await flusterErrorOf(() => execute(countedShuffle(counterDir, 0, 40, flag), { backend: "sync", runId }));
      assert.match(err.message, /^runId must be 1 to 64 letters, digits, "\.", "_" or "-", got /);
    }
    const err = await flusterErrorOf(() => execute(countedShuffle(counterDir, 0, 40, flag), { backend: "sync", resume: true }));
    assert.equal(err.message, "resume needs the runId of the run to continue");
  });
});
