// Structured logs (docs/logging.md): createLogger's formats and levels, then
// the real `fluster controller serve` and `fluster worker serve` processes
// writing JSON lines to a piped stderr while they run a job, and the
// controller logging a worker it lost.
import { after, afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { Cluster } from "../../src/cluster/client/cluster.js";
import { LocalCluster } from "../../src/cluster/client/local-cluster.js";
import { startController } from "../../src/cluster/controller/server.js";
import { WorkerDaemon } from "../../src/cluster/worker/daemon.js";
import { Entrypoint } from "../../src/core/entrypoint.js";
import { ValidationError } from "../../src/core/errors.js";
import { createLogger, silentLogger } from "../../src/core/logger.js";
import { REPO_ROOT, cleanEnv, eventually, freePort, runNode, stopProcess, waitForLine } from "../helpers/index.js";
import { captureLogs, type LogRecord } from "../helpers/logs.js";

const bin = join(REPO_ROOT, "bin", "fluster.js");
const children: ChildProcess[] = [];
const dirs: string[] = [];

afterEach(async () => {
  for (const child of children.splice(0)) await stopProcess(child, "SIGKILL");
});
after(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "fluster-logging-"));
  dirs.push(dir);
  return dir;
}

/** What a stream got, once it has been written to synchronously. */
function collect(stream: PassThrough): () => string {
  let text = "";
  stream.setEncoding("utf8").on("data", (chunk: string) => (text += chunk));
  return () => text;
}

/** Every non-empty line of `text`, parsed as the JSON object it must be. */
function jsonLines(text: string): LogRecord[] {
  return text
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => {
      const parsed = JSON.parse(line) as unknown;
      assert.ok(parsed !== null && typeof parsed === "object" && !Array.isArray(parsed), `not one JSON object: ${line}`);
      return parsed as LogRecord;
    });
}

/** The documented fields of every line. */
function assertDocumentedFields(records: readonly LogRecord[], component: string): void {
  assert.ok(records.length > 0, "no lines");
  for (const r of records) {
    assert.match(r.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, JSON.stringify(r));
    assert.ok(["debug", "info", "warn", "error"].includes(r.level), JSON.stringify(r));
    assert.equal(r.component, component, JSON.stringify(r));
    assert.match(r.event, /^[a-z]+(_[a-z]+)*$/, JSON.stringify(r));
    assert.equal(typeof r.msg, "string", JSON.stringify(r));
    assert.ok(!("pid" in r) && !("hostname" in r), `pino's pid and hostname are left out: ${JSON.stringify(r)}`);
  }
}

