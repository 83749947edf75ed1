// A controller SIGKILLed while jobs are launched and placed fails no job:
// an attempt it placed and stored but whose RunTask its worker never got
// (the controller died first) is sent again after the restart at no cost,
// not charged as a lost worker. Jobs here have no preemption budget at all,
// so a single wrongly charged loss fails its job.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { ControllerService } from "../../src/rpc/gen/fluster/cluster/v1/controller_pb.js";
import { JobState } from "../../src/rpc/gen/fluster/cluster/v1/types_pb.js";
import { createRpcChannel } from "../../src/rpc/transport.js";
import { eventually, freePort } from "../helpers/index.js";
import { commandJobSpec, launchRequest, startControllerProcess, startWorkerProcess, type ChildHandle } from "../helpers/cluster-processes.js";

const JOBS = 150;
const KILLS = 3;

test("jobs launched around controller SIGKILLs all succeed: none is charged for an attempt its worker never got", { timeout: 240_000 }, async () => {
  const stateDir = mkdtempSync(join(tmpdir(), "fluster-crash-"));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  // A long grace: workers must not fence their attempts while a controller restarts slowly on a loaded machine (that would be a real loss).
  const controllerOptions = { stateDir, port, reconcileIntervalSeconds: 0.3, workerLostGraceSeconds: 60 };
  let controller: ChildHandle | undefined = await startControllerProcess(controllerOptions);
  const workers: ChildHandle[] = [];
  const channel = createRpcChannel(url, { token: "" });
  const rpc = channel.client(ControllerService);
  try {
    for (const id of ["w-crash-1", "w-crash-2"]) workers.push(await startWorkerProcess({ controllerUrl: url, workerId: id, workDir: join(stateDir, id), cpu: 4 }));
    const spec = commandJobSpec("crash", ["node", "-e", "setTimeout(() => {}, 100)"], { maxRetriesPreemption: 0 });
    const jobIds = new Set<string>();
    let launched = 0;
    /** Launches every job, each retried with its request id while the controller is down (at most 60 s each). */
    const launcher = (async () => {
      for (let i = 0; i < JOBS; i++) {
        const deadline = Date.now() + 60_000;
        for (;;) {
          try {
            jobIds.add((await rpc.launchJob(launchRequest(spec, `crash-${i}`), { timeoutMs: 5_000 })).jobId);
            launched++;
            break;
          } catch (err) {
            if (Date.now() > deadline) throw err;
            channel.close();
            await sleep(50);
          }
        }
      }
    })();
    // Kill the controller while launches and placements are under way, and start it again on the same state and port.
    for (let kill = 0; kill < KILLS; kill++) {
      const target = Math.round(((kill + 1) * JOBS) / (KILLS + 1));
      await eventually(() => launched >= target, { what: `${target} launches`, timeoutMs: 120_000, intervalMs: 5 });
      await controller.stop("SIGKILL");
      controller = undefined;
      controller = await startControllerProcess(controllerOptions);
    }
    await launcher;
    assert.equal(jobIds.size, JOBS, "every launch made one job (retries with a request id made no second one)");
    await eventually(
      async () => {
        const jobs = (await rpc.listJobs({ allNamespaces: true })).jobs;
        const ended = jobs.find((j) => j.state === JobState.FAILED || j.state === JobState.KILLED || j.state === JobState.UNSCHEDULABLE);
        assert.equal(ended, undefined, `no job fails: ${ended?.jobId} ${ended?.errorMessage}`);
        return jobs.length === JOBS && jobs.every((j) => j.state === JobState.SUCCEEDED);
      },
      { what: "every job to succeed", timeoutMs: 150_000 },
    );
    const jobs = (await rpc.listJobs({ allNamespaces: true })).jobs;
    assert.equal(jobs.filter((j) => j.tasks.some((t) => t.preemptionCount > 0)).length, 0, "no budget was spent");
  } finally {
    channel.close();
    for (const worker of workers) await worker.stop("SIGTERM");
    await controller?.stop("SIGTERM");
    rmSync(stateDir, { recursive: true, force: true });
  }
});
