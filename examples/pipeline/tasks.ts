// The work each pool worker does: one input file in, one output file out.
// Records stream from disk through gunzip, the filter and gzip back to disk,
// so memory stays flat however large the file, and no record ever travels
// back to the driver: only a few counts do.
import { createReadStream, createWriteStream, renameSync, rmSync } from "node:fs";
import { StringDecoder } from "node:string_decoder";
import { pipeline } from "node:stream/promises";
import { createGunzip, createGzip } from "node:zlib";
import { remote } from "fluster";

export interface FileTask {
  /** A gzipped JSONL file of `{ id, text }` records (absolute path). */
  input: string;
  /** Where the kept records go, gzipped JSONL (absolute path). */
  output: string;
  /** Keep records with more words than this. */
  minWords: number;
}

export interface FileStats {
  input: string;
  output: string;
  records: number;
  kept: number;
  words: number;
  keptWords: number;
  /** The pool worker (job) that processed the file. */
  worker: string;
  ms: number;
}

export const processFile = remote(import.meta.url, async function processFile(task: FileTask): Promise<FileStats> {
  const started = Date.now();
  const stats = { records: 0, kept: 0, words: 0, keptWords: 0 };

  // Count words, keep the long records, and add the count to each.
  async function* filterRecords(lines: AsyncIterable<string>): AsyncGenerator<string> {
    for await (const line of lines) {
      if (line.trim() === "") continue;
      const record = JSON.parse(line) as { id: string; text: string };
      const words = record.text.split(/\s+/).filter(Boolean).length;
      stats.records += 1;
      stats.words += words;
      if (words > task.minWords) {
        stats.kept += 1;
        stats.keptWords += words;
        yield `${JSON.stringify({ ...record, words })}\n`;
      }
    }
  }

  // Written under a temporary name and renamed when complete: a task re-run
  // after its worker died never leaves (or reads) half a file.
  const partial = `${task.output}.partial-${process.pid}`;
  try {
    await pipeline(createReadStream(task.input), createGunzip(), splitLines, filterRecords, createGzip(), createWriteStream(partial));
    renameSync(partial, task.output);
  } catch (err) {
    rmSync(partial, { force: true });
    throw err;
  }
  return { input: task.input, output: task.output, ...stats, worker: process.env.FLUSTER_JOB_NAME ?? `pid ${process.pid}`, ms: Date.now() - started };
});

/** Bytes in, lines out (UTF-8 safe across chunk boundaries). */
async function* splitLines(chunks: AsyncIterable<Buffer>): AsyncGenerator<string> {
  const decoder = new StringDecoder("utf8");
  let rest = "";
  for await (const chunk of chunks) {
    const lines = (rest + decoder.write(chunk)).split("\n");
    rest = lines.pop() ?? "";
    yield* lines;
  }
  rest += decoder.end();
  if (rest !== "") yield rest;
}
