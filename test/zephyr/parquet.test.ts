// Parquet in and out for Zephyr: round trips of nested records, nulls and
// every column type through ParquetFileWriter and readParquet; DuckDB reads
// what we write and we read what DuckDB writes; a pipeline from Parquet to
// Parquet; clear errors for a file that is not Parquet and for records that
// do not fit the schema.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DuckDBInstance, type DuckDBConnection } from "@duckdb/node-api";
import { parquetMetadataAsync } from "hyparquet";
import { FlusterError, ValidationError } from "../../src/core/errors.js";
import { storeFor } from "../../src/zephyr/fs/index.js";
import { Dataset, ParquetFileWriter, execute, readParquet, type ParquetWriteOptions } from "../../src/zephyr/index.js";
import { parquetTagCounts } from "../fixtures/zephyr/pipelines.js";

const dir = mkdtempSync(join(tmpdir(), "zephyr-parquet-test-"));
let duck: DuckDBConnection | undefined;
after(() => {
  duck?.closeSync();
  rmSync(dir, { recursive: true, force: true });
});

async function duckdb(): Promise<DuckDBConnection> {
  duck ??= await (await DuckDBInstance.create(":memory:")).connect();
  return duck;
}

/** DuckDB's rows of `sql`, with bigints that are safe integers as numbers (as readParquet gives them). */
async function duckRows(sql: string): Promise<Record<string, unknown>[]> {
  const reader = await (await duckdb()).runAndReadAll(sql);
  return reader.getRowObjectsJS().map((row) => safeNumbers(row) as Record<string, unknown>);
}

function safeNumbers(value: unknown): unknown {
  if (typeof value === "bigint") return Number.isSafeInteger(Number(value)) ? Number(value) : value;
  if (Array.isArray(value)) return value.map(safeNumbers);
  if (value !== null && typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, safeNumbers(v)]));
  }
  return value;
}

async function writeFile(path: string, records: readonly unknown[], options?: ParquetWriteOptions): Promise<{ path: string; rows: number; bytes: number }> {
  const writer = await ParquetFileWriter.open(path, options);
  for (let i = 0; i < records.length; i += 97) await writer.write(records.slice(i, i + 97));
  return writer.close();
}

async function readFile(path: string): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  for await (const batch of readParquet(path)) out.push(...batch);
  return out;
}

async function rowGroupsOf(path: string): Promise<number[]> {
  const store = storeFor(path);
  const size = (await store.size(path)) as number;
  const metadata = await parquetMetadataAsync({ byteLength: size, slice: async (s, e) => new Uint8Array(await store.readRange(path, s, e ?? size)).buffer });
  return metadata.row_groups.map((g) => Number(g.num_rows));
}

/** Records with a nested struct, lists (empty, null, with null elements), nulls and every inferred scalar type. */
function nestedRecord(i: number) {
  return {
    id: i,
    name: i % 10 === 3 ? null : `name-${i}`,
    score: i % 4 === 0 ? i : i + 0.5,
    ok: i % 3 === 0,
    big: 2n ** 60n + BigInt(i),
    ts: new Date(1_700_000_000_000 + i * 1000),
    bytes: i % 6 === 0 ? null : new Uint8Array([i % 256, 0, 255]),
    tags: i % 5 === 0 ? [] : i % 5 === 1 ? null : [`t${i % 7}`, i % 2 === 0 ? null : `u${i}`],
    meta: i % 9 === 0 ? null : { a: i % 100, b: i % 2 === 0 ? null : `b${i}`, deep: { xs: [i, i + 1] } },
    points: [{ x: i, y: 0.25 }],
  };
}

