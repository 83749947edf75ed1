// Zephyr pipelines end to end: the same pipeline gives the same output
// inline, on worker threads and on a real LocalCluster; files in and out
// with gzip and zstd; shuffles across shards; storage-first spilling and
// clean-up; a pool worker SIGKILLed mid-shard.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createJobContext, type JobContext } from "../../src/job/index.js";
import { ValidationError } from "../../src/core/errors.js";
import { Dataset, execute, type ExecuteOptions, type ShardProgress } from "../../src/zephyr/index.js";
import { LineWriter, readJsonl } from "../../src/zephyr/io.js";
import { doubled, failsAfterShuffle, firstOfEachId, longDocs, slowShards, wordCounts, type Doc } from "../fixtures/zephyr/pipelines.js";
import { eventually } from "../helpers/index.js";
import { useLocalCluster } from "../helpers/local-cluster.js";

const dir = mkdtempSync(join(tmpdir(), "zephyr-test-"));
after(() => rmSync(dir, { recursive: true, force: true }));

async function writeDocs(path: string, docs: readonly Doc[]): Promise<void> {
  const writer = await LineWriter.open(path);
  await writer.write(docs.map((d) => JSON.stringify(d)));
  await writer.close();
}

async function readAll(paths: readonly string[]): Promise<unknown[]> {
  const out: unknown[] = [];
  for (const path of paths) for await (const batch of readJsonl(path)) out.push(...batch);
  return out;
}

function docsFor(file: number): Doc[] {
  return Array.from({ length: 500 }, (_, i) => ({ id: file * 1000 + i, text: Array.from({ length: (i * 7 + file) % 23 }, (_, w) => `w${(w * 13 + i) % 50}`).join(" ") }));
}

const LINES = ["the cat sat", "on the mat", "the end", "a cat and a hat", "", "mat mat mat"];
const EXPECTED_COUNTS = (() => {
  const counts = new Map<string, number>();
  for (const word of LINES.flatMap((l) => l.split(" ")).filter((w) => w !== "")) counts.set(word, (counts.get(word) ?? 0) + 1);
  return [...counts].map(([word, count]) => ({ word, count })).sort((a, b) => (a.word < b.word ? -1 : 1));
})();

const DUPLICATED = Array.from({ length: 120 }, (_, i) => ({ id: i % 37, shard: i }));

const backends = ["sync", "threads", "cluster"] as const;
const outputs = new Map<string, unknown>();

for (const backend of backends) {
  describe(`zephyr on ${backend}`, { timeout: 300_000 }, () => {
    let context: JobContext | undefined;
    let opts: ExecuteOptions;
    // Registered before the cluster's after() hook, so it runs first: the context's workers are jobs on the cluster.
    after(async () => {
      await context?.close();
    });
    const local = backend === "cluster" ? useLocalCluster({ workers: 2, workerCpu: 8, workerMemory: "8g" }) : undefined;
    before(() => {
      if (local) context = createJobContext("cluster", { cluster: local.cluster, maxWorkers: 2, workerResources: { cpu: 1, memory: "256m" } });
      opts = { backend, maxParallelism: 2, storagePath: join(dir, `storage-${backend}`), ...(context ? { context } : {}) };
    });

    test("seed 003's pipeline: 0..99 doubled, keep > 50 gives 74 records in order", async () => {
      const records = await execute(doubled(4), opts);
      assert.equal(records.length, 74);
      assert.deepEqual(records, Array.from({ length: 74 }, (_, i) => ({ x: 52 + 2 * i })));
      outputs.set(`doubled/${backend}`, records);
    });

    test("groupBy and deduplicate gather equal keys from every shard", async () => {
      const counts = await execute(wordCounts(LINES, 3), opts);
      assert.deepEqual(counts, EXPECTED_COUNTS);
      const firsts = await execute(firstOfEachId(DUPLICATED, 4), opts);
      assert.deepEqual(firsts, Array.from({ length: 37 }, (_, id) => ({ id, shard: id })), "the first record of each id, in input order, wins");
      outputs.set(`shuffles/${backend}`, [counts, firsts]);
    });

    test("files in, files out: gzip and zstd by extension", async () => {
      const inputDir = join(dir, `in-${backend}`);
      mkdirSync(inputDir, { recursive: true });
      await writeDocs(join(inputDir, "a.jsonl.gz"), docsFor(0));
      await writeDocs(join(inputDir, "b.jsonl.zst"), docsFor(1));
      await writeDocs(join(inputDir, "c.jsonl"), docsFor(2));
      const out = join(dir, `out-${backend}`);
      const events: ShardProgress[] = [];
      const files = await execute(longDocs(join(inputDir, "*.jsonl*"), join(out, "part-{shard:05d}.jsonl.zst"), 10), { ...opts, onShard: (e) => events.push(e) });
      assert.deepEqual(files, [0, 1, 2].map((s) => join(out, `part-0000${s}.jsonl.zst`)));
      const expected = [0, 1, 2].flatMap((f) => docsFor(f).map((d) => ({ ...d, n: d.text.split(" ").length })).filter((d) => d.n > 10));
      assert.ok(expected.length > 100);
      assert.deepEqual(await readAll(files), expected);
      // onShard: one event per shard as it finishes, with what it wrote.
      assert.deepEqual(events.map((e) => e.shardsDone), [1, 2, 3]);
      assert.ok(events.every((e) => e.stage === 0 && e.stages === 1 && e.shardsTotal === 3 && e.bytes > 0));
      assert.deepEqual(events.map((e) => e.path).sort(), files);
      assert.equal(events.reduce((n, e) => n + e.records, 0), expected.length);
      assert.deepEqual(readdirSync(out).sort(), ["part-00000.jsonl.zst", "part-00001.jsonl.zst", "part-00002.jsonl.zst"], "no temporary files are left");
    });

    test("a failing record fails the run with its error; intermediate files are removed", async () => {
      const storagePath = join(dir, `fail-storage-${backend}`);
      await assert.rejects(execute(failsAfterShuffle(), { ...opts, storagePath, spillThresholdBytes: 0 }), (err: unknown) => {
        const e = err as Error & { cause?: Error; remoteName?: string };
        assert.match(e.message, /bad record 7/);
        return true;
      });
      assert.deepEqual(existsSync(storagePath) ? readdirSync(storagePath) : [], [], "the run's storage directory is gone");
    });
  });
}

