// Shard retries in execute(): a shard whose attempt fails with a transient
// error runs again with backoff, up to maxShardRetries; other errors fail the
// run at once; retryOn overrides the classification; the threads backend's
// rebuilt errors are classified the same. Attempts are counted through the
// marker files the flaky shard leaves.
import { afterEach, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ActorError } from "../../src/actor/errors.js";
import { FlusterError, ValidationError } from "../../src/core/errors.js";
import { decodeValue, encodeValue } from "../../src/rpc/codec.js";
import { RetryableError, execute, isRetryableError, type ExecuteOptions, type ShardRetry } from "../../src/zephyr/index.js";
import { attemptsOf, flaky } from "../fixtures/zephyr/recovery-pipelines.js";
import { flusterErrorOf } from "../helpers/index.js";

const EXPECTED = Array.from({ length: 12 }, (_, i) => i * 10);
const FAST: ExecuteOptions = { retryBackoff: { initialMs: 5, jitter: 0 } };

/** An error as it arrives from a worker thread (rebuilt by the codec), and from a pool worker (inside an ActorError). */
function acrossWorkers(error: Error): Error[] {
  const rebuilt = decodeValue(encodeValue(error)) as Error;
  const wrapped = new ActorError({ remoteName: rebuilt.name, message: rebuilt.message, remoteStack: "", actor: "task-executor", method: "run", address: "127.0.0.1:1", cause: rebuilt });
  return [error, rebuilt, wrapped];
}

describe("isRetryableError", () => {
  const cases: Array<[string, Error, boolean]> = [
    ["RetryableError", new RetryableError("try again"), true],
    ["FlusterError unavailable", new FlusterError("down", "unavailable"), true],
    ["FlusterError deadline_exceeded", new FlusterError("slow", "deadline_exceeded"), true],
    ["FlusterError resource_exhausted", new FlusterError("full", "resource_exhausted"), true],
    ["ECONNRESET", Object.assign(new Error("socket hang up"), { code: "ECONNRESET" }), true],
    ["EMFILE", Object.assign(new Error("too many open files"), { code: "EMFILE" }), true],
    ["AWS 503", Object.assign(new Error("SlowDown"), { $metadata: { httpStatusCode: 503 } }), true],
    ["AWS $retryable", Object.assign(new Error("Throttling"), { $retryable: { throttling: true } }), true],
    ["HTTP 429 status", Object.assign(new Error("Too Many Requests"), { status: 429 }), true],
    ["Google numeric code 500", Object.assign(new Error("backendError"), { code: 500 }), true],
    ["a fetch failure caused by ECONNREFUSED", new TypeError("fetch failed", { cause: Object.assign(new Error("connect"), { code: "ECONNREFUSED" }) }), true],
    ["a timeout", new DOMException("timed out", "TimeoutError"), true],
    ["ValidationError", new ValidationError("x", "is bad"), false],
    ["FlusterError not_found", new FlusterError("gone", "not_found"), false],
    ["FlusterError cancelled", new FlusterError("stopped", "cancelled"), false],
    ["an abort", new DOMException("aborted", "AbortError"), false],
    ["ENOENT", Object.assign(new Error("no such file"), { code: "ENOENT" }), false],
    ["HTTP 404", Object.assign(new Error("Not Found"), { $metadata: { httpStatusCode: 404 } }), false],
    ["TypeError", new TypeError("undefined is not a function"), false],
    ["not_found wrapping ECONNRESET", new FlusterError("chunk missing", "not_found", { cause: Object.assign(new Error("reset"), { code: "ECONNRESET" }) }), false],
  ];
  for (const [name, error, retryable] of cases) {
    test(`${name}: ${retryable ? "retryable" : "not retryable"}, also as a worker's error reaches the driver`, () => {
      for (const seen of acrossWorkers(error)) assert.equal(isRetryableError(seen), retryable, `${seen.name}: ${seen.message}`);
    });
  }
  test("values that are not errors are not retryable", () => {
    for (const value of [undefined, null, "unavailable", 503]) assert.equal(isRetryableError(value), false);
  });
});

