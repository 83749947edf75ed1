// Fault injection (SPEC §7), checked on real servers: the RPC interceptor
// drops requests or answers (the caller sees `unavailable`) and delays calls,
// only for the methods named and with the probability given; the controller
// cuts workers off (they are lost after the grace, and heard again after);
// a worker kills its attempts as a dying machine would. Options are checked.
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import { compileRpcFaults, createFaultInjector, type RpcFaults } from "../../src/rpc/faults.js";
import { compileControllerFaults } from "../../src/cluster/controller/faults.js";
import { compileWorkerFaults } from "../../src/cluster/worker/faults.js";
import { ControllerService } from "../../src/rpc/gen/fluster/cluster/v1/controller_pb.js";
import { createRpcChannel, startRpcServer, type RpcServer } from "../../src/rpc/transport.js";
import { ValidationError } from "../../src/core/errors.js";
import { Entrypoint } from "../../src/core/entrypoint.js";
import { GRACE_MS, Harness } from "../cluster/controller/harness.js";
import { startLocalCluster } from "../helpers/local-cluster.js";

let cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

/** A ControllerService whose Heartbeat counts the calls it handled; faults from `faults`, draws from `random`. */
async function serve(faults: RpcFaults, random?: () => number) {
  let handled = 0;
  const injector = createFaultInjector(faults, random);
  const server: RpcServer = await startRpcServer({
    interceptors: [injector.interceptor],
    routes: (router) =>
      router.service(ControllerService, {
        heartbeat: () => {
          handled += 1;
          return { known: true };
        },
        listWorkers: () => ({ workers: [] }),
      }),
  });
  cleanup.push(() => server.shutdown());
  const channel = createRpcChannel(server.url, { token: "" });
  cleanup.push(() => channel.close());
  const client = channel.client(ControllerService);
  return { client, injector, handled: () => handled };
}

const codeOf = (err: unknown) => (err instanceof ConnectError ? err.code : undefined);

describe("RPC fault injection", () => {
  test("a dropped request never reaches the handler and fails with unavailable; other methods are untouched", async () => {
    const { client, injector, handled } = await serve({ Heartbeat: { dropProbability: 1 } });
    await assert.rejects(client.heartbeat({ workerId: "w" }), (err) => codeOf(err) === Code.Unavailable && /Heartbeat request dropped/.test(String(err)));
    assert.equal(handled(), 0);
    assert.deepEqual(await client.listWorkers({}), (await client.listWorkers({})));
    assert.deepEqual(injector.counts.get("fluster.cluster.v1.ControllerService/Heartbeat"), { calls: 1, dropped: 1, droppedResponses: 0, delayed: 0 });
    assert.equal(injector.counts.has("fluster.cluster.v1.ControllerService/ListWorkers"), false);
  });

  test("a dropped answer: the handler ran, the caller sees unavailable", async () => {
    const { client, handled } = await serve({ "ControllerService/Heartbeat": { dropResponseProbability: 1 } });
    await assert.rejects(client.heartbeat({ workerId: "w" }), (err) => codeOf(err) === Code.Unavailable && /response dropped/.test(String(err)));
    assert.equal(handled(), 1);
  });

  test("a delay holds the call back for delayMs", async () => {
    const { client } = await serve({ "fluster.cluster.v1.ControllerService/Heartbeat": { delayMs: 300 } });
    const started = performance.now();
    assert.equal((await client.heartbeat({ workerId: "w" })).known, true);
    assert.ok(performance.now() - started >= 290, "delayed");
  });

  test("the probability decides per call: draws below it drop, draws at or above it pass", async () => {
    const draws = [0.01, 0.9, 0.04, 0.05, 0.5, 0.049];
    let i = 0;
    const { client, handled } = await serve({ Heartbeat: { dropProbability: 0.05 } }, () => draws[i++ % draws.length]!);
    const outcomes: string[] = [];
    for (let n = 0; n < draws.length; n++) outcomes.push(await client.heartbeat({ workerId: "w" }).then(() => "ok", () => "dropped"));
    assert.deepEqual(outcomes, ["dropped", "ok", "dropped", "ok", "ok", "dropped"]);
    assert.equal(handled(), 3);
  });

  test("bad fault options are refused, naming the field", () => {
    assert.throws(() => compileRpcFaults({ Heartbeat: { dropProbability: 1.5 } }, "faults.rpc"), (err) => err instanceof ValidationError && /faults\.rpc\.Heartbeat\.dropProbability.*between 0 and 1/.test(err.message));
    assert.throws(() => compileRpcFaults({ Heartbeat: { drop: 1 } }, "faults.rpc"), /faults\.rpc\.Heartbeat\.drop.*is not a fault/);
    assert.throws(() => compileRpcFaults({ "not a method": {} }, "faults.rpc"), /keyed by a method name/);
    assert.throws(() => compileRpcFaults({ Heartbeat: { delayMs: 120_000 } }, "faults.rpc"), /at most 60000 ms/);
    assert.throws(() => compileControllerFaults({ killEverything: true }), /faults\.killEverything.*not a controller fault/);
    assert.throws(() => compileWorkerFaults({ killAttemptProbability: -1 }), /faults\.killAttemptProbability/);
    assert.deepEqual(compileWorkerFaults({ rpc: { Reconcile: { dropProbability: 0.05 } }, killAttemptProbability: 0 }), { rpc: { Reconcile: { dropProbability: 0.05 } }, killAttemptProbability: 0 });
  });
});

