// The worker's lease: its terms from the controller's grace, the pure
// bookkeeping on a clock the test moves, and a real worker daemon whose
// controller (a stand-in serving RegisterWorker and Heartbeat) answers
// slowly (it keeps its attempt) or stops answering (it fences it).
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { leaseTerms, WorkerLease } from "../../src/cluster/worker/lease.js";
import { WorkerDaemon } from "../../src/cluster/worker/daemon.js";
import { Entrypoint } from "../../src/core/entrypoint.js";
import { validateJobRequest } from "../../src/core/job.js";
import { jobSpecToProto, taskStateFromProto } from "../../src/rpc/convert.js";
import { ControllerService } from "../../src/rpc/gen/fluster/cluster/v1/controller_pb.js";
import type { Attempt } from "../../src/rpc/gen/fluster/cluster/v1/types_pb.js";
import { WorkerService } from "../../src/rpc/gen/fluster/worker/v1/worker_pb.js";
import { createRpcChannel, startRpcServer, type RpcServer } from "../../src/rpc/transport.js";
import { eventually } from "../helpers/index.js";
import { captureLogs, type CapturedLogs } from "../helpers/logs.js";

describe("leaseTerms", () => {
  test("the fence comes strictly before the controller's grace, with a margin of max(grace/4, min(1 s, grace/2))", () => {
    assert.deepEqual(leaseTerms(2_000), { graceMs: 2_000, fenceAfterMs: 1_000, renewEveryMs: 250, checkEveryMs: 250, hardFenceAfterMs: 1_500 });
    assert.deepEqual(leaseTerms(10_000), { graceMs: 10_000, fenceAfterMs: 7_500, renewEveryMs: 1_875, checkEveryMs: 250, hardFenceAfterMs: 8_000 });
    assert.equal(leaseTerms(1_000).fenceAfterMs, 500);
    for (const grace of [100, 1_500, 2_000, 10_000, 60_000]) {
      const terms = leaseTerms(grace);
      assert.ok(terms.fenceAfterMs > 0 && terms.fenceAfterMs + terms.checkEveryMs < grace, `grace ${grace}: fenced in time`);
    }
    // The lease supervisor checks every 100 ms: its SIGKILL lands before the grace for any grace of a second or more.
    for (const grace of [1_000, 1_500, 2_000, 10_000, 60_000]) {
      const terms = leaseTerms(grace);
      assert.ok(terms.hardFenceAfterMs > terms.fenceAfterMs && terms.hardFenceAfterMs + 100 < grace, `grace ${grace}: the supervisor kills in time`);
    }
  });
});

describe("WorkerLease", () => {
  const terms = leaseTerms(2_000);
  const clock = { now: 0 };
  const lease = () => new WorkerLease(terms, () => clock.now, clock.now);

  test("fences once the fence period passes with no acknowledged exchange, counted from when it was sent", () => {
    clock.now = 0;
    const l = lease();
    assert.deepEqual(l.step(), { renew: true });
    clock.now = 200;
    assert.deepEqual(l.step(), { renew: false });
    clock.now = 250;
    assert.deepEqual(l.step(), { renew: true });
    // The renewal sent at 250 is acknowledged at 900: the lease runs from 250, not 900.
    clock.now = 900;
    l.acknowledged(250);
    clock.now = 1_250;
    assert.equal(l.step().fence, undefined);
    clock.now = 1_251;
    assert.deepEqual(l.step().fence, { silentMs: 1_001 });
    assert.equal(l.fenced, true);
    assert.equal(l.step().fence, undefined, "fenced once");
  });

  test("a slow controller that acknowledges each renewal within ¾ of the fence period never fences it", () => {
    clock.now = 0;
    const l = lease();
    const inFlight: number[] = [];
    for (let t = 0; t <= 20_000; t += 50) {
      clock.now = t;
      // Each renewal is acknowledged 700 ms after it was sent.
      while (inFlight.length > 0 && (inFlight[0] as number) + 700 <= t) l.acknowledged(inFlight.shift() as number);
      const step = l.step();
      assert.equal(step.fence, undefined, `fenced at ${t}`);
      if (step.renew) inFlight.push(t);
    }
  });

  test("contact back ends the fence; a controller that forgot the worker fences it at once; a late acknowledgement of an old renewal does not end a fence", () => {
    clock.now = 0;
    const l = lease();
    clock.now = 1_500;
    assert.ok(l.step().fence);
    assert.equal(l.acknowledged(1_400), true, "contact back");
    assert.equal(l.fenced, false);
    assert.equal(l.forgotten(), true);
    assert.equal(l.fenced, true);
    assert.equal(l.forgotten(), false, "already fenced");
    clock.now = 3_000;
    assert.equal(l.acknowledged(1_500), false, "sent 1.5 s ago: too old to hold the lease");
    assert.equal(l.acknowledged(2_900), true, "a registration just now");
  });
});

