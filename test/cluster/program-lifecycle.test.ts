// Programs on a cluster they start themselves end cleanly: one using
// currentCluster() without FLUSTER_CLUSTER_ADDRESS exits by itself when its
// work is done, and neither it (signalled or SIGKILLed) nor a program with an
// explicit LocalCluster stopped by a signal leaves a process or a temporary
// directory behind.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cleanEnv, eventually, killAll, processesWith, REPO_ROOT, runNode, waitForLine } from "../helpers/index.js";

const CURRENT = "test/fixtures/lifecycle/current-cluster-program.ts";
const EXPLICIT = "test/fixtures/lifecycle/explicit-local-cluster.ts";

/** A fresh TMPDIR for one program, a marker its processes inherit, and checks that nothing of it is left. */
function sandbox(t: { after(fn: () => void | Promise<void>): void }) {
  const tmp = mkdtempSync(join(tmpdir(), "lifecycle-test-"));
  const marker = `LIFECYCLE_TEST_RUN=${randomUUID()}`;
  const needles = [marker];
  t.after(() => {
    killAll(processesWith(needles));
    rmSync(tmp, { recursive: true, force: true });
  });
  const [name, value] = marker.split("=") as [string, string];
  return {
    env: cleanEnv({ TMPDIR: tmp, [name]: value }),
    /** Also count the processes of a cluster at `address` (jobs see it in their environment). */
    watchAddress(address: string) {
      needles.push(`FLUSTER_CLUSTER_ADDRESS=${address}`);
    },
    async assertNothingLeft() {
      await eventually(() => processesWith(needles).length === 0, { what: "the program's cluster processes and jobs to end", timeoutMs: 30_000, intervalMs: 200 });
      await eventually(() => readdirSync(tmp).every((entry) => !entry.startsWith("fluster-local-")), {
        what: "the cluster's temporary directory to be removed",
        timeoutMs: 10_000,
        intervalMs: 200,
      });
    },
  };
}

describe("a program on currentCluster() without a cluster address", { timeout: 240_000 }, () => {
  test("exits by itself once its job, task and actor are done, leaving no process and no temporary directory", async (t) => {
    const box = sandbox(t);
    const result = await runNode(["--import", "tsx", CURRENT, "exit"], { env: box.env, timeoutMs: 120_000, timeoutSignal: "SIGKILL" });
    assert.equal(result.code, 0, `the program did not exit by itself (code ${result.code}):\n${result.stdout}\n${result.stderr.slice(-3000)}`);
    assert.match(result.stdout, /job: succeeded\ntask: 9\nactor: 15\ndone/);
    await box.assertNothingLeft();
  });

  for (const signal of ["SIGTERM", "SIGKILL"] as const) {
    test(`${signal}ed while a job runs, it ends as ${signal} would end it and its cluster goes with it`, async (t) => {
      const box = sandbox(t);
      const child = spawn(process.execPath, ["--import", "tsx", CURRENT, "hold"], { cwd: REPO_ROOT, env: box.env, stdio: ["ignore", "pipe", "inherit"] });
      t.after(() => child.kill("SIGKILL"));
      const [, address] = await waitForLine(child, /^holding (\S+)/);
      box.watchAddress(address!);
      assert.ok(processesWith([`FLUSTER_CLUSTER_ADDRESS=${address}`]).length > 0, "the job runs");
      const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once("exit", (_code, sig) => resolve(sig)));
      child.kill(signal);
      assert.equal(await exited, signal, "the program's own signal semantics are kept");
      await box.assertNothingLeft();
    });
  }
});

describe("a program with an explicit LocalCluster", { timeout: 120_000 }, () => {
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    test(`stopped by ${signal} before shutdown(), it shuts the cluster down, then ends as ${signal} would end it`, async (t) => {
      const box = sandbox(t);
      const child = spawn(process.execPath, ["--import", "tsx", EXPLICIT], { cwd: REPO_ROOT, env: box.env, stdio: ["ignore", "pipe", "inherit"] });
      t.after(() => child.kill("SIGKILL"));
      const [, address] = await waitForLine(child, /^holding (\S+)/);
      box.watchAddress(address!);
      const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once("exit", (_code, sig) => resolve(sig)));
      child.kill(signal);
      assert.equal(await exited, signal);
      await box.assertNothingLeft();
    });
  }
});