describe("controller fault injection: cutting a worker off", () => {
  test("a cut-off worker cannot heartbeat or register, misses its reconciles, is lost after the grace, and is taken back after the cut", async () => {
    let draw = 0;
    const h = new Harness({ controller: { loseWorkerProbability: 0.5, loseWorkerMs: 2 * GRACE_MS, random: () => draw } }).start();
    cleanup.push(() => h.close());
    h.addWorker("w1");
    const jobId = await h.launch();
    draw = 0.9;
    await h.reconcile();
    assert.equal(h.controller.heartbeat("w1", []), true, "not cut off while draws are above the probability");
    draw = 0.1;
    await h.reconcile();
    draw = 0.9;
    assert.throws(() => h.controller.heartbeat("w1", []), /fault injection: worker w1 is cut off/);
    assert.equal(h.controller.listWorkers()[0]?.record.health, "unreachable", "its reconcile failed");
    h.advance(GRACE_MS + 1);
    await h.reconcile();
    assert.equal(h.controller.listWorkers().length, 0, "lost");
    assert.equal(h.controller.getJob(jobId).tasks[0]?.attempts[0]?.state, "worker_failed");
    await assert.rejects(h.admitWorker("w1"), /cut off/);
    h.advance(GRACE_MS);
    await h.admitWorker("w1");
    assert.equal(h.controller.heartbeat("w1", []), true, "heard again after the cut");
    assert.ok(h.logged.some((l) => /fault injection: worker w1 cut off for 20s/.test(l)), h.logged.join("\n"));
  });
});

describe("worker fault injection: killing attempts", () => {
  test("with killAttemptProbability 1 a running attempt is killed within seconds and ends worker_failed (a preemption, not a failure)", { timeout: 60_000 }, async (t) => {
    const cluster = await startLocalCluster(t, { workers: 1, workerCpu: 1, workerMemory: "512m", workerFaults: { killAttemptProbability: 1 } });
    const jobId = await cluster.launch({ name: "doomed", resources: { cpu: 0.5, memory: "32m" }, maxRetriesPreemption: 0, entrypoint: Entrypoint.fromCommand(["sleep", "60"]) });
    const info = await cluster.wait(jobId, { timeoutSeconds: 30 });
    assert.equal(info.status, "failed");
    assert.equal(info.tasks[0]?.preemptionCount, 1);
    assert.equal(info.tasks[0]?.failureCount, 0);
    assert.match(info.errorMessage ?? "", /fault injection: the attempt was killed/);
  });
});