describe("worker daemon: fencing", () => {
  /** A stand-in controller: RegisterWorker tells a 2 s grace; Heartbeat answers after `delayMs`, or never while `silent`. */
  class StandIn {
    delayMs = 0;
    silent = false;
    known = true;
    readonly reports: Attempt[] = [];
    server: RpcServer | undefined;
    async start(): Promise<string> {
      this.server = await startRpcServer({
        routes: (router) =>
          router.service(ControllerService, {
            registerWorker: (req) => ({ workerId: req.workerId, reconcileIntervalMs: 500, workerLostGraceMs: 2_000 }),
            heartbeat: async (req, ctx) => {
              while (this.silent && !ctx.signal.aborted) await sleep(20);
              await sleep(this.delayMs);
              this.reports.push(...req.attempts);
              return { known: this.known };
            },
          }),
      });
      return this.server.url;
    }
  }

  let cleanup: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanup.reverse()) await c();
    cleanup = [];
  });

  async function workerWithAttempt(): Promise<{ standIn: StandIn; daemon: WorkerDaemon; attemptId: string; logs: CapturedLogs }> {
    const standIn = new StandIn();
    const url = await standIn.start();
    cleanup.push(() => standIn.server?.shutdown());
    const dir = mkdtempSync(join(tmpdir(), "fluster-lease-"));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const logs = captureLogs("worker");
    const daemon = new WorkerDaemon({ controllerUrl: url, workDir: dir, cpu: 1, memory: 2 ** 30, killGraceSeconds: 1, logger: logs.logger });
    await daemon.start();
    cleanup.push(() => daemon.shutdown());
    const channel = createRpcChannel(daemon.address, { token: "" });
    cleanup.push(() => channel.close());
    const spec = jobSpecToProto(validateJobRequest({ name: "sleeper", resources: { cpu: 0.1, memory: "32m" }, entrypoint: Entrypoint.fromCommand(["sleep", "60"]) }));
    const attemptId = "job-1/0/1";
    const res = await channel.client(WorkerService).runTask({ task: { attemptId, jobId: "job-1", jobName: "sleeper", namespace: "default", taskIndex: 0, numTasks: 1, spec } });
    assert.equal(taskStateFromProto(res.attempt?.state ?? 0), "running");
    return { standIn, daemon, attemptId, logs };
  }

  const stateOf = async (daemon: WorkerDaemon, attemptId: string): Promise<string> => {
    const channel = createRpcChannel(daemon.address, { token: "" });
    try {
      const res = await channel.client(WorkerService).getTaskStatus({ attemptId });
      return taskStateFromProto(res.attempt?.state ?? 0);
    } finally {
      channel.close();
    }
  };

  test("a controller that answers slowly, within time, never fences the worker", { timeout: 30_000 }, async () => {
    const { standIn, daemon, attemptId, logs } = await workerWithAttempt();
    standIn.delayMs = 400; // the fence period is 1 s; renewals go every 250 ms
    await sleep(4_000);
    assert.equal(await stateOf(daemon, attemptId), "running");
    assert.deepEqual(logs.events("attempts_fenced"), []);
    assert.deepEqual(logs.events("lease_supervisor_fenced"), []);
  });

  test("a controller that stops answering: the worker kills its attempt after the fence period and reports it fenced when contact returns", { timeout: 30_000 }, async () => {
    const { standIn, daemon, attemptId, logs } = await workerWithAttempt();
    const silentAt = Date.now();
    standIn.silent = true;
    await eventually(async () => (await stateOf(daemon, attemptId)) !== "running", { what: "the attempt to be fenced", timeoutMs: 5_000 });
    const fencedAfter = Date.now() - silentAt;
    assert.ok(fencedAfter >= 700 && fencedAfter < 2_000, `fenced ${fencedAfter} ms after the controller went silent (fence period 1 s, grace 2 s)\n${logs.messages.join("\n")}`);
    assert.equal(await stateOf(daemon, attemptId), "worker_failed");
    assert.ok(logs.messages.some((l) => /fenced: no contact with the controller for 1\.\ds; killed 1 attempt/.test(l)), logs.messages.join("\n"));
    assert.deepEqual(logs.events("attempts_fenced").map((r) => r.attemptIds), [[attemptId]]);
    standIn.silent = false;
    await eventually(() => standIn.reports.some((a) => a.attemptId === attemptId && taskStateFromProto(a.state) === "worker_failed"), {
      what: "the fenced attempt to be reported",
      timeoutMs: 5_000,
    });
    const report = standIn.reports.find((a) => a.attemptId === attemptId && taskStateFromProto(a.state) === "worker_failed");
    assert.match(report?.errorMessage ?? "", /^fenced: no contact with the controller for \d\.\ds$/);
  });

  test("a controller that answers it does not know the worker: attempts are fenced at once and the worker registers again", { timeout: 30_000 }, async () => {
    const { standIn, daemon, attemptId } = await workerWithAttempt();
    standIn.known = false;
    await eventually(async () => (await stateOf(daemon, attemptId)) === "worker_failed", { what: "the attempt to be fenced", timeoutMs: 3_000 });
  });
});
