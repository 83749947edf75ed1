// Options are checked once, up front, with errors that name the field: the
// worker daemon's (also as the JSON a spawned daemon reads), the controller
// server's, LocalCluster's, WorkerPool's and the job contexts'.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { compileWorkerDaemonOptions, defaultWorkDir } from "../../src/cluster/worker/options.js";
import { WorkerDaemon } from "../../src/cluster/worker/daemon.js";
import { compileControllerServerOptions } from "../../src/cluster/controller/server.js";
import { LocalCluster } from "../../src/cluster/client/local-cluster.js";
import { Cluster } from "../../src/cluster/client/cluster.js";
import { ValidationError } from "../../src/core/errors.js";
import { WorkerPool, compileWorkerPoolOptions } from "../../src/pool/worker-pool.js";
import { createJobContext } from "../../src/job/index.js";
import { runNode } from "../helpers/index.js";

const rejects = (field: string) => (err: unknown) => err instanceof ValidationError && err.field === field;

describe("worker daemon options", () => {
  test("defaults: loopback, any port, 5 s kill grace, a work dir outside the working directory", () => {
    const o = compileWorkerDaemonOptions({ controllerUrl: "127.0.0.1:7070" });
    assert.equal(o.controllerUrl, "http://127.0.0.1:7070");
    assert.equal(o.host, "127.0.0.1");
    assert.equal(o.port, 0);
    assert.equal(o.killGraceMs, 5_000);
    assert.equal(o.workDir, undefined);
    const dir = defaultWorkDir("host-1/odd id");
    assert.ok(!dir.startsWith(process.cwd()), `${dir} is under the working directory`);
    assert.match(dir, /fluster\/workers\/host-1_odd_id$/);
  });

  test("each bad field is named", () => {
    assert.throws(() => compileWorkerDaemonOptions({}), rejects("controllerUrl"));
    assert.throws(() => compileWorkerDaemonOptions({ controllerUrl: "http://c:1", port: 70_000 }), rejects("port"));
    assert.throws(() => compileWorkerDaemonOptions({ controllerUrl: "http://c:1", cpu: -1 }), rejects("cpu"));
    assert.throws(() => compileWorkerDaemonOptions({ controllerUrl: "http://c:1", labels: { zone: 3 } }), rejects("labels.zone"));
    assert.throws(() => compileWorkerDaemonOptions({ controllerUrl: "http://c:1", killGraceMs: 5 }), rejects("killGraceMs"), "an unknown option is refused, not ignored");
    assert.throws(() => compileWorkerDaemonOptions({ controllerUrl: "http://c:1", workerId: "a/b" }), rejects("workerId"));
    assert.throws(() => compileWorkerDaemonOptions({ controllerUrl: "http://c:1", maxRequestBytes: 0 }), rejects("maxRequestBytes"));
    assert.throws(() => new WorkerDaemon({ controllerUrl: "http://c:1", killGraceSeconds: -1 }), rejects("killGraceSeconds"));
    assert.throws(() => compileWorkerDaemonOptions({ controllerUrl: "http://c:1", tpu: "v5litepod-12" }), rejects("tpu"));
    assert.throws(() => compileWorkerDaemonOptions({ controllerUrl: "http://c:1", gpu: { variant: "H100", count: 0 } }), rejects("gpu.count"));
    assert.throws(() => compileWorkerDaemonOptions({ controllerUrl: "http://c:1", gpu: { variant: "", count: 1 } }), rejects("gpu.variant"));
    assert.throws(() => compileWorkerDaemonOptions({ controllerUrl: "http://c:1", gpu: { variant: "H100", count: 1 }, tpu: "v4-8" }), rejects("tpu"));
  });

  test("device overrides: a GPU model and count, or a TPU variant with its chips per host", () => {
    assert.deepEqual(compileWorkerDaemonOptions({ controllerUrl: "http://c:1", gpu: { variant: "H100", count: 2 } }).gpu, { variant: "H100", count: 2 });
    assert.deepEqual(compileWorkerDaemonOptions({ controllerUrl: "http://c:1", tpu: "v5litepod-16" }).tpu, { variant: "v5litepod-16", chips: 4 });
    assert.deepEqual(compileWorkerDaemonOptions({ controllerUrl: "http://c:1", tpu: "v5litepod-8" }).tpu, { variant: "v5litepod-8", chips: 8 });
  });

  test("a daemon process given bad JSON options says which field in one line and exits 1", async () => {
    const main = fileURLToPath(new URL("../../src/cluster/worker/main.ts", import.meta.url));
    const run = await runNode(["--import", "tsx", main, JSON.stringify({ controllerUrl: "http://127.0.0.1:1", port: "eighty" })], { timeoutMs: 30_000 });
    assert.equal(run.code, 1);
    assert.equal(run.stderr.trim(), 'fluster worker: cannot start: port must be a whole number ≥ 0, got "eighty"');
    const loud = await runNode(["--import", "tsx", main, JSON.stringify({ controllerUrl: "http://127.0.0.1:1", logLevel: "loud" })], { timeoutMs: 30_000 });
    assert.equal(loud.code, 1);
    assert.equal(loud.stderr.trim(), 'fluster worker: cannot start: logLevel must be one of debug, info, warn, error, silent, got "loud"');
  });

  test("a logger is checked to be one", () => {
    assert.throws(() => compileWorkerDaemonOptions({ controllerUrl: "http://c:1", logger: console.log }), rejects("logger"));
    assert.throws(() => compileControllerServerOptions({ logger: { info: () => undefined } }), rejects("logger"));
    assert.throws(() => compileWorkerDaemonOptions({ controllerUrl: "http://c:1", log: () => undefined }), rejects("log"), "the old line callback is gone, and said to be");
  });
});

