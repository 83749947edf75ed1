// Zephyr on object storage: the same pipeline (gzip JSONL in, a shuffle whose
// chunks all go through storage, JSONL out) gives the same output on local
// disk, s3:// (a fake: s3rver behind a fault proxy) and gs:// (a fake of the
// GCS JSON API); globs over object prefixes; streaming writes bigger than one
// part or chunk, invisible until committed; throttled requests retried;
// errors that name the scheme or the object; the run's objects removed.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FlusterError, ValidationError } from "../../src/core/errors.js";
import { Dataset, configureStorage, execute, type ShardProgress } from "../../src/zephyr/index.js";
import { globPaths, storeFor } from "../../src/zephyr/fs/index.js";
import { LineWriter, readJsonl, readLines } from "../../src/zephyr/io.js";
import { docsByFirstWord, type Doc } from "../fixtures/zephyr/pipelines.js";
import { FakeGcs } from "../fakes/gcs-fake.js";
import { FakeS3 } from "../fakes/s3-fake.js";

const BUCKET = "zephyr";
const dir = mkdtempSync(join(tmpdir(), "zephyr-objects-"));
let s3: FakeS3;
let gcs: FakeGcs;
const ENV_KEYS = ["AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "STORAGE_EMULATOR_HOST", "AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED"];
const savedEnv = Object.fromEntries(ENV_KEYS.map((key) => [key, process.env[key]]));

before(async () => {
  [s3, gcs] = await Promise.all([FakeS3.start([BUCKET]), FakeGcs.start({ buckets: [BUCKET], pageSize: 5 })]);
  // The environment, not configureStorage: what workers in other threads and processes read too.
  Object.assign(process.env, s3.env(), gcs.env(), { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true" });
  // The library waits ≥ 1 s before a retry; its default cap of 64 s would make the fault tests slow.
  configureStorage({ gcs: { retryOptions: { maxRetryDelay: 1 } } });
  for (const root of roots()) {
    for (let file = 0; file < 3; file++) {
      const writer = await LineWriter.open(`${root}/in/docs-${file}.jsonl.gz`);
      await writer.write(docsFor(file).map((d) => JSON.stringify(d)));
      await writer.close();
    }
  }
});

after(async () => {
  for (const [key, value] of Object.entries(savedEnv)) {
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  }
  await Promise.all([s3?.stop(), gcs?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

function roots(): string[] {
  return [join(dir, "local"), `s3://${BUCKET}`, `gs://${BUCKET}`];
}

function docsFor(file: number): Doc[] {
  return Array.from({ length: 400 }, (_, i) => ({ id: file * 1000 + i, text: Array.from({ length: 1 + ((i * 7 + file) % 9) }, (_, w) => `w${(w * 13 + i) % 17}`).join(" ") }));
}

async function linesOf(paths: readonly string[]): Promise<string[][]> {
  const out: string[][] = [];
  for (const path of paths) {
    const lines: string[] = [];
    for await (const batch of readLines(path)) lines.push(...batch);
    out.push(lines);
  }
  return out;
}

/**
 * Runs the pipeline from `root`/in to `root`/`out`, spilling every chunk
 * (and, given `memoryLimitBytes`, the groupBy's partitions) under
 * `root`/tmp; checks the chunks were there and are gone.
 */
async function runAt(root: string, out: string, options: { memoryLimitBytes?: number; spilled?: number[] } = {}): Promise<string[][]> {
  const storagePath = `${root}/tmp`;
  let midRun: Promise<number> | undefined;
  const onShard = (event: ShardProgress): void => {
    // The shuffle's chunks, listed while the second stage reads them.
    if (event.stage === 0 && event.shardsDone === event.shardsTotal) midRun = storeFor(storagePath).list(`${storagePath}/`).then((objects) => objects.length);
    if (event.stage === 1) options.spilled?.push(event.spilledRuns);
  };
  const paths = await execute(docsByFirstWord(`${root}/in/*.jsonl.gz`, `${root}/${out}/part-{shard:03d}.jsonl`), {
    backend: "sync",
    spillThresholdBytes: 0,
    storagePath,
    onShard,
    ...(options.memoryLimitBytes !== undefined ? { memoryLimitBytes: options.memoryLimitBytes } : {}),
  });
  assert.deepEqual(paths, [0, 1].map((shard) => `${root}/${out}/part-${String(shard).padStart(3, "0")}.jsonl`));
  assert.ok(((await midRun) ?? 0) > 0, `the shuffle's chunks were under ${storagePath} during the run`);
  assert.deepEqual(await storeFor(storagePath).list(`${storagePath}/`), [], `the run's objects under ${storagePath} are removed`);
  return linesOf(paths);
}

describe("zephyr pipelines on object storage", { timeout: 120_000 }, () => {
  let expected: string[][];

  test("the same pipeline gives the same output on local disk, s3:// and gs://", async () => {
    const [local, ...objects] = roots();
    expected = await runAt(local as string, "out");
    assert.equal(expected.length, 2);
    assert.ok(expected.every((lines) => lines.length > 0));
    const ids = expected.flat().flatMap((line) => (JSON.parse(line) as { ids: number[] }).ids);
    assert.equal(ids.length, 1200, "every doc is in one group");
    for (const root of objects) assert.deepEqual(await runAt(root, "out"), expected, root);
  });

  test("past its memory budget the groupBy spills its partitions to s3:// and gs:// and gives the same output", async () => {
    for (const root of roots().slice(1)) {
      const spilled: number[] = [];
      assert.deepEqual(await runAt(root, "out-spilled", { memoryLimitBytes: 8 * 1024, spilled }), expected, root);
      assert.ok(spilled.length === 2 && spilled.every((files) => files > 1), `${root}: each grouping shard spilled (${spilled.join(", ")} files)`);
    }
  });

  test("throttled requests (503 SlowDown, 429) are retried: the output is the same and the fakes counted the faults", async () => {
    s3.faults.set({ every: 9, status: 503 });
    gcs.faults.set({ every: 9, status: 429 });
    try {
      const s3Before = s3.faults.served;
      const gcsBefore = gcs.faults.served;
      assert.deepEqual(await runAt(`s3://${BUCKET}`, "out-faults"), expected);
      assert.deepEqual(await runAt(`gs://${BUCKET}`, "out-faults"), expected);
      assert.ok(s3.faults.served - s3Before >= 3, `the S3 fake answered ${s3.faults.served - s3Before} requests with 503`);
      assert.ok(gcs.faults.served - gcsBefore >= 3, `the GCS fake answered ${gcs.faults.served - gcsBefore} requests with 429`);
    } finally {
      s3.faults.set({});
      gcs.faults.set({});
    }
  });
});

describe("globs over object prefixes", () => {
  test("list the literal prefix and match the rest, sorted, on both stores", async () => {
    for (const root of [`s3://${BUCKET}`, `gs://${BUCKET}`]) {
      const inputs = [0, 1, 2].map((f) => `${root}/in/docs-${f}.jsonl.gz`);
      assert.deepEqual(await globPaths(`${root}/in/*.jsonl.gz`), inputs);
      assert.deepEqual(await globPaths(`${root}/in/docs-[02].jsonl.gz`), [inputs[0], inputs[2]]);
      assert.deepEqual(await globPaths(`${root}/in/docs-1.jsonl.gz`), [inputs[1]], "a literal URL names its object");
      // "*" stays within one level; "**" crosses them.
      await assert.rejects(globPaths(`${root}/*.jsonl.gz`), ValidationError);
      assert.deepEqual(await globPaths(`${root}/**/docs-2.jsonl.gz`), [inputs[2]]);
      await assert.rejects(globPaths(`${root}/in/*.parquet`), (err: unknown) => err instanceof ValidationError && err.message.includes(`${root}/in/*.parquet`) && err.message.includes("matched no files"));
    }
  });
});

describe("ranged reads", () => {
  test("readRange and readRanges give each range's bytes, in order, on all three stores; a missing object is not_found", async () => {
    const data = randomBytes(64 * 1024);
    const ranges = [
      { start: 0, end: 10 },
      { start: 60_000, end: data.length },
      { start: 100, end: 5_000 },
      { start: 7, end: 7 },
    ];
    for (const root of roots()) {
      const path = `${root}/ranges/data.bin`;
      await storeFor(path).writeAll(path, data);
      const read: Buffer[] = [];
      for await (const bytes of storeFor(path).readRanges(path, ranges)) read.push(Buffer.from(bytes));
      assert.deepEqual(read, ranges.map(({ start, end }) => data.subarray(start, end)), root);
      assert.deepEqual(Buffer.from(await storeFor(path).readRange(path, 100, 5_000)), data.subarray(100, 5_000), root);
      const missing = `${root}/ranges/missing.bin`;
      await assert.rejects(
        async () => {
          for await (const bytes of storeFor(missing).readRanges(missing, ranges)) void bytes;
        },
        (err: unknown) => err instanceof FlusterError && err.code === "not_found" && err.message.includes("missing.bin"),
        root,
      );
      await storeFor(path).remove(path);
    }
  });
});

describe("streaming writes to object stores", () => {
  test("a write of several parts (S3) and chunks (GCS) is invisible until close, survives throttling, and reads back whole", async () => {
    // Incompressible text: 12 MiB of hex, more than two 5 MiB S3 parts and one 8 MiB GCS chunk.
    const text = randomBytes(6 << 20).toString("hex");
    const lines = Array.from({ length: text.length / 128 }, (_, i) => text.slice(i * 128, (i + 1) * 128));
    const digest = createHash("sha256").update(lines.join("\n") + "\n").digest("hex");
    configureStorage({ s3: { partSize: 5 << 20 } });
    try {
      for (const [path, fake] of [
        [`s3://${BUCKET}/big/lines.txt`, s3],
        [`gs://${BUCKET}/big/lines.txt`, gcs],
      ] as const) {
        const faultsBefore = fake.faults.served;
        // A failed part or chunk is sent again: S3 retries the part, GCS asks how much it holds and resumes from there.
        fake.faults.set({ every: 3 });
        const writer = await LineWriter.open(path);
        for (let i = 0; i < lines.length; i += 8192) await writer.write(lines.slice(i, i + 8192));
        assert.equal(await storeFor(path).size(path), undefined, `${path} is not visible before close`);
        const closed = await writer.close();
        fake.faults.set({});
        assert.ok(fake.faults.served > faultsBefore, `${path}: faults were injected`);
        assert.deepEqual(closed, { path, bytes: text.length + lines.length, lines: lines.length });
        assert.equal(await storeFor(path).size(path), closed.bytes);
        const hash = createHash("sha256");
        let count = 0;
        for await (const batch of readLines(path)) {
          count += batch.length;
          hash.update(batch.join("\n") + "\n");
        }
        assert.equal(count, lines.length);
        assert.equal(hash.digest("hex"), digest, `${path} reads back byte for byte`);
      }
    } finally {
      s3.faults.set({});
      gcs.faults.set({});
      configureStorage({ s3: {} });
    }
  });

  test("an aborted write leaves no object", async () => {
    for (const path of [`s3://${BUCKET}/aborted/x.jsonl.gz`, `gs://${BUCKET}/aborted/x.jsonl.gz`]) {
      const writer = await LineWriter.open(path);
      await writer.write(["{}", "{}"]);
      await writer.abort();
      await writer.abort();
      assert.deepEqual(await storeFor(path).list(path), []);
    }
    assert.equal(gcs.openUploads, 0, "no resumable upload was left begun");
  });
});

describe("object storage errors", () => {
  test("an unknown scheme is a ValidationError naming it, when the pipeline is built", async () => {
    const names = (scheme: string) => (err: unknown) => err instanceof ValidationError && err.message.includes(`"${scheme}://"`);
    assert.throws(() => Dataset.fromList([{ a: 1 }]).writeJsonl("foo://x/out-{shard}.jsonl"), names("foo"));
    assert.throws(() => Dataset.fromFiles("hdfs://cluster/data/*.jsonl"), names("hdfs"));
    await assert.rejects(execute(Dataset.fromList([{ a: 1 }]), { backend: "sync", storagePath: "az://container/tmp" }), names("az"));
    assert.equal(existsSync("foo:"), false, "no local folder named foo: was made");
  });

  test("writeJsonl to gs:// writes to the store, never to a local folder named gs:", async () => {
    const paths = await execute(Dataset.fromList([{ a: 1 }, { a: 2 }], { numShards: 2 }).writeJsonl(`gs://${BUCKET}/small/out-{shard}.jsonl`), { backend: "sync" });
    assert.deepEqual(paths, [`gs://${BUCKET}/small/out-0.jsonl`, `gs://${BUCKET}/small/out-1.jsonl`]);
    assert.deepEqual(
      gcs.names(BUCKET).filter((n) => n.startsWith("small/")),
      ["small/out-0.jsonl", "small/out-1.jsonl"],
    );
    const records: unknown[] = [];
    for (const path of paths) for await (const batch of readJsonl(path)) records.push(...batch);
    assert.deepEqual(records, [{ a: 1 }, { a: 2 }]);
    assert.equal(existsSync("gs:"), false);
  });

  test("a missing object is not_found naming its URL", async () => {
    for (const root of [`s3://${BUCKET}`, `gs://${BUCKET}`, `s3://no-such-bucket`, `gs://no-such-bucket`]) {
      const path = `${root}/missing/nothing.jsonl.gz`;
      await assert.rejects(
        (async () => {
          for await (const _ of readLines(path)) assert.fail("no lines");
        })(),
        (err: unknown) => err instanceof FlusterError && err.code === "not_found" && err.message === `input file ${path} does not exist`,
      );
      await assert.rejects(storeFor(path).readAll(path), (err: unknown) => err instanceof FlusterError && err.code === "not_found" && err.message.includes(root));
      if (!root.includes("no-such-bucket")) assert.equal(await storeFor(path).size(path), undefined);
    }
  });
});

describe("Parquet on object stores", () => {
  test("writeParquet streams row groups into s3:// and gs://, and loadParquet reads them back by range", async () => {
    const rows = Array.from({ length: 3000 }, (_, i) => ({ id: i, name: `n${i % 97}`, tags: i % 4 === 0 ? null : [`t${i % 5}`], meta: { a: i * 2, b: i % 3 === 0 ? null : "b" } }));
    for (const root of [`s3://${BUCKET}`, `gs://${BUCKET}`]) {
      const written = await execute(Dataset.fromList(rows, { numShards: 3 }).writeParquet(`${root}/pq/part-{shard}.parquet`, { rowGroupSize: 400 }), { backend: "sync" });
      assert.deepEqual(written, [0, 1, 2].map((shard) => `${root}/pq/part-${shard}.parquet`));
      const read = await execute(Dataset.fromFiles(`${root}/pq/*.parquet`).loadParquet(), { backend: "sync" });
      assert.deepEqual(read, rows, `${root}: the records read back equal those written`);
    }
  });
});

describe("resumable runs on object stores", () => {
  test("a failed run's manifest stays under an s3:// or gs:// storagePath; resume reruns only the failed shard; success removes it", async () => {
    for (const root of [`s3://${BUCKET}`, `gs://${BUCKET}`]) {
      const storagePath = `${root}/resumable`;
      let failing = true;
      const ran: number[] = [];
      const pipeline = Dataset.fromList(Array.from({ length: 40 }, (_, i) => i), { numShards: 4 })
        .mapShard(async function* (records, shard) {
          ran.push(shard);
          for await (const n of records) {
            if (failing && n === 25) throw new ValidationError("n", "is 25 (the test's planned failure)");
            yield n * 2;
          }
        })
        .groupBy((n) => n % 3, (k, ns) => ({ k, sum: ns.reduce((a, b) => a + b, 0) }), { numShards: 2 });
      const options = { backend: "sync" as const, spillThresholdBytes: 0, storagePath, runId: "resume-on-objects" };
      await assert.rejects(execute(pipeline, { ...options, maxParallelism: 1 }), ValidationError);
      assert.ok((await storeFor(storagePath).list(`${storagePath}/run-resume-on-objects/manifest/`)).length > 0, `${root}: the manifest stays after the failure`);
      assert.deepEqual(ran, [0, 1, 2], "the run stopped at the failing shard");
      failing = false;
      ran.length = 0;
      const result = await execute(pipeline, { ...options, resume: true });
      assert.deepEqual(ran, [2, 3], `${root}: only the failed and the unstarted shard ran again`);
      const sums = new Map((result as Array<{ k: number; sum: number }>).map((r) => [r.k, r.sum]));
      for (const k of [0, 1, 2]) assert.equal(sums.get(k), Array.from({ length: 40 }, (_, i) => i).map((i) => i * 2).filter((n) => n % 3 === k).reduce((a, n) => a + n, 0));
      assert.deepEqual(await storeFor(storagePath).list(`${storagePath}/`), [], `${root}: a successful run removes its state`);
    }
  });
});
