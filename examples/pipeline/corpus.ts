// A deterministic sample corpus: the same seed always gives the same
// documents, so a test can compute the pipeline's expected output itself.
import { createWriteStream, mkdirSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";

export interface Document {
  id: string;
  text: string;
}

const WORDS = (
  "the a of data model token train shard file worker cluster job actor pool batch stream " +
  "river mountain cloud signal vector layer weight gradient loss step node disk cache queue " +
  "fast slow small large quiet bright early late simple clear"
).split(" ");

/** mulberry32: a tiny seeded PRNG, good enough for sample data. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The documents of input file `fileIndex`: 3 to 25 words each. */
export function makeDocuments(fileIndex: number, count: number, seed: number): Document[] {
  const next = random(seed * 1_000_003 + fileIndex);
  return Array.from({ length: count }, (_, i) => {
    const length = 3 + Math.floor(next() * 23);
    const words = Array.from({ length }, () => WORDS[Math.floor(next() * WORDS.length)]);
    return { id: `doc-${fileIndex}-${i}`, text: words.join(" ") };
  });
}

/** The name of input file `index`. */
export function inputFileName(index: number): string {
  return `docs-${String(index).padStart(5, "0")}.jsonl.gz`;
}

/** Writes `files` gzipped JSONL files of `records` documents each into `dir`; returns their paths. */
export async function writeCorpus(dir: string, files: number, records: number, seed: number): Promise<string[]> {
  mkdirSync(dir, { recursive: true });
  return Promise.all(
    Array.from({ length: files }, async (_, i) => {
      const path = join(dir, inputFileName(i));
      const lines = makeDocuments(i, records, seed).map((doc) => `${JSON.stringify(doc)}\n`);
      await pipeline(Readable.from(lines), createGzip(), createWriteStream(path));
      return path;
    }),
  );
}
