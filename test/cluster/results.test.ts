// cluster.results: a function job's return values per task, read back from
// real worker processes of a LocalCluster, and the errors that say why a job
// has none.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Entrypoint } from "../../src/core/entrypoint.js";
import { FlusterError } from "../../src/core/errors.js";
import { JobFailedError } from "../../src/cluster/client/cluster.js";
import { complex, complexValue, failOn, indexed, nothing, sleepy } from "../fixtures/results/tasks.js";
import { useLocalCluster } from "../helpers/local-cluster.js";

const small = { cpu: 0.1, memory: "64m" } as const;

describe("cluster.results", { timeout: 180_000 }, () => {
  const local = useLocalCluster({ workers: 2 });

  test("a 4-replica function job gives 4 values in task order, not completion order", async () => {
    const { cluster } = local;
    const jobId = await cluster.launch({ name: "results-indexed", resources: { ...small, replicas: 4 }, entrypoint: Entrypoint.fromFunction(indexed, 10) });
    // Not awaited first: results waits for the job itself.
    const values = await cluster.results<{ index: number; value: number }>(jobId);
    assert.deepEqual(values, [0, 1, 2, 3].map((index) => ({ index, value: 10 + index * index })));
    const info = await cluster.poll(jobId);
    const finished = info.tasks.map((t) => t.finishedAt?.getTime() ?? 0);
    assert.ok((finished[3] ?? 0) <= (finished[0] ?? 0), "task 3 finished before task 0, so the order is the task order");
  });

  test("complex values round-trip; a function that returns nothing gives undefined", async () => {
    const { cluster } = local;
    const [complexId, nothingId] = await Promise.all([
      cluster.launch({ name: "results-complex", resources: { ...small, replicas: 2 }, entrypoint: Entrypoint.fromFunction(complex) }),
      cluster.launch({ name: "results-nothing", resources: small, entrypoint: Entrypoint.fromFunction(nothing) }),
    ]);
    const values = await cluster.results(complexId);
    assert.equal(values.length, 2);
    values.forEach((value, index) => {
      assert.deepEqual(value, complexValue(index));
      const v = value as { when: unknown; bytes: unknown; byName: unknown };
      assert.ok(v.when instanceof Date && v.bytes instanceof Uint8Array && v.byName instanceof Map);
    });
    assert.deepEqual(await cluster.results(nothingId), [undefined]);
  });

  test("a failed job gives a JobFailedError naming the failed task and its error", async () => {
    const { cluster } = local;
    const jobId = await cluster.launch({ name: "results-fail", resources: { ...small, replicas: 3 }, entrypoint: Entrypoint.fromFunction(failOn, 2) });
    await assert.rejects(cluster.results(jobId), (err: unknown) => {
      assert.ok(err instanceof JobFailedError, String(err));
      assert.equal(err.message, `job ${jobId} failed: task 2 failed: RangeError: task 2 is out of range`);
      assert.equal(err.job.status, "failed");
      return true;
    });
  });

  test("a command job is refused at once, saying to read its logs", async () => {
    const { cluster } = local;
    const jobId = await cluster.launch({ name: "results-command", resources: small, entrypoint: Entrypoint.fromCommand(["sleep", "60"]) });
    try {
      const started = Date.now();
      await assert.rejects(cluster.results(jobId), (err: unknown) => {
        assert.ok(err instanceof FlusterError);
        assert.equal(err.code, "failed_precondition");
        assert.match(err.message, new RegExp(`^job ${jobId} is a command job: it has no return values; read its logs`));
        return true;
      });
      assert.ok(Date.now() - started < 5_000, "refused without waiting for the job");
    } finally {
      await cluster.terminate(jobId);
    }
  });

  test("an unfinished job: a timeout gives deadline_exceeded; once killed, the error says so", async () => {
    const { cluster } = local;
    const jobId = await cluster.launch({ name: "results-sleepy", resources: small, entrypoint: Entrypoint.fromFunction(sleepy, 60) });
    await assert.rejects(cluster.results(jobId, { timeoutSeconds: 0.5 }), (err: unknown) => err instanceof FlusterError && err.code === "deadline_exceeded" && /did not finish within 0.5s/.test(err.message));
    await assert.rejects(cluster.results(jobId, { timeoutSeconds: -1 }), /timeoutSeconds/);
    const waiting = cluster.results(jobId);
    await cluster.terminate(jobId, "enough");
    await assert.rejects(waiting, (err: unknown) => {
      assert.ok(err instanceof JobFailedError, String(err));
      assert.match(err.message, new RegExp(`^job ${jobId} killed: task 0 killed`));
      return true;
    });
  });

  test("an unknown job is not_found", async () => {
    await assert.rejects(local.cluster.results("no-such-job"), (err: unknown) => err instanceof FlusterError && err.code === "not_found");
  });
});
