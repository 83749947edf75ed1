// Out-of-core shuffles: given far less memory than their data, groupBy
// deals its records into hash partitions on storage and deduplicate and
// sortBy spill sorted runs and merge them, and all give exactly what they
// give in memory; a global sortBy range-partitions by sampled keys into
// balanced, globally sorted shards.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ValidationError } from "../../src/core/errors.js";
import { createJobContext } from "../../src/job/index.js";
import { Dataset, execute, type ExecuteOptions, type ShardProgress } from "../../src/zephyr/index.js";
import { MERGE_FAN_IN } from "../../src/zephyr/spill.js";
import { globallySorted, groupedRows, rows, type Row } from "../fixtures/zephyr/out-of-core.js";

const dir = mkdtempSync(join(tmpdir(), "zephyr-ooc-"));
after(() => rmSync(dir, { recursive: true, force: true }));
// One pool of threads for every threads run here: starting threads is the slow part.
const threads = createJobContext("threads", { maxWorkers: 2 });
after(() => threads.close());

/** Spilled files (sorted runs, hash partitions) under `path`. */
const spilledFiles = (path: string) => (existsSync(path) ? readdirSync(path, { recursive: true }).map(String).filter((f) => f.endsWith(".run") || f.endsWith(".part")) : []);

const IN_MEMORY: ExecuteOptions = { backend: "sync", memoryLimitBytes: "1g", storagePath: join(dir, "memory") };

/** Runs `ds` in memory and with `memoryLimitBytes`; returns both outputs and the spilling run's shard events. */
async function bothWays<T>(ds: Dataset<T>, memoryLimitBytes: number, extra: ExecuteOptions = {}): Promise<{ inMemory: T[]; spilled: T[]; events: ShardProgress[]; memoryEvents: ShardProgress[] }> {
  const memoryEvents: ShardProgress[] = [];
  const inMemory = await execute(ds, { ...IN_MEMORY, onShard: (e) => memoryEvents.push(e) });
  const events: ShardProgress[] = [];
  const storagePath = join(dir, `spill-${Math.random().toString(36).slice(2)}`);
  const spilled = await execute(ds, {
    backend: "sync",
    memoryLimitBytes,
    spillThresholdBytes: 0,
    storagePath,
    ...extra,
    onShard: (e) => {
      events.push(e);
      if (extra.context !== undefined) return;
      // A shard's runs and partitions are removed as they are read: none is left when it finishes (shards run one at a time here).
      assert.deepEqual(spilledFiles(storagePath), [], `stage ${e.stage} shard ${e.shard} left spilled files behind`);
    },
  });
  return { inMemory, spilled, events, memoryEvents };
}

const spilledRuns = (events: readonly ShardProgress[]) => events.reduce((n, e) => n + e.spilledRuns, 0);

