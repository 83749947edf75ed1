// Data processing (SPEC §1, workload 2): a Zephyr pipeline over gzipped
// JSONL files, one shard per file, fanned out over CPU workers, with every
// input and output on disk and only small counts coming back to this driver.
//
//   node --import tsx examples/pipeline/main.ts --files 4 --workers 2
//   node --import tsx examples/pipeline/main.ts --input 'data/**/*.jsonl.gz' --output out
//
// On the cluster backend (the default) it uses the cluster in
// FLUSTER_CLUSTER_ADDRESS (whose workers must see the same file system, as
// local workers do) or else starts a LocalCluster of its own.
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { glob } from "tinyglobby";
import { LocalCluster, currentCluster, execute, type Cluster, type ZephyrBackend } from "fluster";
import { inputFileName, writeCorpus } from "./corpus.js";
import { filterDocuments } from "./pipeline.js";

const USAGE = `usage: node --import tsx examples/pipeline/main.ts [flags]

A Zephyr pipeline over gzipped (or .zst, or plain) JSONL files, one shard per
file: counts each record's words, keeps records with more than --min-words
words, writes part-NNNNN.jsonl.gz.

flags:
  --input GLOB       input files, e.g. 'data/**/*.jsonl.gz' (quote it);
                     without it, sample files are generated into the work directory
  --files N          sample files to generate (default: 4)
  --records N        records per sample file (default: 500)
  --seed N           seed of the sample data (default: 42)
  --min-words N      keep records with more words than this (default: 10)
  --workers N        shards at once: pool workers or threads (default: 2)
  --backend B        cluster, threads or sync (default: cluster)
  --work-dir DIR     where sample inputs go (default: a new temporary directory)
  --output DIR       where outputs go (default: WORK-DIR/out)
  -h, --help         print this help`;

interface Flags {
  input: string | undefined;
  files: number;
  records: number;
  seed: number;
  minWords: number;
  workers: number;
  backend: ZephyrBackend;
  workDir: string | undefined;
  output: string | undefined;
}

