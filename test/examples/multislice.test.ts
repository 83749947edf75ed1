// Runs examples/multislice as a real program — its own LocalCluster, a
// coordinator job and slice jobs, one of them killed and replaced — and checks
// what it prints and what it leaves behind.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { eventually, runExample } from "../helpers/index.js";
import { SliceCoordinator } from "../../examples/multislice/coordinator.js";

const MAIN = "examples/multislice/main.ts";
// These runs take longer than most: many jobs, a slice killed and replaced.
const TIMEOUT = { timeoutMs: 90_000 };

describe("examples/multislice", { timeout: 120_000 }, () => {
  test("--slices 2 --steps 6 kills a slice, a replacement joins, and step 6 is reached", async (t) => {
    const outcome = await runExample(t, MAIN, ["--slices", "2", "--steps", "6"], TIMEOUT);
    assert.equal(outcome.code, 0, `exit code 0\n--- stdout\n${outcome.stdout}\n--- stderr\n${outcome.stderr}`);
    const out = outcome.stdout;
    assert.match(out, /reservation \S+: 1 to 2 slice\(s\) \(--min-slices to --max-slices\)/);
    assert.match(out, /slice-0 joined at step 1/);
    assert.match(out, /slice-1 joined at step 1/);
    // The kill after step 2 (a third of 6), seen from the job's status, then by the coordinator.
    assert.match(out, /step 2 complete on 2 slice\(s\)\n.*driver: killing slice-1 \(job /);
    assert.match(out, /driver: slice-1 job \S+ ended killed/);
    assert.match(out, /driver: launched slice-2 \(job \S+\) to replace slice-1/);
    assert.match(out, /coordinator expects slice-2: steps wait for it to join/);
    assert.match(out, /coordinator dropped slice-1: no heartbeat for \d+\.\ds/);
    // Steps wait for the announced replacement, so it joins at the step after the kill, not at step 1 nor after the end.
    assert.match(out, /slice-2 joined at step 3 /);
    for (const step of [3, 4, 5, 6]) assert.match(out, new RegExp(`step ${step} complete on 2 slice\\(s\\)`), `step ${step} ran on the survivor and the replacement`);
    assert.doesNotMatch(out, /step 7 complete/);
    assert.match(out, /^steps completed\s+6 \/ 6$/m);
    assert.match(out, /^slices killed\s+slice-1$/m);
    assert.match(out, /^replacements\s+slice-2 for slice-1 \(joined at step 3\)$/m);
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

describe("SliceCoordinator", () => {
  test("steps wait for an expected slice until it joins, then include it", async () => {
    const coordinator = new SliceCoordinator({ minSlices: 1, heartbeatTimeoutMs: 60_000 });
    coordinator.register("a");
    coordinator.heartbeat("a", 1);
    assert.equal(coordinator.status().completedStep, 1);
    coordinator.expect("b", 60);
    coordinator.heartbeat("a", 2);
    assert.equal(coordinator.status().completedStep, 1, "step 2 waits for b");
    assert.deepEqual(coordinator.status().expected, ["b"]);
    assert.equal(coordinator.register("b").startStep, 2, "b joins at the held step");
    coordinator.heartbeat("b", 2);
    const barrier = await coordinator.barrier(2);
    assert.deepEqual(barrier.slices, ["a", "b"]);
  });

  test("steps go on without an expected slice that does not join in time", async () => {
    const coordinator = new SliceCoordinator({ minSlices: 1, heartbeatTimeoutMs: 200 });
    coordinator.register("a");
    coordinator.expect("b", 0.3);
    coordinator.heartbeat("a", 1);
    assert.equal(coordinator.status().completedStep, 0);
    // Keep a alive while the coordinator gives up on b.
    const beat = setInterval(() => coordinator.heartbeat("a", 1), 50);
    try {
      await eventually(() => coordinator.status().completedStep === 1, { what: "step 1 to complete without b", timeoutMs: 5_000 });
    } finally {
      clearInterval(beat);
    }
    const events = await coordinator.events(0, 0);
    assert.ok(events.some((e) => e.kind === "gave-up" && e.sliceId === "b"), "the timeline says it gave up on b");
  });

  test("step 1 waits for every initial slice, so a slow starter joins at step 1", () => {
    const coordinator = new SliceCoordinator({ minSlices: 1, heartbeatTimeoutMs: 60_000, initialSlices: ["a", "b"] });
    coordinator.register("a");
    coordinator.heartbeat("a", 1);
    assert.equal(coordinator.status().completedStep, 0, "step 1 waits for b");
    assert.equal(coordinator.register("b").startStep, 1);
    coordinator.heartbeat("b", 1);
    assert.equal(coordinator.status().completedStep, 1);
  });

  test("expect() for a slice that already registered holds nothing", () => {
    const coordinator = new SliceCoordinator({ minSlices: 1, heartbeatTimeoutMs: 60_000 });
    coordinator.register("a");
    coordinator.expect("a", 60);
    coordinator.heartbeat("a", 1);
    assert.equal(coordinator.status().completedStep, 1);
  });
});