describe("out-of-core groupBy, deduplicate and sortBy", () => {
  test("a groupBy over 10× its memory budget spills and equals the in-memory result", async () => {
    const n = 70_000; // about 3 MiB encoded
    const ds = groupedRows(n, 5000, 4);
    const { inMemory, spilled, events, memoryEvents } = await bothWays(ds, 256 * 1024);
    assert.equal(spilledRuns(memoryEvents), 0, "nothing spills in memory");
    const stage1 = events.filter((e) => e.stage === 1);
    assert.ok(stage1.every((e) => e.spilledRuns >= 5 && e.spilledBytes > 256 * 1024), `each grouping shard spilled: ${JSON.stringify(stage1.map((e) => [e.spilledRuns, e.spilledBytes]))}`);
    assert.equal(inMemory.length, 5000);
    assert.equal(inMemory.reduce((s, g) => s + g.n, 0), n);
    assert.deepEqual(spilled, inMemory, "same groups, in first-seen order, records in input order");
  });

  test("far past its budget, groupBy deals partitions again; a key too frequent to split is grouped whole", async () => {
    // 8,000 records in 4 KiB: more than MAX_FAN_OUT partitions of half the budget each, so partitions are dealt again.
    const storagePath = join(dir, "dealt-again");
    const dealings = new Set<string>();
    const ds = Dataset.fromList(rows(8_000, 500), { numShards: 2 }).groupBy(
      (r) => r.k,
      (k, rs) => {
        // Each dealing writes one object, group-<id>-<dealing>.part.
        if (dealings.size === 0) for (const file of spilledFiles(storagePath)) dealings.add(/group-[0-9a-f]{8}-(\d+)\.part$/.exec(file)?.[1] ?? file);
        return { k, vs: rs.map((r) => r.v) };
      },
      { numShards: 1 },
    );
    const { inMemory, spilled, events } = await bothWays(ds, 4 * 1024, { storagePath });
    assert.ok(spilledRuns(events) > 0);
    assert.ok(dealings.size >= 2, `records dealt at more than one level: dealings ${[...dealings].join(", ")} on disk at the first reduce`);
    assert.deepEqual(spilled, inMemory);

    const hot = Dataset.fromList(rows(20_000, 3_000).map((r, i) => (i % 2 === 0 ? { ...r, k: "hot" } : r)), { numShards: 2 }).groupBy(
      (r) => r.k,
      (k, rs) => ({ k, n: rs.length, first: rs[0]?.v, last: rs.at(-1)?.v }),
      { numShards: 1 },
    );
    const skewed = await bothWays(hot, 16 * 1024);
    assert.ok(spilledRuns(skewed.events) > 0);
    assert.deepEqual(skewed.spilled[0], { k: "hot", n: 10_000, first: 0, last: 19_998 });
    assert.deepEqual(skewed.spilled, skewed.inMemory);
  });

  test("many more sorted runs than one merge takes are merged in passes", async () => {
    const ds = Dataset.fromList(rows(8_000, 500), { numShards: 1 }).sortBy((r) => r.k);
    const { inMemory, spilled, events } = await bothWays(ds, 4 * 1024);
    assert.ok(spilledRuns(events) > MERGE_FAN_IN + 10, `spilled ${spilledRuns(events)} runs`);
    assert.deepEqual(spilled, inMemory);
  });

  test("a reducer that throws fails the run, leaving no spilled file open or on disk", async () => {
    const storagePath = join(dir, "throwing");
    let reduced = 0;
    let filesWhileReducing = 0;
    const ds = Dataset.fromList(rows(8_000, 500), { numShards: 2 }).groupBy(
      (r) => r.k,
      (k, rs) => {
        if (++reduced === 1) filesWhileReducing = spilledFiles(storagePath).length;
        if (reduced === 100) throw new Error(`reducer failed at ${k}`);
        return { k, n: rs.length };
      },
      { numShards: 1 },
    );
    await assert.rejects(execute(ds, { backend: "sync", memoryLimitBytes: 16 * 1024, spillThresholdBytes: 0, storagePath }), /reducer failed at key/);
    assert.ok(filesWhileReducing > 1, `the groups were read from partitions on disk (${filesWhileReducing} there when the first was reduced)`);
    const openRuns = readdirSync("/proc/self/fd").flatMap((fd) => {
      try {
        return [readlinkSync(`/proc/self/fd/${fd}`)];
      } catch {
        return []; // closed while listed
      }
    });
    assert.deepEqual(openRuns.filter((target) => target.endsWith(".run") || target.endsWith(".part")), [], "every spilled file was closed");
    assert.deepEqual(spilledFiles(storagePath), [], "the spilled files were removed");
  });

  test("deduplicate past its budget keeps the first record of each key, in input order", async () => {
    const ds = Dataset.fromList(rows(24_000, 24_000), { numShards: 4 })
      .map((r) => ({ ...r, d: (r.v * 31) % 15_000 }))
      .deduplicate((r) => r.d, { numShards: 2 });
    const { inMemory, spilled, events } = await bothWays(ds, 64 * 1024);
    assert.ok(spilledRuns(events) > 0);
    assert.equal(inMemory.length, 15_000);
    assert.deepEqual(spilled, inMemory);
  });

  for (const descending of [false, true]) {
    test(`sortBy${descending ? " descending" : ""} past its budget is the same stable sort`, async () => {
      const input = rows(30_000, 100);
      const ds = Dataset.fromList(input, { numShards: 2 }).sortBy((r) => [r.v % 997, r.k], { descending });
      const { inMemory, spilled, events } = await bothWays(ds, 64 * 1024);
      assert.ok(events.every((e) => e.spilledRuns > 3), "both shards spilled");
      assert.deepEqual(spilled, inMemory);
      // Against Array.prototype.sort (stable) per shard: ties keep input order.
      const sign = descending ? -1 : 1;
      const half = input.length / 2;
      const expected = [input.slice(0, half), input.slice(half)].flatMap((shard) => [...shard].sort((a, b) => sign * (a.v % 997 - b.v % 997) || sign * (a.k < b.k ? -1 : a.k > b.k ? 1 : 0)));
      assert.deepEqual(spilled, expected);
    });
  }

  test("on worker threads the budget travels to the shards", async () => {
    const ds = groupedRows(10_000, 2000, 2);
    const { inMemory, spilled, events } = await bothWays(ds, 32 * 1024, { backend: "threads", context: threads, maxParallelism: 2 });
    assert.ok(events.filter((e) => e.stage === 1).every((e) => e.spilledRuns > 0), "each thread's grouping shard spilled");
    assert.deepEqual(spilled, inMemory);
  });

  test("memoryLimitBytes: a byte count or a size string, more than 0", async () => {
    const ds = Dataset.fromList([1, 2, 3]).deduplicate();
    assert.deepEqual(await execute(ds, { backend: "sync", memoryLimitBytes: "512m", storagePath: join(dir, "v") }), [1, 2, 3]);
    for (const bad of [0, -1, 1.5, "lots", Number.NaN]) {
      await assert.rejects(execute(ds, { backend: "sync", memoryLimitBytes: bad, storagePath: join(dir, "v") }), (err: unknown) => {
        assert.ok(err instanceof ValidationError, String(err));
        assert.match(err.message, /memoryLimitBytes/);
        return true;
      });
    }
  });
});