function parseFlags(argv: string[]): Flags | "help" {
  const { values } = parseArgs({
    args: argv,
    options: {
      input: { type: "string" },
      files: { type: "string", default: "4" },
      records: { type: "string", default: "500" },
      seed: { type: "string", default: "42" },
      "min-words": { type: "string", default: "10" },
      workers: { type: "string", default: "2" },
      backend: { type: "string", default: "cluster" },
      "work-dir": { type: "string" },
      output: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) return "help";
  return {
    input: values.input,
    files: wholeNumber(values.files, "--files", 1),
    records: wholeNumber(values.records, "--records", 0),
    seed: wholeNumber(values.seed, "--seed", 0),
    minWords: wholeNumber(values["min-words"], "--min-words", 0),
    workers: wholeNumber(values.workers, "--workers", 1),
    backend: backendFlag(values.backend),
    workDir: values["work-dir"],
    output: values.output,
  };
}

function wholeNumber(text: string, flag: string, min: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) throw new Error(`${flag} must be a whole number ≥ ${min}, got ${JSON.stringify(text)}`);
  return n;
}

function backendFlag(text: string): ZephyrBackend {
  if (text === "cluster" || text === "threads" || text === "sync") return text;
  throw new Error(`--backend must be cluster, threads or sync, got ${JSON.stringify(text)}`);
}

async function main(argv: string[]): Promise<number> {
  let flags: Flags | "help";
  try {
    flags = parseFlags(argv);
  } catch (err) {
    console.error(`error: ${(err as Error).message} (see --help)`);
    return 2;
  }
  if (flags === "help") {
    console.log(USAGE);
    return 0;
  }

  // 1. Inputs and outputs live on disk; paths are absolute because shards
  //    run in other processes (possibly on other machines with a shared disk).
  let workDir = flags.workDir !== undefined ? resolve(flags.workDir) : undefined;
  // A temporary work directory is ours: stop() removes it unless the run succeeds.
  const ensureWorkDir = () => (workDir ??= run.tempDir = mkdtempSync(join(tmpdir(), "fluster-pipeline-")));
  const outputDir = resolve(flags.output ?? join(ensureWorkDir(), "out"));
  let input: string;
  if (flags.input !== undefined) {
    input = resolve(flags.input);
    // Checked here, before any cluster starts; the pipeline expands the same glob.
    const matches = await glob(input, { onlyFiles: true });
    if (matches.length === 0) throw new Error(`--input ${flags.input} matches no file`);
    console.log(`input: ${matches.length} file(s) matching ${flags.input}`);
  } else {
    const inputDir = join(ensureWorkDir(), "input");
    const inputs = await writeCorpus(inputDir, flags.files, flags.records, flags.seed);
    input = join(inputDir, inputFileName(0).replace(/\d+/, "*"));
    console.log(`input: generated ${inputs.length} file(s) × ${flags.records} records (seed ${flags.seed}) in ${inputDir}`);
  }
  mkdirSync(outputDir, { recursive: true });
  if (readdirSync(outputDir).some((name) => name.startsWith("part-"))) {
    throw new Error(`output directory ${outputDir} already holds part files: remove them or pick another --output`);
  }

  // 2. The pipeline, built from its definition (workers rebuild it the same way).
  const pipeline = filterDocuments(input, outputDir, flags.minWords);
  console.log(pipeline.explain());

  // 3. Where shards run: a WorkerPool on the cluster, worker threads, or inline.
  let cluster: Cluster | undefined;
  if (flags.backend === "cluster") {
    run.cluster = currentCluster();
    cluster = await run.cluster;
    console.log(
      cluster instanceof LocalCluster
        ? `cluster: LocalCluster at ${cluster.address} (${cluster.workers.length} workers), started by this program`
        : `cluster: ${cluster.address}`,
    );
  }

  // 4. Run it; each output file prints as soon as its shard is done.
  const started = Date.now();
  let kept = 0;
  const files = await execute(pipeline, {
    backend: flags.backend,
    maxParallelism: flags.workers,
    ...(cluster ? { cluster, workerResources: { cpu: 0.5, memory: "256m" } } : {}),
    onShard: (shard) => {
      kept += shard.records;
      console.log(`${basename(shard.path ?? "?")}: ${shard.records} records kept (${shard.shardsDone}/${shard.shardsTotal} files done, ${seconds(started)})`);
    },
  });
  console.log(
    `total: ${kept} records kept (more than ${flags.minWords} words) in ${files.length} file(s), ` +
      `${flags.backend}${flags.backend === "sync" ? "" : ` with ${flags.workers} worker(s)`}, ${seconds(started)}`,
  );
  console.log(`output: ${outputDir}`);
  return 0;
}

function seconds(since: number): string {
  return `${((Date.now() - since) / 1000).toFixed(1)}s`;
}

// ------------------------------------------------------------------ lifecycle

/** What this run started, so that stop() can release it on every way out. */
const run: { cluster?: Promise<Cluster>; tempDir?: string } = {};
let interrupted = false;
let stopping: Promise<void> | undefined;

/**
 * Stops what this run started, once: when currentCluster() started a
 * LocalCluster, that cluster (and with it the pool's worker jobs). The outputs of a
 * successful run stay; a temporary work directory of a failed one goes.
 */
function stop(succeeded = false): Promise<void> {
  return (stopping ??= (async () => {
    const cluster = await run.cluster?.catch(() => undefined);
    if (cluster instanceof LocalCluster) await cluster.shutdown();
    else await cluster?.close();
    if (!succeeded && run.tempDir) rmSync(run.tempDir, { recursive: true, force: true });
  })());
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    interrupted = true;
    console.error(`interrupted (${signal}): stopping`);
    process.once(signal, () => process.exit(130)); // a second Ctrl-C exits at once
    void stop().finally(() => process.exit(130));
  });
}

main(process.argv.slice(2))
  .catch((err: unknown) => {
    if (!interrupted) console.error(`error: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  })
  .then(async (code) => {
    await stop(code === 0 && !interrupted);
    process.exit(interrupted ? 130 : code);
  });