describe("zephyr: the same output on every backend", () => {
  test("sync, threads and cluster agree", () => {
    for (const name of ["doubled", "shuffles"]) {
      const sync = outputs.get(`${name}/sync`);
      assert.ok(sync !== undefined, `${name} ran on sync`);
      assert.deepEqual(outputs.get(`${name}/threads`), sync);
      assert.deepEqual(outputs.get(`${name}/cluster`), sync);
    }
  });
});

describe("zephyr: storage-first execution", () => {
  test("a spill threshold of 0 (all chunks to storage) and of 1 GB (all inline) give the same output", async () => {
    const storagePath = join(dir, "spill");
    let chunkFilesSeen = -1;
    const pipeline = (seen: (n: number) => void) =>
      Dataset.fromList(
        Array.from({ length: 3000 }, (_, i) => ({ i, key: i % 17 })),
        { numShards: 5 },
      )
        .groupBy(
          (r) => r.key,
          (key, rs) => ({ key, sum: rs.reduce((s, r) => s + r.i, 0) }),
          { numShards: 3 },
        )
        .mapShard(async function* (records) {
          // Runs after the shuffle: count the chunk files the first stage spilled.
          const runs = existsSync(storagePath) ? readdirSync(storagePath) : [];
          seen(runs.flatMap((run) => (existsSync(join(storagePath, run, "stage-0")) ? readdirSync(join(storagePath, run, "stage-0")) : [])).length);
          yield* records;
        })
        .reshard(1)
        .sortBy((r) => r.key);
    const spilled = await execute(pipeline((n) => (chunkFilesSeen = Math.max(chunkFilesSeen, n))), { backend: "sync", spillThresholdBytes: 0, storagePath });
    assert.ok(chunkFilesSeen >= 5, `stage 0 wrote its chunks to storage (saw ${chunkFilesSeen} files)`);
    let inlineFilesSeen = -1;
    const inline = await execute(pipeline((n) => (inlineFilesSeen = Math.max(inlineFilesSeen, n))), { backend: "sync", spillThresholdBytes: 1 << 30, storagePath });
    assert.equal(inlineFilesSeen, 0, "with a 1 GB threshold nothing was written");
    assert.deepEqual(spilled, inline);
    assert.equal(spilled.length, 17);
    assert.deepEqual(spilled[3], { key: 3, sum: Array.from({ length: 3000 }, (_, i) => i).filter((i) => i % 17 === 3).reduce((a, b) => a + b, 0) });
    assert.deepEqual(readdirSync(storagePath), [], "every run's directory is removed after success");
  });
});

