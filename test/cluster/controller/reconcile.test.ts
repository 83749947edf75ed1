// What a failed call to a worker means: the failure's kind from its error,
// and the worker's health after it (unreachable, unhealthy, lost); and what a
// worker's answer says of attempts it was or was never given.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { classifyWorkerFailure, diffReconcile, healthAfterFailure, isEmptyDiff, lostReason, reconcileDeadlineMs, type KnownAttempt, type WorkerFailure } from "../../../src/cluster/controller/reconcile.js";
import type { ObservedAttempt } from "../../../src/cluster/controller/worker-connection.js";
import { FlusterError, type FlusterErrorCode } from "../../../src/core/errors.js";

const GRACE = 10_000;
const error = (code: FlusterErrorCode, message: string) => new FlusterError(message, code);

describe("classifyWorkerFailure", () => {
  const rows: Array<[FlusterError | Error, WorkerFailure["kind"]]> = [
    [error("unavailable", "connect ECONNREFUSED 127.0.0.1:1"), "unreachable"],
    [error("deadline_exceeded", "the operation timed out"), "unreachable"],
    [error("cancelled", "aborted"), "unreachable"],
    [error("internal", "worker crashed while answering"), "unreachable"],
    [new Error("socket hang up"), "unreachable"],
    [error("unauthenticated", "wrong bearer token: set FLUSTER_TOKEN"), "misconfigured"],
    [error("unimplemented", "HTTP 404"), "misconfigured"],
    [error("internal", "Protocol error"), "misconfigured"],
    [error("internal", "error:0A00010B:SSL routines:ssl3_get_record:wrong version number"), "misconfigured"],
    [error("failed_precondition", "worker w1 has no room"), "refused"],
  ];
  for (const [err, kind] of rows) {
    test(`${err instanceof FlusterError ? err.code : "a plain Error"} "${err.message}" → ${kind}`, () => {
      const failure = classifyWorkerFailure(err);
      assert.equal(failure.kind, kind);
      assert.ok(failure.message.includes(err.message), "the original message is kept");
    });
  }
});

describe("healthAfterFailure", () => {
  const unreachable: WorkerFailure = { kind: "unreachable", message: "connect ECONNREFUSED" };
  const misconfigured: WorkerFailure = { kind: "misconfigured", message: "it refused the controller's token (wrong bearer token)" };

  test("a transient failure: unreachable at once, lost once there was no contact for the grace period", () => {
    const first = healthAfterFailure({ health: "healthy", lastContact: 1_000 }, 2_000, GRACE, unreachable);
    assert.deepEqual(first, { health: "unreachable", lastContact: 1_000, askedSince: 2_000 });
    assert.equal(healthAfterFailure(first, 1_000 + GRACE, GRACE, unreachable).health, "unreachable");
    const lost = healthAfterFailure(first, 1_001 + GRACE, GRACE, unreachable);
    assert.equal(lost.health, "lost");
    assert.equal(lost.lostReason, "stopped answering for 10s");
  });

  test("the grace period runs from the last contact, not from the first failure", () => {
    // The first failure comes late (a call that waited out its deadline): the worker is lost at the grace, not the grace after that failure.
    const first = healthAfterFailure({ health: "healthy", lastContact: 1_000 }, 1_000 + GRACE - 1, GRACE, unreachable);
    assert.equal(first.health, "unreachable");
    assert.equal(healthAfterFailure(first, 1_001 + GRACE, GRACE, unreachable).health, "lost");
    // A failure that comes after the grace is a loss at once.
    assert.equal(healthAfterFailure({ health: "healthy", lastContact: 1_000 }, 1_001 + GRACE, GRACE, unreachable).health, "lost");
  });

  test("a permanent failure: unhealthy with the reason at once, lost after the grace period saying why", () => {
    const first = healthAfterFailure({ health: "healthy", lastContact: 1_000 }, 1_000, GRACE, misconfigured);
    assert.deepEqual(first, { health: "unhealthy", lastContact: 1_000, askedSince: 1_000, reason: misconfigured.message });
    const lost = healthAfterFailure(first, 1_001 + GRACE, GRACE, misconfigured);
    assert.equal(lost.health, "lost");
    assert.equal(lost.lostReason, `refused the controller for 10s: ${misconfigured.message}`);
  });

  test("an unhealthy worker that then times out stays unhealthy with its reason", () => {
    const unhealthy = healthAfterFailure({ health: "healthy", lastContact: 1_000 }, 1_000, GRACE, misconfigured);
    const after = healthAfterFailure(unhealthy, 5_000, GRACE, unreachable);
    assert.deepEqual(after, { health: "unhealthy", lastContact: 1_000, askedSince: 1_000, reason: misconfigured.message });
  });
});

