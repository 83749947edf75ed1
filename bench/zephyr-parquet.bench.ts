// Parquet speed for Zephyr: rows/s writing and reading N records of
// {id, name, score, tags: string[], meta: {a, b}} with ParquetFileWriter and
// readParquet (hyparquet-writer, hyparquet), against DuckDB doing the same
// with the same file. Usage: node --import tsx bench/zephyr-parquet.bench.ts [rows]
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";
import { ParquetFileWriter, readParquet } from "../src/zephyr/parquet.js";

const rows = Number(process.argv[2] ?? 500_000);
const dir = await mkdtemp(join(tmpdir(), "zephyr-parquet-bench-"));

function record(i: number) {
  return { id: i, name: `name-${i % 1000}-${i}`, score: i * 0.5 + 0.25, tags: i % 3 === 0 ? [] : [`t${i % 7}`, `u${i % 11}`], meta: { a: i % 100, b: i % 5 === 0 ? null : `b${i % 13}` } };
}

async function timed<T>(label: string, fn: () => Promise<T>): Promise<T> {
  const start = performance.now();
  const out = await fn();
  const s = (performance.now() - start) / 1000;
  console.log(`${label.padEnd(44)} ${s.toFixed(2).padStart(6)} s  ${Math.round(rows / s).toLocaleString("en-US").padStart(10)} rows/s`);
  return out;
}

try {
  const ours = join(dir, "ours.parquet");
  await timed("write: ParquetFileWriter (hyparquet-writer)", async () => {
    const writer = await ParquetFileWriter.open(ours);
    for (let i = 0; i < rows; i += 1024) await writer.write(Array.from({ length: Math.min(1024, rows - i) }, (_, k) => record(i + k)));
    return writer.close();
  });
  console.log(`  file: ${((await stat(ours)).size / 1e6).toFixed(1)} MB`);
  let count = 0;
  await timed("read: readParquet (hyparquet)", async () => {
    for await (const batch of readParquet(ours)) count += batch.length;
  });
  if (count !== rows) throw new Error(`read ${count} rows, wrote ${rows}`);

  const db = await DuckDBInstance.create(":memory:");
  const conn = await db.connect();
  const theirs = join(dir, "duckdb.parquet");
  await conn.run(
    `create table t as select i::bigint as id, 'name-' || (i % 1000) || '-' || i as name, i * 0.5 + 0.25 as score,
       case when i % 3 = 0 then []::varchar[] else ['t' || (i % 7), 'u' || (i % 11)] end as tags,
       {'a': (i % 100)::bigint, 'b': case when i % 5 = 0 then null else 'b' || (i % 13) end} as meta
     from range(${rows}) r(i)`,
  );
  await timed("write: DuckDB COPY (snappy)", () => conn.run(`copy t to '${theirs}' (format parquet, compression snappy)`));
  console.log(`  file: ${((await stat(theirs)).size / 1e6).toFixed(1)} MB`);
  await timed("read: DuckDB scan of ours (native, aggregate)", () => conn.run(`select count(*), sum(score), sum(len(tags)), count(meta.b) from read_parquet('${ours}')`));
  await timed("read: DuckDB rows of ours into JS objects", async () => (await conn.runAndReadAll(`select * from read_parquet('${ours}')`)).getRowObjects());
  count = 0;
  await timed("read: readParquet of DuckDB's file", async () => {
    for await (const batch of readParquet(theirs)) count += batch.length;
  });
  if (count !== rows) throw new Error(`read ${count} rows of DuckDB's file, it has ${rows}`);
  conn.closeSync();
} finally {
  await rm(dir, { recursive: true, force: true });
}
