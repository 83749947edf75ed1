// The controller's metrics as its observer hears of what it does, on the test
// harness (a real Controller and store, workers in memory, a clock the test
// moves): preemptions, lost workers and refused attempts, which a LocalCluster
// test cannot bring about on demand.
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Registry } from "prom-client";
import { ControllerMetrics } from "../../../src/cluster/metrics/controller-metrics.js";
import { FlusterError } from "../../../src/core/errors.js";
import { parseSamples } from "../../helpers/prometheus.js";
import { GRACE_MS, Harness } from "./harness.js";

let harness: Harness | undefined;
afterEach(() => harness?.close());

/** A started harness whose controller reports to metrics in `registry`. */
function setup(): { h: Harness; value: (name: string, labels?: Record<string, string>) => Promise<number> } {
  const registry = new Registry();
  const h: Harness = new Harness({
    controller: {
      observer: new ControllerMetrics(registry, {
        jobs: () => h.controller.listJobs({ allNamespaces: true }),
        workers: () => h.controller.listWorkers().map(({ record }) => record),
      }),
    },
  }).start();
  harness = h;
  const value = async (name: string, labels: Record<string, string> = {}) => {
    const matching = parseSamples(await registry.metrics()).filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
    assert.equal(matching.length, 1, `one series ${name} ${JSON.stringify(labels)}`);
    return matching[0]!.value;
  };
  return { h, value };
}

describe("controller metrics", () => {
  test("a preemption is counted, with the preempted attempt and both placements", async () => {
    const { h, value } = setup();
    h.addWorker("w1", 2);
    await h.launch({ name: "batch", priority: "batch", resources: { cpu: 2, memory: "1g" } });
    await h.launch({ name: "prod", priority: "production", resources: { cpu: 2, memory: "1g" } });
    await h.settle();
    assert.equal(await value("fluster_controller_preemptions_total"), 1);
    assert.equal(await value("fluster_controller_attempts_ended_total", { state: "preempted" }), 1);
    assert.equal(await value("fluster_controller_attempts_placed_total"), 2);
    assert.equal(await value("fluster_controller_job_launches_total", { priority: "batch" }), 1);
    assert.equal(await value("fluster_controller_job_launches_total", { priority: "production" }), 1);
    // The batch task waits for room again: the queue holds it, in its band.
    assert.equal(await value("fluster_controller_pending_tasks", { priority: "batch" }), 1);
    assert.equal(await value("fluster_controller_pending_tasks", { priority: "production" }), 0);
    assert.equal(await value("fluster_controller_tasks", { state: "running" }), 1);
    assert.equal(await value("fluster_controller_jobs", { state: "pending" }), 1);
    assert.ok((await value("fluster_controller_scheduling_pass_duration_seconds_count")) >= 2);
  });

  test("a lost worker is counted, with its attempt, and leaves the workers gauge", async () => {
    const { h, value } = setup();
    const w1 = h.addWorker("w1");
    await h.launch();
    h.addWorker("w2");
    w1.reachable = false;
    await h.reconcile();
    assert.equal(await value("fluster_controller_workers", { health: "unreachable" }), 1);
    assert.equal(await value("fluster_controller_workers_lost_total"), 0);
    h.advance(GRACE_MS + 1);
    await h.reconcile();
    assert.equal(await value("fluster_controller_workers_lost_total"), 1);
    assert.equal(await value("fluster_controller_attempts_ended_total", { state: "worker_failed" }), 1);
    assert.equal(await value("fluster_controller_workers", { health: "healthy" }), 1);
    assert.equal(await value("fluster_controller_workers", { health: "unreachable" }), 0);
    assert.ok((await value("fluster_controller_reconcile_round_duration_seconds_count")) >= 2);
  });

  test("an attempt its worker refused ends not_started, not worker_failed", async () => {
    const { h, value } = setup();
    const w = h.addWorker("w1");
    w.refuseNext = new FlusterError("no room", "failed_precondition");
    await h.launch();
    assert.equal(await value("fluster_controller_attempts_ended_total", { state: "not_started" }), 1);
    assert.equal(await value("fluster_controller_attempts_ended_total", { state: "worker_failed" }), 0);
    assert.equal(await value("fluster_controller_pending_tasks", { priority: "interactive" }), 1);
  });
});
