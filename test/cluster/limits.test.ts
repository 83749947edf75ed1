// One request cannot take the controller down: huge replicas, a 20 MB body
// and a 10 MB id get clear errors naming the limit while a real controller
// process stays small and keeps answering. Also: malformed binary input,
// JSON defaults, the Bearer scheme, endpoints per job, pruning of lost
// workers, and the loopback decision.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { startController } from "../../src/cluster/controller/server.js";
import { WorkerDaemon } from "../../src/cluster/worker/daemon.js";
import { Cluster } from "../../src/cluster/client/cluster.js";
import { Entrypoint } from "../../src/core/entrypoint.js";
import { FlusterError } from "../../src/core/errors.js";
import { ControllerService } from "../../src/rpc/gen/fluster/cluster/v1/controller_pb.js";
import { createRpcChannel } from "../../src/rpc/transport.js";
import { fromConnectError } from "../../src/rpc/errors.js";
import { isLoopbackAddress, resolvesToLoopback } from "../../src/rpc/loopback.js";
import { jobSpecToProto, validateJobSpec } from "../../src/rpc/convert.js";
import { WorkerService } from "../../src/rpc/gen/fluster/worker/v1/worker_pb.js";
import { validateJobRequest } from "../../src/core/job.js";
import { JobSpecSchema } from "../../src/rpc/gen/fluster/cluster/v1/types_pb.js";
import { fromJson, type JsonValue } from "@bufbuild/protobuf";

const fromJsonSpec = (json: object) => fromJson(JobSpecSchema, json as JsonValue);
import { eventually, freePort, stopProcess, waitForLine } from "../helpers/index.js";
import { silentLogger } from "../../src/core/logger.js";
import { captureLogs } from "../helpers/logs.js";

const CONTROLLER_MAIN = fileURLToPath(new URL("../../src/cluster/controller/main.ts", import.meta.url));
const CONTROLLER = "fluster.cluster.v1.ControllerService";

interface Answer {
  status: number;
  code?: string;
  message?: string;
  body: Record<string, unknown>;
}

/** A Connect call over HTTP/1.1, as curl would make it. */
async function post(url: string, method: string, body: string | Uint8Array, headers: Record<string, string> = {}): Promise<Answer> {
  const contentType = typeof body === "string" ? "application/json" : "application/proto";
  const res = await fetch(`${url}/${CONTROLLER}/${method}`, { method: "POST", headers: { "content-type": contentType, ...headers }, body });
  const bytes = Buffer.from(await res.arrayBuffer());
  const parsed = (res.headers.get("content-type") ?? "").startsWith("application/json") ? (JSON.parse(bytes.toString("utf8")) as Record<string, unknown>) : {};
  return {
    status: res.status,
    body: parsed,
    ...(res.status === 200 ? {} : { code: parsed.code as string, message: parsed.message as string }),
  };
}

const launchBody = (resources: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ job: { name: "limits", resources, entrypoint: { command: { argv: ["true"] } }, ...extra } });

function rssMegabytes(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  assert.ok(match, `VmRSS of ${pid}`);
  return Number(match[1]) / 1024;
}

