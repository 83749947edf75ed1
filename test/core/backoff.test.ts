// The one retry helper: delays, retry, retryStream, pollUntil and sleep.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { backoffDelay, pollUntil, retry, retryStream, sleep } from "../../src/core/backoff.js";
import { FlusterError } from "../../src/core/errors.js";

describe("backoffDelay", () => {
  test("grows by the factor from initialMs, is capped at maxMs, and jitter only shortens", () => {
    const none = { initialMs: 100, maxMs: 1_000, factor: 2, jitter: 0 };
    assert.deepEqual([0, 1, 2, 3, 4, 10].map((a) => backoffDelay(a, none)), [100, 200, 400, 800, 1_000, 1_000]);
    assert.equal(backoffDelay(2, { ...none, jitter: 0.5 }, () => 1), 200);
    assert.equal(backoffDelay(2, { ...none, jitter: 0.5 }, () => 0), 400);
    for (let i = 0; i < 100; i++) {
      const d = backoffDelay(3, { ...none, jitter: 0.2 });
      assert.ok(d >= 640 && d <= 800, `${d}`);
    }
  });
});

describe("retry", () => {
  test("retries until the call succeeds, telling onRetry each time", async () => {
    const seen: number[] = [];
    const value = await retry(
      async (attempt) => {
        if (attempt < 3) throw new Error(`fail ${attempt}`);
        return "ok";
      },
      { initialMs: 1, jitter: 0, onRetry: (_err, attempt) => seen.push(attempt) },
    );
    assert.equal(value, "ok");
    assert.deepEqual(seen, [0, 1, 2]);
  });

  test("stops after `attempts` and throws the last error; retryIf can refuse at once", async () => {
    let calls = 0;
    await assert.rejects(retry(async () => Promise.reject(new Error(`fail ${++calls}`)), { attempts: 3, initialMs: 1 }), /fail 3/);
    assert.equal(calls, 3);
    calls = 0;
    await assert.rejects(retry(async () => Promise.reject(new Error(`fatal ${++calls}`)), { initialMs: 1, retryIf: () => false }), /fatal 1/);
  });

  test("an abort ends the wait with a cancelled error", async () => {
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 20);
    const started = Date.now();
    await assert.rejects(
      retry(async () => Promise.reject(new Error("down")), { initialMs: 10_000, signal: abort.signal }),
      (err: unknown) => err instanceof FlusterError && err.code === "cancelled",
    );
    assert.ok(Date.now() - started < 5_000);
  });
});

describe("retryStream", () => {
  test("re-opens a stream that fails and yields every value once; the backoff restarts after a value", async () => {
    let opened = 0;
    const values: number[] = [];
    const failures: number[] = [];
    const stream = retryStream(
      async function* () {
        opened++;
        if (opened === 1) throw new Error("refused");
        if (opened === 2) {
          yield 1;
          throw new Error("dropped");
        }
        yield 2;
        yield 3;
      },
      { initialMs: 1, jitter: 0, onRetry: (_err, failure) => failures.push(failure) },
    );
    for await (const v of stream) values.push(v);
    assert.deepEqual(values, [1, 2, 3]);
    assert.deepEqual(failures, [0, 0], "the failure after a value counts as the first again");
  });

  test("gives up after `attempts` failures in a row", async () => {
    let opened = 0;
    const stream = retryStream(
      async function* (): AsyncGenerator<number> {
        opened++;
        throw new Error(`down ${opened}`);
      },
      { attempts: 4, initialMs: 1 },
    );
    await assert.rejects(async () => {
      for await (const _ of stream) assert.fail("no value expected");
    }, /down 4/);
  });
});

describe("pollUntil and sleep", () => {
  test("pollUntil resolves true once the condition holds, false at the timeout", async () => {
    let checks = 0;
    assert.equal(await pollUntil(() => ++checks === 4, { initialMs: 1, timeoutMs: 5_000 }), true);
    assert.equal(checks, 4);
    const started = Date.now();
    assert.equal(await pollUntil(() => false, { initialMs: 5, timeoutMs: 60 }), false);
    assert.ok(Date.now() - started >= 55);
  });

  test("sleep rejects with cancelled when aborted", async () => {
    await assert.rejects(sleep(10_000, AbortSignal.abort()), (err: unknown) => err instanceof FlusterError && err.code === "cancelled");
  });
});
