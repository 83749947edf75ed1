// The task state machine, one row per transition: every event from every
// state, both retry budgets at and past their limits.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { TASK_STATES, type TaskState } from "../../../src/core/status.js";
import { isActiveAttempt, nextTaskState, progressRank, type TaskEvent, type TaskSnapshot } from "../../../src/cluster/controller/task-state.js";

const LIMITS = { maxRetriesFailure: 1, maxRetriesPreemption: 2 };
const task = (state: TaskState, counts: Partial<TaskSnapshot> = {}): TaskSnapshot => ({ state, failureCount: 0, preemptionCount: 0, ...counts });

type Expected = { state: TaskState; retry?: boolean; finished?: boolean; failureCount?: number; preemptionCount?: number; errorMessage?: string } | "unchanged";

const ended = (state: Extract<TaskEvent, { kind: "attempt_ended" }>["state"], extra: { exitCode?: number; errorMessage?: string } = {}): TaskEvent => ({ kind: "attempt_ended", state, ...extra });

const ROWS: Array<[name: string, from: TaskSnapshot, event: TaskEvent, expected: Expected]> = [
  ["pending is placed", task("pending"), { kind: "placed" }, { state: "assigned" }],
  ["assigned starts building", task("assigned"), { kind: "progressed", state: "building" }, { state: "building" }],
  ["assigned starts running", task("assigned"), { kind: "progressed", state: "running" }, { state: "running" }],
  ["building starts running", task("building"), { kind: "progressed", state: "running" }, { state: "running" }],
  ["a late assigned never overwrites running", task("running"), { kind: "progressed", state: "assigned" }, "unchanged"],
  ["a late building never overwrites running", task("running"), { kind: "progressed", state: "building" }, "unchanged"],
  ["progress of a pending task (a stale report) is ignored", task("pending"), { kind: "progressed", state: "running" }, "unchanged"],
  ["running succeeds", task("running"), ended("succeeded", { exitCode: 0 }), { state: "succeeded", finished: true }],
  ["assigned can succeed at once", task("assigned"), ended("succeeded"), { state: "succeeded", finished: true }],
  ["a failure within the budget retries", task("running"), ended("failed", { exitCode: 3 }), { state: "pending", retry: true, failureCount: 1 }],
  ["a failure past the budget fails the task", task("running", { failureCount: 1 }), ended("failed", { exitCode: 3, errorMessage: "exited with code 3" }), { state: "failed", finished: true, failureCount: 2, errorMessage: "exited with code 3" }],
  ["a lost worker within the budget retries", task("running"), ended("worker_failed"), { state: "pending", retry: true, preemptionCount: 1 }],
  ["a preemption within the budget retries", task("building", { preemptionCount: 1 }), ended("preempted"), { state: "pending", retry: true, preemptionCount: 2 }],
  ["a kill the controller did not ask for counts as a lost worker", task("running"), ended("killed"), { state: "pending", retry: true, preemptionCount: 1 }],
  [
    "a lost worker past the budget fails the task and says how often it retried",
    task("running", { preemptionCount: 2 }),
    ended("worker_failed", { errorMessage: "worker w1 lost the attempt" }),
    { state: "failed", finished: true, preemptionCount: 3, errorMessage: "worker w1 lost the attempt (retried 2 times after worker failures)" },
  ],
  ["failures do not spend the preemption budget", task("running", { preemptionCount: 2 }), ended("failed"), { state: "pending", retry: true, failureCount: 1, preemptionCount: 2 }],
  ["an attempt ending for a pending task (a stale report) is ignored", task("pending"), ended("failed"), "unchanged"],
  ["a pending task is killed", task("pending"), { kind: "killed", reason: "terminated by request" }, { state: "killed", finished: true, errorMessage: "terminated by request" }],
  ["a running task is killed", task("running"), { kind: "killed", reason: "job failed" }, { state: "killed", finished: true, errorMessage: "job failed" }],
  ["a retrying task is killed", task("pending", { failureCount: 1 }), { kind: "killed", reason: "stop" }, { state: "killed", finished: true, failureCount: 1 }],
  ["a pending task becomes unschedulable", task("pending"), { kind: "unschedulable", reason: "not scheduled within 5s" }, { state: "unschedulable", finished: true, errorMessage: "not scheduled within 5s" }],
  ["a running task never becomes unschedulable", task("running"), { kind: "unschedulable", reason: "late" }, "unchanged"],
  ["placing a running task is refused", task("running"), { kind: "placed" }, "unchanged"],
  [
    "an attempt the worker never started goes back to pending at no cost",
    task("assigned", { preemptionCount: 2 }),
    { kind: "not_started", reason: "worker w1 refused the attempt: no room" },
    { state: "pending", retry: true, preemptionCount: 2, errorMessage: "worker w1 refused the attempt: no room" },
  ],
  ["an attempt that already runs cannot be not started", task("running"), { kind: "not_started", reason: "late" }, "unchanged"],
  ["not started means nothing to a pending task", task("pending"), { kind: "not_started", reason: "stale" }, "unchanged"],
  [
    "a gang restart after a failure takes a running task back to pending, charged one failure",
    task("running", { failureCount: 1, preemptionCount: 2 }),
    { kind: "gang_restart", cause: "failure", reason: "gang restart: task 2 failed: exited with code 3" },
    { state: "pending", retry: true, failureCount: 2, preemptionCount: 2, errorMessage: "gang restart: task 2 failed: exited with code 3" },
  ],
  [
    "a gang restart after a lost worker charges the preemption budget",
    task("building", { failureCount: 1 }),
    { kind: "gang_restart", cause: "preemption", reason: "gang restart: task 0 lost its worker" },
    { state: "pending", retry: true, failureCount: 1, preemptionCount: 1 },
  ],
  ["a gang restart takes an assigned task back too", task("assigned"), { kind: "gang_restart", cause: "failure", reason: "r" }, { state: "pending", retry: true, failureCount: 1 }],
  [
    "a gang restart charges a task that already waits, so a gang's counts stay equal",
    task("pending"),
    { kind: "gang_restart", cause: "preemption", reason: "r" },
    { state: "pending", retry: true, preemptionCount: 1, errorMessage: "r" },
  ],
  [
    "a gang restart never fails a task, even past its limit (the cause's task checks the limit)",
    task("running", { failureCount: 5 }),
    { kind: "gang_restart", cause: "failure", reason: "r" },
    { state: "pending", retry: true, failureCount: 6 },
  ],
];

