// A host cut off the network mid-task and healed: the cut-off worker fences
// its attempt (its lease ran out), the controller declares it lost after the
// grace period and runs the task on another host; once healed, the host's
// worker registers again at once; the job's result is reported once, by the
// new attempt.
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
 * How long after the cut the retry may take to start: the worker is lost at
 * the first tick (0.5 s) after the grace period since the controller last
 * heard from it (at the latest, the cut), and the retry is placed and
 * started at once; the rest is slack for a loaded 2-core machine.
 */
const RETRY_WITHIN_MS = GRACE_SECONDS * 1000 + 4_000;
/**
 * How long after the cut the stale attempt may still run: the cut-off
 * worker fences (SIGTERM) once its lease has gone 1 s without renewal
 * (grace − 1 s; checked every 250 ms; renewed every 250 ms before the cut);
 * the rest is slack.
 */
const STALE_KILLED_WITHIN_MS = 4_000;
/** How long after the heal the worker may take to be healthy again: its next heartbeat (every 250 ms) hears it was lost, and it registers at once. */
const HEALTHY_AGAIN_WITHIN_MS = 5_000;

test("a host partitioned mid-task: its worker fences the attempt, the task runs again elsewhere; healed, the worker is back at once; one result", { timeout: 80_000 }, async (t) => {
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

  const stale = readMarks(results)[0] as AttemptMarks;
  assert.ok(stale.term !== undefined && stale.term - cutAt <= STALE_KILLED_WITHIN_MS, `the cut-off worker killed its stale attempt (term at +${(stale.term ?? NaN) - cutAt} ms)`);
  assert.ok(stale.term <= second.start + 500, `it was killed before the retry started (${second.start - stale.term} ms before)`);
  assert.equal(stale.end, undefined, "the stale attempt never finished");

  const healedAt = Date.now();
  bed.heal(hostA);
  await eventually(async () => (await client.listWorkers()).some((w) => w.workerId === workerA.workerId && w.health === "healthy"), {
    what: "the healed worker to be healthy again",
    timeoutMs: HEALTHY_AGAIN_WITHIN_MS,
  });
  t.diagnostic(
    `cut at +0 ms; stale attempt killed at +${stale.term - cutAt} ms (last alive +${stale.lastAlive - cutAt} ms); ` +
      `retry started at +${second.start - cutAt} ms; healed at +${healedAt - cutAt} ms; healthy again at +${Date.now() - cutAt} ms`,
  );

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