describe("global sortBy", () => {
  /** Checks `out` is `n` records sorted by key (ties in input order), and the shards' sizes are near n / shards. */
  function checkGlobal(out: ReadonlyArray<{ i: number; key: number }>, events: readonly ShardProgress[], n: number, shards: number, descending: boolean): void {
    assert.equal(out.length, n);
    for (let j = 1; j < out.length; j++) {
      const a = out[j - 1] as { i: number; key: number };
      const b = out[j] as { i: number; key: number };
      const c = descending ? b.key - a.key : a.key - b.key;
      assert.ok(c < 0 || (c === 0 && a.i < b.i), `records ${j - 1} and ${j} out of order: ${JSON.stringify([a, b])}`);
    }
    const last = events.filter((e) => e.stage === e.stages - 1);
    assert.equal(last.length, shards);
    for (const e of last) assert.ok(e.records > (0.6 * n) / shards && e.records < (1.4 * n) / shards, `shard ${e.shard} holds ${e.records} of ${n} records`);
  }

  for (const backend of ["sync", "threads"] as const) {
    test(`on ${backend}: shards in order form one sorted sequence, roughly balanced, also with a frequent key and descending`, async () => {
      const n = 20_000;
      for (const [descending, skewed] of [
        [false, false],
        [true, true],
      ] as const) {
        const events: ShardProgress[] = [];
        const out = await execute(globallySorted(n, 3, 4, descending, skewed), { ...(backend === "threads" ? { context: threads } : { backend }), maxParallelism: 2, storagePath: join(dir, `global-${backend}`), onShard: (e) => events.push(e) });
        checkGlobal(out, events, n, 4, descending);
      }
    });
  }

  test("a global sort spills like a local one, and explain() shows its stages", async () => {
    const ds = globallySorted(20_000, 2, 2, false, false);
    const { inMemory, spilled, events } = await bothWays(ds, 32 * 1024);
    assert.ok(events.filter((e) => e.stage === 2).every((e) => e.spilledRuns > 0));
    assert.deepEqual(spilled, inMemory);
    assert.match(ds.explain(), /stage 0 \(2 shards\): list of 20000 records → sample sort keys\nstage 1 \(2 shards\): stage 0 → range-partition into 2\nstage 2 \(2 shards\): stage 1 → sortBy → collect/);
  });

  test("numShards is for a global sort only", () => {
    assert.throws(() => Dataset.fromList([1]).sortBy((x) => x, { numShards: 2 }), ValidationError);
    assert.throws(() => Dataset.fromList([1]).sortBy((x) => x, { global: true, numShards: 0 }), ValidationError);
  });
});

export type { Row };
