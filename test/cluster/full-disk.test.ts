// Commit before visible, on a real full disk: the controller's state
// directory lives on a small tmpfs that the test fills. A launch the disk
// refuses leaves no job (not listed, never run, gone after a restart); reads
// go on; when space returns, launches work again, on the same controller and
// after a restart, and a retried request id launches the job for real.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { ControllerService } from "../../src/rpc/gen/fluster/cluster/v1/controller_pb.js";
import { JobState } from "../../src/rpc/gen/fluster/cluster/v1/types_pb.js";
import { createRpcChannel } from "../../src/rpc/transport.js";
import { eventually, freePort } from "../helpers/index.js";
import { commandJobSpec, launchRequest, startControllerProcess, startWorkerProcess, type ChildHandle } from "../helpers/cluster-processes.js";

/** Mounts a tmpfs of `size` at a new directory; undefined (with why) when mounting is not permitted here. */
function mountTmpfs(size: string): { dir: string; unmount: () => void } | { skip: string } {
  const dir = mkdtempSync(join(tmpdir(), "fluster-full-disk-"));
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir], { stdio: "pipe" });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    return { skip: `mounting a tmpfs is not permitted here (${String((err as { stderr?: Buffer }).stderr ?? err).trim()}): the full-disk test needs root` };
  }
  let mounted = true;
  return {
    dir,
    unmount: () => {
      if (!mounted) return;
      mounted = false;
      execFileSync("umount", ["-l", dir], { stdio: "pipe" });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Fills the file system holding `dir` to the last byte with one file, and returns its path. */
function fillDisk(dir: string): string {
  const path = join(dir, `filler-${Date.now()}`);
  const fd = openSync(path, "w");
  try {
    for (const size of [1 << 20, 1 << 16, 1 << 12, 512, 64, 1]) {
      const chunk = Buffer.alloc(size, 0x5a);
      for (let i = 0; i < 100_000; i++) {
        try {
          writeSync(fd, chunk);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === "ENOSPC") break;
          throw err;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
  return path;
}

const mount = mountTmpfs("8m");
after(() => ("unmount" in mount ? mount.unmount() : undefined));

test("a launch refused by a full disk leaves no job; launches work again when space returns", { timeout: 180_000, skip: "skip" in mount ? mount.skip : false }, async () => {
  if ("skip" in mount) return;
  const stateDir = join(mount.dir, "state");
  const workDir = mkdtempSync(join(tmpdir(), "fluster-full-disk-worker-"));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const controllerOptions = { stateDir, port, reconcileIntervalSeconds: 0.3 };
  let controller: ChildHandle | undefined;
  let worker: ChildHandle | undefined;
  const channel = createRpcChannel(url, { token: "" });
  const rpc = channel.client(ControllerService);
  const spec = commandJobSpec("disk", ["node", "-e", "0"]);
  const accepted = new Map<string, string>(); // request id → job id
  let n = 0;
  /** Launches until `refusals` launches were refused (at most 2,000 tries); returns the refused request ids. */
  const launchUntilRefused = async (refusals: number): Promise<string[]> => {
    const refused: string[] = [];
    for (let i = 0; i < 2_000 && refused.length < refusals; i++) {
      const requestId = `req-${n++}`;
      try {
        const res = await rpc.launchJob(launchRequest(spec, requestId));
        accepted.set(requestId, res.jobId);
      } catch (err) {
        const error = ConnectError.from(err);
        assert.equal(error.code, Code.Unavailable, `a refused launch answers unavailable: ${error.message}`);
        assert.match(error.rawMessage, /disk holding it is full/, "the refusal names the full disk");
        assert.match(error.rawMessage, /controller\.sqlite/, "the refusal names the database");
        refused.push(requestId);
      }
    }
    assert.equal(refused.length, refusals, "the full disk refused launches");
    return refused;
  };
  /** Every job the controller lists is one it accepted, and every accepted one is listed. */
  const assertListedExactly = async (what: string) => {
    const listed = (await rpc.listJobs({ allNamespaces: true })).jobs.map((j) => j.jobId).sort();
    assert.deepEqual(listed, [...accepted.values()].sort(), `${what}: the listed jobs are exactly the accepted ones`);
  };
  const allSucceed = async () => {
    await eventually(
      async () => {
        const jobs = (await rpc.listJobs({ allNamespaces: true })).jobs;
        const failed = jobs.find((j) => j.state !== JobState.SUCCEEDED && j.state !== JobState.PENDING && j.state !== JobState.RUNNING);
        assert.equal(failed, undefined, `no job ends otherwise: ${failed?.jobId} ${failed?.errorMessage}`);
        return jobs.every((j) => j.state === JobState.SUCCEEDED);
      },
      { what: "every accepted job to succeed", timeoutMs: 90_000 },
    );
  };
  try {
    mkdirSync(stateDir);
    controller = await startControllerProcess(controllerOptions);
    worker = await startWorkerProcess({ controllerUrl: url, workerId: "w-disk", workDir, cpu: 2 });
    accepted.set("warm", (await rpc.launchJob(launchRequest(spec, "warm"))).jobId);
    await allSucceed();

    // Full: refused launches leave nothing; reads go on.
    let filler = fillDisk(mount.dir);
    const refused = await launchUntilRefused(3);
    await assertListedExactly("while the disk is full");
    assert.equal((await rpc.getJobStatus({ jobId: accepted.get("warm") ?? "" })).job?.state, JobState.SUCCEEDED, "reads are served");
    await assert.rejects(rpc.launchJob(launchRequest(spec, refused[0] ?? "")), (err) => ConnectError.from(err).code === Code.Unavailable, "a retry is refused while the disk is full");
    await assertListedExactly("after a refused retry");

    // Space returns: the same controller launches again, and a refused request id launches for real.
    rmSync(filler);
    const retried = await rpc.launchJob(launchRequest(spec, refused[0] ?? ""));
    accepted.set(refused[0] ?? "", retried.jobId);
    const again = await rpc.launchJob(launchRequest(spec, refused[0] ?? ""));
    assert.equal(again.jobId, retried.jobId, "the request id now names the job that was stored");
    accepted.set("after-space", (await rpc.launchJob(launchRequest(spec, "after-space"))).jobId);
    await allSucceed();
    await assertListedExactly("once space returned");

    // Full again, then a SIGKILL: after the restart, only stored jobs exist.
    filler = fillDisk(mount.dir);
    const refusedBeforeKill = await launchUntilRefused(2);
    await controller.stop("SIGKILL");
    rmSync(filler);
    controller = await startControllerProcess(controllerOptions);
    await assertListedExactly("after a restart");
    for (const requestId of refusedBeforeKill) accepted.set(requestId, (await rpc.launchJob(launchRequest(spec, requestId))).jobId);
    await allSucceed();
    await assertListedExactly("at the end");
    const integrity = execFileSync("node", ["-e", `const D=require("better-sqlite3");const d=new D(process.argv[1],{readonly:true});console.log(d.pragma("integrity_check",{simple:true}))`, join(stateDir, "controller.sqlite")], { encoding: "utf8" });
    assert.equal(integrity.trim(), "ok");
  } finally {
    channel.close();
    await worker?.stop("SIGTERM");
    await controller?.stop("SIGTERM");
    mount.unmount();
    rmSync(workDir, { recursive: true, force: true });
  }
});
