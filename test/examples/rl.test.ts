// Runs examples/rl as a real program — its own LocalCluster, a coordinator job,
// a trainer and rollout jobs — and checks what it prints and what it leaves behind.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { runExample } from "../helpers/index.js";

const MAIN = "examples/rl/main.ts";
// These runs take longer than most: a coordinator, a trainer and rollout jobs.
const TIMEOUT = { timeoutMs: 90_000 };

describe("examples/rl", { timeout: 120_000 }, () => {
  test("--steps 3 --rollouts 2 trains to version 3 with rewards from both rollout workers", async (t) => {
    const outcome = await runExample(t, MAIN, ["--steps", "3", "--rollouts", "2"], TIMEOUT);
    assert.equal(outcome.code, 0, `exit code 0\n--- stdout\n${outcome.stdout}\n--- stderr\n${outcome.stderr}`);
    const out = outcome.stdout;
    assert.match(out, /starting a local cluster/);
    assert.match(out, /\[coordinator\] serving "curriculum" and "weight-coordinator"/);
    assert.match(out, /\[trainer\] 2 rollout worker\(s\) reporting: rollout-0, rollout-1/);
    for (const step of [1, 2, 3]) assert.match(out, new RegExp(`\\[trainer\\] step ${step}/3: .* published weights v${step}\\b`));
    // Rollouts poll for new weights; each picks up at least one published version.
    assert.match(out, /\[rollout-0\] loaded weights v[1-3]\b/);
    assert.match(out, /\[rollout-1\] loaded weights v[1-3]\b/);
    assert.match(out, /^training steps\s+3$/m);
    assert.match(out, /^weights version\s+3 \[/m);
    assert.match(out, /^final difficulty\s+\d+$/m);
    const rewards = /^rewards reported\s+rollout-0: (\d+), rollout-1: (\d+) \((\d+) total/m.exec(out);
    assert.ok(rewards, `a per-worker reward line in:\n${out}`);
    const [, first, second, total] = rewards.map(Number);
    assert.ok(first! > 0 && second! > 0, "both rollout workers reported rewards");
    assert.equal(first! + second!, total);
    assert.deepEqual(outcome.leftovers, [], "no process of the run is left behind");
  });

  test("--help prints usage; a bad flag is one error line and exit 2", async (t) => {
    const help = await runExample(t, MAIN, ["--help"], TIMEOUT);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^Usage: node --import tsx examples\/rl\/main\.ts/);
    assert.match(help.stdout, /--rollouts N/);

    const bad = await runExample(t, MAIN, ["--steps", "0"], TIMEOUT);
    assert.equal(bad.code, 2);
    assert.equal(bad.stdout, "");
    assert.equal(bad.stderr.trim().split("\n").length, 1, bad.stderr);
    assert.match(bad.stderr, /--steps must be a whole number ≥ 1, got "0"/);
  });
});
