// Zephyr against DuckDB doing the same map+filter (add n = words in text, keep
// n > 10) over the same gzipped JSONL corpus, each writing gzipped JSON lines.
// Zephyr runs the pipeline of bench/zephyr.bench.ts on the threads backend;
// DuckDB runs one COPY statement with as many threads as Zephyr has workers.
// Each measurement is a fresh process; the two alternate over the rounds (the
// one that goes first swaps each round), so a noisy machine hurts both alike.
// Records/s counts input records for both; every round checks that both wrote
// the same number of records.
//   node --import tsx bench/zephyr-duckdb.bench.ts [--mb 200] [--files 16] [--workers 2] [--rounds 5] [--data DIR]
// Target: Zephyr ≥ 0.5× DuckDB's records/s (the median of the per-round ratios).
import { mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { version as duckdbVersion } from "@duckdb/node-api";
import { runChild } from "./child.js";
import { machine, median, printTable } from "./stats.js";
import { benchCorpus, countRecords, DEFAULT_DATA_ROOT, gzipFilesUnder } from "./zephyr-data.js";

const { values } = parseArgs({
  options: {
    mb: { type: "string", default: "200" },
    files: { type: "string", default: "16" },
    workers: { type: "string", default: "2" },
    rounds: { type: "string", default: "5" },
    data: { type: "string", default: DEFAULT_DATA_ROOT },
  },
});
/** Zephyr's records/s over DuckDB's that the target asks for. */
const TARGET = 0.5;
/** The option's value as a positive number (an integer unless `fractional`), or an error naming it. */
function positive(name: string, text: string, fractional = false): number {
  const value = Number(text);
  if (!(value > 0) || (!fractional && !Number.isInteger(value))) {
    throw new Error(`--${name} must be a positive ${fractional ? "number" : "integer"}, got "${text}"`);
  }
  return value;
}
const megabytes = positive("mb", values.mb, true);
const fileCount = positive("files", values.files);
const workers = positive("workers", values.workers);
const rounds = positive("rounds", values.rounds);

type Contender = "zephyr" | "duckdb";
const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

/** The child's command line for one measurement writing under `out`. */
function commandFor(contender: Contender, out: string, inputs: readonly string[]): string[] {
  return contender === "zephyr"
    ? ["--import", "tsx", here("./servers/zephyr-filter.ts"), "threads", String(workers), out, ...inputs]
    : ["--import", "tsx", here("./servers/duckdb-filter.ts"), String(workers), out, ...inputs];
}

const { dir: dataDir, inputs } = await benchCorpus(values.data, megabytes, fileCount);
const inputRecords = await countRecords(inputs);
console.log(`machine: ${machine()}; DuckDB ${duckdbVersion()} (@duckdb/node-api)`);
console.log(`input: ${fileCount} files, ${megabytes} MiB of JSONL before gzip, ${inputRecords.toLocaleString("en-US")} records, in ${dataDir}`);
console.log(`zephyr: threads backend, ${workers} workers; duckdb: threads = ${workers}; ${rounds} rounds\n`);

const outRoot = join(tmpdir(), `fluster-zephyr-duckdb-bench-out-${process.pid}`);
const seconds: Record<Contender, number[]> = { zephyr: [], duckdb: [] };
const ratios: number[] = [];
const rows: Array<Record<string, string | number>> = [];
let outputRecords: number | undefined;
try {
  for (let round = 0; round < rounds; round++) {
    const order: Contender[] = round % 2 === 0 ? ["zephyr", "duckdb"] : ["duckdb", "zephyr"];
    for (const contender of order) {
      const out = join(outRoot, `${contender}-${round}`);
      mkdirSync(out, { recursive: true });
      const result = await runChild(commandFor(contender, out, inputs));
      // Counted from the files, outside the timing: the honest check that both did the same work.
      const written = await countRecords(await gzipFilesUnder(out));
      rmSync(out, { recursive: true, force: true });
      outputRecords ??= written;
      if (written !== outputRecords) {
        throw new Error(`round ${round + 1}: ${contender} wrote ${written} records, the first run wrote ${outputRecords}`);
      }
      if (result.kept !== undefined && result.kept !== written) {
        throw new Error(`round ${round + 1}: ${contender} reports ${result.kept} records kept, its files hold ${written}`);
      }
      seconds[contender].push(result.seconds as number);
    }
    const zephyr = seconds.zephyr[round] as number;
    const duckdb = seconds.duckdb[round] as number;
    ratios.push(duckdb / zephyr); // = zephyr records/s over duckdb records/s
    rows.push({
      round: round + 1,
      first: order[0] as Contender,
      "zephyr s": zephyr,
      "duckdb s": duckdb,
      "zephyr records/s": Math.round(inputRecords / zephyr),
      "duckdb records/s": Math.round(inputRecords / duckdb),
      "zephyr/duckdb": `${(duckdb / zephyr).toFixed(2)}×`,
    });
  }
} finally {
  rmSync(outRoot, { recursive: true, force: true });
}

const ratio = median(ratios);
rows.push({
  round: "median",
  first: "—",
  "zephyr s": median(seconds.zephyr),
  "duckdb s": median(seconds.duckdb),
  "zephyr records/s": Math.round(median(seconds.zephyr.map((s) => inputRecords / s))),
  "duckdb records/s": Math.round(median(seconds.duckdb.map((s) => inputRecords / s))),
  "zephyr/duckdb": `${ratio.toFixed(2)}×`,
});
printTable(rows);
console.log(`\noutput: ${outputRecords?.toLocaleString("en-US")} records kept, the same from both in every round`);
console.log(`zephyr/duckdb (median of the per-round ratios): ${ratio.toFixed(2)}×; target ≥ ${TARGET}×: ${ratio >= TARGET ? "met" : "missed"}`);