describe("execute retries failed shards", { timeout: 60_000 }, () => {
  let markers: string;
  beforeEach(() => {
    markers = mkdtempSync(join(tmpdir(), "fluster-zephyr-retries-"));
  });
  afterEach(() => rmSync(markers, { recursive: true, force: true }));

  test("a shard that throws RetryableError twice succeeds on its third attempt; onRetry sees both failures", async () => {
    const retries: ShardRetry[] = [];
    const out = await execute(flaky(markers, 2, "retryable"), { ...FAST, backend: "sync", onRetry: (e) => retries.push(e) });
    assert.deepEqual(out, EXPECTED);
    assert.equal(attemptsOf(markers, 1), 3);
    assert.deepEqual(
      retries.map((r) => [r.stage, r.shard, r.attempt, r.delayMs, (r.error as Error).name]),
      [
        [0, 1, 1, 5, "RetryableError"],
        [0, 1, 2, 10, "RetryableError"],
      ],
    );
  });

  test("once its retries run out, the run fails saying after how many attempts, with the last error as cause", async () => {
    const err = await flusterErrorOf(() => execute(flaky(markers, 5, "retryable"), { ...FAST, backend: "sync", maxShardRetries: 1 }));
    assert.match(err.message, /^shard 1 of stage 0 failed after 2 attempts: flaky shard, attempt 2$/);
    assert.equal(err.code, "unavailable");
    assert.ok(err.cause instanceof RetryableError);
    assert.equal(attemptsOf(markers, 1), 2);
  });

  test("maxShardRetries 0 runs each shard once and throws its error as it is", async () => {
    await assert.rejects(execute(flaky(markers, 1, "retryable"), { ...FAST, backend: "sync", maxShardRetries: 0 }), (err) => err instanceof RetryableError);
    assert.equal(attemptsOf(markers, 1), 1);
  });

  test("a ValidationError is not retried", async () => {
    await assert.rejects(execute(flaky(markers, 1, "validation"), { ...FAST, backend: "sync" }), (err) => err instanceof ValidationError && /malformed/.test(err.message));
    assert.equal(attemptsOf(markers, 1), 1);
  });

  test("network errors (ECONNRESET) and 5xx answers are retried", async () => {
    assert.deepEqual(await execute(flaky(markers, 2, "econnreset"), { ...FAST, backend: "sync" }), EXPECTED);
    assert.equal(attemptsOf(markers, 1), 3);
    rmSync(markers, { recursive: true });
    markers = mkdtempSync(join(tmpdir(), "fluster-zephyr-retries-"));
    assert.deepEqual(await execute(flaky(markers, 1, "http503"), { ...FAST, backend: "sync" }), EXPECTED);
    assert.equal(attemptsOf(markers, 1), 2);
  });

  test("retryOn overrides the classification, and undefined leaves it to isRetryableError", async () => {
    const seen: unknown[] = [];
    const retryOn: ExecuteOptions["retryOn"] = (error, info) => {
      seen.push(info);
      return error instanceof TypeError ? true : undefined;
    };
    assert.deepEqual(await execute(flaky(markers, 2, "type"), { ...FAST, backend: "sync", retryOn }), EXPECTED);
    assert.equal(attemptsOf(markers, 1), 3);
    assert.deepEqual(seen, [
      { stage: 0, shard: 1, attempt: 1 },
      { stage: 0, shard: 1, attempt: 2 },
    ]);
    rmSync(markers, { recursive: true });
    markers = mkdtempSync(join(tmpdir(), "fluster-zephyr-retries-"));
    await assert.rejects(execute(flaky(markers, 1, "retryable"), { ...FAST, backend: "sync", retryOn: () => false }), (err) => err instanceof RetryableError);
    assert.equal(attemptsOf(markers, 1), 1);
  });

  test("nothing is retried once the run's signal aborted: the run rejects with its reason", async () => {
    const abort = new AbortController();
    const run = execute(flaky(markers, 100, "retryable"), {
      backend: "sync",
      retryBackoff: { initialMs: 60_000 },
      signal: abort.signal,
      onRetry: () => abort.abort(),
    });
    await assert.rejects(run, (err) => err === abort.signal.reason);
    assert.equal(attemptsOf(markers, 1), 1);
  });

  test("maxShardRetries must be a whole number ≥ 0", async () => {
    const err = await flusterErrorOf(() => execute(flaky(markers, 0, "retryable"), { backend: "sync", maxShardRetries: -1 }));
    assert.match(err.message, /^maxShardRetries must be a whole number ≥ 0, got -1$/);
  });

  test("threads backend: a worker's RetryableError, rebuilt in the driver, is retried", async () => {
    const retries: ShardRetry[] = [];
    assert.deepEqual(await execute(flaky(markers, 2, "retryable"), { ...FAST, backend: "threads", maxParallelism: 1, onRetry: (e) => retries.push(e) }), EXPECTED);
    assert.equal(attemptsOf(markers, 1), 3);
    assert.deepEqual(
      retries.map((r) => [r.shard, r.attempt, (r.error as Error).name, (r.error as { code?: unknown }).code]),
      [
        [1, 1, "RetryableError", "unavailable"],
        [1, 2, "RetryableError", "unavailable"],
      ],
    );
  });
});
