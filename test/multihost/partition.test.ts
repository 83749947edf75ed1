// A host cut off the network mid-task and healed: the controller declares its
// worker lost after the grace period and runs the task on another host; once
// healed, the host's worker registers again and its stale attempt is killed by
// reconcile; the job's result is reported once, by the new attempt.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Entrypoint } from "../../src/core/entrypoint.js";
import { eventually } from "../helpers/index.js";
import { useBed } from "./bed.js";
import { MARKING_ATTEMPT, RELEASE_FILE, readMarks, type AttemptMarks } from "./marks.js";

const GRACE_SECONDS = 2;
/**
 * How long after the cut the retry may take to start: a reconcile call to a
 * silent host fails only when its deadline (5 s) runs out, and the worker is
 * lost once such failures have lasted the grace period.
 */
const RETRY_WITHIN_MS = 20_000;
/**
 * How long after the cut the stale attempt may still run: the cut-off worker
 * registers again once it has had no reconcile for 15 s (checked every 5 s;
 * the registration call may wait out its 10 s deadline on a connection the
 * partition stalled), then the next reconcile kills the attempt.
 */
const STALE_KILLED_WITHIN_MS = 35_000;

test("a host partitioned mid-task: the task runs again elsewhere; healed, its stale attempt is killed; one result", { timeout: 80_000 }, async (t) => {
  const bed = await useBed(t, { hosts: 3 });
  await bed.startController({ workerLostGraceSeconds: GRACE_SECONDS, reconcileIntervalSeconds: 0.5 });
  const workers = await bed.startWorkers();
  const client = bed.client();
  const results = join(bed.dir, "results");
  mkdirSync(results);

  const jobId = await client.launch({
    name: "survives-a-partition",
    resources: { cpu: 0.1, memory: "32m" },
    entrypoint: Entrypoint.fromCommand([process.execPath, "-e", MARKING_ATTEMPT]),
    environment: { envVars: { RESULTS: results } },
  });
  await eventually(() => readMarks(results).some((m) => m.lastAlive > 0), { what: "the first attempt to run", timeoutMs: 20_000 });
  const [first] = readMarks(results);
  assert.ok(first);
  const hostA = bed.host(first.host);
  const workerA = workers.find((w) => w.host === hostA);
  assert.ok(workerA, `the first attempt runs on ${first.host}, a host of the bed`);

  const cutAt = Date.now();
  bed.partition(hostA);
  await eventually(() => readMarks(results).length >= 2, { what: "the task to run again on another host", timeoutMs: RETRY_WITHIN_MS });
  const second = readMarks(results)[1] as AttemptMarks;
  assert.notEqual(second.host, hostA.name, "the retry runs on another host");
  assert.ok(second.start >= cutAt + GRACE_SECONDS * 1000, `the retry waited for the grace period (${second.start - cutAt} ms after the cut)`);
  const during = await client.poll(jobId);
  assert.equal(during.tasks[0]?.preemptionCount, 1, "losing the worker cost one preemption retry");
  assert.notEqual(during.tasks[0]?.workerId, workerA.workerId);
  assert.ok(!(await client.listWorkers()).some((w) => w.workerId === workerA.workerId && w.health === "healthy"), "the cut-off worker is not healthy");

  const healedAt = Date.now();
  bed.heal(hostA);
  await eventually(() => readMarks(results)[0]?.term !== undefined, {
    what: "the stale attempt to be killed after the heal",
    timeoutMs: Math.max(1_000, cutAt + STALE_KILLED_WITHIN_MS - Date.now()),
  });
  const stale = readMarks(results)[0] as AttemptMarks;
  t.diagnostic(
    `cut at +0 ms; retry started at +${second.start - cutAt} ms; healed at +${healedAt - cutAt} ms; ` +
      `stale attempt killed at +${(stale.term ?? 0) - cutAt} ms (last alive +${stale.lastAlive - cutAt} ms)`,
  );
  assert.equal(stale.end, undefined, "the stale attempt never finished");
  await eventually(async () => (await client.listWorkers()).some((w) => w.workerId === workerA.workerId && w.health === "healthy"), {
    what: "the healed worker to be healthy again",
    timeoutMs: 10_000,
  });

  writeFileSync(join(results, RELEASE_FILE), "");
  const info = await client.wait(jobId, { timeoutSeconds: 20 });
  assert.equal(info.status, "succeeded", info.errorMessage);
  assert.equal(info.tasks[0]?.preemptionCount, 1);
  assert.equal(info.tasks[0]?.failureCount, 0);
  assert.notEqual(info.tasks[0]?.workerId, workerA.workerId, "the result is the retry's");
  const marks = readMarks(results);
  assert.equal(marks.length, 2, `two attempts in all: ${marks.map((m) => m.file).join(", ")}`);
  assert.equal(marks.filter((m) => m.end !== undefined).length, 1, "one attempt finished");
  assert.ok(existsSync(join(results, RELEASE_FILE)));
  // The stale attempt's end, reported by the healed worker, changes nothing.
  const again = await client.poll(jobId);
  assert.deepEqual([again.status, again.finishedAt, again.tasks[0]?.attemptId], [info.status, info.finishedAt, info.tasks[0]?.attemptId]);
});