describe("nextTaskState", () => {
  for (const [name, from, event, expected] of ROWS) {
    test(name, () => {
      const next = nextTaskState(from, event, LIMITS);
      if (expected === "unchanged") {
        assert.equal(next.changed, false);
        assert.deepEqual([next.state, next.failureCount, next.preemptionCount], [from.state, from.failureCount, from.preemptionCount]);
        return;
      }
      assert.equal(next.changed, true);
      assert.equal(next.state, expected.state);
      assert.equal(next.retry, expected.retry ?? false, "retry");
      assert.equal(next.finished, expected.finished ?? false, "finished");
      assert.equal(next.failureCount, expected.failureCount ?? from.failureCount, "failureCount");
      assert.equal(next.preemptionCount, expected.preemptionCount ?? from.preemptionCount, "preemptionCount");
      if (expected.errorMessage !== undefined) assert.equal(next.errorMessage, expected.errorMessage);
    });
  }

  test("every event leaves a finished task as it is", () => {
    const events: TaskEvent[] = [
      { kind: "placed" },
      { kind: "progressed", state: "running" },
      ended("succeeded"),
      ended("failed"),
      ended("worker_failed"),
      { kind: "killed", reason: "x" },
      { kind: "unschedulable", reason: "x" },
      { kind: "not_started", reason: "x" },
      { kind: "gang_restart", cause: "failure", reason: "x" },
      { kind: "gang_restart", cause: "preemption", reason: "x" },
    ];
    for (const state of ["succeeded", "failed", "killed", "unschedulable"] as const) {
      for (const event of events) {
        const next = nextTaskState(task(state, { failureCount: 1 }), event, LIMITS);
        assert.equal(next.changed, false, `${state} + ${event.kind}`);
        assert.equal(next.state, state);
      }
    }
  });

  test("placing clears the previous attempt's exit code and error; a kill keeps the exit code", () => {
    const failed = { ...task("pending", { failureCount: 1 }), exitCode: 3, errorMessage: "exited with code 3" };
    const placed = nextTaskState(failed, { kind: "placed" }, LIMITS);
    assert.equal(placed.exitCode, undefined);
    assert.equal(placed.errorMessage, undefined);
    const killed = nextTaskState(failed, { kind: "killed", reason: "stop" }, LIMITS);
    assert.equal(killed.exitCode, 3);
    assert.equal(killed.errorMessage, "stop");
  });

  test("a budget of 0 fails on the first failure; retries never exceed the limit", () => {
    const none = { maxRetriesFailure: 0, maxRetriesPreemption: 0 };
    assert.equal(nextTaskState(task("running"), ended("failed"), none).state, "failed");
    assert.equal(nextTaskState(task("running"), ended("preempted"), none).state, "failed");
    let current = task("running");
    let attempts = 0;
    while (current.state !== "failed") {
      attempts++;
      const next = nextTaskState(current, ended("failed"), LIMITS);
      current = next.state === "pending" ? { ...next, state: "running" } : next;
    }
    assert.equal(attempts, LIMITS.maxRetriesFailure + 1);
  });
});

describe("gang restarts", () => {
  // A gang of three as the ledger drives it: task 1 keeps failing, each time
  // its siblings get a gang_restart; task 0 succeeded early and stays so.
  test("every unfinished task carries the same counts, and the gang gets exactly maxRetriesFailure restarts", () => {
    const limits = { maxRetriesFailure: 2, maxRetriesPreemption: 0 };
    const gang: TaskSnapshot[] = [task("succeeded"), task("running"), task("running")];
    let restarts = 0;
    for (;;) {
      const cause = nextTaskState(gang[1]!, ended("failed", { exitCode: 1 }), limits);
      gang[1] = cause;
      if (cause.state === "failed") break;
      restarts++;
      for (const i of [0, 2]) gang[i] = nextTaskState(gang[i]!, { kind: "gang_restart", cause: "failure", reason: "r" }, limits);
      assert.deepEqual(gang.map((t) => t.state), ["succeeded", "pending", "pending"]);
      // Placed and running again, together.
      for (const i of [1, 2]) gang[i] = { ...gang[i]!, state: "running" };
    }
    assert.equal(restarts, limits.maxRetriesFailure);
    assert.deepEqual(gang.map((t) => t.failureCount), [0, 3, 2], "the failed task's last charge has no restart behind it");
    assert.equal(gang[0]!.state, "succeeded");
    assert.equal(gang[2]!.preemptionCount, 0);
  });
});

describe("active states", () => {
  test("exactly assigned, building and running are active, in that order", () => {
    assert.deepEqual(TASK_STATES.filter(isActiveAttempt), ["assigned", "building", "running"]);
    assert.ok(progressRank("assigned") < progressRank("building") && progressRank("building") < progressRank("running"));
    assert.equal(progressRank("pending"), 0);
  });
});
