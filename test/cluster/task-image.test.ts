// `environment.image` on a real LocalCluster: attempts run in real containers
// of ensureNodeImage()'s image, with their output in the logs, their exit code
// and return value honoured, the task's memory as a hard limit, and no
// container left behind however the attempt ends or the worker restarted.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { ensureNodeImage } from "../../src/cluster/platform/docker/image.js";
import { ATTEMPT_LABEL, CONTAINER_FILE_NAME, WORKER_DIR_LABEL, WORKER_LABEL, reapContainers, workerDirKey } from "../../src/cluster/worker/container.js";
import { Entrypoint } from "../../src/core/entrypoint.js";
import { ValidationError } from "../../src/core/errors.js";
import type { JobInfo } from "../../src/core/job.js";
import { eventually } from "../helpers/index.js";
import { collectLogs, startLocalCluster, useLocalCluster } from "../helpers/local-cluster.js";
import { whereAmI } from "../fixtures/image/tasks.js";

const small = { cpu: 0.5, memory: "128m" } as const;
let image = "";

function docker(...args: string[]): string {
  return execFileSync("docker", args, { encoding: "utf8" }).trim();
}

/** Names of the containers (running or not) carrying `label`. */
function containersLabelled(label: string): string[] {
  return docker("ps", "--all", "--filter", `label=${label}`, "--format", "{{.Names}}").split("\n").filter((n) => n !== "");
}

function attemptOf(info: JobInfo): string {
  const attemptId = info.tasks[0]?.attemptId;
  assert.ok(attemptId, `job ${info.jobId} has no attempt`);
  return attemptId;
}

