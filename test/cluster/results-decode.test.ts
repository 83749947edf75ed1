// The pure part of cluster.results, on jobs as the controller sends them:
// which attempt's value counts, and the errors for what cannot be decoded or
// is missing. (test/cluster/results.test.ts covers it with real workers.)
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { FlusterError } from "../../src/core/errors.js";
import { decodeJobResults, isCommandJob, noResultsMessage } from "../../src/cluster/client/results.js";
import { encodeValue } from "../../src/rpc/codec.js";
import { AttemptSchema, JobSchema, JobState, TaskSchema, TaskState, type Attempt } from "../../src/rpc/gen/fluster/cluster/v1/types_pb.js";

function attempt(id: string, state: TaskState, result?: unknown): Attempt {
  return create(AttemptSchema, { attemptId: id, state, ...(result !== undefined ? { result: encodeValue(result) } : {}) });
}

function job(state: JobState, tasks: Array<{ state: TaskState; errorMessage?: string; attempts: Attempt[] }>) {
  return create(JobSchema, {
    jobId: "j-1",
    state,
    // Out of order on purpose: values come back in task order whatever order tasks arrive in.
    tasks: tasks.map((t, taskIndex) => create(TaskSchema, { taskIndex, state: t.state, errorMessage: t.errorMessage ?? "", attempts: t.attempts })).reverse(),
  });
}

describe("decodeJobResults", () => {
  test("values come in task order, each from the task's last succeeded attempt", () => {
    const j = job(JobState.SUCCEEDED, [
      { state: TaskState.SUCCEEDED, attempts: [attempt("a0", TaskState.SUCCEEDED, "zero")] },
      { state: TaskState.SUCCEEDED, attempts: [attempt("a1", TaskState.WORKER_FAILED), attempt("a2", TaskState.SUCCEEDED, new Map([[1, 2]]))] },
    ]);
    assert.deepEqual(decodeJobResults(j), ["zero", new Map([[1, 2]])]);
  });

  test("a succeeded task without a value is not_found, naming the task and attempt", () => {
    const j = job(JobState.SUCCEEDED, [
      { state: TaskState.SUCCEEDED, attempts: [attempt("a0", TaskState.SUCCEEDED, 1)] },
      { state: TaskState.SUCCEEDED, attempts: [attempt("a1", TaskState.SUCCEEDED)] },
    ]);
    assert.throws(() => decodeJobResults(j), (err: unknown) => err instanceof FlusterError && err.code === "not_found" && err.message === "job j-1: task 1 succeeded but the controller holds no result for it (attempt a1)");
  });

  test("bytes that do not decode name the task", () => {
    const j = job(JobState.SUCCEEDED, [{ state: TaskState.SUCCEEDED, attempts: [create(AttemptSchema, { attemptId: "a0", state: TaskState.SUCCEEDED, result: encodeValue("a string cut short").subarray(0, 4) })] }]);
    assert.throws(() => decodeJobResults(j), /^FlusterError: job j-1: the result of task 0 does not decode: cannot decode value/);
  });
});

describe("noResultsMessage", () => {
  test("names the failed task, not the ones killed after it", () => {
    const j = job(JobState.FAILED, [
      { state: TaskState.KILLED, errorMessage: "gang member failed", attempts: [] },
      { state: TaskState.SUCCEEDED, attempts: [] },
      { state: TaskState.FAILED, errorMessage: "RangeError: too big", attempts: [] },
    ]);
    assert.equal(noResultsMessage(j), "job j-1 failed: task 2 failed: RangeError: too big");
  });

  test("falls back to the job's own message when no task says why", () => {
    const j = create(JobSchema, { jobId: "j-2", state: JobState.KILLED, errorMessage: "stopped by alice" });
    assert.equal(noResultsMessage(j), "job j-2 killed: stopped by alice");
  });

  test("isCommandJob reads the entrypoint", () => {
    assert.equal(isCommandJob(create(JobSchema, { spec: { entrypoint: { kind: { case: "command", value: { argv: ["true"] } } } } })), true);
    assert.equal(isCommandJob(create(JobSchema, { spec: { entrypoint: { kind: { case: "function", value: { module: "m", name: "f" } } } } })), false);
  });
});
