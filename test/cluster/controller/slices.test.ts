// The controller with TPU slices and rendezvous variables (in-memory workers):
// what each attempt is sent, a restarted gang's variables recomputed for its
// new placement, and a refused task of a slice job going back to its own slice.
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { coordinatorPort } from "../../../src/cluster/controller/rendezvous.js";
import type { Assignment } from "../../../src/cluster/controller/worker-connection.js";
import { TPU_HOST_LABEL, TPU_SLICE_LABEL } from "../../../src/cluster/platform/types.js";
import { FlusterError } from "../../../src/core/errors.js";
import { ResourceConfig } from "../../../src/core/resources.js";
import { Harness, type FakeWorker } from "./harness.js";

let harness: Harness;
afterEach(() => harness?.close());

/** Registers host `h` of slice `slice` (a v5litepod-16 host: 4 chips) at `http://<slice>-<h>:1`. */
function addHost(h: Harness, slice: string, host: number): FakeWorker {
  const workerId = `${slice}-${host}`;
  const address = `http://${workerId}:1`;
  h.controller.registerWorker({
    workerId,
    address,
    capacity: { cpu: 4, memory: 16 * 1024 ** 3, disk: 100 * 1024 ** 3, deviceType: "tpu", deviceVariant: "v5litepod-16", deviceCount: 4 },
    attributes: { [TPU_SLICE_LABEL]: slice, [TPU_HOST_LABEL]: String(host) },
  });
  return h.workerAt(address);
}

function startedOf(h: Harness): Assignment[] {
  return [...h.workers.values()].flatMap((w) => w.started);
}

describe("controller: TPU slices and rendezvous variables", () => {
  test("each task of a slice job is sent its host id, its slice's host list and the coordinator", async () => {
    const h = (harness = new Harness().start());
    for (const slice of ["b", "a"]) for (const host of [3, 1, 0, 2]) addHost(h, slice, host);
    const jobId = await h.launch({ resources: ResourceConfig.withTpu("v5litepod-16", { cpu: 1, memory: "1g" }) });
    const sent = startedOf(h).sort((x, y) => x.taskIndex - y.taskIndex);
    assert.equal(sent.length, 4);
    const slice = h.controller.getJob(jobId).tasks[0]?.workerId?.split("-")[0];
    for (const a of sent) {
      assert.equal(h.controller.getJob(jobId).tasks[a.taskIndex]?.workerId, `${slice}-${a.taskIndex}`);
      assert.deepEqual(a.env, {
        FLUSTER_COORDINATOR_ADDRESS: `${slice}-0:${coordinatorPort(`${jobId}/0/0`)}`,
        TPU_WORKER_ID: String(a.taskIndex),
        TPU_WORKER_HOSTNAMES: `${slice}-0,${slice}-1,${slice}-2,${slice}-3`,
      });
    }
  });

  test("a restarted gang is sent variables for its new placement", async () => {
    const h = (harness = new Harness().start());
    h.addWorker("w1", 1);
    h.addWorker("w2", 1);
    const jobId = await h.launch({ coscheduled: true, maxRetriesFailure: 1, resources: { cpu: 1, memory: "1g", replicas: 2 } });
    const first = startedOf(h);
    const task0 = h.controller.getJob(jobId).tasks[0];
    assert.ok(task0?.workerId);
    for (const a of first) assert.equal(a.env?.FLUSTER_COORDINATOR_ADDRESS, `${task0.workerId}:${coordinatorPort(`${jobId}/0/0`)}`);
    // Task 1 fails: the gang stops task 0 and is placed again, with new attempts.
    const a1 = h.controller.getJob(jobId).tasks[1]?.attempts[0];
    assert.ok(a1);
    h.workerAt(h.controller.getJob(jobId).tasks[1]?.workerId === "w1" ? "http://w1:1" : "http://w2:1").finish(a1.attemptId, "failed", { exitCode: 2 });
    await h.reconcile();
    for (const w of h.workers.values()) for (const id of w.killed) w.finish(id, "killed");
    await h.reconcile();
    const job = h.controller.getJob(jobId);
    assert.deepEqual(job.tasks.map((t) => t.attempts.length), [2, 2]);
    const again = startedOf(h).filter((a) => a.attemptId.endsWith("/1"));
    assert.equal(again.length, 2);
    const host0 = job.tasks[0]?.workerId;
    for (const a of again) assert.equal(a.env?.FLUSTER_COORDINATOR_ADDRESS, `${host0}:${coordinatorPort(`${jobId}/0/1`)}`, "task 0's new attempt, so a new port");
    assert.notEqual(coordinatorPort(`${jobId}/0/1`), coordinatorPort(`${jobId}/0/0`));
  });

  test("a refused task of a slice job goes back to its own slice and host, with the same host list", async () => {
    const h = (harness = new Harness().start());
    const hosts = ["a", "b"].flatMap((slice) => [0, 1, 2, 3].map((host) => addHost(h, slice, host)));
    // Slice a, host 2 turns the attempt down once ("no room"): it costs nothing and comes back there.
    const a2 = hosts[2] as FakeWorker;
    a2.refuseNext = new FlusterError("no room", "failed_precondition");
    const jobId = await h.launch({ resources: ResourceConfig.withTpu("v5litepod-16", { cpu: 1, memory: "1g" }) });
    let job = h.controller.getJob(jobId);
    assert.deepEqual(job.tasks.map((t) => t.state), ["running", "running", "pending", "running"]);
    h.advance(1_000);
    await h.reconcile();
    job = h.controller.getJob(jobId);
    assert.deepEqual(job.tasks.map((t) => [t.state, t.workerId]), [["running", "a-0"], ["running", "a-1"], ["running", "a-2"], ["running", "a-3"]]);
    const retried = a2.started.at(-1);
    assert.equal(retried?.env?.TPU_WORKER_ID, "2");
    assert.equal(retried?.env?.TPU_WORKER_HOSTNAMES, "a-0,a-1,a-2,a-3");
  });
});
