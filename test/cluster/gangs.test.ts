// Gangs on a real LocalCluster: worker daemons as child processes, tasks as
// real processes. One task of a coscheduled job fails (or loses its worker)
// and the whole gang is stopped and placed again together; out of retries,
// the job fails as a whole. A job that is not a gang keeps retrying the
// failed task alone.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Entrypoint } from "../../src/core/entrypoint.js";
import type { JobRequest } from "../../src/core/job.js";
import type { AttemptRecord, JobRecord, TaskRecord } from "../../src/cluster/controller/model.js";
import { eventually, isGone } from "../helpers/index.js";
import { useLocalCluster } from "../helpers/local-cluster.js";

/**
 * Every attempt writes its pid to `started-<attempt id>`, then waits for
 * `release` and exits 0. Task `failTask`, on its first attempt only (a
 * marker), exits 3 once three attempts have started, so its siblings are
 * surely running when it fails.
 */
const TASK = `
const fs = require("fs"), path = require("path");
const [dir, failTask] = process.argv.slice(1);
const index = process.env.FLUSTER_TASK_INDEX;
fs.writeFileSync(path.join(dir, "started-" + process.env.FLUSTER_ATTEMPT_ID.replace(/[^A-Za-z0-9]/g, "_")), String(process.pid));
const marker = path.join(dir, "failed-once");
setInterval(() => {
  const started = fs.readdirSync(dir).filter((f) => f.startsWith("started-")).length;
  if (index === failTask && !fs.existsSync(marker) && started >= 3) {
    fs.writeFileSync(marker, "x");
    console.error("task " + index + " gives up");
    process.exit(3);
  }
  if (fs.existsSync(path.join(dir, "release"))) process.exit(0);
}, 100);
`;

/** 0.6 of a worker's 1 cpu: one task per worker, as the hosts of a multi-host job. */
function job(name: string, dir: string, failTask: string, extra: Partial<JobRequest> = {}): JobRequest {
  return {
    name,
    resources: { cpu: 0.6, memory: "64m", replicas: 3 },
    entrypoint: Entrypoint.fromCommand(["node", "-e", TASK, dir, failTask]),
    ...extra,
  };
}

/** The pid an attempt's process wrote when it started. */
function pidOf(dir: string, attemptId: string): number {
  return Number(readFileSync(join(dir, `started-${attemptId.replace(/[^A-Za-z0-9]/g, "_")}`), "utf8"));
}

/**
 * The attempts of a task that ran, leaving out those a worker turned down
 * before starting them (they cost nothing): a restarted task may be placed
 * on a worker that has not yet freed the room of the sibling it stopped.
 */
function ran(task: TaskRecord): AttemptRecord[] {
  return task.attempts.filter((a) => !/refused the attempt/.test(a.errorMessage ?? ""));
}

function startedFile(dir: string, attemptId: string): string {
  return join(dir, `started-${attemptId.replace(/[^A-Za-z0-9]/g, "_")}`);
}

/** The job's tasks and attempts, for a failure message. */
function describeJob(job: JobRecord): string {
  return JSON.stringify({
    state: job.state,
    pendingReason: job.pendingReason,
    errorMessage: job.errorMessage,
    tasks: job.tasks.map((t) => ({ state: t.state, failures: t.failureCount, preemptions: t.preemptionCount, error: t.errorMessage, attempts: t.attempts.map((a) => [a.workerId, a.state, a.errorMessage]) })),
  });
}