describe("createLogger", () => {
  test("off a terminal it writes one JSON object per line with the documented fields", () => {
    const stream = new PassThrough();
    const text = collect(stream);
    const logger = createLogger({ component: "worker", destination: stream });
    logger.info({ event: "attempt_started", jobId: "j-1", taskIndex: 0, attemptId: "j-1/0/0" }, "attempt j-1/0/0 started");
    logger.child({ workerId: "w-1" }).warn({ event: "controller_unreachable", reason: "ECONNREFUSED" }, "waiting for the controller");
    const records = jsonLines(text());
    assertDocumentedFields(records, "worker");
    assert.deepEqual(
      records.map(({ time: _time, ...rest }) => rest),
      [
        { level: "info", component: "worker", event: "attempt_started", jobId: "j-1", taskIndex: 0, attemptId: "j-1/0/0", msg: "attempt j-1/0/0 started" },
        { level: "warn", component: "worker", workerId: "w-1", event: "controller_unreachable", reason: "ECONNREFUSED", msg: "waiting for the controller" },
      ],
    );
  });

  test("a real pipe is not a terminal: a child's stderr gets JSON", async () => {
    const script = `import { createLogger } from ${JSON.stringify(join(REPO_ROOT, "src/core/logger.ts"))};
createLogger({ component: "controller" }).info({ event: "controller_started", address: "http://x:1" }, "serving");
process.exit(0);`;
    const result = await runNode(["--import", "tsx", "--input-type=module", "-e", script], { env: cleanEnv(), timeoutMs: 30_000 });
    assert.equal(result.code, 0, result.stderr);
    const records = jsonLines(result.stderr);
    assertDocumentedFields(records, "controller");
    assert.deepEqual(records.map((r) => [r.event, r.address, r.msg]), [["controller_started", "http://x:1", "serving"]], "written before process.exit, none lost");
  });

  test("pretty lines when forced or on a terminal: time, level, component and message on one line", () => {
    const stream = new PassThrough();
    const text = collect(stream);
    createLogger({ component: "controller", destination: stream, format: "pretty" }).info({ event: "worker_registered", workerId: "w-1" }, "worker w-1 registered");
    const line = text();
    assert.match(line, /^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\] INFO: controller: worker w-1 registered \{"event":"worker_registered","workerId":"w-1"\}\n$/);
    // A terminal gets them in colour without being asked.
    const written: string[] = [];
    createLogger({ component: "worker", destination: { isTTY: true, write: (l) => written.push(l) } }).warn({ event: "attempts_fenced" }, "fenced");
    assert.equal(written.length, 1);
    assert.match(written[0] ?? "", /\u001b\[\d+m/, "coloured");
    assert.throws(() => JSON.parse(written[0] ?? ""));
  });

  test("the level filters; FLUSTER_LOG_LEVEL is the default; a bad level or format fails naming the value", () => {
    const stream = new PassThrough();
    const text = collect(stream);
    const logger = createLogger({ component: "controller", destination: stream, format: "json", level: "warn" });
    logger.debug({ event: "a" }, "debug");
    logger.info({ event: "b" }, "info");
    logger.warn({ event: "c" }, "warn");
    logger.error({ event: "d" }, "error");
    assert.deepEqual(jsonLines(text()).map((r) => [r.level, r.event]), [["warn", "c"], ["error", "d"]]);

    const saved = process.env.FLUSTER_LOG_LEVEL;
    try {
      process.env.FLUSTER_LOG_LEVEL = "debug";
      const debugStream = new PassThrough();
      const debugText = collect(debugStream);
      createLogger({ component: "worker", destination: debugStream, format: "json" }).debug({ event: "lease_granted" }, "lease granted");
      assert.deepEqual(jsonLines(debugText()).map((r) => r.event), ["lease_granted"]);
      process.env.FLUSTER_LOG_LEVEL = "loud";
      assert.throws(() => createLogger({ component: "worker" }), (err: unknown) => {
        assert.ok(err instanceof ValidationError);
        assert.equal(err.message, 'FLUSTER_LOG_LEVEL must be one of debug, info, warn, error, silent, got "loud"');
        return true;
      });
    } finally {
      if (saved === undefined) delete process.env.FLUSTER_LOG_LEVEL;
      else process.env.FLUSTER_LOG_LEVEL = saved;
    }
    assert.throws(() => createLogger({ component: "worker", level: "verbose" as never }), /^ValidationError: level must be one of debug, info, warn, error, silent, got "verbose"$/);
    assert.throws(() => createLogger({ component: "worker", format: "xml" as never }), /^ValidationError: format must be one of json, pretty, auto, got "xml"$/);
  });
});

describe("docs/logging.md", () => {
  test("its tables name every event the controller and the worker log, and no other", () => {
    const sources = readdirSync(join(REPO_ROOT, "src/cluster"), { recursive: true, encoding: "utf8" })
      .filter((file) => file.endsWith(".ts"))
      .map((file) => readFileSync(join(REPO_ROOT, "src/cluster", file), "utf8"));
    const logged = new Set(sources.flatMap((text) => [...text.matchAll(/event: "([a-z_]+)"/g)].map((m) => m[1])));
    const doc = readFileSync(join(REPO_ROOT, "docs/logging.md"), "utf8");
    const documented = new Set([...doc.matchAll(/^\| `([a-z_]+)` \| (?:debug|info|warn|error) \|/gm)].map((m) => m[1]));
    assert.ok(logged.size >= 30, `found only ${logged.size} events in src/cluster`);
    assert.deepEqual([...logged].filter((e) => !documented.has(e)).sort(), [], "logged but not documented");
    assert.deepEqual([...documented].filter((e) => !logged.has(e)).sort(), [], "documented but never logged");
  });
});