describe("parquet files", () => {
  test("nested records, nulls and every scalar type round-trip through readParquet and read the same in DuckDB", async () => {
    const records = Array.from({ length: 230 }, (_, i) => nestedRecord(i));
    const path = join(dir, "nested.parquet");
    const done = await writeFile(path, records, { rowGroupSize: 50 });
    assert.equal(done.rows, 230);
    assert.deepEqual(await rowGroupsOf(path), [50, 50, 50, 50, 30]);

    assert.deepEqual(await readFile(path), records);

    // DuckDB: the same rows, and the nested columns are real STRUCT and LIST types.
    const types = await duckRows(`select column_name, column_type from (describe select * from read_parquet('${path}'))`);
    assert.deepEqual(Object.fromEntries(types.map((t) => [t.column_name, t.column_type])), {
      id: "BIGINT",
      name: "VARCHAR",
      score: "DOUBLE",
      ok: "BOOLEAN",
      big: "BIGINT",
      ts: "TIMESTAMP",
      bytes: "BLOB",
      tags: "VARCHAR[]",
      meta: "STRUCT(a BIGINT, b VARCHAR, deep STRUCT(xs BIGINT[]))",
      points: "STRUCT(x BIGINT, y DOUBLE)[]",
    });
    const rows = await duckRows(`select * exclude (ts, bytes), epoch_ms(ts) as ts_ms, hex(bytes) as bytes_hex from read_parquet('${path}') order by id`);
    assert.deepEqual(
      rows,
      records.map(({ ts, bytes, ...rest }) => ({ ...rest, ts_ms: ts.getTime(), bytes_hex: bytes ? Buffer.from(bytes).toString("hex").toUpperCase() : null })),
    );
  });

  test("a given schema sets column types (INT32, FLOAT, JSON); other fields are inferred", async () => {
    const records = Array.from({ length: 20 }, (_, i) => ({ n: i, f: i / 4, doc: i % 2 ? { any: [i, "x"] } : "plain", id: i }));
    const path = join(dir, "schema.parquet");
    await writeFile(path, records, { schema: { n: "INT32", f: "FLOAT", doc: "JSON" } });
    assert.deepEqual(await readFile(path), records);
    const types = await duckRows(`select column_name, column_type from (describe select * from read_parquet('${path}'))`);
    assert.deepEqual(Object.fromEntries(types.map((t) => [t.column_name, t.column_type])), { n: "INTEGER", f: "FLOAT", doc: "JSON", id: "BIGINT" });
  });

  test("200k small records in many row groups: streamed out, counted and summed by DuckDB", async () => {
    const path = join(dir, "large.parquet");
    const writer = await ParquetFileWriter.open(path, { rowGroupSize: 40_000 });
    for (let i = 0; i < 200_000; i += 1000) await writer.write(Array.from({ length: 1000 }, (_, k) => ({ id: i + k, v: (i + k) % 7 })));
    assert.equal(existsSync(path), false, "nothing is visible before close");
    await writer.close();
    assert.deepEqual(await rowGroupsOf(path), [40_000, 40_000, 40_000, 40_000, 40_000]);
    assert.deepEqual(await duckRows(`select count(*) as n, sum(id) as ids, sum(v) as vs from read_parquet('${path}')`), [
      { n: 200_000, ids: (199_999 * 200_000) / 2, vs: Array.from({ length: 200_000 }, (_, i) => i % 7).reduce((a, b) => a + b, 0) },
    ]);
    let count = 0;
    let batches = 0;
    for await (const batch of readParquet<{ id: number }>(path)) {
      assert.equal(batch[0]?.id, count);
      count += batch.length;
      batches++;
    }
    assert.equal(count, 200_000);
    assert.ok(batches >= 5, `read in ${batches} batches`);
  });

  test("DuckDB's Parquet (snappy and zstd; structs, lists, dates, decimals) reads correctly", async () => {
    const conn = await duckdb();
    const rowsSql = `select i as id, 'n' || i as name, i * 1.5 as x, [i, i + 1]::int[] as xs, {'k': i, 's': case when i % 2 = 0 then null else 's' || i end} as st,
      date '2024-01-01' + i::int as day, (i / 4)::decimal(10, 2) as dec, case when i % 3 = 0 then null else i end as maybe from range(3000) r(i)`;
    for (const codec of ["snappy", "zstd"]) {
      const path = join(dir, `duckdb-${codec}.parquet`);
      await conn.run(`copy (${rowsSql}) to '${path}' (format parquet, compression ${codec}, row_group_size 1000)`);
      const rows = await readFile(path);
      assert.equal(rows.length, 3000);
      assert.deepEqual(rows[7], { id: 7, name: "n7", x: 10.5, xs: [7, 8], st: { k: 7, s: "s7" }, day: new Date("2024-01-08T00:00:00Z"), dec: 1.75, maybe: 7 });
      assert.deepEqual(rows[6]?.st, { k: 6, s: null });
      assert.equal(rows[6]?.maybe, null);
    }
  });

  test("rowGroupBytes cuts row groups of large records by their size", async () => {
    const path = join(dir, "by-bytes.parquet");
    const records = Array.from({ length: 25 }, (_, i) => ({ id: i, text: "x".repeat(1000) }));
    await writeFile(path, records, { rowGroupBytes: 10_000 });
    assert.deepEqual(await rowGroupsOf(path), [10, 10, 5]);
    assert.deepEqual(await readFile(path), records);
  });

  test("no records: a file of no rows, with the given schema's columns when there is one", async () => {
    const bare = join(dir, "empty-bare.parquet");
    assert.deepEqual(await writeFile(bare, []), { path: bare, rows: 0, bytes: (await storeFor(bare).size(bare)) as number });
    assert.deepEqual(await readFile(bare), []);
    const typed = join(dir, "empty-typed.parquet");
    await writeFile(typed, [], { schema: { id: "INT64", tags: { list: "STRING" } } });
    assert.deepEqual(await readFile(typed), []);
    assert.deepEqual(await duckRows(`select column_name, column_type from (describe select * from read_parquet('${typed}'))`), [
      { column_name: "id", column_type: "BIGINT" },
      { column_name: "tags", column_type: "VARCHAR[]" },
    ]);
  });

  test("a file that is not Parquet, or is missing, fails naming it", async () => {
    const path = join(dir, "not-parquet.parquet");
    writeFileSync(path, "id,name\n1,a\n");
    await assert.rejects(readFile(path), (err: unknown) => err instanceof FlusterError && err.message.includes(path) && /not a Parquet file/.test(err.message));
    const missing = join(dir, "missing.parquet");
    await assert.rejects(readFile(missing), (err: unknown) => err instanceof FlusterError && err.code === "not_found" && err.message.includes(missing));
  });

  test("records that do not fit the schema fail naming the field and the record; nothing is left at the path", async () => {
    const path = join(dir, "mismatch.parquet");
    const first = Array.from({ length: 10 }, (_, i) => ({ id: i, meta: { a: i } }));
    await assert.rejects(writeFile(path, [...first, { id: 10, meta: { a: "ten" } }], { rowGroupSize: 10 }), (err: unknown) => {
      assert.ok(err instanceof ValidationError);
      assert.equal(err.field, "meta.a");
      assert.match(err.message, /record 10 of .*mismatch\.parquet is "ten", but the column is INT64/);
      return true;
    });
    await assert.rejects(writeFile(path, [...first, { id: 10, extra: true }], { rowGroupSize: 10 }), (err: unknown) => {
      assert.ok(err instanceof ValidationError);
      assert.equal(err.field, "extra");
      assert.match(err.message, /record 10 of .* is not a column of the file \(its columns: id, meta/);
      return true;
    });
    await assert.rejects(writeFile(path, [{ id: 1.5 }], { schema: { id: "INT64" } }), /id of record 0 .* is 1.5, but the column is INT64/);
    await assert.rejects(writeFile(path, ["text"]), /writeParquet needs plain-object records, got "text"/);
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.includes("mismatch")),
      [],
      "no file and no temporary left",
    );
    assert.throws(() => Dataset.fromList([{ a: 1 }]).writeParquet("out-{shard}.parquet", { schema: { a: "INT" as never } }), /schema\.a must be one of BOOLEAN/);
    assert.throws(() => Dataset.fromList([{ a: 1 }]).writeParquet("out-{shard}.parquet", { rowGroupSize: 0 }), /rowGroupSize must be a whole number ≥ 1/);
  });
});

