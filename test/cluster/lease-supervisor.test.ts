// The lease supervisor, a real process: it SIGKILLs the recorded attempt
// groups of its daemon once the lease file's deadline passes (leaving a note
// saying why), leaves them alone while the deadline is renewed, and kills
// them at once when its daemon goes away.
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { LeaseFileWriter, monotonicMs, readLeaseDeadline } from "../../src/cluster/worker/lease-file.js";
import { LeaseSupervisor } from "../../src/cluster/worker/lease-supervisor.js";
import { FENCED_FILE_NAME, PGID_FILE_NAME } from "../../src/cluster/worker/process-group.js";
import { eventually, isGone } from "../helpers/index.js";
import { silentLogger } from "../../src/core/logger.js";

describe("lease file", () => {
  test("holds the latest deadline, never moves back, and reads as 0 before the first grant", () => {
    const dir = mkdtempSync(join(tmpdir(), "fluster-lease-file-"));
    try {
      const writer = new LeaseFileWriter(join(dir, "lease"));
      assert.equal(readLeaseDeadline(writer.path), 0);
      writer.renew(123_456.789);
      assert.equal(readLeaseDeadline(writer.path), 123_456.789);
      writer.renew(100);
      assert.equal(readLeaseDeadline(writer.path), 123_456.789, "never backwards");
      writer.close();
      assert.equal(readLeaseDeadline(join(dir, "missing")), undefined);
      writeFileSync(join(dir, "torn"), "D0001");
      assert.equal(readLeaseDeadline(join(dir, "torn")), undefined);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("lease supervisor", () => {
  let cleanup: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanup.reverse()) await c();
    cleanup = [];
  });

  /** A supervisor over a fresh attempts directory with one recorded attempt: `sleep 60` in its own group, as the runtime starts one. */
  async function supervised(): Promise<{ supervisor: LeaseSupervisor; lease: LeaseFileWriter; task: ChildProcess; attemptDir: string }> {
    const dir = mkdtempSync(join(tmpdir(), "fluster-supervisor-"));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const attemptsDir = join(dir, "attempts");
    const attemptDir = join(attemptsDir, "job-1_0_0");
    mkdirSync(attemptDir, { recursive: true });
    const lease = new LeaseFileWriter(join(dir, "lease"));
    cleanup.push(() => lease.close());
    const task = spawn("sleep", ["60"], { detached: true, stdio: "ignore", env: { ...process.env, FLUSTER_ATTEMPT_ID: "job-1/0/0" } });
    cleanup.push(() => {
      if (!isGone(task.pid!)) process.kill(-task.pid!, "SIGKILL");
    });
    writeFileSync(join(attemptDir, PGID_FILE_NAME), `${task.pid}\njob-1/0/0\n${process.pid}\n`);
    const supervisor = await LeaseSupervisor.start({ attemptsDir, leaseFile: lease.path, logger: silentLogger() });
    cleanup.push(() => supervisor.close());
    return { supervisor, lease, task, attemptDir };
  }

  test("kills a recorded attempt group once the deadline passes, within its check period, and notes why", { timeout: 30_000 }, async () => {
    const { lease, task, attemptDir } = await supervised();
    const exited = new Promise<NodeJS.Signals | null>((resolve) => task.once("exit", (_code, signal) => resolve(signal)));
    const deadline = monotonicMs() + 600;
    lease.renew(deadline);
    const signal = await exited;
    const late = monotonicMs() - deadline;
    assert.equal(signal, "SIGKILL");
    assert.ok(late >= 0 && late < 1_000, `killed ${late.toFixed(0)} ms after the deadline (checks every 100 ms; loaded machine)`);
    assert.match(readFileSync(join(attemptDir, FENCED_FILE_NAME), "utf8"), /^fenced: the worker's lease ran out \d+\.\ds ago/);
  });

  test("a deadline renewed in time keeps the attempt; no deadline granted yet fences nothing", { timeout: 30_000 }, async () => {
    const { lease, task, attemptDir } = await supervised();
    await sleep(500); // deadline 0: no lease yet
    for (let i = 0; i < 10; i++) {
      lease.renew(monotonicMs() + 400);
      await sleep(150);
    }
    assert.equal(isGone(task.pid!), false, "still running");
    assert.equal(existsSync(join(attemptDir, FENCED_FILE_NAME)), false);
  });

  test("when its daemon goes (the pipe closes), it kills what is recorded at once and exits", { timeout: 30_000 }, async () => {
    const { supervisor, lease, task } = await supervised();
    lease.renew(monotonicMs() + 60_000);
    const exited = new Promise<void>((resolve) => task.once("exit", () => resolve()));
    await supervisor.close();
    await exited;
    await eventually(() => isGone(supervisor.pid!), { what: "the supervisor to exit", timeoutMs: 5_000 });
  });
});
