// The pipeline itself, as a Zephyr definition: module-level and free of side
// effects, because every worker that runs a shard imports this module and
// calls the definition with the same arguments to rebuild the same pipeline.
import { join } from "node:path";
import { Dataset, dataset } from "fluster";
import type { Document } from "./corpus.js";

/** A kept document: the input record plus its word count. */
export interface CountedDocument extends Document {
  words: number;
}

/**
 * One shard per input file: stream it from disk (gunzip by extension), count
 * each record's words, keep those with more than `minWords`, and stream them
 * back to `outputDir/part-NNNNN.jsonl.gz` (written under a temporary name,
 * renamed into place when complete).
 */
export const filterDocuments = dataset(import.meta.url, function filterDocuments(input: string, outputDir: string, minWords: number) {
  return Dataset.fromFiles(input)
    .loadJsonl<Document>()
    .map((doc): CountedDocument => ({ ...doc, words: doc.text.split(/\s+/).filter(Boolean).length }))
    .filter((doc) => doc.words > minWords)
    .writeJsonl(join(outputDir, "part-{shard:05d}.jsonl.gz"));
});
