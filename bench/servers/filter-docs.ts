// The pipeline bench/servers/zephyr-filter.ts runs, in a module of its own:
// threads and pool workers import this module to rebuild it, so it must have
// no side effects (the runner script around it has plenty).
import { Dataset, dataset } from "../../src/index.js";

export interface Doc {
  id: number;
  text: string;
  source: string;
}

export const filterDocs = dataset(import.meta.url, function filterDocs(inputs: string[], output: string) {
  return Dataset.fromList(inputs, { numShards: inputs.length })
    .loadJsonl<Doc>()
    .map((doc) => ({ ...doc, n: doc.text.split(" ").length }))
    .filter((doc) => doc.n > 10)
    .writeJsonl(output);
});

