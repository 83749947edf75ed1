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
import { mkdirSync, readdirSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { glob } from "tinyglobby";
import { execute, type ZephyrBackend } from "fluster";
import { runMain, wholeNumber, type ExampleRun } from "../shared/run.js";
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
    files: wholeNumber("--files", values.files, 1),
    records: wholeNumber("--records", values.records, 0),
    seed: wholeNumber("--seed", values.seed, 0),
    minWords: wholeNumber("--min-words", values["min-words"], 0),
    workers: wholeNumber("--workers", values.workers, 1),
    backend: backendFlag(values.backend),
    workDir: values["work-dir"],
    output: values.output,
  };
}

function backendFlag(text: string): ZephyrBackend {
  if (text === "cluster" || text === "threads" || text === "sync") return text;
  throw new Error(`--backend must be cluster, threads or sync, got ${JSON.stringify(text)}`);
}

async function main(flags: Flags, run: ExampleRun): Promise<number> {
  // 1. Inputs and outputs live on disk; paths are absolute because shards
  //    run in other processes (possibly on other machines with a shared disk).
  let workDir = flags.workDir !== undefined ? resolve(flags.workDir) : undefined;
  // A temporary work directory is the run's: it goes unless the run succeeds.
  const ensureWorkDir = () => (workDir ??= run.makeTempDir("fluster-pipeline-"));
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
  const cluster = flags.backend === "cluster" ? await run.connect() : undefined;

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

// Stopping the run's LocalCluster also stops the pool's worker jobs; the
// outputs of a successful run stay.
runMain({ usage: USAGE, parseFlags, main, onInterrupt: "stopping" });