describe("tasks in a Docker image (environment.image)", { timeout: 120_000 }, () => {
  before(async () => {
    image = await ensureNodeImage();
  });
  // Whatever a failed test left: every container these tests' workers started.
  after(() => {
    const left = containersLabelled(WORKER_LABEL).filter((n) => n.startsWith("fluster-attempt-"));
    if (left.length > 0) docker("rm", "--force", ...left);
  });
  const local = useLocalCluster({ workers: 1, workerCpu: 2, workerMemory: "1g" });

  test("a command job runs in the image: its output is in the logs and its exit code is the job's", async () => {
    const jobId = await local.cluster.launch({
      name: "image-command",
      resources: small,
      entrypoint: Entrypoint.fromCommand(["sh", "-c", 'test -e /.dockerenv && echo "in a container as $(id -u)"; echo "secret=$SECRET_TOKEN"; echo oops >&2; exit 3']),
      environment: { image, envVars: { SECRET_TOKEN: "s3cr3t value=with spaces" } },
    });
    const info = await local.cluster.wait(jobId, { timeoutSeconds: 30 });
    assert.equal(info.status, "failed");
    assert.equal(info.tasks[0]?.exitCode, 3);
    assert.match(info.tasks[0]?.errorMessage ?? "", /exited with code 3\noops/);
    const logs = await collectLogs(local.cluster, jobId);
    assert.match(logs, new RegExp(`in a container as ${process.getuid?.() ?? 0}`));
    assert.match(logs, /secret=s3cr3t value=with spaces/);
    assert.match(logs, /oops/);
    assert.deepEqual(containersLabelled(`${ATTEMPT_LABEL}=${attemptOf(info)}`), []);
  });

  test("a function job runs in the image with the image's node and returns its value", async () => {
    const jobId = await local.cluster.launch({ name: "image-function", resources: small, entrypoint: Entrypoint.fromFunction(whereAmI, "hello"), environment: { image } });
    const [result] = await local.cluster.results<{ tag: string; inContainer: boolean; node: string; attemptId: string }>(jobId, { timeoutSeconds: 60 });
    assert.equal(result?.tag, "hello");
    assert.equal(result?.inContainer, true);
    assert.equal(result?.node, "/usr/local/bin/node");
    assert.deepEqual(containersLabelled(`${ATTEMPT_LABEL}=${result?.attemptId}`), []);
  });

  test("a task that allocates past its memory limit is killed for it while its neighbour on the same worker succeeds", async () => {
    const [hog, neighbour] = await Promise.all([
      local.cluster.launch({
        name: "image-memory-hog",
        resources: small,
        entrypoint: Entrypoint.fromCommand(["node", "-e", "const kept = []; for (;;) kept.push(Buffer.alloc(4 << 20, 1));"]),
        environment: { image },
      }),
      local.cluster.launch({
        name: "image-neighbour",
        resources: small,
        entrypoint: Entrypoint.fromCommand(["node", "-e", "const b = Buffer.alloc(32 << 20, 1); setTimeout(() => console.log('neighbour ok', b.length), 1500);"]),
        environment: { image },
      }),
    ]);
    const [hogInfo, neighbourInfo] = await Promise.all([local.cluster.wait(hog, { timeoutSeconds: 60 }), local.cluster.wait(neighbour, { timeoutSeconds: 60 })]);
    assert.equal(hogInfo.status, "failed");
    assert.equal(hogInfo.tasks[0]?.errorMessage, "killed: out of memory (limit 128 MiB)");
    assert.equal(hogInfo.tasks[0]?.workerId, neighbourInfo.tasks[0]?.workerId);
    assert.equal(neighbourInfo.status, "succeeded", neighbourInfo.tasks[0]?.errorMessage);
    assert.match(await collectLogs(local.cluster, neighbour), /neighbour ok 33554432/);
    assert.deepEqual(containersLabelled(`${ATTEMPT_LABEL}=${attemptOf(hogInfo)}`), []);
  });

  test("terminate and timeout stop the container and leave none behind", async () => {
    const sleeper = await local.cluster.launch({ name: "image-terminated", resources: small, entrypoint: Entrypoint.fromCommand(["sleep", "60"]), environment: { image } });
    const timed = await local.cluster.launch({ name: "image-timeout", resources: small, timeoutSeconds: 2, entrypoint: Entrypoint.fromCommand(["sleep", "60"]), environment: { image } });
    // Running means a container is up: the attempt's label finds it.
    await eventually(async () => {
      const attemptId = (await local.cluster.poll(sleeper)).tasks[0]?.attemptId;
      return attemptId !== undefined && containersLabelled(`${ATTEMPT_LABEL}=${attemptId}`).length === 1;
    }, { what: "the sleeper's container", timeoutMs: 30_000 });
    const started = Date.now();
    await local.cluster.terminate(sleeper, "enough");
    const [killed, timedOut] = await Promise.all([local.cluster.wait(sleeper, { timeoutSeconds: 30 }), local.cluster.wait(timed, { timeoutSeconds: 30 })]);
    assert.equal(killed.status, "killed");
    // SIGTERM reached `sleep` through the container's init: no wait for the kill grace.
    assert.ok(Date.now() - started < 4_000, `terminate took ${Date.now() - started} ms`);
    assert.equal(timedOut.status, "failed");
    assert.equal(timedOut.tasks[0]?.errorMessage, "execution timeout exceeded");
    for (const info of [killed, timedOut]) assert.deepEqual(containersLabelled(`${ATTEMPT_LABEL}=${attemptOf(info)}`), []);
  });

  test("an image that is not on the worker fails the attempt with an error naming it", async () => {
    const missing = "fluster-test-no-such-image:1";
    const jobId = await local.cluster.launch({ name: "image-missing", resources: small, entrypoint: Entrypoint.fromCommand(["true"]), environment: { image: missing } });
    const info = await local.cluster.wait(jobId, { timeoutSeconds: 30 });
    assert.equal(info.status, "failed");
    assert.match(info.tasks[0]?.errorMessage ?? "", /^cannot run image fluster-test-no-such-image:1: .*No such image/);
    assert.deepEqual(containersLabelled(`${ATTEMPT_LABEL}=${attemptOf(info)}`), []);
  });

  test("bad image values are refused at launch, naming environment.image", async () => {
    for (const bad of ["Node:20", "node:20 --privileged", "-v", ""]) {
      await assert.rejects(
        local.cluster.launch({ name: "image-bad", resources: small, entrypoint: Entrypoint.fromCommand(["true"]), environment: { image: bad } }),
        (err: unknown) => err instanceof ValidationError && err.message.startsWith("environment.image "),
      );
    }
  });
});

