// The error a call fails with, asserted to be a FlusterError, so a test can
// check its code and message; a call that does not fail fails the test.
import assert from "node:assert/strict";
import { FlusterError } from "../../src/core/errors.js";

export async function flusterErrorOf(run: () => Promise<unknown> | unknown): Promise<FlusterError> {
  try {
    await run();
  } catch (err) {
    assert.ok(err instanceof FlusterError, String(err));
    return err;
  }
  assert.fail("expected an error");
}
