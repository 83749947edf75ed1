// The worker's process runtime and attempt logs, with real processes: exit
// states, timeouts, killing whole process trees, orphans, and log streaming.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, realpathSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { ValidationError } from "../../src/core/errors.js";
import { AttemptLog, type LogEntry } from "../../src/cluster/worker/log-store.js";
import { PGID_FILE_NAME, reapOrphans } from "../../src/cluster/worker/process-group.js";
import {
  ProcessRuntime,
  type AttemptSpec,
  type ProcessRuntimeOptions,
  type RunningAttempt,
} from "../../src/cluster/worker/runtime.js";
import { eventually, isGone, killAll, waitForLine } from "../helpers/index.js";

const FAKE_DAEMON = fileURLToPath(new URL("../fixtures/runtime/daemon.ts", import.meta.url));
const root = mkdtempSync(join(tmpdir(), "fluster-runtime-"));
const runtimes: ProcessRuntime[] = [];
/** Every pid a test learned of, killed at the end in case a test failed half-way. */
const strays = new Set<number>();
let nextId = 0;

after(async () => {
  await Promise.all(runtimes.map((r) => r.shutdown()));
  // Attempt pids lead their own process groups: kill the groups too.
  killAll([...strays].flatMap((pid) => [-pid, pid]));
  rmSync(root, { recursive: true, force: true });
});

function newRuntime(options: ProcessRuntimeOptions = {}): ProcessRuntime {
  const runtime = new ProcessRuntime(options);
  runtimes.push(runtime);
  return runtime;
}

function spec(argv: string[], extra: Partial<AttemptSpec> = {}): AttemptSpec {
  const attemptId = `attempt-${++nextId}`;
  const logDir = join(root, "attempts", attemptId);
  return { attemptId, argv, cwd: root, env: {}, logDir, ...extra };
}

async function readAll(log: AttemptLog): Promise<LogEntry[]> {
  const all: LogEntry[] = [];
  for (let offset = 0; ; ) {
    const { entries, nextOffset } = await log.read(offset);
    if (entries.length === 0) return all;
    all.push(...entries);
    offset = nextOffset;
  }
}

function text(entries: LogEntry[], stream: "stdout" | "stderr"): string {
  return entries.filter((e) => e.stream === stream).map((e) => e.data).join("");
}

/** Follows the attempt's log until a stdout line appears; returns it. */
async function firstLine(attempt: RunningAttempt): Promise<string> {
  let seen = "";
  for await (const entry of attempt.log.follow(0)) {
    if (entry.stream !== "stdout") continue;
    seen += entry.data;
    const end = seen.indexOf("\n");
    if (end !== -1) return seen.slice(0, end);
  }
  throw new Error(`the attempt ended before printing a line: ${JSON.stringify(attempt.outcome)}`);
}

// A shell whose background `sleep` is a grandchild of the runtime; prints its pid.
const WITH_GRANDCHILD = ["sh", "-c", "sleep 30 & echo $!; wait"];

/** The pid such a shell prints first: the attempt's grandchild, killed at the end in any case. */
async function grandchildOf(attempt: RunningAttempt): Promise<number> {
  const pid = Number(await firstLine(attempt));
  strays.add(pid);
  return pid;
}