describe("lostReason", () => {
  test("lost exactly when the silence outlasts the grace period, a call in flight or not, whatever the health", () => {
    const asked = { health: "healthy" as const, lastContact: 1_000, askedSince: 1_500 };
    assert.equal(lostReason(asked, 1_000 + GRACE, GRACE), undefined);
    assert.equal(lostReason(asked, 1_001 + GRACE, GRACE), "stopped answering for 10s");
    assert.equal(lostReason({ ...asked, health: "unhealthy", reason: "wrong token" }, 1_000 + 2 * GRACE, GRACE), "refused the controller for 20s: wrong token");
  });

  test("a worker the controller has not asked since its last contact is not silent (the controller was not looking)", () => {
    assert.equal(lostReason({ health: "healthy", lastContact: 1_000 }, 1_000 + 2 * GRACE, GRACE), undefined);
  });
});

describe("reconcileDeadlineMs", () => {
  test("half the grace period at most, else four intervals or 5 s", () => {
    assert.equal(reconcileDeadlineMs(500, 2_000), 1_000);
    assert.equal(reconcileDeadlineMs(500, 10_000), 5_000);
    assert.equal(reconcileDeadlineMs(2_000, 60_000), 8_000);
  });
});

describe("diffReconcile: attempts delivered or not", () => {
  const known = new Map<string, KnownAttempt>([
    ["a-delivered", { attemptId: "a-delivered", workerId: "w1", state: "running", delivered: true }],
    ["a-new", { attemptId: "a-new", workerId: "w1", state: "assigned", delivered: false }],
    ["a-in-flight", { attemptId: "a-in-flight", workerId: "w1", state: "assigned", delivered: false }],
    ["a-other", { attemptId: "a-other", workerId: "w2", state: "assigned", delivered: false }],
  ]);
  const diff = (observed: ObservedAttempt[], missing: string[]) => diffReconcile("w1", { observed, missing }, (id) => known.get(id), new Set(["a-in-flight"]));

  test("missing: a delivered attempt is lost, one never delivered is undelivered, one whose RunTask is in flight is left alone", () => {
    const d = diff([], ["a-delivered", "a-new", "a-in-flight", "a-other"]);
    assert.deepEqual(d.lost.map((a) => a.attemptId), ["a-delivered"]);
    assert.deepEqual(d.undelivered.map((a) => a.attemptId), ["a-new"]);
    assert.deepEqual(d.delivered, []);
  });

  test("reported: an attempt never delivered before is delivered now, whatever its state", () => {
    const d = diff([{ attemptId: "a-new", state: "assigned" }, { attemptId: "a-in-flight", state: "running" }, { attemptId: "a-delivered", state: "running" }], []);
    assert.deepEqual(d.delivered.map((a) => a.attemptId), ["a-new", "a-in-flight"]);
    assert.deepEqual(d.progressed.map((a) => a.attemptId), ["a-in-flight"]);
    assert.equal(isEmptyDiff(diff([{ attemptId: "a-delivered", state: "running" }], [])), true);
  });
});
