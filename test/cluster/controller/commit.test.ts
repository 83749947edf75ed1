// Commit before visible, in milliseconds: while the state store refuses
// writes (as a full disk does), no change shows in memory — not a launch,
// an attempt's end, a termination or an endpoint — and nothing reaches a
// worker; reads go on, and once writes work again the same events apply.
// And an attempt whose RunTask a crashed controller never saw answered is
// sent again after the restart at no cost. (test/cluster/full-disk.test.ts
// and controller-crash.test.ts show the same with real processes and disks.)
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import type Database from "better-sqlite3";
import type { Controller } from "../../../src/cluster/controller/controller.js";
import { FlusterError } from "../../../src/core/errors.js";
import { validateJobRequest } from "../../../src/core/job.js";
import { Entrypoint } from "../../../src/core/entrypoint.js";
import { jobSpecToProto } from "../../../src/rpc/convert.js";
import { Harness } from "./harness.js";

let harness: Harness;
afterEach(() => harness?.close());

function setup(options: { durable?: boolean } = {}): Harness {
  harness = new Harness(options).start();
  return harness;
}

/** Makes the controller's store refuse (or accept again) every write: SQLite answers "attempt to write a readonly database". */
function refuseWrites(controller: Controller, refuse: boolean): void {
  const db = Reflect.get(Reflect.get(controller, "store") as object, "db") as Database.Database;
  db.pragma(`query_only = ${refuse ? 1 : 0}`);
}

const unavailable = (err: unknown) => err instanceof FlusterError && err.code === "unavailable" && /cannot write its state database/.test(err.message);

describe("controller: commit before visible", () => {
  test("while writes fail, no change is seen in memory or sent to a worker; once they work, the same events apply", async () => {
    const h = setup();
    const w = h.addWorker("w1");
    const jobId = await h.launch({ name: "long" });
    const attemptId = w.lastStarted;
    h.controller.registerEndpoint({ name: "svc", address: "http://a:1", namespace: "default", jobId });
    const revision = h.controller.getJob(jobId).revision;
    refuseWrites(h.controller, true);

    // A launch is refused and leaves no job.
    const spec = jobSpecToProto(validateJobRequest({ name: "refused", resources: { cpu: 1, memory: "1g" }, entrypoint: Entrypoint.fromCommand(["true"]) }));
    await assert.rejects(h.controller.launchJob(spec, { requestId: "r1" }), unavailable);
    assert.deepEqual(h.controller.listJobs().map((j) => j.jobId), [jobId], "the refused job is not listed");

    // The attempt's end cannot be stored: the job still runs, its endpoint stays.
    w.finish(attemptId, "succeeded", { exitCode: 0 });
    await h.reconcile();
    const job = h.controller.getJob(jobId);
    assert.equal(job.state, "running");
    assert.equal(job.tasks[0]?.attempts[0]?.state, "running");
    assert.equal(job.revision, revision, "watchers saw no change");
    assert.equal(h.controller.endpoints.lookup("svc", "default").length, 1);
    assert.ok(h.logged.some((line) => /cannot write its state database/.test(line)), `the failure is logged: ${h.logged.join(" | ")}`);

    // A termination is refused, and nothing is killed.
    assert.throws(() => h.controller.terminateJob(jobId), unavailable);
    assert.equal(h.controller.getJob(jobId).state, "running");
    assert.deepEqual(w.killed, []);
    assert.throws(() => h.controller.registerEndpoint({ name: "other", address: "http://b:1", namespace: "default" }), unavailable);
    assert.deepEqual(h.controller.endpoints.lookup("other", "default"), []);

    // Writes work again: the next round applies the end, and the request id launches for real.
    refuseWrites(h.controller, false);
    await h.reconcile();
    assert.equal(h.controller.getJob(jobId).state, "succeeded");
    assert.deepEqual(h.controller.endpoints.lookup("svc", "default"), [], "the finished job's endpoint went");
    const launched = await h.controller.launchJob(spec, { requestId: "r1" });
    assert.equal((await h.controller.launchJob(spec, { requestId: "r1" })).jobId, launched.jobId);
    assert.equal(h.controller.listJobs().length, 2);
  });

  test("retries of a launch whose commit is under way get the same job, only once it is stored", async () => {
    const h = setup();
    const spec = jobSpecToProto(validateJobRequest({ name: "same", resources: { cpu: 1, memory: "1g" }, entrypoint: Entrypoint.fromCommand(["true"]) }));
    const first = h.controller.launchJob(spec, { requestId: "r2" });
    assert.deepEqual(h.controller.listJobs(), [], "not listed before its commit");
    const second = h.controller.launchJob(spec, { requestId: "r2" });
    const [a, b] = await Promise.all([first, second]);
    assert.equal(a.jobId, b.jobId);
    assert.equal(h.controller.listJobs().length, 1);
  });
});

describe("controller: attempts never delivered", () => {
  test("after a restart, an attempt whose RunTask was never answered is sent again at no cost", async () => {
    const h = setup({ durable: true });
    const w = h.addWorker("w1");
    const jobId = await h.launch({ maxRetriesPreemption: 0 });
    const first = w.lastStarted;
    // The controller died before the worker's answer to RunTask came back, and the worker never started it.
    w.forget(first);
    await h.restart((db) => {
      db.prepare("UPDATE attempts SET delivered = 0, state = 'assigned', started_at = NULL").run();
      db.prepare("UPDATE tasks SET state = 'assigned', started_at = NULL").run();
    });
    await h.reconcile();
    const task = h.controller.getJob(jobId).tasks[0];
    assert.equal(task?.attempts.length, 2, "a new attempt was placed");
    assert.equal(task?.attempts[0]?.state, "worker_failed");
    assert.match(task?.attempts[0]?.errorMessage ?? "", /never received the attempt/);
    assert.equal(task?.preemptionCount, 0, "no budget spent");
    assert.equal(task?.state, "running");
    assert.equal(w.lastStarted, task?.attempts[1]?.attemptId, "the new attempt was sent");
  });

  test("an attempt its worker reported is delivered: missing after a restart, it is a real loss", async () => {
    const h = setup({ durable: true });
    const w = h.addWorker("w1");
    const jobId = await h.launch({ maxRetriesPreemption: 0 });
    assert.equal(h.controller.getJob(jobId).tasks[0]?.attempts[0]?.delivered, true, "RunTask's answer marks it delivered");
    w.forget(w.lastStarted);
    await h.restart();
    await h.reconcile();
    const job = h.controller.getJob(jobId);
    assert.equal(job.state, "failed");
    assert.match(job.errorMessage ?? "", /lost the attempt/);
  });
});
