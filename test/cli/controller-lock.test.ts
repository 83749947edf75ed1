// One controller per state directory, and a worker with the wrong token, as
// a person meets them: real `fluster controller serve` and `fluster worker
// serve` processes on loopback.
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO_ROOT, cleanEnv, freePort, runNode, stopProcess, waitForLine } from "../helpers/index.js";

const bin = join(REPO_ROOT, "bin", "fluster.js");
const children: ChildProcess[] = [];
const dirs: string[] = [];

afterEach(async () => {
  for (const child of children.splice(0)) await stopProcess(child, "SIGKILL");
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "fluster-lock-"));
  dirs.push(dir);
  return dir;
}

/** Starts `fluster controller serve` and resolves with its URL once it serves; stderr is collected. */
async function serve(stateDir: string, env: NodeJS.ProcessEnv = {}): Promise<{ child: ChildProcess; url: string; stderr: () => string }> {
  const port = await freePort();
  const child = spawn(process.execPath, [bin, "controller", "serve", "--port", String(port), "--state-dir", stateDir], { cwd: REPO_ROOT, env: cleanEnv(env), stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const [, url] = await waitForLine(child, /fluster controller serving at (\S+)/);
  return { child, url: url as string, stderr: () => stderr };
}

/** The controller's stderr off a terminal: one JSON object per line. */
function logLines(stderr: string): Array<{ event: string; msg: string; [field: string]: unknown }> {
  return stderr
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as { event: string; msg: string });
}

describe("one controller per state directory", { timeout: 60_000 }, () => {
  test("a second controller on the same state directory fails at once, naming the first; the lock goes at shutdown", async () => {
    const dir = tempDir();
    const first = await serve(dir);
    const lock = JSON.parse(readFileSync(join(dir, "controller.lock"), "utf8")) as { pid: number; url: string };
    assert.equal(lock.pid, first.child.pid);
    assert.equal(lock.url, first.url);

    const port = await freePort();
    const second = await runNode([bin, "controller", "serve", "--port", String(port), "--state-dir", dir], { env: cleanEnv(), timeoutMs: 20_000 });
    assert.equal(second.code, 1);
    const lines = second.stderr.trim().split("\n");
    assert.equal(lines.length, 1, second.stderr);
    assert.match(
      lines[0] ?? "",
      new RegExp(`^fluster: state directory \\S+ is in use by controller pid ${first.child.pid} \\(${first.url.replace(/[.]/g, "\\.")}\\), started \\S+; stop it first or use another --state-dir$`),
    );

    await stopProcess(first.child, "SIGINT");
    assert.equal(existsSync(join(dir, "controller.lock")), false, "released on shutdown");
  });

  test("the lock of a SIGKILLed controller is taken over with a note", async () => {
    const dir = tempDir();
    const first = await serve(dir);
    await stopProcess(first.child, "SIGKILL");
    assert.equal(existsSync(join(dir, "controller.lock")), true, "a SIGKILLed controller leaves its lock");
    const second = await serve(dir);
    const takeOvers = logLines(second.stderr()).filter((l) => l.event === "state_lock_taken_over");
    assert.equal(takeOvers.length, 1, second.stderr());
    assert.match(takeOvers[0]?.msg ?? "", new RegExp(`^taking over \\S+controller\\.lock from controller pid ${first.child.pid} \\(started \\S+\\), which is no longer running$`));
    assert.equal(takeOvers[0]?.pid, first.child.pid);
    const lock = JSON.parse(readFileSync(join(dir, "controller.lock"), "utf8")) as { pid: number };
    assert.equal(lock.pid, second.child.pid);
  });
});

describe("worker serve with the wrong token", { timeout: 60_000 }, () => {
  test("exits non-zero with one line saying which controller refused it and how to fix it; the controller logs one line", async () => {
    const controller = await serve(tempDir(), { FLUSTER_TOKEN: "right" });
    const result = await runNode([bin, "worker", "serve", "--controller", controller.url, "--worker-id", "w-wrong", "--work-dir", join(tempDir(), "work")], {
      env: cleanEnv({ FLUSTER_TOKEN: "wrong" }),
      timeoutMs: 20_000,
    });
    assert.equal(result.code, 1);
    assert.deepEqual(result.stderr.trim().split("\n"), [
      `fluster: controller at ${controller.url} refused this worker's token (wrong bearer token): set FLUSTER_TOKEN to the token the controller was started with`,
    ]);
    const refusals = logLines(controller.stderr()).filter((l) => l.msg.includes("refused"));
    assert.equal(refusals.length, 1, controller.stderr());
    assert.match(refusals[0]?.msg ?? "", /^refused worker w-wrong \(http:\/\/127\.0\.0\.1:\d+\): wrong bearer token$/);
    assert.deepEqual({ ...refusals[0], time: undefined, address: undefined, msg: undefined }, {
      level: "warn",
      component: "controller",
      event: "worker_refused",
      workerId: "w-wrong",
      reason: "wrong bearer token",
      time: undefined,
      address: undefined,
      msg: undefined,
    });
  });
});