describe("gangs", { timeout: 180_000 }, () => {
  // Four workers: a gang of three still fits after one is SIGKILLed (the last test).
  const local = useLocalCluster({ workers: 4, workerCpu: 1, workerLostGraceSeconds: 2, reconcileIntervalSeconds: 0.3, killGraceSeconds: 1 });
  const record = (jobId: string): JobRecord => local.cluster.server.controller.getJob(jobId);
  const launched: string[] = [];
  async function launch(request: JobRequest): Promise<string> {
    const jobId = await local.cluster.launch(request);
    launched.push(jobId);
    return jobId;
  }
  /** A failed check leaves no task waiting for a release that never comes, holding room the next test needs. */
  async function cleanUp(dir: string): Promise<void> {
    for (const jobId of launched.splice(0)) await local.cluster.terminate(jobId).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }

  /** Waits until every task of the job runs its `n`th attempt (0-based), then lets them finish. */
  async function releaseRound(jobId: string, dir: string, n: number): Promise<void> {
    await eventually(
      () => record(jobId).tasks.every((t) => ran(t).length === n + 1 && t.state === "running" && existsSync(startedFile(dir, ran(t)[n]!.attemptId))),
      { what: `every task to run attempt ${n}`, timeoutMs: 60_000 },
    ).catch((err: unknown) => {
      throw new Error(`${String(err)}; the job: ${describeJob(record(jobId))}`);
    });
    writeFileSync(join(dir, "release"), "");
  }

  test("one task fails: the others are stopped and the gang restarts together, charged one failure each", async () => {
    const dir = mkdtempSync(join(tmpdir(), "fluster-gang-"));
    try {
      const jobId = await launch(job("gang-retry", dir, "1", { coscheduled: true, maxRetriesFailure: 1 }));
      await releaseRound(jobId, dir, 1);
      const info = await local.cluster.wait(jobId, { timeoutSeconds: 60 });
      assert.equal(info.status, "succeeded", info.errorMessage);
      assert.deepEqual(info.tasks.map((t) => [t.failureCount, t.preemptionCount]), [[1, 0], [1, 0], [1, 0]], "one gang restart, charged to every task's failure budget");

      const tasks = record(jobId).tasks;
      const [cause, ...rest] = [tasks[1]!, tasks[0]!, tasks[2]!];
      assert.equal(ran(cause)[0]?.state, "failed");
      assert.equal(ran(cause)[0]?.exitCode, 3);
      for (const task of rest) {
        const first = ran(task)[0]!;
        assert.equal(first.state, "killed", `task ${task.taskIndex}'s first attempt was stopped`);
        assert.match(first.errorMessage ?? "", /^gang restart: task 1 failed: exited with code 3/);
        // The KillTask went out: the healthy first processes are really gone.
        const pid = pidOf(dir, first.attemptId);
        await eventually(() => isGone(pid), { what: `task ${task.taskIndex}'s first process (pid ${pid}) to die` });
      }
      assert.deepEqual(tasks.map((t) => ran(t).map((a) => a.state).slice(1)), [["succeeded"], ["succeeded"], ["succeeded"]], "each task ran twice");
    } finally {
      await cleanUp(dir);
    }
  });

  test("out of retries, the gang fails as a whole and the job's error names the task", async () => {
    const dir = mkdtempSync(join(tmpdir(), "fluster-gang-"));
    try {
      const jobId = await launch(job("gang-fail", dir, "2", { coscheduled: true, maxRetriesFailure: 0 }));
      const info = await local.cluster.wait(jobId, { timeoutSeconds: 60 });
      assert.equal(info.status, "failed");
      assert.match(info.errorMessage ?? "", /^task 2: exited with code 3/);
      assert.equal(info.exitCode, 3);
      assert.deepEqual(info.tasks.map((t) => t.state), ["killed", "killed", "failed"]);
      for (const task of record(jobId).tasks) {
        assert.equal(ran(task).length, 1, `task ${task.taskIndex} was not restarted`);
        if (task.taskIndex === 2) continue;
        assert.match(task.errorMessage ?? "", /^job failed: task 2: exited with code 3/);
        assert.equal(ran(task)[0]?.state, "killed");
        const pid = pidOf(dir, ran(task)[0]!.attemptId);
        await eventually(() => isGone(pid), { what: `task ${task.taskIndex}'s process (pid ${pid}) to die` });
      }
    } finally {
      await cleanUp(dir);
    }
  });

  test("a job that is not a gang retries the failed task alone while the others keep running", async () => {
    const dir = mkdtempSync(join(tmpdir(), "fluster-gang-"));
    try {
      const jobId = await launch(job("no-gang", dir, "1", { maxRetriesFailure: 1 }));
      await eventually(() => ran(record(jobId).tasks[1]!).length === 2 && record(jobId).tasks[1]!.state === "running", {
        what: "task 1 to run its second attempt",
        timeoutMs: 60_000,
      });
      writeFileSync(join(dir, "release"), "");
      const info = await local.cluster.wait(jobId, { timeoutSeconds: 60 });
      assert.equal(info.status, "succeeded", info.errorMessage);
      assert.deepEqual(info.tasks.map((t) => t.failureCount), [0, 1, 0]);
      assert.deepEqual(record(jobId).tasks.map((t) => ran(t).map((a) => a.state)), [["succeeded"], ["failed", "succeeded"], ["succeeded"]]);
    } finally {
      await cleanUp(dir);
    }
  });

  // Last: it leaves the cluster a worker short.
  test("a lost worker restarts the gang, charged to every task's preemption budget", async () => {
    const dir = mkdtempSync(join(tmpdir(), "fluster-gang-"));
    try {
      // Nothing fails on its own ("none" is no task index).
      const jobId = await launch(job("gang-lost", dir, "none", { coscheduled: true, maxRetriesFailure: 0, maxRetriesPreemption: 1 }));
      await eventually(() => record(jobId).tasks.every((t) => t.state === "running" && existsSync(startedFile(dir, ran(t)[0]!.attemptId))), {
        what: "the gang to run",
        timeoutMs: 60_000,
      });
      const lostWorker = record(jobId).tasks[0]!.workerId!;
      await local.cluster.killWorker(lostWorker, "SIGKILL");
      await releaseRound(jobId, dir, 1);
      const info = await local.cluster.wait(jobId, { timeoutSeconds: 60 });
      assert.equal(info.status, "succeeded", info.errorMessage);
      assert.deepEqual(info.tasks.map((t) => [t.failureCount, t.preemptionCount]), [[0, 1], [0, 1], [0, 1]], "one gang restart, charged to every task's preemption budget");
      const tasks = record(jobId).tasks;
      assert.equal(ran(tasks[0]!)[0]?.state, "worker_failed");
      for (const task of tasks.slice(1)) {
        const first = ran(task)[0]!;
        assert.equal(first.state, "killed");
        assert.match(first.errorMessage ?? "", new RegExp(`^gang restart: task 0 lost its worker: .*${lostWorker}`));
        const pid = pidOf(dir, first.attemptId);
        await eventually(() => isGone(pid), { what: `task ${task.taskIndex}'s first process (pid ${pid}) to die` });
      }
      for (const task of tasks) assert.notEqual(task.attempts.at(-1)?.workerId, lostWorker);
    } finally {
      await cleanUp(dir);
    }
  });
});
