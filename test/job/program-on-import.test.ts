// A module that defines tasks and also runs a program at its top level (no
// isMain() guard) is imported by every worker that resolves one of its
// tasks. Creating a job context or a LocalCluster there is refused at once,
// with the module and the fix in the message, instead of starting the
// program again in every worker without end.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { cleanEnv, eventually, killAll, processesWith, runNode, survivors } from "../helpers/index.js";

describe("a program at the top level of a module imported by reference", { timeout: 120_000 }, () => {
  test("threads context: the task fails with ProgramOnImportError and the program exits non-zero", async (t) => {
    const marker = randomUUID();
    const result = await runNode(["--import", "tsx", "test/fixtures/lifecycle/unguarded-threads.ts"], {
      env: cleanEnv({ LIFECYCLE_TEST_RUN: marker }),
      timeoutMs: 45_000,
      timeoutSignal: "SIGKILL",
    });
    t.after(async () => killAll(await survivors([`LIFECYCLE_TEST_RUN=${marker}`])));
    assert.notEqual(result.code, 0, `the program must fail, not finish or hang; stdout:\n${result.stdout}`);
    assert.notEqual(result.code, null, `the program was killed at the time limit (it hung); stderr:\n${result.stderr.slice(-2000)}`);
    assert.match(result.stderr, /ProgramOnImportError\]?: createJobContext\("threads"\) was called while this worker thread was importing \S*unguarded-threads\.ts to find "square"/);
    assert.match(result.stderr, /if \(isMain\(import\.meta\)\) \{/);
  });

  test("LocalCluster: the function job fails with ProgramOnImportError and the program exits non-zero", async (t) => {
    const marker = randomUUID();
    const result = await runNode(["--import", "tsx", "test/fixtures/lifecycle/unguarded-local-cluster.ts"], {
      env: cleanEnv({ LIFECYCLE_TEST_RUN: marker }),
      timeoutMs: 60_000,
      timeoutSignal: "SIGKILL",
    });
    t.after(async () => killAll(await survivors([`LIFECYCLE_TEST_RUN=${marker}`])));
    assert.notEqual(result.code, 0, `the program must fail; stdout:\n${result.stdout}`);
    assert.notEqual(result.code, null, `the program was killed at the time limit (it hung); stderr:\n${result.stderr.slice(-2000)}`);
    assert.match(result.stderr, /LocalCluster\.start\(\) was called while this process was importing \S*unguarded-local-cluster\.ts to find "square"/);
    assert.match(result.stderr, /if \(isMain\(import\.meta\)\) \{/);
  });

  test("cluster context: the actor's job fails with ProgramOnImportError, createActor says so at once, and the program exits non-zero", async (t) => {
    const marker = randomUUID();
    const result = await runNode(["--import", "tsx", "test/fixtures/lifecycle/unguarded-actor.ts"], {
      env: cleanEnv({ LIFECYCLE_TEST_RUN: marker }),
      timeoutMs: 90_000,
      timeoutSignal: "SIGKILL",
    });
    t.after(async () => killAll(await survivors([`LIFECYCLE_TEST_RUN=${marker}`])));
    assert.notEqual(result.code, 0, `the program must fail; stdout:\n${result.stdout}`);
    assert.notEqual(result.code, null, `the program was killed at the time limit (it hung); stderr:\n${result.stderr.slice(-2000)}`);
    assert.match(result.stderr, /actor counter did not start: its job \S+ failed at its first start, so it was stopped, not restarted: .*ProgramOnImportError: createJobContext\("cluster"\) was called while this process was importing \S*unguarded-actor\.ts to find "Counter"/);
    await eventually(() => processesWith([`LIFECYCLE_TEST_RUN=${marker}`]).length === 0, { what: "the program's cluster to go with it", timeoutMs: 30_000, intervalMs: 200 });
  });
});
