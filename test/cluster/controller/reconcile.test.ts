// What a failed call to a worker means: the failure's kind from its error,
// and the worker's health after it (unreachable, unhealthy, lost).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { classifyWorkerFailure, healthAfterFailure, type WorkerFailure } from "../../../src/cluster/controller/reconcile.js";
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

  test("a transient failure: unreachable at once, lost after the grace period", () => {
    const first = healthAfterFailure({ health: "healthy" }, 1_000, GRACE, unreachable);
    assert.deepEqual(first, { health: "unreachable", failingSince: 1_000 });
    assert.equal(healthAfterFailure(first, 1_000 + GRACE, GRACE, unreachable).health, "unreachable");
    const lost = healthAfterFailure(first, 1_001 + GRACE, GRACE, unreachable);
    assert.equal(lost.health, "lost");
    assert.equal(lost.lostReason, "stopped answering for 10s");
  });

  test("a permanent failure: unhealthy with the reason at once, lost after the grace period saying why", () => {
    const first = healthAfterFailure({ health: "healthy" }, 1_000, GRACE, misconfigured);
    assert.deepEqual(first, { health: "unhealthy", failingSince: 1_000, reason: misconfigured.message });
    const lost = healthAfterFailure(first, 1_001 + GRACE, GRACE, misconfigured);
    assert.equal(lost.health, "lost");
    assert.equal(lost.lostReason, `refused the controller for 10s: ${misconfigured.message}`);
  });

  test("an unhealthy worker that then times out stays unhealthy with its reason; the grace period runs from the first failure", () => {
    const unhealthy = healthAfterFailure({ health: "healthy" }, 1_000, GRACE, misconfigured);
    const after = healthAfterFailure(unhealthy, 5_000, GRACE, unreachable);
    assert.deepEqual(after, { health: "unhealthy", failingSince: 1_000, reason: misconfigured.message });
  });
});
