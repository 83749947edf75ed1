// Runs examples/training as a user would: a real child process that starts its
// own LocalCluster (CPU workers only), so an accelerator job must fail clearly
// and a --cpu run must train to the end.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { runExample } from "../helpers/index.js";

const MAIN = "examples/training/main.ts";

describe("examples/training", { timeout: 120_000 }, () => {
  test("on a cluster without TPUs the job is unschedulable: it says which device is missing and exits non-zero", async (t) => {
    const run = await runExample(t, MAIN, ["--steps", "3", "--schedule-timeout", "3"]);
    assert.equal(run.code, 1, `exit code; stderr:\n${run.stderr}`);
    assert.match(run.stdout, /launched .*TPU v5litepod-16 \(4 task\(s\), 16 chips\)/);
    assert.match(run.stdout, /waiting for a worker: no worker has a tpu/);
    assert.match(run.stderr, /error: no worker fits this job \(TPU v5litepod-16\): not scheduled within 3s: no worker has a tpu/);
    assert.match(run.stderr, /hint: pass --cpu/);
    assert.doesNotMatch(run.stdout, /step 1\//);
    assert.deepEqual(run.leftovers, [], "no process left behind");
  });

  test("--cpu trains on CPU workers: loss per step, a checkpoint, exit 0", async (t) => {
    const run = await runExample(t, MAIN, ["--cpu", "--steps", "3", "--step-ms", "50"]);
    assert.equal(run.code, 0, `exit code; stderr:\n${run.stderr}`);
    for (const step of [1, 2, 3]) assert.match(run.stdout, new RegExp(`^step ${step}/3 loss=\\d+\\.\\d{4}$`, "m"));
    assert.match(run.stdout, /^checkpoint saved: demo\/step-3 /m);
    assert.match(run.stdout, /^training \S+ succeeded in [\d.]+s \(3 steps on CPU\)$/m);
    assert.equal(run.stderr, "");
    assert.deepEqual(run.leftovers, [], "no process left behind");
  });

  test("Ctrl-C mid-training stops the job and the local cluster, and exits 130", async (t) => {
    const run = await runExample(t, MAIN, ["--cpu", "--steps", "200", "--step-ms", "100"], { interruptOn: /^step 2\/200 /m });
    assert.equal(run.code, 130, `exit code; stderr:\n${run.stderr}`);
    assert.match(run.stderr, /^interrupted \(SIGINT\): stopping the training job$/m);
    assert.doesNotMatch(run.stdout, /checkpoint saved/);
    assert.doesNotMatch(run.stderr, /error:/);
    assert.deepEqual(run.leftovers, [], "no process left behind");
  });
});
