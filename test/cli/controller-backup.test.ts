// `fluster controller backup FILE`, as an operator uses it: a backup taken
// from a running controller with the real CLI, then the controller lost and
// a new one started on a fresh state directory holding only the copy, on the
// same port. It carries on: the worker is still known, its running attempt
// is adopted (not started again), finished jobs and endpoints are there.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ControllerService } from "../../src/rpc/gen/fluster/cluster/v1/controller_pb.js";
import { JobState, TaskState } from "../../src/rpc/gen/fluster/cluster/v1/types_pb.js";
import { createRpcChannel } from "../../src/rpc/transport.js";
import { REPO_ROOT, cleanEnv, eventually, freePort, runNode, stopProcess, waitForLine } from "../helpers/index.js";
import { commandJobSpec, launchRequest } from "../helpers/cluster-processes.js";

const bin = join(REPO_ROOT, "bin", "fluster.js");

/** Starts a `fluster` serve command and resolves once it prints `ready`. */
async function serve(args: string[], ready: RegExp): Promise<ChildProcess> {
  const child = spawn(process.execPath, [bin, ...args], { cwd: REPO_ROOT, env: cleanEnv(), stdio: ["ignore", "pipe", "inherit"] });
  await waitForLine(child, ready);
  return child;
}

test("a controller started on a restored backup carries on: worker known, running attempt adopted, finished jobs and endpoints there", { timeout: 120_000 }, async () => {
  const root = mkdtempSync(join(tmpdir(), "fluster-backup-"));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const children: ChildProcess[] = [];
  const channel = createRpcChannel(url, { token: "" });
  const rpc = channel.client(ControllerService);
  try {
    const original = join(root, "original");
    let controller = await serve(["controller", "serve", "--port", String(port), "--state-dir", original], /fluster controller serving at/);
    children.push(controller);
    children.push(await serve(["--controller", url, "worker", "serve", "--worker-id", "w-backup", "--work-dir", join(root, "worker")], /fluster worker \S+ serving/));

    const short = (await rpc.launchJob(launchRequest(commandJobSpec("short", ["node", "-e", "0"]), "short"))).jobId;
    await rpc.registerEndpoint({ name: "durable", address: "http://127.0.0.1:1", namespace: "" });
    const long = (await rpc.launchJob(launchRequest(commandJobSpec("long", ["node", "-e", "setTimeout(() => {}, 8000)"], { maxRetriesPreemption: 0 }), "long"))).jobId;
    await eventually(async () => (await rpc.getJobStatus({ jobId: short })).job?.state === JobState.SUCCEEDED, { what: "the short job to succeed", timeoutMs: 30_000 });
    await eventually(async () => (await rpc.getJobStatus({ jobId: long })).job?.tasks[0]?.state === TaskState.RUNNING, { what: "the long job to run", timeoutMs: 30_000 });
    const attemptId = (await rpc.getJobStatus({ jobId: long })).job?.tasks[0]?.attempts[0]?.attemptId;

    // The backup, taken while the controller runs.
    const file = join(root, "backup.sqlite");
    const backup = await runNode([bin, "controller", "backup", file, "--state-dir", original], { env: cleanEnv(), timeoutMs: 30_000 });
    assert.equal(backup.code, 0, backup.stderr);
    assert.match(backup.stdout, new RegExp(`^fluster controller backup: wrote ${file.replace(/[.]/g, "\\.")} \\(\\S+\\): 2 job\\(s\\), 1 worker\\(s\\), 1 endpoint\\(s\\), schema \\d+\\n$`));
    const again = await runNode([bin, "controller", "backup", file, "--state-dir", original], { env: cleanEnv(), timeoutMs: 30_000 });
    assert.equal(again.code, 1);
    assert.equal(again.stderr.trim(), `fluster: ${file} already exists: remove it or choose another file name`);
    const missing = await runNode([bin, "controller", "backup", join(root, "other.sqlite"), "--state-dir", join(root, "nowhere")], { env: cleanEnv(), timeoutMs: 30_000 });
    assert.equal(missing.code, 1);
    assert.match(missing.stderr.trim(), /^fluster: no controller state database at \S+nowhere\/controller\.sqlite: pass the controller's --state-dir$/);

    // The controller and its state directory are lost; a new one starts on the copy, same port.
    await stopProcess(controller, "SIGKILL");
    rmSync(original, { recursive: true, force: true });
    const restored = join(root, "restored");
    mkdirSync(restored);
    copyFileSync(file, join(restored, "controller.sqlite"));
    controller = await serve(["controller", "serve", "--port", String(port), "--state-dir", restored], /fluster controller serving at/);
    children.push(controller);

    assert.equal((await rpc.getJobStatus({ jobId: short })).job?.state, JobState.SUCCEEDED, "the finished job is there");
    assert.equal((await rpc.lookupEndpoints({ name: "durable", namespace: "" })).endpoints.length, 1, "the endpoint is there");
    assert.deepEqual((await rpc.listWorkers({})).workers.map((w) => w.workerId), ["w-backup"]);
    await eventually(async () => (await rpc.getJobStatus({ jobId: long })).job?.state === JobState.SUCCEEDED, { what: "the long job to succeed", timeoutMs: 60_000 });
    const job = (await rpc.getJobStatus({ jobId: long })).job;
    assert.equal(job?.tasks[0]?.attempts.length, 1, "the running attempt was adopted, not started again");
    assert.equal(job?.tasks[0]?.attempts[0]?.attemptId, attemptId);
    assert.equal(job?.tasks[0]?.preemptionCount, 0);
    const after = (await rpc.launchJob(launchRequest(commandJobSpec("after", ["node", "-e", "0"]), "after"))).jobId;
    await eventually(async () => (await rpc.getJobStatus({ jobId: after })).job?.state === JobState.SUCCEEDED, { what: "a new job to succeed", timeoutMs: 30_000 });
  } finally {
    channel.close();
    for (const child of children.reverse()) await stopProcess(child, "SIGTERM");
    rmSync(root, { recursive: true, force: true });
  }
});
