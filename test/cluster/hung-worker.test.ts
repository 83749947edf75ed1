// A hung worker (its daemon SIGSTOPped for 30 s while it runs tasks) never
// makes a task run twice at once, and costs no job: its lease supervisor
// kills the attempts when the lease runs out (the daemon cannot), before the
// controller's grace ends and it retries them. With spare capacity the tasks
// move to another worker while the daemon is stopped; without, they wait for
// the same worker, which takes them again once it is back. Tasks log their
// attempt id with timestamps; the intervals of one task's attempts must
// never overlap. The default grace (10 s) is used.
import { describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { LocalCluster } from "../../src/cluster/client/local-cluster.js";
import type { JobInfo } from "../../src/core/job.js";
import { eventually } from "../helpers/index.js";
import { loggingTask, overlapReport, readAttemptIntervals } from "../helpers/attempt-intervals.js";
import { startLocalCluster } from "../helpers/local-cluster.js";

const GRACE_SECONDS = 10;
const STOPPED_MS = 30_000;
const TASK_SECONDS = 20;
const JOBS = 2;

interface Run {
  infos: JobInfo[];
  stopAt: number;
  contAt: number;
  dir: string;
}

/** Two one-task jobs on worker local-0, which is SIGSTOPped for 30 s once both run (after `beforeStop`), then SIGCONTed. */
async function hangWorkerUnderJobs(t: TestContext, cluster: LocalCluster, beforeStop: () => Promise<void>): Promise<Run> {
  const dir = mkdtempSync(join(tmpdir(), "fluster-hung-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const jobIds: string[] = [];
  for (let i = 0; i < JOBS; i++) {
    jobIds.push(await cluster.launch({ name: `hung-${i}`, resources: { cpu: 1, memory: "64m" }, entrypoint: loggingTask(dir, TASK_SECONDS) }));
  }
  await eventually(() => readdirSync(dir).length === JOBS, { what: "every task to start", timeoutMs: 60_000 });
  await beforeStop();
  const daemon = cluster.workers.find((w) => w.workerId === "local-0");
  const pid = daemon?.process.pid;
  assert.ok(pid, "worker local-0 runs");
  for (const id of jobIds) assert.equal((await cluster.poll(id)).tasks[0]?.workerId, "local-0");
  const stopAt = Date.now();
  process.kill(pid, "SIGSTOP");
  let contAt: number;
  try {
    await sleep(STOPPED_MS);
  } finally {
    contAt = Date.now();
    process.kill(pid, "SIGCONT");
  }
  const infos = (await cluster.wait(jobIds, { timeoutSeconds: 120, raiseOnFailure: false })) as JobInfo[];
  return { infos, stopAt, contAt, dir };
}

/** The checks both cases share; returns the measurements to report. */
function checkNoOverlap(run: Run): { fencedAfterStopMs: number[]; rescheduleGapsMs: number[] } {
  for (const info of run.infos) assert.equal(info.status, "succeeded", `${info.jobId}: ${info.status} ${info.errorMessage ?? ""}`);
  const tasks = readAttemptIntervals(run.dir);
  const report = overlapReport(tasks);
  assert.deepEqual(report.overlaps, [], "no task had two attempts running at once");
  assert.equal(report.maxOverlapMs, 0);
  const fencedAfterStopMs: number[] = [];
  for (const [task, attempts] of tasks) {
    assert.ok(attempts.length >= 2, `${task}: the stopped worker's attempt was retried`);
    const first = attempts[0]!;
    assert.equal(first.completed, false, `${task}: the first attempt was killed`);
    // Killed while the daemon was stopped, by its lease supervisor, before the controller's grace ended.
    const fencedAfter = first.lastMs - run.stopAt;
    assert.ok(first.lastMs < run.contAt, `${task}: killed while the daemon was stopped`);
    assert.ok(fencedAfter < GRACE_SECONDS * 1000, `${task}: fenced ${fencedAfter} ms after the stop, within the grace`);
    fencedAfterStopMs.push(Math.round(fencedAfter));
    assert.equal(attempts.at(-1)?.completed, true, `${task}: the last attempt ran to its end`);
  }
  return { fencedAfterStopMs, rescheduleGapsMs: report.gapsMs.map(Math.round) };
}

describe("a worker daemon SIGSTOPped for 30 s while it runs tasks", { concurrency: true }, () => {
  test("with spare capacity: its tasks move to another worker once it is lost, never running twice at once", { timeout: 240_000 }, async (t) => {
    const cluster = await startLocalCluster(t, { workers: 1, workerCpu: 2, workerMemory: "1g", workerLostGraceSeconds: GRACE_SECONDS, reconcileIntervalSeconds: 0.5 });
    const run = await hangWorkerUnderJobs(t, cluster, async () => {
      await cluster.addWorker();
    });
    const measured = checkNoOverlap(run);
    for (const info of run.infos) {
      assert.equal(info.tasks[0]?.workerId, "local-1", "finished on the spare worker");
      assert.equal(info.tasks[0]?.preemptionCount, 1, "one loss, one retry");
      assert.equal(info.tasks[0]?.failureCount, 0);
    }
    // Retried while local-0 was still stopped.
    for (const attempts of readAttemptIntervals(run.dir).values()) assert.ok(attempts[1]!.startMs < run.contAt, "retried before the stopped worker came back");
    t.diagnostic(`spare capacity: fenced ${measured.fencedAfterStopMs.join(", ")} ms after SIGSTOP; next attempt ${measured.rescheduleGapsMs.join(", ")} ms after the fenced one's last sign of life; overlap 0 ms`);
  });

  test("without spare capacity: its tasks wait for it and run again once it is back; refusals spend no retry", { timeout: 240_000 }, async (t) => {
    const cluster = await startLocalCluster(t, { workers: 1, workerCpu: 2, workerMemory: "1g", workerLostGraceSeconds: GRACE_SECONDS, reconcileIntervalSeconds: 0.5 });
    const run = await hangWorkerUnderJobs(t, cluster, async () => undefined);
    const measured = checkNoOverlap(run);
    for (const info of run.infos) {
      assert.equal(info.tasks[0]?.workerId, "local-0");
      const attempts = cluster.server.controller.getJob(info.jobId).tasks[0]?.attempts ?? [];
      const story = attempts.map((a) => `${a.attemptId} ${a.state} ${a.errorMessage ?? ""}`).join("\n");
      assert.equal(info.tasks[0]?.preemptionCount, 1, `one loss, one retry: no budget burnt on refusals\n${story}`);
      assert.equal(info.tasks[0]?.failureCount, 0);
    }
    for (const attempts of readAttemptIntervals(run.dir).values()) assert.ok(attempts[1]!.startMs >= run.contAt, "run again only after the worker came back");
    assert.ok(existsSync(run.dir));
    t.diagnostic(`no spare capacity: fenced ${measured.fencedAfterStopMs.join(", ")} ms after SIGSTOP; next attempt ${measured.rescheduleGapsMs.join(", ")} ms after the fenced one's last sign of life; overlap 0 ms`);
  });
});