describe("ProcessRuntime", () => {
  test("a successful attempt: stdout is captured and readable after exit, listeners hear the end", async () => {
    const runtime = newRuntime();
    const changes: string[] = [];
    const unsubscribe = runtime.onChange((a) => changes.push(`${a.attemptId}:${a.state}`));
    const attempt = runtime.start(spec(["sh", "-c", "echo hello; echo world"]));
    assert.equal(attempt.state, "running");
    assert.ok(attempt.pid && attempt.pid > 0);
    assert.equal(runtime.get(attempt.attemptId), attempt);
    const outcome = await attempt.exited;
    unsubscribe();
    assert.equal(outcome.state, "succeeded");
    assert.equal(outcome.exitCode, 0);
    assert.equal(outcome.errorMessage, undefined);
    assert.equal(attempt.state, "succeeded");
    assert.deepEqual(changes, [`${attempt.attemptId}:succeeded`]);
    assert.equal(runtime.get(attempt.attemptId), undefined, "ended attempts are forgotten");
    assert.equal(text(await readAll(attempt.log), "stdout"), "hello\nworld\n");
    assert.ok(!existsSync(join(attempt.log.dir, PGID_FILE_NAME)), "the pgid file is removed at the end");
  });

  test("a failing attempt reports its exit code and the end of stderr", async () => {
    const runtime = newRuntime();
    const noise = Array.from({ length: 200 }, (_, i) => `noise line ${i}`).join("\n");
    const attempt = runtime.start(spec(["sh", "-c", `echo '${noise}' >&2; echo 'boom: disk on fire' >&2; exit 3`]));
    const outcome = await attempt.exited;
    assert.equal(outcome.state, "failed");
    assert.equal(outcome.exitCode, 3);
    assert.match(outcome.errorMessage ?? "", /^exited with code 3\n/);
    assert.match(outcome.errorMessage ?? "", /boom: disk on fire$/);
    assert.ok((outcome.errorMessage ?? "").length < 2200, "the stderr tail is trimmed");
    assert.ok(!(outcome.errorMessage ?? "").includes("noise line 0\n"));
  });

  test("spec env and cwd apply; the daemon's other variables are not inherited", async () => {
    const runtime = newRuntime();
    const cwd = mkdtempSync(join(root, "cwd-"));
    process.env.FLUSTER_TEST_DAEMON_SECRET = "must-not-leak";
    try {
      const attempt = runtime.start(
        spec(["sh", "-c", 'echo "$GREETING|$FLUSTER_ATTEMPT_ID|$(pwd)|${FLUSTER_TEST_DAEMON_SECRET:-unset}|${PATH:+has-path}"'], {
          cwd,
          env: { GREETING: "hi there" },
        }),
      );
      assert.equal((await attempt.exited).state, "succeeded");
      const line = text(await readAll(attempt.log), "stdout").trim();
      assert.equal(line, `hi there|${attempt.attemptId}|${realpathSync(cwd)}|unset|has-path`);
    } finally {
      delete process.env.FLUSTER_TEST_DAEMON_SECRET;
    }
  });

  test("a timeout kills the process group and fails with 'execution timeout exceeded'", async () => {
    const runtime = newRuntime();
    const attempt = runtime.start(spec(WITH_GRANDCHILD, { timeoutSeconds: 0.5 }));
    const grandchild = await grandchildOf(attempt);
    const outcome = await attempt.exited;
    assert.equal(outcome.state, "failed");
    assert.equal(outcome.errorMessage, "execution timeout exceeded");
    assert.ok(isGone(attempt.pid!), "the leader is gone");
    assert.ok(isGone(grandchild), "the grandchild is gone");
  });

  test("kill() kills the whole tree, is idempotent, and ends the attempt 'killed' with the reason", async () => {
    const runtime = newRuntime();
    const attempt = runtime.start(spec(WITH_GRANDCHILD));
    const grandchild = await grandchildOf(attempt);
    assert.ok(!isGone(grandchild));
    attempt.kill("stopped by the user");
    attempt.kill("a second reason is ignored");
    const outcome = await attempt.exited;
    attempt.kill("after the end: a no-op");
    assert.equal(outcome.state, "killed");
    assert.equal(outcome.errorMessage, "stopped by the user");
    assert.equal(outcome.signal, "SIGTERM");
    assert.ok(isGone(grandchild), "the grandchild is gone");
  });

  test("a task that ignores SIGTERM is SIGKILLed, group and all, after the grace period", async () => {
    const runtime = newRuntime();
    // An ignored signal stays ignored across fork and exec, so the sleep ignores SIGTERM too.
    const attempt = runtime.start(spec(["sh", "-c", "trap '' TERM; sleep 30 & echo $!; wait; wait"], { killGraceMs: 300 }));
    const grandchild = await grandchildOf(attempt);
    const killedAt = Date.now();
    attempt.kill("shutting down");
    const outcome = await attempt.exited;
    assert.ok(Date.now() - killedAt >= 280, "SIGKILL waits for the grace period");
    assert.equal(outcome.state, "killed");
    assert.equal(outcome.signal, "SIGKILL");
    assert.ok(isGone(grandchild), "the SIGTERM-ignoring grandchild is gone");
  });

  test("kill({ force: true }) escalates at once after a gentle kill", async () => {
    const runtime = newRuntime();
    const attempt = runtime.start(spec(["sh", "-c", "trap '' TERM; echo ready; sleep 30"], { killGraceMs: 20_000 }));
    await firstLine(attempt);
    attempt.kill("gently");
    attempt.kill("now", { force: true });
    const outcome = await attempt.exited;
    assert.equal(outcome.state, "killed");
    assert.equal(outcome.errorMessage, "gently");
    assert.equal(outcome.signal, "SIGKILL");
  });

  test("a signal the runtime did not send fails the attempt with its name", async () => {
    const runtime = newRuntime();
    const attempt = runtime.start(spec(["sh", "-c", "kill -SEGV $$"]));
    const outcome = await attempt.exited;
    assert.equal(outcome.state, "failed");
    assert.equal(outcome.signal, "SIGSEGV");
    assert.equal(outcome.errorMessage, "killed by signal SIGSEGV");
  });

  test("a program that does not exist fails the attempt without throwing", async () => {
    const runtime = newRuntime();
    const changed: string[] = [];
    runtime.onChange((a) => changed.push(a.state));
    const attempt = runtime.start(spec(["fluster-no-such-program", "--flag"]));
    assert.equal(attempt.pid, undefined);
    const outcome = await attempt.exited;
    assert.equal(outcome.state, "failed");
    assert.equal(outcome.errorMessage, "cannot start fluster-no-such-program: not found");
    assert.deepEqual(changed, ["failed"]);
    assert.equal(text(await readAll(attempt.log), "stderr"), "cannot start fluster-no-such-program: not found\n");
    const missingCwd = runtime.start(spec(["sh", "-c", "true"], { cwd: join(root, "no-such-dir") }));
    assert.match((await missingCwd.exited).errorMessage ?? "", /^cannot start sh: working directory .*no-such-dir does not exist$/);
  });

  test("start() validates the spec and refuses a duplicate running attempt", async () => {
    const runtime = newRuntime();
    assert.throws(() => runtime.start(spec([])), (err: unknown) => err instanceof ValidationError && err.field === "spec.argv");
    assert.throws(() => runtime.start(spec(["true"], { timeoutSeconds: -1 })), /spec.timeoutSeconds must be a positive number, got -1/);
    const first = runtime.start(spec(["sleep", "30"]));
    assert.throws(() => runtime.start({ ...spec(["true"]), attemptId: first.attemptId }), /already running/);
    first.kill("done");
    await first.exited;
  });

  test("follow() streams lines while the task runs and ends when it exits", async () => {
    const runtime = newRuntime();
    const attempt = runtime.start(spec(["sh", "-c", "echo one; sleep 0.4; echo two >&2; echo three"]));
    const seen: string[] = [];
    let stateAtFirst: string | undefined;
    for await (const entry of attempt.log.follow(0)) {
      stateAtFirst ??= attempt.state;
      seen.push(`${entry.stream}:${entry.data}`);
    }
    assert.equal(stateAtFirst, "running", "the first line arrived before the process exited");
    assert.deepEqual(seen, ["stdout:one\n", "stderr:two\n", "stdout:three\n"]);
    // The log is complete before the attempt records its end (it closes the log first): wait for that end.
    assert.equal((await attempt.exited).state, "succeeded");
  });

  test("follow() stops when its signal aborts", async () => {
    const runtime = newRuntime();
    const attempt = runtime.start(spec(["sh", "-c", "echo one; sleep 30"]));
    const controller = new AbortController();
    const seen: string[] = [];
    for await (const entry of attempt.log.follow(0, controller.signal)) {
      seen.push(entry.data);
      controller.abort();
    }
    assert.deepEqual(seen, ["one\n"]);
    attempt.kill("test over");
    await attempt.exited;
  });

  test("a task printing 50 MB is logged completely, read back in bounded pages", async () => {
    const runtime = newRuntime();
    const total = 50 * 1024 * 1024;
    const attempt = runtime.start(spec(["sh", "-c", `head -c ${total} /dev/zero | tr '\\0' x`]));
    assert.equal((await attempt.exited).state, "succeeded");
    let bytes = 0;
    let pages = 0;
    for (let offset = 0; ; pages++) {
      const { entries, nextOffset } = await attempt.log.read(offset);
      if (entries.length === 0) break;
      const pageBytes = entries.reduce((n, e) => n + e.data.length, 0);
      assert.ok(pageBytes <= 2 * 1024 * 1024, `a page holds ${pageBytes} bytes`);
      bytes += pageBytes;
      offset = nextOffset;
    }
    assert.equal(bytes, total);
    assert.ok(pages >= 25);
  });

  test("shutdown() kills every attempt, waits for them, and leaves no process", async () => {
    const runtime = newRuntime({ killGraceMs: 300 });
    const attempts = [
      runtime.start(spec(WITH_GRANDCHILD)),
      runtime.start(spec(["sh", "-c", "trap '' TERM; sleep 30 & echo $!; wait; wait"])),
      runtime.start(spec(["sleep", "30"])),
    ];
    const grandchildren = await Promise.all(attempts.slice(0, 2).map(grandchildOf));
    assert.equal(runtime.list().length, 3);
    await runtime.shutdown();
    assert.equal(runtime.state, "stopped");
    assert.deepEqual(runtime.list(), []);
    for (const attempt of attempts) {
      assert.equal(attempt.state, "killed");
      assert.equal(attempt.outcome?.errorMessage, "the worker is shutting down");
      assert.ok(isGone(attempt.pid!));
    }
    for (const pid of grandchildren) assert.ok(isGone(pid), `grandchild ${pid} is gone`);
    assert.throws(() => runtime.start(spec(["true"])), /the runtime is stopped/);
  });
});

