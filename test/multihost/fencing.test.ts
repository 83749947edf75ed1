// SPEC §7 and STYLE's node leases: a worker cut off from the controller fences
// its attempts, so a task never runs twice at once, and a cut-off worker is
// lost after its grace period. Today's Fluster does neither (see the report).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Entrypoint } from "../../src/core/entrypoint.js";
import { eventually } from "../helpers/index.js";
import { useBed } from "./bed.js";
import { MARKING_ATTEMPT, RELEASE_FILE, readMarks, type AttemptMarks } from "./marks.js";

const GRACE_SECONDS = 2;
/** Marks come every 100 ms; a kill takes a moment. */
const SLACK_MS = 500;

test("a partitioned host's attempt is fenced before the task runs again elsewhere: never two at once", { timeout: 80_000 }, async (t) => {
  const bed = await useBed(t, { hosts: 3 });
  await bed.startController({ workerLostGraceSeconds: GRACE_SECONDS, reconcileIntervalSeconds: 0.5 });
  await bed.startWorkers();
  const client = bed.client();
  const results = join(bed.dir, "results");
  mkdirSync(results);
  const jobId = await client.launch({
    name: "fenced",
    resources: { cpu: 0.1, memory: "32m" },
    entrypoint: Entrypoint.fromCommand([process.execPath, "-e", MARKING_ATTEMPT]),
    environment: { envVars: { RESULTS: results } },
  });
  await eventually(() => readMarks(results).some((m) => m.lastAlive > 0), { what: "the first attempt to run", timeoutMs: 20_000 });
  const hostA = bed.host((readMarks(results)[0] as AttemptMarks).host);
  const cutAt = Date.now();
  bed.partition(hostA);
  await eventually(() => readMarks(results).length >= 2, { what: "the task to run again on another host", timeoutMs: 20_000 });
  const [stale, retry] = readMarks(results) as [AttemptMarks, AttemptMarks];
  t.diagnostic(`retry started ${retry.start - cutAt} ms after the cut; the stale attempt was last alive ${stale.lastAlive - cutAt} ms after it`);
  const problems: string[] = [];
  if (stale.lastAlive > retry.start + SLACK_MS) problems.push(`two attempts ran at once: the stale attempt on ${hostA.name} was still running ${stale.lastAlive - retry.start} ms after the retry started`);
  // Grace + 4 s: a tick, a scheduling pass and a process start on a loaded 2-core machine (before the fix: ~10.6 s).
  if (retry.start - cutAt > GRACE_SECONDS * 1000 + 4_000) problems.push(`the cut-off worker was lost ${retry.start - cutAt} ms after the cut, with a grace of ${GRACE_SECONDS} s`);
  assert.deepEqual(problems, []);
  bed.heal(hostA);
  writeFileSync(join(results, RELEASE_FILE), "");
  assert.equal((await client.wait(jobId, { timeoutSeconds: 20 })).status, "succeeded");
});
