// Runs examples/inference as a user would: a real child process that starts
// its own LocalCluster, two server jobs and a client that streams results.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { runExample } from "../helpers/index.js";

const MAIN = "examples/inference/main.ts";

describe("examples/inference", { timeout: 120_000 }, () => {
  test("two servers share the batches; every prompt comes back; health from both; servers stopped", async (t) => {
    const run = await runExample(t, MAIN, ["--servers", "2", "--prompts", "12", "--batch-size", "3", "--batch-ms", "100"]);
    assert.equal(run.code, 0, `exit code; stderr:\n${run.stderr}`);
    assert.match(run.stdout, /pool inference_pool ready: 2 server\(s\)/);

    // Every prompt completed exactly once, by one of the two servers.
    const results = [...run.stdout.matchAll(/^ {2}\[(server-\d)\] "prompt (\d+): [^"]*" -> "[^"]*"$/gm)];
    assert.deepEqual(results.map((m) => Number(m[2])).sort((a, b) => a - b), Array.from({ length: 12 }, (_, i) => i + 1));
    assert.deepEqual(new Set(results.map((m) => m[1])), new Set(["server-0", "server-1"]), "both servers used");
    assert.equal(run.stdout.match(/^batch \d\/4 from server-\d in \d+ ms:$/gm)?.length, 4);

    // Results stream: each batch's lines follow its own header, before the summary.
    assert.ok(run.stdout.indexOf("batch 1/4") < run.stdout.indexOf("done:"));

    // Two health rounds (before and after), each with one line per endpoint.
    const health = run.stdout.match(/^health server-\d at http:\/\/\S+: healthy, \d+ batches, \d+ prompts, pid \d+$/gm) ?? [];
    assert.equal(health.length, 4, run.stdout);
    assert.match(run.stdout, /^health server-0 at .*: healthy, 2 batches, 6 prompts/m);
    assert.match(run.stdout, /^health server-1 at .*: healthy, 2 batches, 6 prompts/m);

    assert.match(run.stdout, /^done: 12\/12 prompts in 4 batches, [\d.]+s; per server: server-0 6, server-1 6$/m);
    assert.match(run.stdout, /^stopping 2 server job\(s\)$/m);
    assert.deepEqual(run.leftovers, [], "no process left behind");
  });
});