describe("orphans", () => {
  /** Starts the fake daemon fixture, which runs one attempt; returns it and the attempt's pid. */
  async function startFakeDaemon(config: { attemptId: string; argv: string[]; logDir: string; pdeathsig: boolean; waitForOutput?: boolean }) {
    mkdirSync(config.logDir, { recursive: true });
    const daemon = spawn(process.execPath, ["--import", "tsx", FAKE_DAEMON, JSON.stringify(config)], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    strays.add(daemon.pid!);
    const exited = new Promise((done) => daemon.once("exit", done));
    // Its one line of output, once the attempt runs.
    const [line] = await waitForLine(daemon, /^\{"pid":\d+\}$/);
    const { pid } = JSON.parse(line) as { pid: number };
    strays.add(pid);
    return { daemon, pid, exited };
  }

  test("an attempt dies with its daemon when the daemon is SIGKILLed (pdeathsig)", async () => {
    const logDir = join(root, "orphans", "pdeathsig");
    const { daemon, pid, exited } = await startFakeDaemon({ attemptId: `orphan-${++nextId}`, argv: ["sleep", "30"], logDir, pdeathsig: true });
    assert.ok(!isGone(pid));
    daemon.kill("SIGKILL");
    await exited;
    await eventually(() => isGone(pid), { what: "the orphaned sleep to die", timeoutMs: 2000, intervalMs: 20 });
  });

  test("reapOrphans() kills the groups a killed daemon left behind, and only those", async () => {
    const attemptsDir = join(root, "orphans", "reap");
    const attemptId = `orphan-${++nextId}`;
    const logDir = join(attemptsDir, attemptId);
    const { daemon, pid, exited } = await startFakeDaemon({ attemptId, argv: WITH_GRANDCHILD, logDir, pdeathsig: false, waitForOutput: true });
    daemon.kill("SIGKILL");
    await exited;
    const grandchild = Number(text(await readAll(new AttemptLog(logDir)), "stdout").trim());
    strays.add(grandchild);
    assert.ok(!isGone(pid) && !isGone(grandchild), "without pdeathsig the attempt outlives its daemon");

    // A pgid file pointing at a process group that is not a Fluster attempt.
    const stranger = spawn("sleep", ["30"], { detached: true, stdio: "ignore" });
    strays.add(stranger.pid!);
    const strangerDir = join(attemptsDir, "not-ours");
    mkdirSync(strangerDir, { recursive: true });
    writeFileSync(join(strangerDir, PGID_FILE_NAME), `${stranger.pid}\nnot-ours\n1\n`);

    const reaped = await reapOrphans(attemptsDir);
    assert.deepEqual(reaped, [{ attemptId, pgid: pid, logDir }]);
    assert.ok(isGone(pid), "the orphaned leader is gone");
    assert.ok(isGone(grandchild), "the orphaned grandchild is gone");
    assert.ok(!isGone(stranger.pid!), "a group without our marker is left alone");
    assert.ok(!existsSync(join(logDir, PGID_FILE_NAME)) && !existsSync(join(strangerDir, PGID_FILE_NAME)), "stale pgid files are removed");
    stranger.kill("SIGKILL");
    assert.deepEqual(await reapOrphans(join(root, "no-such-dir")), []);
  });
});

describe("AttemptLog", () => {
  test("multi-byte characters split across chunks come back whole", async () => {
    const dir = join(root, "logs", "utf8");
    const log = AttemptLog.create(dir);
    const message = "héllo wörld — € 😀 日本語\n";
    const bytes = Buffer.from(message, "utf8");
    // Every byte its own chunk, interleaved on both streams.
    for (const byte of bytes) {
      log.append("stdout", Uint8Array.of(byte));
      log.append("stderr", Uint8Array.of(byte));
    }
    await log.close();
    const entries = await readAll(new AttemptLog(dir));
    assert.equal(text(entries, "stdout"), message);
    assert.equal(text(entries, "stderr"), message);
    assert.ok(entries.every((e) => !e.data.includes("\uFFFD")));
  });

  test("a log survives its writer: a new instance reads it, resumes by offset, and follow() ends at the end", async () => {
    const dir = join(root, "logs", "survive");
    const writer = AttemptLog.create(dir);
    const before = Date.now();
    writer.append("stdout", "first\n");
    writer.append("stderr", "second\n");
    writer.append("stdout", "third\n");
    await writer.close();
    assert.throws(() => writer.append("stdout", "late"), /not open for appending/);

    const reader = new AttemptLog(dir);
    const { entries, nextOffset } = await reader.read(0);
    assert.deepEqual(entries.map((e) => [e.stream, e.data]), [["stdout", "first\n"], ["stderr", "second\n"], ["stdout", "third\n"]]);
    assert.ok(entries.every((e) => e.time.getTime() >= before && e.time.getTime() <= Date.now()));
    assert.deepEqual((await reader.read(entries[1]!.offset)).entries.map((e) => e.data), ["second\n", "third\n"]);
    assert.deepEqual((await reader.read(entries[1]!.offset + 1)).entries.map((e) => e.data), ["third\n"]);
    assert.deepEqual(await reader.read(nextOffset), { entries: [], nextOffset });
    const followed: string[] = [];
    for await (const e of reader.follow(0)) followed.push(e.data);
    assert.deepEqual(followed, ["first\n", "second\n", "third\n"]);

    // A restarted daemon appends to the same log.
    const again = AttemptLog.create(dir);
    again.append("stdout", "fourth\n");
    await again.close();
    assert.deepEqual((await reader.read(nextOffset)).entries.map((e) => e.data), ["fourth\n"]);
    assert.deepEqual(await new AttemptLog(join(root, "logs", "never-written")).read(0), { entries: [], nextOffset: 0 });
  });

  test("an over-long chunk is split into entries of at most maxEntryChars, losing nothing; a reader skips a record too long to be ours", async () => {
    const dir = join(root, "logs", "long");
    const log = AttemptLog.create(dir, { maxEntryChars: 1000 });
    const line = `${"a".repeat(2500)}😀${"b".repeat(10)}\n`;
    log.append("stdout", line);
    await log.close();
    const entries = await readAll(new AttemptLog(dir));
    assert.ok(entries.length >= 3, `${entries.length} entries`);
    assert.ok(entries.every((e) => e.data.length <= 1000));
    assert.equal(text(entries, "stdout"), line, "split, never truncated, and no surrogate pair cut in two");
    assert.throws(() => AttemptLog.create(join(root, "logs", "bad"), { maxEntryChars: 0 }), /maxEntryChars must be a whole number from 1 to 1048576/);

    // A file written by something else: one 8 MB line without a newline, then a record of ours.
    const foreign = join(root, "logs", "foreign");
    mkdirSync(foreign, { recursive: true });
    writeFileSync(join(foreign, "output.jsonl"), `${"x".repeat(8 * 1024 * 1024)}\n${JSON.stringify({ t: 1, s: "o", d: "after\n" })}\n`);
    assert.deepEqual((await readAll(new AttemptLog(foreign))).map((e) => e.data), ["after\n"]);
  });

  test("a reader opened beside a live writer follows it until it closes", async () => {
    const dir = join(root, "logs", "live");
    const writer = AttemptLog.create(dir);
    writer.append("stdout", "a\n");
    const seen: string[] = [];
    const following = (async () => {
      for await (const e of new AttemptLog(dir).follow(0)) {
        seen.push(e.data);
        if (seen.length === 1) writer.append("stdout", "b\n");
        if (seen.length === 2) void writer.close();
      }
    })();
    await following;
    assert.deepEqual(seen, ["a\n", "b\n"]);
  });
});