describe("controller, LocalCluster, WorkerPool and job context options", () => {
  test("the controller server's options are checked", () => {
    assert.deepEqual(compileControllerServerOptions({ port: 7070, reconcileIntervalSeconds: 0.5 }), { port: 7070, reconcileIntervalSeconds: 0.5 });
    assert.throws(() => compileControllerServerOptions({ reconcileIntervalMs: 500 }), rejects("reconcileIntervalMs"));
    assert.throws(() => compileControllerServerOptions({ workerLostGraceSeconds: 0 }), rejects("workerLostGraceSeconds"));
  });

  test("LocalCluster refuses bad options before starting anything", async () => {
    await assert.rejects(LocalCluster.start({ workers: -1 }), rejects("workers"));
    await assert.rejects(LocalCluster.start({ workerMemory: "lots" }), rejects("workerMemory"));
    await assert.rejects(LocalCluster.start({ logLevel: "chatty" as never }), rejects("logLevel"));
    await assert.rejects(LocalCluster.start({ logFormat: "xml" as never }), rejects("logFormat"));
  });

  test("WorkerPool: pipelineDepth 0 (which used to hang) and other bad values are refused at construction", () => {
    const cluster = Cluster.connect("http://127.0.0.1:1"); // never called: the options fail first
    assert.throws(() => new WorkerPool(cluster, { numWorkers: 2, pipelineDepth: 0 }), rejects("pipelineDepth"));
    assert.throws(() => new WorkerPool(cluster, { numWorkers: 0 }), rejects("numWorkers"));
    assert.throws(() => new WorkerPool(cluster, { numWorkers: 1, maxBatchSize: 1.5 }), rejects("maxBatchSize"));
    assert.throws(() => new WorkerPool(cluster, { numWorkers: 1, namePrefix: "a b" }), rejects("namePrefix"));
    assert.throws(() => new WorkerPool(cluster, { numWorkers: 1, resources: { cpu: 1, replicas: 2 } }), rejects("resources.replicas"));
    assert.throws(() => new WorkerPool(cluster, { numWorkers: 1, environment: { envVars: { A: 1 as unknown as string } } }), rejects("environment.envVars.A"));
    const compiled = compileWorkerPoolOptions({ numWorkers: 3 });
    assert.deepEqual([compiled.maxBatchSize, compiled.pipelineDepth, compiled.namePrefix], [64, 2, "pool"]);
  });

  test("the cluster job context checks its options when made", () => {
    assert.throws(() => createJobContext("cluster", { maxWorkers: 0 }), rejects("maxWorkers"));
    assert.throws(() => createJobContext("cluster", { actorStartTimeoutSeconds: 0 }), rejects("actorStartTimeoutSeconds"));
  });
});
