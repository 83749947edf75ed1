// One DuckDB run for bench/zephyr-duckdb.bench.ts, in a fresh process: the
// map+filter of bench/servers/filter-docs.ts as one COPY statement, on
// `threads` DuckDB threads, writing gzipped JSON lines (one file per thread)
// under <outDir>/parts. A warm-up COPY over the first file comes first, as in
// bench/servers/zephyr-filter.ts; then the timed COPY prints one JSON line:
// {"seconds": …, "kept": …} (kept: the rows COPY reports written).
//   node --import tsx bench/servers/duckdb-filter.ts <threads> <outDir> <inputFiles…>
import { rmSync } from "node:fs";
import { join } from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";

const [threads, outDir, ...inputs] = process.argv.slice(2);
if (!threads || !outDir || inputs.length === 0) {
  console.error("usage: node --import tsx duckdb-filter.ts <threads> <outDir> <inputFiles…>");
  process.exit(2);
}

const quote = (text: string) => `'${text.replaceAll("'", "''")}'`;
/**
 * The COPY statement. `n` counts the pieces of `text.split(" ")` exactly as
 * the JavaScript does (spaces + 1, also for "" and runs of spaces), so both
 * sides keep the same records.
 */
function copySql(files: readonly string[], target: string): string {
  return `COPY (
    SELECT id, text, source, length(text) - length(replace(text, ' ', '')) + 1 AS n
    FROM read_json([${files.map(quote).join(", ")}], format = 'newline_delimited',
                   columns = {id: 'BIGINT', text: 'VARCHAR', source: 'VARCHAR'})
    WHERE n > 10
  ) TO ${quote(target)} (FORMAT json, COMPRESSION gzip, PER_THREAD_OUTPUT true)`;
}

const instance = await DuckDBInstance.create(":memory:", { threads });
const connection = await instance.connect();
try {
  await connection.run(copySql(inputs.slice(0, 1), join(outDir, "warmup")));
  rmSync(join(outDir, "warmup"), { recursive: true });
  const start = performance.now();
  const result = await connection.run(copySql(inputs, join(outDir, "parts")));
  const seconds = (performance.now() - start) / 1000;
  const kept = Number((await result.getRowObjects())[0]?.Count);
  console.log(JSON.stringify({ seconds, kept }));
} finally {
  connection.closeSync();
  instance.closeSync();
}