describe("a worker daemon that dies", { timeout: 60_000 }, () => {
  test("its lease supervisor removes the containers of its attempts at once", async (t) => {
    const nodeImage = await ensureNodeImage();
    const cluster = await startLocalCluster(t, { workers: 1, workerCpu: 1, workerMemory: "512m" });
    const [worker] = cluster.workers;
    assert.ok(worker);
    t.after(() => {
      const left = containersLabelled(`${WORKER_LABEL}=${worker.workerId}`);
      if (left.length > 0) docker("rm", "--force", ...left);
    });
    const jobId = await cluster.launch({ name: "image-orphan", resources: small, entrypoint: Entrypoint.fromCommand(["sleep", "60"]), environment: { image: nodeImage } });
    await eventually(() => containersLabelled(`${WORKER_LABEL}=${worker.workerId}`).length === 1, { what: "the job's container", timeoutMs: 30_000 });
    assert.ok((await cluster.poll(jobId)).tasks[0]?.attemptId);
    worker.process.kill("SIGKILL");
    await eventually(() => containersLabelled(`${WORKER_LABEL}=${worker.workerId}`).length === 0, { what: "the container to be removed", timeoutMs: 15_000 });
  });
});

describe("reaping containers after a worker restart", { timeout: 60_000 }, () => {
  test("removes the containers labelled with the worker's id and directory and those its attempt directories record, not another cluster's worker of the same id", async (t) => {
    const nodeImage = await ensureNodeImage();
    const root = mkdtempSync(join(tmpdir(), "fluster-reap-containers-"));
    const suffix = `${process.pid}-${Date.now()}`;
    const workerId = `reap-worker-${suffix}`;
    const labelled = `fluster-attempt-reap-labelled-${suffix}`;
    const recorded = `fluster-attempt-reap-recorded-${suffix}`;
    const bystander = `fluster-attempt-reap-bystander-${suffix}`;
    const namesake = `fluster-attempt-reap-namesake-${suffix}`;
    t.after(() => {
      rmSync(root, { recursive: true, force: true });
      for (const name of [labelled, recorded, bystander, namesake]) execFileSync("docker", ["rm", "--force", name], { stdio: "ignore" });
    });
    const run = (name: string, labels: string[]) => docker("run", "--detach", "--name", name, ...labels.flatMap((l) => ["--label", l]), "--network", "host", "--pull", "never", "--entrypoint", "sleep", nodeImage, "60");
    run(labelled, [`${WORKER_LABEL}=${workerId}`, `${WORKER_DIR_LABEL}=${workerDirKey(root)}`, `${ATTEMPT_LABEL}=attempt-a`]);
    run(recorded, [`${WORKER_LABEL}=an-earlier-id-${suffix}`]);
    run(bystander, [`${WORKER_LABEL}=another-worker-${suffix}`]);
    // Same worker id, another worker directory: another cluster's `local-0`.
    run(namesake, [`${WORKER_LABEL}=${workerId}`, `${WORKER_DIR_LABEL}=${workerDirKey(join(root, "elsewhere"))}`]);
    mkdirSync(join(root, "attempt-b"));
    writeFileSync(join(root, "attempt-b", CONTAINER_FILE_NAME), `${recorded}\n`);
    const reaped = await reapContainers(root, workerId);
    assert.deepEqual(reaped.map((r) => r.name).sort(), [labelled, recorded].sort());
    assert.equal(reaped.find((r) => r.name === labelled)?.attemptId, "attempt-a");
    assert.deepEqual(containersLabelled(`${WORKER_LABEL}=${workerId}`), [namesake]);
    assert.deepEqual(docker("ps", "--all", "--filter", `name=^${recorded}$`, "--format", "{{.Names}}"), "");
    assert.equal(docker("ps", "--all", "--filter", `name=^${bystander}$`, "--format", "{{.Names}}"), bystander);
    assert.deepEqual(await reapContainers(root, workerId), [], "the records are gone with their containers");
  });
});
