// The controller on its own, in milliseconds: an in-memory store, in-memory
// workers and a clock the test moves. Placement and dispatch, both retry
// budgets, worker loss, missing attempts, restart adoption, kills, scheduling
// timeouts and endpoint expiry. (test/cluster/local-cluster.test.ts and
// faults.test.ts cover the same with real processes and sockets.)
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import type { EndpointRecord } from "../../../src/cluster/controller/model.js";
import { jobLogs, type AttemptLogReader } from "../../../src/cluster/controller/service.js";
import { FlusterError } from "../../../src/core/errors.js";
import { GRACE_MS, Harness } from "./harness.js";

let harness: Harness;
afterEach(() => harness?.close());

function setup(options: { durable?: boolean } = {}): Harness {
  harness = new Harness(options).start();
  return harness;
}

describe("controller: placement and outcomes", () => {
  test("a launched job is placed on a worker with room and dispatched at once", async () => {
    const h = setup();
    const w = h.addWorker("w1");
    const jobId = await h.launch();
    assert.equal(w.started.length, 1);
    assert.equal(w.started[0]?.jobId, jobId);
    const job = h.controller.getJob(jobId);
    assert.equal(job.state, "running");
    assert.equal(job.tasks[0]?.workerId, "w1");
    assert.equal(job.tasks[0]?.attempts.length, 1);
  });

  test("a job that fits nowhere waits with a reason and is placed when a worker joins", async () => {
    const h = setup();
    const jobId = await h.launch({ resources: { cpu: 8, memory: "1g" } });
    assert.equal(h.controller.getJob(jobId).state, "pending");
    assert.match(h.controller.getJob(jobId).pendingReason ?? "", /no workers are registered/);
    const w = h.addWorker("big", 16);
    await h.settle();
    assert.equal(w.started.length, 1);
    assert.equal(h.controller.getJob(jobId).pendingReason, undefined);
  });

  test("success reported by a reconcile finishes the job with exit code 0 and keeps the result", async () => {
    const h = setup();
    const w = h.addWorker("w1");
    const jobId = await h.launch();
    w.finish(w.lastStarted, "succeeded", { exitCode: 0, result: new Uint8Array([1, 2, 3]) });
    await h.reconcile();
    const job = h.controller.getJob(jobId);
    assert.equal(job.state, "succeeded");
    assert.equal(job.exitCode, 0);
    assert.deepEqual([...(job.tasks[0]?.attempts[0]?.result ?? [])], [1, 2, 3]);
    assert.ok(job.finishedAt !== undefined);
  });

  test("a task that goes from building straight to success gives its job a start time", async () => {
    const h = setup();
    const w = h.addWorker("w1");
    w.startsAs = "building";
    const jobId = await h.launch();
    await h.settle();
    assert.equal(h.controller.getJob(jobId).state, "building");
    const placedAt = h.controller.getJob(jobId).startedAt;
    assert.ok(placedAt !== undefined, "building is started");
    h.clock.now += 1_000;
    w.finish(w.lastStarted, "succeeded", { exitCode: 0 });
    await h.reconcile();
    const job = h.controller.getJob(jobId);
    assert.equal(job.state, "succeeded");
    assert.equal(job.startedAt, placedAt);
    assert.ok(job.finishedAt !== undefined && job.finishedAt >= placedAt);
  });

  test("the failure budget: retried while failures ≤ maxRetriesFailure, then failed with the exit code", async () => {
    const h = setup();
    const w = h.addWorker("w1");
    const jobId = await h.launch({ maxRetriesFailure: 1 });
    w.finish(w.lastStarted, "failed", { exitCode: 3, errorMessage: "exited with code 3" });
    await h.reconcile();
    assert.equal(w.started.length, 2, "one retry");
    assert.equal(h.controller.getJob(jobId).state, "running");
    w.finish(w.lastStarted, "failed", { exitCode: 4, errorMessage: "exited with code 4" });
    await h.reconcile();
    const job = h.controller.getJob(jobId);
    assert.equal(job.state, "failed");
    assert.equal(job.exitCode, 4);
    assert.equal(job.tasks[0]?.failureCount, 2);
    assert.equal(job.tasks[0]?.preemptionCount, 0);
    assert.match(job.errorMessage ?? "", /^task 0: exited with code 4/);
    assert.equal(w.started.length, 2, "no third attempt");
  });

  test("the preemption budget: attempts lost with their worker are retried, then the task fails saying so", async () => {
    const h = setup();
    const w = h.addWorker("w1");
    const jobId = await h.launch({ maxRetriesPreemption: 1, maxRetriesFailure: 5 });
    w.forget(w.lastStarted);
    await h.reconcile();
    assert.equal(w.started.length, 2);
    assert.equal(h.controller.getJob(jobId).tasks[0]?.preemptionCount, 1);
    w.forget(w.lastStarted);
    await h.reconcile();
    const job = h.controller.getJob(jobId);
    assert.equal(job.state, "failed");
    assert.equal(job.tasks[0]?.failureCount, 0, "lost attempts do not spend the failure budget");
    assert.match(job.errorMessage ?? "", /lost the attempt \(retried 1 times after worker failures\)/);
  });

  test("a worker that refuses RunTask costs no retry: the task waits out the worker's backoff and is placed again", async () => {
    const h = setup();
    const w = h.addWorker("w1");
    w.refuseNext = new FlusterError("no room", "failed_precondition");
    const jobId = await h.launch();
    let task = h.controller.getJob(jobId).tasks[0];
    assert.equal(task?.attempts.length, 1, "not asked again at once");
    assert.equal(task?.attempts[0]?.state, "worker_failed");
    assert.match(task?.attempts[0]?.errorMessage ?? "", /worker w1 refused the attempt: no room/);
    assert.equal(task?.preemptionCount, 0);
    assert.equal(task?.state, "pending");
    h.advance(1_000);
    await h.reconcile();
    task = h.controller.getJob(jobId).tasks[0];
    assert.equal(task?.attempts.length, 2);
    assert.equal(task?.state, "running");
    assert.equal(task?.preemptionCount, 0);
    assert.equal(w.started.length, 1);
  });

  test("a worker that keeps refusing RunTask is asked less and less often, and the budget stays whole", async () => {
    const h = setup();
    const w = h.addWorker("w1");
    w.refuseRunTask = new FlusterError("worker w1 has no room", "failed_precondition");
    const jobId = await h.launch({ maxRetriesPreemption: 3 });
    // A minute of reconcile rounds, one a second: refusals back off 1, 2, 4, 8, 16, 30 s.
    for (let i = 0; i < 60; i++) {
      h.advance(1_000);
      await h.reconcile();
    }
    const task = h.controller.getJob(jobId).tasks[0];
    assert.equal(task?.preemptionCount, 0, "refusals spend no retry");
    assert.equal(task?.state, "pending");
    assert.ok((task?.attempts.length ?? 0) <= 7, `asked ${task?.attempts.length} times in a minute`);
    // Room again: the next try after the backoff starts it, and the backoff is forgotten.
    w.refuseRunTask = undefined;
    h.advance(30_000);
    await h.reconcile();
    assert.equal(h.controller.getJob(jobId).tasks[0]?.state, "running");
  });

  test("a RunTask the worker refuses for good (a wrong token) marks it unhealthy with the reason; the task is not charged", async () => {
    const h = setup();
    const w1 = h.addWorker("w1");
    w1.refuseAll = new FlusterError("wrong bearer token: set FLUSTER_TOKEN", "unauthenticated");
    const jobId = await h.launch({ maxRetriesPreemption: 2 });
    const worker = h.controller.listWorkers().find((w) => w.record.workerId === "w1")?.record;
    assert.equal(worker?.health, "unhealthy");
    assert.match(worker?.healthReason ?? "", /refused the controller's token \(wrong bearer token/);
    assert.deepEqual(
      h.logs.events("worker_unhealthy").map((r) => [r.workerId, r.msg.replace(/: .*/, "")]),
      [["w1", "worker w1 (http://w1:1) is unhealthy and gets no new attempts"]],
      h.logged.join("\n"),
    );
    let task = h.controller.getJob(jobId).tasks[0];
    assert.equal(task?.attempts.length, 1, "an unhealthy worker gets no new attempts");
    assert.equal(task?.preemptionCount, 0);
    assert.equal(task?.state, "pending");
    // A healthy worker joins: the task runs there, still with its whole budget.
    const w2 = h.addWorker("w2");
    await h.settle();
    task = h.controller.getJob(jobId).tasks[0];
    assert.equal(task?.state, "running");
    assert.equal(w2.started.length, 1);
    assert.equal(task?.preemptionCount, 0);
    // Refusing for longer than the grace period, it is lost like an unreachable worker.
    h.advance(GRACE_MS + 1);
    await h.reconcile();
    assert.equal(h.controller.listWorkers().some((w) => w.record.workerId === "w1"), false);
  });

  test("an address that is not a Fluster worker (unimplemented, an HTTP/1.1 or TLS server) is unhealthy too", async () => {
    for (const err of [
      new FlusterError("HTTP 404", "unimplemented"),
      new FlusterError("Protocol error", "internal"),
      new FlusterError("80FC:error:0A00010B:SSL routines:ssl3_get_record:wrong version number", "internal"),
    ]) {
      const h = new Harness().start();
      try {
        const w = h.addWorker("w1");
        w.refuseAll = err;
        await h.reconcile();
        const record = h.controller.listWorkers()[0]?.record;
        assert.equal(record?.health, "unhealthy", err.message);
        assert.ok(record?.healthReason?.includes(err.message));
      } finally {
        await h.close();
      }
    }
  });
});

describe("controller: admitting workers", () => {
  test("a registering worker is called first; a wrong token, another worker or no answer turns it away with the reason", async () => {
    const h = setup();
    h.workerAt("http://w1:1").refuseAll = new FlusterError("missing bearer token: this worker was started with a FLUSTER_TOKEN", "unauthenticated");
    await assert.rejects(h.admitWorker("w1"), (err: unknown) => {
      assert.ok(err instanceof FlusterError);
      assert.equal(err.code, "failed_precondition");
      assert.match(err.message, /^the controller cannot call worker w1 at http:\/\/w1:1: it refused the controller's token \(missing bearer token/);
      return true;
    });
    assert.match(h.logged.join("\n"), /refused worker w1 \(http:\/\/w1:1\)/);
    h.workerAt("http://w2:1").answersAs = "w9";
    await assert.rejects(h.admitWorker("w2"), /the address http:\/\/w2:1 answers as worker w9, not w2/);
    h.workerAt("http://w3:1").reachable = false;
    await assert.rejects(h.admitWorker("w3"), (err: unknown) => err instanceof FlusterError && err.code === "unavailable" && /no answer/.test(err.message));
    assert.deepEqual(h.controller.listWorkers(), [], "none was registered");
    h.workerAt("http://w4:1").answersAs = "w4";
    await h.admitWorker("w4");
    assert.equal(h.controller.listWorkers()[0]?.record.health, "healthy");
  });
});

describe("controller: workers", () => {
  test("a worker that stops answering is unreachable at once, lost after the grace period, and its attempts move", async () => {
    const h = setup();
    const w1 = h.addWorker("w1");
    const jobId = await h.launch();
    const w2 = h.addWorker("w2");
    const first = w1.lastStarted;
    w1.reachable = false;
    await h.reconcile();
    assert.equal(h.controller.listWorkers().find((w) => w.record.workerId === "w1")?.record.health, "unreachable");
    assert.equal(h.controller.getJob(jobId).tasks[0]?.attempts.length, 1, "nothing moves within the grace period");
    h.advance(GRACE_MS + 1);
    await h.reconcile();
    assert.equal(h.controller.listWorkers().some((w) => w.record.workerId === "w1"), false, "lost workers are forgotten");
    const task = h.controller.getJob(jobId).tasks[0];
    assert.equal(task?.attempts[0]?.attemptId, first);
    assert.equal(task?.attempts[0]?.state, "worker_failed");
    assert.match(task?.attempts[0]?.errorMessage ?? "", /worker w1 stopped answering for 10s/);
    assert.equal(w2.started.length, 1, "retried on the healthy worker");
    assert.equal(task?.preemptionCount, 1);
    assert.equal(task?.state, "running");
  });

  test("a worker that answers again within the grace period keeps its attempts", async () => {
    const h = setup();
    const w = h.addWorker("w1");
    const jobId = await h.launch();
    w.reachable = false;
    await h.reconcile();
    h.advance(GRACE_MS - 1);
    await h.reconcile();
    w.reachable = true;
    await h.reconcile();
    assert.equal(h.controller.listWorkers()[0]?.record.health, "healthy");
    h.advance(GRACE_MS);
    await h.reconcile();
    assert.equal(h.controller.getJob(jobId).tasks[0]?.attempts.length, 1);
    assert.equal(h.controller.getJob(jobId).state, "running");
  });

  test("a silent worker is lost exactly when the grace period has passed since its last answer, even while a call to it hangs", async () => {
    const h = setup();
    const w1 = h.addWorker("w1");
    const jobId = await h.launch();
    const w2 = h.addWorker("w2");
    await h.reconcile(); // w1's last answer: now
    const lastAnswer = h.clock.now;
    w1.hang = true;
    h.controller.tick(); // a call to w1 that never comes back within the test
    await h.settle();
    h.advance(GRACE_MS);
    h.controller.tick();
    await h.settle();
    assert.ok(h.controller.listWorkers().some((w) => w.record.workerId === "w1"), "not lost at the grace period itself");
    assert.equal(h.controller.getJob(jobId).tasks[0]?.attempts.length, 1);
    h.advance(1);
    h.controller.tick();
    await h.settle();
    assert.equal(h.clock.now - lastAnswer, GRACE_MS + 1);
    assert.equal(h.controller.listWorkers().some((w) => w.record.workerId === "w1"), false, "lost one ms past the grace, the call still in flight");
    const task = h.controller.getJob(jobId).tasks[0];
    assert.equal(task?.attempts[0]?.state, "worker_failed");
    assert.match(task?.attempts[0]?.errorMessage ?? "", /worker w1 stopped answering for 10s/);
    assert.equal(w2.started.length, 1, "retried on the other worker at once");
    // The hung call answers late: it changes nothing, and the lost worker stays lost.
    w1.answerHung();
    await h.settle();
    assert.equal(h.controller.listWorkers().some((w) => w.record.workerId === "w1"), false);
    assert.equal(h.controller.getJob(jobId).tasks[0]?.attempts[0]?.state, "worker_failed");
    assert.equal(h.controller.heartbeat("w1", []), false, "its heartbeat is told to register again");
  });

  test("a failure long after the last answer (a call that waited out its deadline) is a loss at once", async () => {
    const h = setup();
    const w1 = h.addWorker("w1");
    const jobId = await h.launch();
    h.addWorker("w2");
    await h.reconcile();
    w1.reachable = false;
    h.advance(GRACE_MS + 1);
    await h.controller.reconcileAll(); // no tick first: the failure itself finds the silence
    await h.settle();
    assert.equal(h.controller.listWorkers().some((w) => w.record.workerId === "w1"), false);
    assert.equal(h.controller.getJob(jobId).tasks[0]?.preemptionCount, 1);
  });

  test("heartbeats are contact: a worker whose reconciles fail but whose heartbeats arrive is unreachable, not lost", async () => {
    const h = setup();
    const w1 = h.addWorker("w1");
    const jobId = await h.launch();
    w1.reachable = false;
    await h.reconcile();
    for (let i = 0; i < 3; i++) {
      h.advance(GRACE_MS / 2);
      assert.equal(h.controller.heartbeat("w1", []), true);
      await h.reconcile();
    }
    const w = h.controller.listWorkers().find((x) => x.record.workerId === "w1");
    assert.equal(w?.record.health, "unreachable", "no new attempts go to it");
    assert.equal(h.controller.getJob(jobId).tasks[0]?.attempts.length, 1, "its attempt stays");
    h.advance(GRACE_MS + 1);
    await h.reconcile();
    assert.equal(h.controller.listWorkers().some((x) => x.record.workerId === "w1"), false, "lost once the heartbeats stop too");
  });

  test("a worker re-registering at a new address has restarted: its attempts are retried", async () => {
    const h = setup();
    const w = h.addWorker("w1");
    const jobId = await h.launch();
    const old = w.lastStarted;
    h.controller.registerWorker({
      workerId: "w1",
      address: "http://w1:2",
      capacity: { cpu: 4, memory: 16 * 1024 ** 3, disk: 0, deviceType: "cpu", deviceVariant: "", deviceCount: 0 },
      attributes: {},
    });
    await h.settle();
    const task = h.controller.getJob(jobId).tasks[0];
    assert.equal(task?.attempts.find((a) => a.attemptId === old)?.state, "worker_failed");
    assert.equal(h.workerAt("http://w1:2").started.length, 1);
  });

  test("an attempt whose RunTask is still in flight is not lost when the worker does not know it yet", async () => {
    const h = setup();
    const w = h.addWorker("w1");
    let release: () => void = () => undefined;
    const runTask = w.runTask.bind(w);
    w.runTask = async (assignment) => {
      await new Promise<void>((resolve) => (release = resolve));
      return runTask(assignment);
    };
    const jobId = await h.launch();
    await h.reconcile(); // the worker reports the attempt missing
    assert.equal(h.controller.getJob(jobId).tasks[0]?.attempts[0]?.state, "assigned");
    release();
    await h.settle();
    assert.equal(h.controller.getJob(jobId).state, "running");
    assert.equal(h.controller.getJob(jobId).tasks[0]?.preemptionCount, 0);
  });
});

describe("controller: restart", () => {
  test("a restarted controller adopts running attempts, keeps finished results, and loses nothing", async () => {
    const h = setup({ durable: true });
    const w = h.addWorker("w1");
    const running = await h.launch({ name: "long" });
    const done = await h.launch({ name: "short" });
    const doneAttempt = w.started.find((a) => a.jobId === done)?.attemptId ?? "";
    w.finish(doneAttempt, "succeeded", { exitCode: 0, result: new Uint8Array([7]) });
    await h.reconcile();
    await h.restart();
    const job = h.controller.getJob(running);
    assert.equal(job.state, "running");
    await h.reconcile();
    assert.equal(w.started.length, 2, "the running attempt is adopted, not started again");
    assert.equal(h.controller.getJob(running).tasks[0]?.attempts.length, 1);
    assert.deepEqual([...(h.controller.getJob(done).tasks[0]?.attempts[0]?.result ?? [])], [7]);
    w.finish(w.started.find((a) => a.jobId === running)?.attemptId ?? "", "succeeded", { exitCode: 0 });
    await h.reconcile();
    assert.equal(h.controller.getJob(running).state, "succeeded");
  });

  test("after a restart, an attempt the worker no longer has is retried", async () => {
    const h = setup({ durable: true });
    const w = h.addWorker("w1");
    const jobId = await h.launch();
    await h.restart();
    w.forget(w.lastStarted);
    await h.reconcile();
    const task = h.controller.getJob(jobId).tasks[0];
    assert.equal(task?.attempts.length, 2);
    assert.equal(task?.attempts[0]?.state, "worker_failed");
    assert.equal(task?.state, "running");
  });

  test("an attempt on a worker that is gone at restart ends; a job that finishes so takes its endpoints along", async () => {
    const h = setup({ durable: true });
    h.addWorker("w1");
    const jobId = await h.launch({ maxRetriesPreemption: 0 });
    h.controller.registerEndpoint({ name: "svc", address: "http://a:1", namespace: "default", jobId });
    await h.restart((db) => db.prepare("UPDATE workers SET health = 'lost'").run());
    const job = h.controller.getJob(jobId);
    assert.equal(job.state, "failed");
    assert.match(job.errorMessage ?? "", /worker w1 is gone/);
    assert.deepEqual(h.controller.endpoints.lookup("svc", "default"), [], "the failed job's endpoint went with it");
  });
});

describe("controller: kills and timeouts", () => {
  test("terminating a job kills its running attempts on the worker and its children", async () => {
    const h = setup();
    const w = h.addWorker("w1");
    const parent = await h.launch({ name: "parent" });
    const child = (await h.controller.launchJob(h.controller.getJob(parent).spec, { parentJobId: parent })).jobId;
    await h.settle();
    h.controller.terminateJob(parent, "stop it");
    await h.settle();
    assert.equal(h.controller.getJob(parent).state, "killed");
    assert.equal(h.controller.getJob(parent).errorMessage, "stop it");
    assert.equal(h.controller.getJob(child).state, "killed");
    assert.match(h.controller.getJob(child).errorMessage ?? "", /parent job .* killed/);
    assert.equal(w.killed.length, 2);
  });

  test("a failed task of a multi-task job kills its siblings", async () => {
    const h = setup();
    const w = h.addWorker("w1");
    const jobId = await h.launch({ resources: { cpu: 1, memory: "1g", replicas: 2 } });
    const [first, second] = w.started.map((a) => a.attemptId);
    w.finish(first ?? "", "failed", { exitCode: 1 });
    await h.reconcile();
    const job = h.controller.getJob(jobId);
    assert.equal(job.state, "failed");
    assert.equal(job.tasks[1]?.state, "killed");
    assert.deepEqual(w.killed, [second]);
  });

  test("a job not placed within its scheduling timeout becomes unschedulable with the reason", async () => {
    const h = setup();
    h.addWorker("w1", 2);
    const jobId = await h.launch({ resources: { cpu: 64, memory: "1g" }, schedulingTimeoutSeconds: 5 });
    await h.reconcile();
    assert.equal(h.controller.getJob(jobId).state, "pending");
    h.advance(6_000);
    await h.reconcile();
    const job = h.controller.getJob(jobId);
    assert.equal(job.state, "unschedulable");
    assert.match(job.errorMessage ?? "", /not scheduled within 5s: insufficient cpu: wants 64, largest worker has 2/);
  });
});

describe("controller: endpoints", () => {
  test("TTL endpoints expire unless renewed; renewing a gone one reports it", async () => {
    const h = setup();
    const kept = h.controller.registerEndpoint({ name: "svc", address: "http://a:1", namespace: "default", ttlSeconds: 5 });
    const dropped = h.controller.registerEndpoint({ name: "svc", address: "http://b:1", namespace: "default", ttlSeconds: 5 });
    h.advance(4_000);
    assert.deepEqual(h.controller.renewEndpoints([kept.endpointId]), []);
    h.advance(2_000);
    h.controller.tick();
    assert.deepEqual(h.controller.endpoints.lookup("svc", "default").map((e) => e.address), ["http://a:1"]);
    assert.deepEqual(h.controller.renewEndpoints([dropped.endpointId]), [dropped.endpointId]);
  });

  test("an endpoint owned by a job goes when the job finishes; lookups never cross namespaces", async () => {
    const h = setup();
    const w = h.addWorker("w1");
    const jobId = await h.launch();
    h.controller.registerEndpoint({ name: "svc", address: "http://a:1", namespace: "default", jobId });
    h.controller.registerEndpoint({ name: "svc", address: "http://b:1", namespace: "other" });
    assert.equal(h.controller.endpoints.lookup("svc", "default").length, 1);
    w.finish(w.lastStarted, "succeeded", { exitCode: 0 });
    await h.reconcile();
    assert.deepEqual(h.controller.endpoints.lookup("svc", "default"), []);
    assert.equal(h.controller.endpoints.lookup("svc", "other").length, 1);
    assert.throws(() => h.controller.registerEndpoint({ name: "late", address: "http://c:1", namespace: "default", jobId }), /already succeeded/);
  });

  test("a watch sees the set now and after each change, folding changes it was too busy to see", async () => {
    const h = setup();
    const abort = new AbortController();
    const watch = h.controller.endpoints.watch("svc", "default", abort.signal);
    assert.deepEqual((await watch.next()).value, []);
    const a = h.controller.registerEndpoint({ name: "svc", address: "http://a:1", namespace: "default" });
    h.controller.registerEndpoint({ name: "svc", address: "http://b:1", namespace: "default" });
    h.controller.registerEndpoint({ name: "other", address: "http://c:1", namespace: "default" });
    const seen = (await watch.next()).value?.map((e: EndpointRecord) => e.address);
    assert.deepEqual(seen, ["http://a:1", "http://b:1"]);
    h.controller.unregisterEndpoint(a.endpointId);
    assert.deepEqual((await watch.next()).value?.map((e: EndpointRecord) => e.address), ["http://b:1"]);
    abort.abort();
    assert.equal((await watch.next()).done, true);
  });
});

describe("controller: endpoints owned by attempts", () => {
  const svc = (h: Harness) => h.controller.endpoints.lookup("svc", "default");

  test("an attempt's endpoint goes when the attempt ends and the task is retried; the retry registers anew; watchers see each step", async () => {
    const h = setup();
    const w = h.addWorker("w1");
    const jobId = await h.launch({ maxRetriesFailure: 1 });
    const first = w.lastStarted;
    const abort = new AbortController();
    const watch = h.controller.endpoints.watch("svc", "default", abort.signal);
    assert.deepEqual((await watch.next()).value, []);
    const registered = h.controller.registerEndpoint({ name: "svc", address: "http://a:1", namespace: "default", attemptId: first });
    assert.equal(registered.jobId, jobId, "the job is the attempt's");
    assert.equal(registered.attemptId, first);
    assert.deepEqual((await watch.next()).value?.map((e: EndpointRecord) => e.address), ["http://a:1"]);
    w.finish(first, "failed", { exitCode: 137, errorMessage: "killed by SIGKILL" });
    await h.reconcile();
    const second = w.lastStarted;
    assert.notEqual(second, first, "the task was retried");
    assert.equal(h.controller.getJob(jobId).state, "running");
    assert.deepEqual(svc(h), [], "attempt 1's endpoint does not survive into attempt 2");
    assert.deepEqual((await watch.next()).value, []);
    h.controller.registerEndpoint({ name: "svc", address: "http://b:1", namespace: "default", attemptId: second, jobId });
    assert.deepEqual(svc(h).map((e) => [e.address, e.attemptId]), [["http://b:1", second]]);
    assert.deepEqual((await watch.next()).value?.map((e: EndpointRecord) => e.address), ["http://b:1"]);
    abort.abort();
  });

  test("an attempt lost with its worker takes its endpoints; the job's own endpoints stay until the job ends", async () => {
    const h = setup();
    const w = h.addWorker("w1");
    const jobId = await h.launch();
    const attempt = w.lastStarted;
    h.controller.registerEndpoint({ name: "svc", address: "http://attempt:1", namespace: "default", attemptId: attempt });
    h.controller.registerEndpoint({ name: "svc", address: "http://job:1", namespace: "default", jobId });
    w.forget(attempt);
    await h.reconcile();
    assert.equal(h.controller.getJob(jobId).tasks[0]?.attempts.length, 2, "retried after the loss");
    assert.deepEqual(svc(h).map((e) => e.address), ["http://job:1"]);
    w.finish(w.lastStarted, "succeeded", { exitCode: 0 });
    await h.reconcile();
    assert.deepEqual(svc(h), []);
  });

  test("a killed job's attempt endpoints go at once; an ended or unknown attempt cannot register; TTL endpoints keep their rule", async () => {
    const h = setup();
    const w = h.addWorker("w1");
    const jobId = await h.launch({ maxRetriesFailure: 1 });
    const first = w.lastStarted;
    h.controller.registerEndpoint({ name: "svc", address: "http://a:1", namespace: "default", attemptId: first });
    const leased = h.controller.registerEndpoint({ name: "svc", address: "http://lease:1", namespace: "default", ttlSeconds: 5 });
    w.finish(first, "failed", { exitCode: 1 });
    await h.reconcile();
    assert.throws(
      () => h.controller.registerEndpoint({ name: "svc", address: "http://late:1", namespace: "default", attemptId: first }),
      (err: unknown) => err instanceof FlusterError && err.code === "failed_precondition" && /has already ended \(failed\)/.test(err.message),
    );
    assert.throws(() => h.controller.registerEndpoint({ name: "svc", address: "http://x:1", namespace: "default", attemptId: "nope/0/0" }), /attempt nope\/0\/0 not found/);
    assert.throws(
      () => h.controller.registerEndpoint({ name: "svc", address: "http://x:1", namespace: "default", attemptId: w.lastStarted, jobId: "other" }),
      /belongs to job/,
    );
    h.controller.registerEndpoint({ name: "svc", address: "http://b:1", namespace: "default", attemptId: w.lastStarted });
    h.controller.terminateJob(jobId, "stop");
    await h.settle();
    assert.deepEqual(svc(h).map((e) => e.endpointId), [leased.endpointId], "only the TTL endpoint is left");
    h.advance(6_000);
    h.controller.tick();
    assert.deepEqual(svc(h), []);
  });

  test("attempt ownership survives a restart, and an endpoint whose attempt ended meanwhile is dropped at start", async () => {
    const h = setup({ durable: true });
    const w = h.addWorker("w1");
    await h.launch({ maxRetriesFailure: 1 });
    const attempt = w.lastStarted;
    h.controller.registerEndpoint({ name: "svc", address: "http://a:1", namespace: "default", attemptId: attempt });
    h.controller.registerEndpoint({ name: "svc", address: "http://stale:1", namespace: "default", attemptId: attempt });
    await h.restart((db) => db.prepare("UPDATE endpoints SET attempt_id = 'gone/0/0' WHERE address = 'http://stale:1'").run());
    assert.deepEqual(svc(h).map((e) => [e.address, e.attemptId]), [["http://a:1", attempt]]);
    w.finish(attempt, "failed", { exitCode: 1 });
    await h.reconcile();
    assert.deepEqual(svc(h), []);
  });
});

describe("controller: log streams", () => {
  test("a task retried many times with no logs reports the first unavailable attempt, then one count, not a line each", async () => {
    const h = setup();
    const w = h.addWorker("w1");
    const jobId = await h.launch({ maxRetriesFailure: 20 });
    for (let i = 0; i < 20; i++) {
      w.finish(w.lastStarted, "failed", { exitCode: 1, errorMessage: "exited with code 1" });
      await h.reconcile();
    }
    assert.equal(w.started.length, 21);
    const lines: string[] = [];
    const noLogs: AttemptLogReader = async function* (_address, attemptId) {
      yield* [];
      throw new FlusterError(`no attempt ${attemptId} here`, "not_found");
    };
    for await (const entries of jobLogs(h.controller, h.controller.getJob(jobId), -1, false, noLogs, new AbortController().signal)) {
      lines.push(...entries.map((e) => e.data));
    }
    assert.equal(lines.length, 2, lines.join(""));
    assert.match(lines[0] ?? "", /logs of attempt \S+ are unavailable: no attempt/);
    assert.match(lines[1] ?? "", /logs of 20 more attempt\(s\) of task 0 are unavailable/);
  });
});
