// Runs examples/multislice as a real program — its own LocalCluster, a
// coordinator job and slice jobs, one of them killed and replaced — and checks
// what it prints and what it leaves behind.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { runExample } from "../helpers/index.js";

const MAIN = "examples/multislice/main.ts";
// These runs take longer than most: many jobs, a slice killed and replaced.
const TIMEOUT = { timeoutMs: 90_000 };

describe("examples/multislice", { timeout: 120_000 }, () => {
  test("--slices 2 --steps 6 kills a slice, a replacement joins, and step 6 is reached", async (t) => {
    const outcome = await runExample(t, MAIN, ["--slices", "2", "--steps", "6"], TIMEOUT);
    assert.equal(outcome.code, 0, `exit code 0\n--- stdout\n${outcome.stdout}\n--- stderr\n${outcome.stderr}`);
    const out = outcome.stdout;
    assert.match(out, /kept between 1 and 2 by this driver/);
    assert.match(out, /slice-0 joined at step 1/);
    assert.match(out, /slice-1 joined at step 1/);
    // The kill after step 2 (a third of 6), seen from the job's status, then by the coordinator.
    assert.match(out, /step 2 complete on 2 slice\(s\)\n.*driver: killing slice-1 \(job /);
    assert.match(out, /driver: slice-1 job \S+ ended killed/);
    assert.match(out, /driver: launched slice-2 \(job \S+\) to replace slice-1/);
    assert.match(out, /coordinator dropped slice-1: no heartbeat for \d+\.\ds/);
    const joined = /slice-2 joined at step (\d+)/.exec(out);
    assert.ok(joined, `the replacement joined:\n${out}`);
    assert.ok(Number(joined[1]) >= 3 && Number(joined[1]) <= 6, "the replacement joins at the current step, not at step 1");
    assert.match(out, /step 6 complete on \d slice\(s\)/);
    assert.doesNotMatch(out, /step 7 complete/);
    assert.match(out, /^steps completed\s+6 \/ 6$/m);
    assert.match(out, /^slices killed\s+slice-1$/m);
    assert.match(out, /^replacements\s+slice-2 for slice-1$/m);
    assert.deepEqual(outcome.leftovers, [], "no process of the run is left behind");
  });

  test("--help prints usage; inconsistent min/max is one error line and exit 2", async (t) => {
    const help = await runExample(t, MAIN, ["--help"], TIMEOUT);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^Usage: node --import tsx examples\/multislice\/main\.ts/);
    assert.match(help.stdout, /--min-slices M/);
    assert.match(help.stdout, /--tpu VARIANT/);

    const bad = await runExample(t, MAIN, ["--slices", "2", "--min-slices", "3"], TIMEOUT);
    assert.equal(bad.code, 2);
    assert.equal(bad.stdout, "");
    assert.equal(bad.stderr.trim().split("\n").length, 1, bad.stderr);
    assert.match(bad.stderr, /--min-slices \(3\) must not exceed --slices \(2\)/);
  });
});
