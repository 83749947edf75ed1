// FlusterError.from maps aborts and timeouts to codes, and instanceof works
// across two copies of the package loaded in one process.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { FlusterError, ValidationError } from "../../src/core/errors.js";
import { ActorError, CallNotDeliveredError } from "../../src/actor/errors.js";

describe("FlusterError.from", () => {
  test("keeps a FlusterError, maps aborts and timeouts, wraps the rest with a cause", async () => {
    const own = new ValidationError("x", "must be y");
    assert.equal(FlusterError.from(own), own);
    const aborted = await fetchAbortReason(AbortSignal.abort());
    assert.equal(FlusterError.from(aborted).code, "cancelled");
    const timedOut = await fetchAbortReason(AbortSignal.timeout(1));
    assert.equal(FlusterError.from(timedOut).code, "deadline_exceeded");
    const other = new TypeError("boom");
    const wrapped = FlusterError.from(other, "unavailable");
    assert.equal(wrapped.code, "unavailable");
    assert.equal(wrapped.message, "boom");
    assert.equal(wrapped.cause, other);
    assert.equal(FlusterError.from("a string").message, "a string");
  });
});

/** What timers/promises rejects with when `signal` aborts (as sleep and RPC calls see it). */
async function fetchAbortReason(signal: AbortSignal): Promise<unknown> {
  const { setTimeout: delay } = await import("node:timers/promises");
  try {
    await delay(5_000, undefined, { signal });
  } catch (err) {
    return err;
  }
  throw new Error("the delay was not aborted");
}

describe("instanceof across copies of the package", () => {
  test("an error made by another copy of the module is an instance of this copy's class, and only of the right ones", async () => {
    // A second evaluation of the same modules, as a job bundling its own fluster would load them.
    const copy = (await import(`../../src/core/errors.ts?copy=${Date.now()}`)) as typeof import("../../src/core/errors.js");
    const actorCopy = (await import(`../../src/actor/errors.ts?copy=${Date.now()}`)) as typeof import("../../src/actor/errors.js");
    assert.notEqual(copy.FlusterError, FlusterError, "a separate copy was loaded");
    const foreign = new copy.ValidationError("resources.cpu", "must be a number");
    assert.ok(foreign instanceof FlusterError);
    assert.ok(foreign instanceof ValidationError);
    assert.ok(!(foreign instanceof ActorError));
    const delivered = new actorCopy.CallNotDeliveredError("refused", "unavailable");
    assert.ok(delivered instanceof CallNotDeliveredError);
    assert.ok(delivered instanceof FlusterError);
    assert.ok(!(delivered instanceof ValidationError));
    assert.ok(!(new Error("plain") instanceof FlusterError));
    assert.ok(!({ code: "internal", message: "duck" } instanceof FlusterError));
  });

  test("a subclass without a brand of its own is recognised only by the ordinary prototype check", () => {
    class MyError extends FlusterError {}
    const mine = new MyError("m");
    assert.ok(mine instanceof MyError);
    assert.ok(mine instanceof FlusterError);
    assert.ok(!(new FlusterError("plain") instanceof MyError));
  });
});