describe("a controller process under huge requests", { timeout: 120_000 }, () => {
  let stateDir: string;
  let child: ChildProcess;
  let url: string;
  before(async () => {
    stateDir = mkdtempSync(join(tmpdir(), "fluster-limits-"));
    const port = await freePort();
    child = spawn(process.execPath, ["--import", "tsx", CONTROLLER_MAIN, JSON.stringify({ stateDir, port })], {
      stdio: ["pipe", "pipe", "inherit"],
      env: { ...process.env, FLUSTER_PARENT_WATCH: "stdin" },
    });
    await waitForLine(child, /^fluster-controller-ready/);
    url = `http://127.0.0.1:${port}`;
  });
  after(async () => {
    await stopProcess(child, "SIGTERM");
    rmSync(stateDir, { recursive: true, force: true });
  });

  test("replicas = 2147483647 is refused, naming maxReplicas, without building a task", async () => {
    const res = await post(url, "LaunchJob", launchBody({ cpu: 1, replicas: 2147483647 }));
    assert.equal(res.code, "invalid_argument", res.message);
    assert.match(res.message ?? "", /replicas is 2147483647, above the limit of 10000 \(maxReplicas\)/);
  });

  test("a 20 MB request is refused with resource_exhausted naming maxRequestBytes, over HTTP/1.1 and HTTP/2", async () => {
    const huge = "x".repeat(20_000_000);
    const res = await post(url, "GetJobStatus", JSON.stringify({ jobId: huge }));
    assert.equal(res.code, "resource_exhausted", res.message);
    assert.match(res.message ?? "", /larger than the server's maxRequestBytes 8388608/);
    const channel = createRpcChannel(url);
    try {
      const err = await channel
        .client(ControllerService)
        .launchJob({ job: { name: "big", entrypoint: { kind: { case: "command", value: { argv: ["echo", huge] } } } } })
        .then(
          () => undefined,
          (e: unknown) => fromConnectError(e),
        );
      assert.ok(err instanceof FlusterError, "the call failed");
      assert.equal(err.code, "resource_exhausted", err.message);
      assert.match(err.message, /maxRequestBytes/);
    } finally {
      channel.close();
    }
  });

  test("a 10 MB workerId is refused and not stored; a 100 KB one names maxIdLength", async () => {
    const channel = createRpcChannel(url);
    try {
      const client = channel.client(ControllerService);
      const register = (workerId: string) =>
        client.registerWorker({ workerId, address: "http://127.0.0.1:9", resources: { cpu: 1, memoryBytes: 1n << 30n } }).then(
          () => undefined,
          (e: unknown) => fromConnectError(e),
        );
      const huge = await register("w".repeat(10 * 1024 * 1024));
      assert.equal(huge?.code, "resource_exhausted", huge?.message);
      const long = await register("w".repeat(100_000));
      assert.equal(long?.code, "invalid_argument", long?.message);
      assert.match(long?.message ?? "", /^workerId is 100000 characters long, above the limit of 1024 \(maxIdLength\)$/);
      assert.deepEqual((await client.listWorkers({})).workers, [], "nothing was stored");
    } finally {
      channel.close();
    }
    const db = new Database(join(stateDir, "controller.sqlite"), { readonly: true });
    try {
      assert.deepEqual(db.prepare("SELECT worker_id FROM workers").all(), []);
    } finally {
      db.close();
    }
  });

  test("after all that the controller is small and keeps answering", async () => {
    const rss = rssMegabytes(child.pid!);
    assert.ok(rss < 300, `controller RSS ${rss.toFixed(0)} MB`);
    const res = await post(url, "ListJobs", "{}");
    assert.equal(res.status, 200);
  });

  test("malformed binary protobuf is invalid_argument, unary and streaming", async () => {
    const unary = await post(url, "GetJobStatus", new Uint8Array([0x0a, 0xff, 0xff, 0xff]));
    assert.equal(unary.status, 400);
    assert.equal(unary.code, "invalid_argument", unary.message);
    assert.match(unary.message ?? "", /not a valid binary fluster\.cluster\.v1\.GetJobStatusRequest/);
    const envelope = Buffer.from([0, 0, 0, 0, 4, 0x0a, 0xff, 0xff, 0xff]);
    const res = await fetch(`${url}/${CONTROLLER}/WatchJob`, { method: "POST", headers: { "content-type": "application/connect+proto" }, body: envelope });
    const bytes = Buffer.from(await res.arrayBuffer());
    const end = JSON.parse(bytes.subarray(5).toString("utf8")) as { error?: { code?: string } };
    assert.equal(end.error?.code, "invalid_argument");
  });

  test("a JSON launch without replicas or retry budgets gets the library's defaults", async () => {
    const launched = await post(url, "LaunchJob", launchBody({ cpu: 0.1 }));
    assert.equal(launched.status, 200, launched.message);
    const status = await post(url, "GetJobStatus", JSON.stringify({ jobId: launched.body.jobId }));
    const job = status.body.job as { tasks: unknown[] };
    assert.equal(job.tasks.length, 1);
  });
});

describe("JSON job specs", () => {
  test("get the TypeScript library's defaults for replicas and retry budgets", () => {
    const json = { name: "defaults", resources: { cpu: 1 }, entrypoint: { command: { argv: ["true"] } } };
    const fromJson = validateJobSpec(fromJsonSpec(json));
    const fromLibrary = validateJobRequest({ name: "defaults", resources: { cpu: 1 }, entrypoint: Entrypoint.fromCommand(["true"]) });
    assert.equal(fromJson.resources.replicas, fromLibrary.resources.replicas);
    assert.equal(fromJson.maxRetriesPreemption, fromLibrary.maxRetriesPreemption);
    assert.equal(fromJson.maxRetriesFailure, fromLibrary.maxRetriesFailure);
    assert.equal(fromJson.resources.replicas, 1);
    assert.equal(fromJson.maxRetriesPreemption, 100);
    const tpu = validateJobSpec(fromJsonSpec({ ...json, resources: { device: { tpu: { variant: "v5litepod-16" } } } }));
    assert.equal(tpu.resources.replicas, validateJobRequest({ name: "t", resources: { device: { kind: "tpu", variant: "v5litepod-16" } }, entrypoint: Entrypoint.fromCommand(["true"]) }).resources.replicas);
    assert.throws(() => validateJobSpec(fromJsonSpec({ ...json, resources: { replicas: 0 } })), /replicas must be a whole number ≥ 1/);
    assert.throws(() => validateJobSpec(fromJsonSpec({ ...json, resources: { replicas: 11 } }), "job", { maxReplicas: 10 }), /replicas is 11, above the limit of 10 \(maxReplicas\)/);
    const slices = fromJsonSpec({ ...json, resources: { device: { tpu: { variant: "v5litepod-16", sliceCount: 2147483647 } } } });
    assert.throws(() => validateJobSpec(slices), /replicas is 8589934588, above the limit of 10000 \(maxReplicas\)/);
  });
});

describe("controller limits in process", { timeout: 60_000 }, () => {
  test("the Bearer scheme is case-insensitive; the token is not", async () => {
    const server = await startController({ stateDir: ":memory:", token: "s3cret" });
    try {
      assert.equal((await post(server.url, "ListJobs", "{}", { authorization: "bearer s3cret" })).status, 200);
      assert.equal((await post(server.url, "ListJobs", "{}", { authorization: "BEARER s3cret" })).status, 200);
      assert.equal((await post(server.url, "ListJobs", "{}", { authorization: "bearer S3CRET" })).code, "unauthenticated");
    } finally {
      await server.shutdown();
    }
  });

  test("limits come before auth: an oversized field never reaches the refusal log", async () => {
    const logs = captureLogs("controller");
    const server = await startController({ stateDir: ":memory:", token: "s3cret", logger: logs.logger });
    try {
      const body = JSON.stringify({ workerId: "w".repeat(100_000), address: "http://127.0.0.1:1", resources: { cpu: 1 } });
      const res = await post(server.url, "RegisterWorker", body);
      assert.equal(res.code, "invalid_argument", res.message);
      assert.ok(logs.records.every((r) => JSON.stringify(r).length < 1000), "no log line carries the oversized id");
    } finally {
      await server.shutdown();
    }
  });

  test("a job holds at most maxEndpointsPerJob endpoints", async () => {
    const server = await startController({ stateDir: ":memory:", maxEndpointsPerJob: 3 });
    const client = Cluster.connect(server.url);
    try {
      const jobId = await client.launch({ name: "owner", resources: { cpu: 0.1, memory: "32m" }, entrypoint: Entrypoint.fromCommand(["true"]) });
      for (let i = 0; i < 3; i++) await client.registerEndpoint(`svc-${i}`, "http://127.0.0.1:1", { jobId });
      const err = await client.registerEndpoint("svc-3", "http://127.0.0.1:1", { jobId }).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(err instanceof FlusterError);
      assert.equal(err.code, "resource_exhausted");
      assert.match(err.message, /already holds 3 endpoints, the limit \(maxEndpointsPerJob 3\)/);
    } finally {
      await client.close();
      await server.shutdown();
    }
  });

  test("limit options are checked up front", async () => {
    await assert.rejects(startController({ stateDir: ":memory:", maxReplicas: 0 }), /maxReplicas must be a whole number ≥ 1/);
    await assert.rejects(startController({ stateDir: ":memory:", maxRequestBytes: 1.5 }), /maxRequestBytes must be a whole number ≥ 1/);
  });
});

describe("what the fuzzer found", { timeout: 60_000 }, () => {
  test("an endpoint TTL beyond a year is refused, and listing endpoints keeps working", async () => {
    const server = await startController({ stateDir: ":memory:" });
    try {
      const res = await post(server.url, "RegisterEndpoint", JSON.stringify({ name: "svc", address: "http://127.0.0.1:1", ttlSeconds: 9.98e164 }));
      assert.equal(res.code, "invalid_argument", res.message);
      assert.match(res.message ?? "", /ttlSeconds must be a number from 0 to 31536000/);
      assert.equal((await post(server.url, "ListEndpoints", JSON.stringify({ allNamespaces: true }))).status, 200);
    } finally {
      await server.shutdown();
    }
  });

  test("a worker runs attempts whose ids are long or dots, each in a directory of its own; its maxRequestBytes holds", async () => {
    const home = await startController({ stateDir: ":memory:" });
    const workDir = mkdtempSync(join(tmpdir(), "fluster-attempt-ids-"));
    const daemon = new WorkerDaemon({ controllerUrl: home.url, workDir, cpu: 1, memory: 2 ** 30, killGraceSeconds: 1, maxRequestBytes: 100_000, logger: silentLogger() });
    try {
      await daemon.start();
      const worker = createRpcChannel(daemon.address, { token: "" });
      try {
        const spec = jobSpecToProto(validateJobRequest({ name: "ids", resources: { cpu: 0.1, memory: "32m" }, entrypoint: Entrypoint.fromCommand(["true"]) }));
        for (const attemptId of ["x".repeat(1000), "y".repeat(1000), "..", "."]) {
          const res = await worker.client(WorkerService).runTask({ task: { attemptId, jobId: "j", jobName: "ids", namespace: "default", taskIndex: 0, numTasks: 1, spec } });
          assert.ok(res.attempt, attemptId.slice(0, 10));
        }
        assert.ok(!existsSync(join(workDir, "output.jsonl")), "no attempt wrote into the work dir itself");
        const big = await worker
          .client(WorkerService)
          .killTask({ attemptId: "a", reason: "r".repeat(200_000) })
          .then(
            () => undefined,
            (e: unknown) => fromConnectError(e),
          );
        assert.equal(big?.code, "resource_exhausted", big?.message);
        assert.match(big?.message ?? "", /maxRequestBytes 100000/);
      } finally {
        worker.close();
      }
    } finally {
      await daemon.shutdown();
      await home.shutdown();
      rmSync(workDir, { recursive: true, force: true });
    }
  });
});

describe("lost workers", { timeout: 90_000 }, () => {
  test("a lost worker's row is pruned after the retention period; its attempts keep its id and their logs say it is gone", async () => {
    const stateDir = mkdtempSync(join(tmpdir(), "fluster-prune-"));
    const logs = captureLogs("controller");
    const server = await startController({ stateDir, reconcileIntervalSeconds: 0.2, workerLostGraceSeconds: 1, lostWorkerRetentionSeconds: 1, logger: logs.logger });
    const daemon = new WorkerDaemon({ controllerUrl: server.url, workerId: "w-prune", workDir: join(stateDir, "work"), cpu: 1, memory: 2 ** 30, killGraceSeconds: 1, logger: silentLogger() });
    const client = Cluster.connect(server.url);
    const dbPath = join(stateDir, "controller.sqlite");
    const query = <T>(sql: string): T[] => {
      const db = new Database(dbPath, { readonly: true });
      try {
        return db.prepare(sql).all() as T[];
      } finally {
        db.close();
      }
    };
    try {
      await daemon.start();
      const jobId = await client.launch({ name: "before-loss", resources: { cpu: 0.1, memory: "32m" }, entrypoint: Entrypoint.fromCommand(["echo", "hello"]) });
      const info = await client.wait(jobId, { timeoutSeconds: 30 });
      assert.equal(info.status, "succeeded", info.errorMessage);
      await daemon.shutdown();
      await eventually(() => query<{ n: number }>("SELECT count(*) AS n FROM workers")[0]?.n === 0, { what: "the lost worker's row to be pruned", timeoutMs: 30_000 });
      assert.ok(logs.events("lost_workers_pruned").some((r) => /^forgot 1 worker\(s\) lost more than 1 s ago$/.test(r.msg)), logs.messages.join("\n"));
      assert.deepEqual(query<{ worker_id: string }>("SELECT worker_id FROM attempts").map((r) => r.worker_id), ["w-prune"], "the attempt keeps its worker id");
      const lines: string[] = [];
      for await (const line of client.logs(jobId)) lines.push(line.data);
      assert.match(lines.join(""), /its worker w-prune is gone/);
    } finally {
      await client.close();
      await daemon.shutdown();
      await server.shutdown();
      rmSync(stateDir, { recursive: true, force: true });
    }
  });
});

describe("loopback", () => {
  test("is decided from addresses, not spelling", async () => {
    assert.equal(isLoopbackAddress("127.0.0.2"), true);
    assert.equal(isLoopbackAddress("::1"), true);
    assert.equal(isLoopbackAddress("[::1]"), true);
    assert.equal(isLoopbackAddress("::ffff:127.0.0.1"), true);
    assert.equal(isLoopbackAddress("10.0.0.1"), false);
    assert.equal(isLoopbackAddress("127.example"), false);
    const table: Record<string, string[]> = { "localhost.example": ["203.0.113.5"], "127.evil.example": ["198.51.100.7"], "mixed.example": ["127.0.0.1", "203.0.113.5"], "home.example": ["127.0.0.3"] };
    const resolver = async (host: string) => {
      const addresses = table[host];
      if (!addresses) throw new Error(`ENOTFOUND ${host}`);
      return addresses.map((address) => ({ address }));
    };
    assert.equal(await resolvesToLoopback("localhost.example", resolver), false);
    assert.equal(await resolvesToLoopback("127.evil.example", resolver), false);
    assert.equal(await resolvesToLoopback("mixed.example", resolver), false, "every address must be loopback");
    assert.equal(await resolvesToLoopback("home.example", resolver), true);
    assert.equal(await resolvesToLoopback("nowhere.example", resolver), false);
    assert.equal(await resolvesToLoopback("127.0.0.2"), true);
    assert.equal(await resolvesToLoopback("localhost"), true);
  });

  test("a controller on 127.0.0.2 needs no token; on a name that is not loopback it generates one", async () => {
    const stateDir = mkdtempSync(join(tmpdir(), "fluster-loopback-"));
    try {
      const local = await startController({ stateDir, host: "127.0.0.2" });
      try {
        assert.equal(local.token, undefined);
        assert.equal((await post(local.url, "ListJobs", "{}")).status, 200);
      } finally {
        await local.shutdown();
      }
      // A name that merely starts with "127." is resolved, not trusted: this one does not resolve,
      // so it is not loopback and a token is generated before the bind fails.
      await assert.rejects(startController({ stateDir, host: "127.0.0.1.invalid" }));
      assert.ok(existsSync(join(stateDir, "token")), "auth was turned on for a host that is not loopback");
    } finally {
      rmSync(stateDir, { recursive: true, force: true });
    }
  });
});
