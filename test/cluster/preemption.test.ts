// Preemption on a real LocalCluster: a production job that needs room stops
// the fewest batch attempts, which run again later; equal bands never preempt.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Entrypoint } from "../../src/core/entrypoint.js";
import type { JobRequest, Priority } from "../../src/core/job.js";
import { eventually } from "../helpers/index.js";
import { useLocalCluster } from "../helpers/local-cluster.js";

/**
 * A task that runs until `release` exists the first time, and ends at once
 * when run again (its marker file is there): a preempted task's second run
 * is short, and the test decides when the first runs end.
 */
function holder(dir: string, name: string, cpu: number, priority: Priority): JobRequest {
  const marker = join(dir, `${name}.ran`);
  const release = join(dir, "release");
  const script = `const fs = require("fs");
if (fs.existsSync(${JSON.stringify(marker)})) process.exit(0);
fs.writeFileSync(${JSON.stringify(marker)}, "");
setInterval(() => { if (fs.existsSync(${JSON.stringify(release)})) process.exit(0); }, 100);`;
  return { name, priority, resources: { cpu, memory: "64m" }, entrypoint: Entrypoint.fromCommand(["node", "-e", script]) };
}

describe("preemption", { timeout: 120_000 }, () => {
  // Two workers of 2 cpus each.
  // No worker is lost here: the default grace, so a loaded machine never fences a worker mid-test.
  const local = useLocalCluster({ workers: 2, workerCpu: 2 });

  async function launchRunning(request: JobRequest): Promise<string> {
    const jobId = await local.cluster.launch(request);
    // One at a time, so placement is known: first fit fills the first worker, then the second.
    await eventually(async () => (await local.cluster.poll(jobId)).status === "running", { what: `${request.name} to run` });
    return jobId;
  }

  test("a production job preempts the fewest batch attempts, which run again and finish", async () => {
    const dir = mkdtempSync(join(tmpdir(), "fluster-preempt-"));
    try {
      // One worker holds one 2-cpu batch attempt, the other two 1-cpu ones.
      const big = await launchRunning(holder(dir, "big", 2, "batch"));
      const small1 = await launchRunning(holder(dir, "small1", 1, "batch"));
      const small2 = await launchRunning(holder(dir, "small2", 1, "batch"));
      const prod = await local.cluster.launch({ name: "prod", priority: "production", resources: { cpu: 2, memory: "64m" }, entrypoint: Entrypoint.fromCommand(["node", "-e", "0"]) });
      const done = await local.cluster.wait(prod, { timeoutSeconds: 60 });
      assert.equal(done.status, "succeeded", done.errorMessage);

      // Only the 2-cpu attempt was preempted: one victim, not two.
      const bigInfo = await local.cluster.poll(big);
      assert.equal(bigInfo.tasks[0]?.preemptionCount, 1);
      for (const id of [small1, small2]) {
        const info = await local.cluster.poll(id);
        assert.equal(info.status, "running");
        assert.equal(info.tasks[0]?.preemptionCount, 0);
      }

      writeFileSync(join(dir, "release"), "");
      for (const id of [big, small1, small2]) {
        const info = await local.cluster.wait(id, { timeoutSeconds: 60 });
        assert.equal(info.status, "succeeded", `${id}: ${info.errorMessage ?? ""}`);
      }
      // The preempted task ran a second time (its marker made that run short) and still counts one preemption.
      assert.equal((await local.cluster.poll(big)).tasks[0]?.preemptionCount, 1);
    } finally {
      writeFileSync(join(dir, "release"), "");
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("an interactive job does not preempt interactive work", async () => {
    const dir = mkdtempSync(join(tmpdir(), "fluster-preempt-"));
    try {
      const holders = [await launchRunning(holder(dir, "i1", 2, "interactive")), await launchRunning(holder(dir, "i2", 2, "interactive"))];
      const late = await local.cluster.launch({ name: "late", priority: "interactive", resources: { cpu: 1, memory: "64m" }, entrypoint: Entrypoint.fromCommand(["node", "-e", "0"]) });
      await eventually(async () => /insufficient cpu/.test((await local.cluster.poll(late)).pendingReason ?? ""), { what: "late to wait for cpu" });
      // Several scheduling passes later, it still waits and nothing was preempted.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      assert.equal((await local.cluster.poll(late)).status, "pending");
      for (const id of holders) {
        const info = await local.cluster.poll(id);
        assert.equal(info.status, "running");
        assert.equal(info.tasks[0]?.preemptionCount, 0);
      }
      writeFileSync(join(dir, "release"), "");
      assert.equal((await local.cluster.wait(late, { timeoutSeconds: 60 })).status, "succeeded");
      for (const id of holders) assert.equal((await local.cluster.wait(id, { timeoutSeconds: 60 })).status, "succeeded");
    } finally {
      writeFileSync(join(dir, "release"), "");
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
