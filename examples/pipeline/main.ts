// Data processing (SPEC §1, workload 2), with a WorkerPool until Zephyr
// lands: fan a per-file transform out over CPU workers, with every input and
// output on disk and only small stats coming back to this driver.
//
//   node --import tsx examples/pipeline/main.ts --files 4 --workers 2
//   node --import tsx examples/pipeline/main.ts --input 'data/*.jsonl.gz' --output out
//
// With FLUSTER_CLUSTER_ADDRESS set it uses that cluster (whose workers must
// see the same file system, as local workers do); otherwise it starts a
// LocalCluster of its own.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { LocalCluster, WorkerPool, currentCluster, type Cluster } from "fluster";
import { writeCorpus } from "./corpus.js";
import { processFile, type FileStats } from "./tasks.js";

const USAGE = `usage: node --import tsx examples/pipeline/main.ts [flags]

Filters gzipped JSONL files in parallel on pool workers: counts each record's
words, keeps records with more than --min-words words, writes part-NNNNN.jsonl.gz.

flags:
  --input GLOB       input files, e.g. 'data/*.jsonl.gz' (* and ? in the file name only);
                     without it, sample files are generated into the work directory
  --files N          sample files to generate (default: 4)
  --records N        records per sample file (default: 500)
  --seed N           seed of the sample data (default: 42)
  --min-words N      keep records with more words than this (default: 10)
  --workers N        pool workers (default: 2)
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
    workDir: values["work-dir"],
    output: values.output,
  };
}

function wholeNumber(text: string, flag: string, min: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) throw new Error(`${flag} must be a whole number ≥ ${min}, got ${JSON.stringify(text)}`);
  return n;
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

  // 1. Inputs and outputs live on disk; paths are absolute because the tasks
  //    run in other processes (possibly on other machines with a shared disk).
  let workDir = flags.workDir !== undefined ? resolve(flags.workDir) : undefined;
  // A temporary work directory is ours: stop() removes it unless the run succeeds.
  const ensureWorkDir = () => (workDir ??= run.tempDir = mkdtempSync(join(tmpdir(), "fluster-pipeline-")));
  const outputDir = resolve(flags.output ?? join(ensureWorkDir(), "out"));
  let inputs: string[];
  if (flags.input !== undefined) {
    inputs = expandGlob(flags.input);
    if (inputs.length === 0) throw new Error(`--input ${flags.input} matches no file`);
    console.log(`input: ${inputs.length} file(s) matching ${flags.input}`);
  } else {
    const inputDir = join(ensureWorkDir(), "input");
    inputs = await writeCorpus(inputDir, flags.files, flags.records, flags.seed);
    console.log(`input: generated ${inputs.length} file(s) × ${flags.records} records (seed ${flags.seed}) in ${inputDir}`);
  }
  mkdirSync(outputDir, { recursive: true });
  if (readdirSync(outputDir).some((name) => name.startsWith("part-"))) {
    throw new Error(`output directory ${outputDir} already holds part files: remove them or pick another --output`);
  }

  // 2. A pool of worker jobs. Each is a process on some worker machine that
  //    runs remote functions by reference.
  run.cluster = currentCluster();
  const cluster = await run.cluster;
  console.log(
    cluster instanceof LocalCluster
      ? `cluster: LocalCluster at ${cluster.address} (${cluster.workers.length} workers), started by this program`
      : `cluster: ${cluster.address}`,
  );
  const pool = new WorkerPool(cluster, { numWorkers: flags.workers, resources: { cpu: 0.5, memory: "256m" }, namePrefix: "pipeline" });
  run.pool = pool;
  const started = Date.now();
  await pool.waitForWorkers(flags.workers, { timeoutSeconds: 60 });
  console.log(`pool ${pool.name}: ${pool.size} worker(s) ready after ${seconds(started)}`);

  // 3. One task per file; each file's stats print as soon as it is done.
  const tasks = inputs.map((input, i) => ({ input, output: join(outputDir, `part-${String(i).padStart(5, "0")}.jsonl.gz`), minWords: flags.minWords }));
  const stats = await Promise.all(
    pool.map(processFile, tasks).map((result) =>
      result.then((s: FileStats) => {
        console.log(`${basename(s.input)} -> ${basename(s.output)}: ${s.kept}/${s.records} records kept, ${s.keptWords} words (${s.worker}, ${s.ms} ms)`);
        return s;
      }),
    ),
  );

  // 4. Totals over all files.
  const total = stats.reduce((t, s) => ({ records: t.records + s.records, kept: t.kept + s.kept, words: t.words + s.words }), { records: 0, kept: 0, words: 0 });
  const workers = new Set(stats.map((s) => s.worker)).size;
  console.log(
    `total: ${total.kept}/${total.records} records kept (more than ${flags.minWords} words), ${total.words} words read, ` +
      `${stats.length} file(s) on ${workers} worker(s) in ${seconds(started)}`,
  );
  console.log(`output: ${outputDir}`);
  return 0;
}

/** Expands `dir/pattern` where the pattern (file name only) may hold `*` and `?`. */
function expandGlob(glob: string): string[] {
  const dir = resolve(dirname(glob));
  const pattern = basename(glob);
  if (/[*?]/.test(dir)) throw new Error(`--input supports * and ? in the file name only, got ${glob}`);
  if (!existsSync(dir)) return [];
  const escaped = pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, "[^/]*").replace(/\?/g, "[^/]");
  const regex = new RegExp(`^${escaped}$`);
  return readdirSync(dir)
    .filter((name) => regex.test(name))
    .sort()
    .map((name) => join(dir, name));
}

function seconds(since: number): string {
  return `${((Date.now() - since) / 1000).toFixed(1)}s`;
}

// ------------------------------------------------------------------ lifecycle

/** What this run started, so that stop() can release it on every way out. */
const run: { cluster?: Promise<Cluster>; pool?: WorkerPool; tempDir?: string } = {};
let interrupted = false;
let stopping: Promise<void> | undefined;

/**
 * Stops what this run started, once: the pool's worker jobs and, when
 * currentCluster() started a LocalCluster, that cluster. The outputs of a
 * successful run stay; a temporary work directory of a failed one goes.
 */
function stop(succeeded = false): Promise<void> {
  return (stopping ??= (async () => {
    await run.pool?.shutdown().catch(() => undefined);
    const cluster = await run.cluster?.catch(() => undefined);
    if (cluster instanceof LocalCluster) await cluster.shutdown();
    else await cluster?.close();
    if (!succeeded && run.tempDir) rmSync(run.tempDir, { recursive: true, force: true });
  })());
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    interrupted = true;
    console.error(`interrupted (${signal}): stopping the pool`);
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