describe("parquet pipelines", () => {
  const input = join(dir, "pipeline-in");
  mkdirSync(input, { recursive: true });
  const inputs = [0, 1, 2].map((f) => Array.from({ length: 250 }, (_, i) => ({ id: f * 1000 + i, score: i % 2 ? i + 0.5 : i, tags: i % 4 ? [`t${i % 3}`] : null, meta: { a: i, b: i % 5 ? `b${i}` : null } })));
  const expected = inputs.flat().map((r) => ({ ...r, ntags: r.tags?.length ?? 0 }));

  // On sync only: the threads and cluster backends run the same runShard (zephyr.test.ts checks they agree), and a thread pool's start costs ~10 s here.
  test('fromFiles("*.parquet").loadParquet().map().writeParquet(); DuckDB reads the output', async () => {
    for (const [f, records] of inputs.entries()) await writeFile(join(input, `part-${f}.parquet`), records);
    const out = join(dir, "pipeline-out");
    const paths = await execute(parquetTagCounts(join(input, "*.parquet"), join(out, "part-{shard:05d}.parquet")), { backend: "sync", storagePath: join(dir, "storage") });
    assert.deepEqual(paths, [0, 1, 2].map((s) => join(out, `part-0000${s}.parquet`)));
    for (const path of paths) assert.deepEqual(await rowGroupsOf(path), [100, 100, 50]);
    assert.deepEqual(await duckRows(`select * from read_parquet('${join(out, "*.parquet")}') order by id`), expected);
  });

  test("explain() names the Parquet steps", () => {
    assert.equal(
      parquetTagCounts("in/*.parquet", "out/p-{shard}.parquet").explain(),
      "stage 0 (one shard per file): files in/*.parquet → loadParquet → map → writeParquet out/p-{shard}.parquet",
    );
  });
});