/** A CLI daemon with stdout and stderr piped; stderr is kept. */
function spawnCli(args: string[]): { child: ChildProcess; stderr: () => string } {
  const child = spawn(process.execPath, [bin, ...args], { cwd: REPO_ROOT, env: cleanEnv(), stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  return { child, stderr: () => stderr };
}

describe("fluster controller serve and worker serve, stderr piped", { timeout: 120_000 }, () => {
  test("log JSON lines; a job's run shows as worker_registered, attempt_started, attempt_ended and job_finished with its ids", async () => {
    const port = await freePort();
    const controller = spawnCli(["controller", "serve", "--port", String(port), "--state-dir", join(tempDir(), "state")]);
    const [, url = ""] = await waitForLine(controller.child, /fluster controller serving at (\S+)/);
    const worker = spawnCli(["worker", "serve", "--controller", url, "--worker-id", "w-log", "--work-dir", join(tempDir(), "work"), "--cpu", "1", "--memory", "1g"]);
    await waitForLine(worker.child, /fluster worker w-log serving at/);
    const client = Cluster.connect(url);
    let jobId: string;
    try {
      jobId = await client.launch({ name: "logged", resources: { cpu: 0.5, memory: "64m" }, entrypoint: Entrypoint.fromCommand(["node", "-e", "process.exit(3)"]) });
      const info = await client.wait(jobId, { timeoutSeconds: 60 });
      assert.equal(info.status, "failed");
    } finally {
      await client.close();
    }
    const controllerEvents = (event: string) => jsonLines(controller.stderr()).filter((r) => r.event === event);
    await eventually(() => controllerEvents("job_finished").length > 0, { what: "the controller to log the job finished", timeoutMs: 10_000 });
    await eventually(() => jsonLines(worker.stderr()).some((r) => r.event === "attempt_ended"), { what: "the worker to log the attempt ended", timeoutMs: 10_000 });

    const controllerLines = jsonLines(controller.stderr());
    assertDocumentedFields(controllerLines, "controller");
    const [registered] = controllerEvents("worker_registered");
    assert.equal(registered?.workerId, "w-log");
    assert.match(String(registered?.address), /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.deepEqual((registered?.resources as { cpu: number; memoryBytes: number }).cpu, 1);
    const started = controllerEvents("attempt_started");
    assert.deepEqual(started.map((r) => [r.jobId, r.taskIndex, r.workerId, r.attemptId]), [[jobId, 0, "w-log", `${jobId}/0/0`]]);
    const ended = controllerEvents("attempt_ended");
    assert.deepEqual(ended.map((r) => [r.jobId, r.attemptId, r.state, r.exitCode]), [[jobId, `${jobId}/0/0`, "failed", 3]]);
    assert.equal(typeof ended[0]?.durationMs, "number");
    assert.deepEqual(controllerEvents("job_finished").map((r) => [r.jobId, r.state, r.exitCode]), [[jobId, "failed", 3]]);

    const workerLines = jsonLines(worker.stderr());
    assertDocumentedFields(workerLines, "worker");
    const workerEvent = (event: string) => workerLines.filter((r) => r.event === event);
    assert.deepEqual(workerEvent("worker_registered").map((r) => [r.workerId, r.controllerUrl]), [["w-log", url]]);
    assert.deepEqual(workerEvent("attempt_started").map((r) => [r.workerId, r.jobId, r.attemptId, typeof r.processId]), [["w-log", jobId, `${jobId}/0/0`, "number"]]);
    assert.deepEqual(workerEvent("attempt_ended").map((r) => [r.workerId, r.jobId, r.state, r.exitCode]), [["w-log", jobId, "failed", 3]]);
  });

  test("--log-format pretty and --log-level: readable lines, or only what is at least that severe; a bad level is one error line", async () => {
    const pretty = spawnCli(["controller", "serve", "--port", String(await freePort()), "--state-dir", join(tempDir(), "state"), "--log-format", "pretty"]);
    await waitForLine(pretty.child, /fluster controller serving at/);
    await eventually(() => pretty.stderr().includes("\n"), { what: "the controller's first line", timeoutMs: 10_000 });
    assert.match(pretty.stderr(), /^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\] INFO: controller: serving at http:\/\/127\.0\.0\.1:\d+/);

    const quiet = spawnCli(["controller", "serve", "--port", String(await freePort()), "--state-dir", join(tempDir(), "state"), "--log-level", "warn"]);
    await waitForLine(quiet.child, /fluster controller serving at/);
    await stopProcess(quiet.child, "SIGINT");
    assert.equal(quiet.stderr(), "", "no info line (controller_started, controller_stopping) at warn");

    const bad = await runNode([bin, "controller", "serve", "--log-level", "loud"], { env: cleanEnv(), timeoutMs: 20_000 });
    assert.equal(bad.code, 1);
    assert.equal(bad.stderr.trim().split("\n").length, 1, bad.stderr);
    assert.match(bad.stderr, /--log-level <level>' argument 'loud' is invalid\. Allowed choices are debug, info, warn, error, silent/);
  });
});

describe("a worker daemon asked to kill an attempt", { timeout: 60_000 }, () => {
  test("logs the request with its reason, then the attempt's end with the signal that ended it", async () => {
    const server = await startController({ stateDir: ":memory:", reconcileIntervalSeconds: 0.2, logger: silentLogger() });
    const logs = captureLogs("worker");
    const daemon = new WorkerDaemon({ controllerUrl: server.url, workerId: "w-kill", workDir: join(tempDir(), "work"), cpu: 1, memory: 2 ** 30, killGraceSeconds: 1, logger: logs.logger });
    const client = Cluster.connect(server.url);
    try {
      await daemon.start();
      const jobId = await client.launch({ name: "stopped", resources: { cpu: 0.5, memory: "32m" }, entrypoint: Entrypoint.fromCommand(["sleep", "60"]) });
      await eventually(() => logs.events("attempt_started").length > 0, { what: "the attempt to start", timeoutMs: 30_000 });
      await client.terminate(jobId, "enough");
      await eventually(() => logs.events("attempt_ended").length > 0, { what: "the attempt to end", timeoutMs: 30_000 });
      const requested = logs.events("attempt_kill_requested");
      assert.ok(requested.length >= 1, logs.messages.join("\n"));
      assert.deepEqual([requested[0]?.workerId, requested[0]?.jobId, requested[0]?.attemptId, requested[0]?.reason], ["w-kill", jobId, `${jobId}/0/0`, "enough"]);
      const [ended] = logs.events("attempt_ended");
      assert.deepEqual([ended?.attemptId, ended?.state, ended?.signal, ended?.exitCode], [`${jobId}/0/0`, "killed", "SIGTERM", undefined]);
      assert.match(ended?.msg ?? "", /^attempt \S+ ended killed \(signal SIGTERM\): enough/);
    } finally {
      await client.close();
      await daemon.shutdown();
      await server.shutdown();
    }
  });
});

describe("a worker SIGKILLed", { timeout: 120_000 }, () => {
  test("the controller logs worker_lost with why and the attempts it had, and the attempt's end", async () => {
    const logs = captureLogs("controller");
    const cluster = await LocalCluster.start({ workers: 1, workerLostGraceSeconds: 1, reconcileIntervalSeconds: 0.2, logger: logs.logger, workerCpu: 1 });
    try {
      const jobId = await cluster.launch({ name: "doomed", resources: { cpu: 0.5, memory: "32m" }, entrypoint: Entrypoint.fromCommand(["sleep", "60"]) });
      await eventually(async () => (await cluster.poll(jobId)).status === "running", { what: "the job to run", timeoutMs: 30_000 });
      const [worker] = cluster.workers;
      assert.ok(worker);
      await cluster.killWorker(worker.workerId, "SIGKILL");
      await eventually(() => logs.events("worker_lost").length > 0, { what: "the controller to log the lost worker", timeoutMs: 30_000 });
      const [lost] = logs.events("worker_lost");
      assert.equal(lost?.level, "warn");
      assert.equal(lost?.workerId, worker.workerId);
      assert.equal(lost?.address, worker.address);
      assert.match(String(lost?.reason), /stopped answering|refused/);
      assert.deepEqual(lost?.attemptIds, [`${jobId}/0/0`]);
      assert.equal(lost?.attempts, 1);
      const ended = logs.events("attempt_ended").filter((r) => r.attemptId === `${jobId}/0/0`);
      assert.deepEqual(ended.map((r) => [r.state, r.workerId]), [["worker_failed", worker.workerId]]);
      // Its task goes back to pending on the preemption budget.
      const retries = logs.events("task_retry_scheduled").filter((r) => r.jobId === jobId);
      assert.deepEqual(retries.map((r) => [r.budget, r.count]), [["preemption", 1]]);
      await cluster.terminate(jobId);
    } finally {
      await cluster.shutdown();
    }
  });
});
