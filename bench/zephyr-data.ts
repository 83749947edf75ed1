// Input corpus for the Zephyr benchmarks: seeded, gzipped JSONL files of
// `{ id, text, source }` records. A manifest (corpus.json) records the options
// that made the files, so a second run with the same options reuses them.
import { readdir, readFile, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { LineWriter, readLines } from "../src/zephyr/io.js";
import { rng } from "./stats.js";

export interface CorpusOptions {
  /** Number of input files. */
  files: number;
  /** Uncompressed size each file grows to (it stops at the first record that reaches it). */
  bytesPerFile: number;
  /** Seed of the random generator. @default 1 */
  seed?: number;
}

/** One line of the corpus. */
export interface CorpusRecord {
  id: number;
  text: string;
  source: string;
}

const VOCABULARY = [
  "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on", "not",
  "data", "model", "cluster", "worker", "shard", "token", "stream", "record", "batch", "pipeline", "queue",
  "actor", "task", "node", "graph", "vector", "matrix", "kernel", "tensor", "cache", "memory", "disk",
  "river", "mountain", "garden", "window", "music", "paper", "coffee", "winter", "harbor", "lantern",
];
const SOURCES = ["web", "books", "wiki", "news", "code"];
const MANIFEST = "corpus.json";
/** Lines per write into a file. */
const WRITE_BATCH = 4096;
/** Changes whenever the record format changes, so an old corpus is rebuilt. */
const FORMAT_VERSION = 1;

interface Manifest {
  version: number;
  files: number;
  bytesPerFile: number;
  seed: number;
  names: string[];
}

/** Where the Zephyr benchmarks keep their corpora unless told otherwise (`--data`). */
export const DEFAULT_DATA_ROOT = join(tmpdir(), "fluster-zephyr-bench");

/**
 * The benchmarks' corpus of `megabytes` MiB (before gzip) in `files` files, in
 * `<root>/<megabytes>mb-<files>`, so every benchmark asking for the same size shares one copy.
 */
export async function benchCorpus(root: string, megabytes: number, files: number): Promise<{ dir: string; inputs: string[] }> {
  const dir = join(root, `${megabytes}mb-${files}`);
  const inputs = await generateCorpus(dir, { files, bytesPerFile: Math.ceil((megabytes * 1024 * 1024) / files) });
  return { dir, inputs };
}

/** Non-empty lines in the given files (gzip by extension), i.e. JSONL records. */
export async function countRecords(paths: readonly string[]): Promise<number> {
  let records = 0;
  for (const path of paths) {
    for await (const batch of readLines(path)) {
      for (const line of batch) if (line.length > 0) records++;
    }
  }
  return records;
}

/** The `.gz` files anywhere under `dir`, sorted. */
export async function gzipFilesUnder(dir: string): Promise<string[]> {
  const names = await readdir(dir, { recursive: true });
  return names.filter((name) => name.endsWith(".gz")).sort().map((name) => join(dir, name));
}

/** Writes (or reuses) `input-00000.jsonl.gz` … under `dir`; returns their absolute paths in order. */
export async function generateCorpus(dir: string, options: CorpusOptions): Promise<string[]> {
  const seed = options.seed ?? 1;
  const names = Array.from({ length: options.files }, (_, i) => `input-${String(i).padStart(5, "0")}.jsonl.gz`);
  const paths = names.map((name) => resolve(dir, name));
  const wanted: Manifest = { version: FORMAT_VERSION, files: options.files, bytesPerFile: options.bytesPerFile, seed, names };
  if (await reusable(dir, wanted)) return paths;

  // Each file draws from its own generator, so files can be written concurrently and stay reproducible.
  await Promise.all(paths.map((path, file) => writeCorpusFile(path, file, options.bytesPerFile, seed)));
  await writeFile(join(dir, MANIFEST), JSON.stringify(wanted, null, 2) + "\n");
  return paths;
}

async function writeCorpusFile(path: string, file: number, bytesPerFile: number, seed: number): Promise<void> {
  const random = rng(seed * 1_000_003 + file);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)] as T;
  const writer = await LineWriter.open(path);
  try {
    let bytes = 0;
    let id = file * 1_000_000_000; // ids stay unique across files
    let lines: string[] = [];
    while (bytes < bytesPerFile) {
      const words = 1 + Math.floor(random() * 40);
      const parts = new Array<string>(words);
      for (let w = 0; w < words; w++) parts[w] = pick(VOCABULARY);
      const record: CorpusRecord = { id: id++, text: parts.join(" "), source: pick(SOURCES) };
      const line = JSON.stringify(record);
      bytes += line.length + 1; // ASCII only, so characters are bytes
      lines.push(line);
      if (lines.length >= WRITE_BATCH) {
        await writer.write(lines);
        lines = [];
      }
    }
    await writer.write(lines);
    await writer.close();
  } catch (err) {
    await writer.abort();
    throw err;
  }
}

async function reusable(dir: string, wanted: Manifest): Promise<boolean> {
  let found: Manifest;
  try {
    found = JSON.parse(await readFile(join(dir, MANIFEST), "utf8")) as Manifest;
  } catch {
    return false;
  }
  if (JSON.stringify(found) !== JSON.stringify(wanted)) return false;
  const present = await Promise.all(wanted.names.map((name) => stat(join(dir, name)).then((s) => s.isFile(), () => false)));
  return present.every(Boolean);
}