describe("zephyr: operations and errors", () => {
  test("map, filter, flatMap, mapShard, take, sortBy and reshard compose (sync, with inline closures)", async () => {
    const ds = Dataset.fromList([5, 3, 9, 1, 7, 2, 8], { numShards: 3 })
      .map(async (x) => x * 10)
      .flatMap((x) => [x, x + 1])
      .filter((x) => x % 2 === 0)
      .mapShard(async function* (records, shard) {
        for await (const r of records) yield { r, shard };
      })
      .reshard(1)
      .sortBy((x) => x.r, { descending: true })
      .take(4);
    assert.deepEqual(await execute(ds), [
      // shards: [5, 3, 9], [1, 7, 2], [8]
      { r: 90, shard: 0 },
      { r: 80, shard: 2 },
      { r: 70, shard: 1 },
      { r: 50, shard: 0 },
    ]);
    assert.deepEqual(await execute(Dataset.fromList([1, 2, 3, 4, 5, 6], { numShards: 3 }).take(4)), [1, 2, 3, 4], "take is global, in shard order");
    assert.deepEqual(await execute(Dataset.fromList([] as number[]).map((x) => x + 1)), []);
  });

  test("explain() shows fused stages and where shuffles split them", () => {
    const plan = Dataset.fromFiles("data/*.jsonl.gz")
      .loadJsonl<Doc>()
      .map((d) => d.text)
      .filter((t) => t.length > 3)
      .deduplicate()
      .writeJsonl("out/part-{shard:05d}.jsonl.gz")
      .explain();
    assert.equal(
      plan,
      [
        "stage 0 (one shard per file): files data/*.jsonl.gz → loadJsonl → map → filter → hash-partition into 1",
        "stage 1 (1 shard): stage 0, first of each key → writeJsonl out/part-{shard:05d}.jsonl.gz",
      ].join("\n"),
    );
  });

  test("inline closures on threads or cluster are refused with the fix in the message; auto runs them inline", async () => {
    const inline = Dataset.fromList([1, 2, 3]).map((x) => x + 1);
    await assert.rejects(execute(inline, { backend: "threads" }), (err: unknown) => {
      assert.ok(err instanceof ValidationError);
      assert.match(err.message, /dataset\(import\.meta\.url, function myPipeline/);
      return true;
    });
    await assert.rejects(execute(inline, { backend: "cluster" }), ValidationError);
    assert.deepEqual(await execute(inline), [2, 3, 4]);
  });

  test("a definition's module that runs a pipeline at import is refused in the worker, not run again there", async () => {
    const { plusOne, ranAtImport } = await import("../fixtures/zephyr/runs-at-import.js");
    assert.deepEqual(ranAtImport, [1, 2, 3], "in this process the module's own run went ahead");
    await assert.rejects(execute(plusOne(4), { backend: "threads", maxParallelism: 2 }), (err: unknown) => {
      assert.match((err as Error).message, /execute\(\) ran while this worker thread was importing \S+runs-at-import\.ts to find "plusOne" by reference/);
      assert.match((err as Error).message, /if \(isMain\(import\.meta\)\) \{/);
      return true;
    });
  });

  test("bad input names what is wrong", async () => {
    assert.throws(() => Dataset.fromList([1]).map(5 as never), /map must be a function, got number/);
    assert.throws(() => Dataset.fromList([1]).reshard(0), /reshard must be a whole number ≥ 1, got 0/);
    assert.throws(() => Dataset.fromList([1]).take(-1), /take must be a whole number ≥ 0/);
    assert.throws(() => Dataset.fromList(["a"]).writeText("out/all.txt"), /must contain \{shard\}/);
    assert.throws(() => Dataset.fromList(["a"]).writeText("o/{shard}.txt").map((x) => x), /writing must be the last operation/);
    assert.throws(() => Dataset.fromFiles(""), /pattern must be a non-empty glob/);
    await assert.rejects(execute(Dataset.fromList([1]), { maxParallelism: 0 }), /maxParallelism must be a whole number ≥ 1, got 0/);
    await assert.rejects(execute(Dataset.fromList([1]), { backend: "gpu" as never }), /backend must be "sync", "threads" or "cluster"/);
    await assert.rejects(execute(Dataset.fromFiles(join(dir, "nothing-here-*.jsonl"))), /nothing-here/);
    await assert.rejects(execute(Dataset.fromList([1, "a"], { numShards: 1 }).sortBy((x) => x)), /cannot compare (number with string|string with number)/);
  });
});

describe("zephyr on cluster: a worker lost mid-shard", { timeout: 300_000 }, () => {
  const local = useLocalCluster({ workers: 2, workerCpu: 8, workerMemory: "8g" });

  test("only the lost shard runs again, on another worker; the run completes", async () => {
    const markers = join(dir, "markers");
    mkdirSync(markers, { recursive: true });
    const run = execute(slowShards(markers, 4, 1_500), { backend: "cluster", cluster: local.cluster, maxParallelism: 2, workerResources: { cpu: 1, memory: "256m" } });
    // Wait for the first shard to start, then SIGKILL the worker running it.
    let first: string | undefined;
    await eventually(() => (first = readdirSync(markers)[0]) !== undefined, { what: "a shard to start", timeoutMs: 30_000 });
    assert.ok(first, "a shard started");
    const [shard, pid] = first.split("-").map(Number) as [number, number];
    process.kill(pid, "SIGKILL");
    const results = await run;
    assert.deepEqual(
      results.map((r) => r.i),
      [0, 1, 2, 3],
    );
    assert.notEqual(results[shard]?.pid, pid, "the lost shard finished on another worker");
    const starts = new Map<number, number>();
    for (const name of readdirSync(markers)) starts.set(Number(name.split("-")[0]), (starts.get(Number(name.split("-")[0])) ?? 0) + 1);
    assert.equal(starts.get(shard), 2, "the lost shard ran twice");
    for (const s of [0, 1, 2, 3].filter((s) => s !== shard)) assert.equal(starts.get(s), 1, `shard ${s} ran once`);
  });
});
