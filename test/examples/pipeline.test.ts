// Runs examples/pipeline as a user would: a real child process that starts its
// own LocalCluster and runs a Zephyr pipeline over generated files on a
// WorkerPool there. The expected output is computed here from the same seeded
// generator.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { makeDocuments } from "../../examples/pipeline/corpus.js";
import { runExample } from "../helpers/index.js";

const MAIN = "examples/pipeline/main.ts";

/** Records the pipeline keeps (more than `minWords` words), from `files` files starting at file `first`. */
function expectedIds(files: number, records: number, seed: number, minWords: number, first = 0): string[] {
  const ids: string[] = [];
  for (let f = first; f < first + files; f++) {
    for (const doc of makeDocuments(f, records, seed)) if (doc.text.split(" ").length > minWords) ids.push(doc.id);
  }
  return ids.sort();
}

describe("examples/pipeline", { timeout: 120_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), "fluster-pipeline-test-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("3 files over 2 workers: one output file per input, the expected records kept, totals printed", async (t) => {
    const output = join(dir, "out");
    const run = await runExample(t, MAIN, ["--files", "3", "--workers", "2", "--records", "200", "--seed", "7", "--work-dir", dir, "--output", output]);
    assert.equal(run.code, 0, `exit code; stderr:\n${run.stderr}`);

    const expected = expectedIds(3, 200, 7, 10);
    assert.ok(expected.length > 0 && expected.length < 600, "the filter keeps some records and drops others");

    // Output files exist, one per input, and hold exactly the expected records.
    assert.deepEqual(readdirSync(output).sort(), ["part-00000.jsonl.gz", "part-00001.jsonl.gz", "part-00002.jsonl.gz"]);
    const kept = readdirSync(output).flatMap((name) =>
      gunzipSync(readFileSync(join(output, name)))
        .toString("utf8")
        .split("\n")
        .filter(Boolean)
        .map((line) => JSON.parse(line) as { id: string; text: string; words: number }),
    );
    assert.deepEqual(kept.map((r) => r.id).sort(), expected);
    for (const r of kept) assert.equal(r.words, r.text.split(" ").length);

    // The plan, each file as its shard finishes (with its own count), and the totals line.
    assert.match(run.stdout, /^stage 0 \(one shard per file\): files \S+docs-\*\.jsonl\.gz → loadJsonl → map → filter → writeJsonl \S+part-\{shard:05d\}\.jsonl\.gz$/m);
    const perFile = [...run.stdout.matchAll(/^part-0000(\d)\.jsonl\.gz: (\d+) records kept \(\d\/3 files done/gm)].map((m) => [Number(m[1]), Number(m[2])]);
    assert.deepEqual(
      perFile.sort((a, b) => a[0]! - b[0]!),
      [0, 1, 2].map((f) => [f, expectedIds(1, 200, 7, 10, f).length]),
      run.stdout,
    );
    assert.match(run.stdout, new RegExp(`^total: ${expected.length} records kept \\(more than 10 words\\) in 3 file\\(s\\), cluster with 2 worker\\(s\\)`, "m"));
    assert.match(run.stdout, new RegExp(`^output: ${output.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`, "m"));
    assert.equal(run.stderr, "");
    assert.deepEqual(run.leftovers, [], "no process left behind");
  });
});
