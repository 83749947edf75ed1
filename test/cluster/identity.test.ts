// Identities on an auth-enabled cluster, end to end (real controller, worker
// daemons and job processes on loopback): a job acts with its own credential,
// only inside its namespace and subtree; heartbeats are accepted only with
// the worker's own credential; actor servers accept callers of their
// namespace; the signing key survives a controller restart.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { Cluster } from "../../src/cluster/client/cluster.js";
import { Entrypoint } from "../../src/core/entrypoint.js";
import { FlusterError } from "../../src/core/errors.js";
import { ClusterResolver, FixedResolver } from "../../src/actor/resolver.js";
import { WorkerPool } from "../../src/pool/worker-pool.js";
import { startController } from "../../src/cluster/controller/server.js";
import { WorkerDaemon } from "../../src/cluster/worker/daemon.js";
import { createRpcChannel } from "../../src/rpc/transport.js";
import { fromConnectError } from "../../src/rpc/errors.js";
import { taskStateToProto } from "../../src/rpc/convert.js";
import { ControllerService } from "../../src/rpc/gen/fluster/cluster/v1/controller_pb.js";
import { AttemptSchema, WorkerResourcesSchema } from "../../src/rpc/gen/fluster/cluster/v1/types_pb.js";
import { callGreeter, callGreeterAt, hostGreeter, probeAccess, type Greeter } from "../fixtures/identity/probes.js";
import { square } from "../fixtures/pool/tasks.js";
import { Counter, nestedSum } from "../fixtures/job/tasks.js";
import { createJobContext, type JobContext } from "../../src/job/index.js";
import { eventually } from "../helpers/eventually.js";
import { collectLogs, useLocalCluster } from "../helpers/local-cluster.js";
import { silentLogger } from "../../src/core/logger.js";
import { captureLogs } from "../helpers/logs.js";

const OPERATOR_TOKEN = "identity-test-operator-token";
const SMALL = { cpu: 0.2, memory: "128m" };

/** What a probe job answered: the JSON on its `RESULT` line. */
async function resultOf<T>(client: Cluster, jobId: string): Promise<T> {
  const line = (await collectLogs(client, jobId)).split("\n").find((l) => l.startsWith("RESULT "));
  assert.ok(line, `job ${jobId} printed no RESULT line`);
  return JSON.parse(line.slice("RESULT ".length)) as T;
}

/** The code an action failed with, or "ok". */
async function codeOf(action: () => Promise<unknown>): Promise<string> {
  try {
    await action();
    return "ok";
  } catch (err) {
    return (err instanceof FlusterError ? err : fromConnectError(err)).code;
  }
}

describe("identities on an auth-enabled cluster", { timeout: 240_000 }, () => {
  const clients: Cluster[] = [];
  let pool: WorkerPool | undefined;
  let ctx: JobContext | undefined;
  const running: Array<{ client: Cluster; jobId: string }> = [];
  after(async () => {
    await ctx?.close();
    await pool?.shutdown();
    for (const { client, jobId } of running) await client.terminate(jobId).catch(() => undefined);
    for (const client of clients) await client.close();
  });
  const local = useLocalCluster({ workers: 2, workerCpu: 4, token: OPERATOR_TOKEN });
  const inNamespace = (namespace: string) => {
    const client = Cluster.connect(local.cluster.address, { namespace, token: OPERATOR_TOKEN });
    clients.push(client);
    return client;
  };
  let nsA: Cluster;
  let nsB: Cluster;
  /** A job of namespace B hosting an actor (an endpoint), and where its attempt runs. */
  let victim: { jobId: string; attemptId: string; workerId: string; address: string };

  before(async () => {
    nsA = inNamespace(Cluster.freshNamespace("a"));
    nsB = inNamespace(Cluster.freshNamespace("b"));
    const jobId = await nsB.launch({ name: "victim", resources: SMALL, entrypoint: Entrypoint.fromFunction(hostGreeter, "greeter-b") });
    running.push({ client: nsB, jobId });
    const [endpoint] = await new ClusterResolver(nsB).lookup<Greeter>("greeter-b").waitForSize(1, { timeoutSeconds: 60 });
    const task = (await nsB.poll(jobId)).tasks[0];
    assert.ok(endpoint && task?.attemptId && task.workerId, "the victim runs and serves");
    victim = { jobId, attemptId: task.attemptId, workerId: task.workerId, address: endpoint.address };
  });

  test("a job's credential acts only inside its namespace and subtree", async () => {
    const probe = await nsA.launch({
      name: "probe",
      resources: SMALL,
      entrypoint: Entrypoint.fromFunction(probeAccess, {
        otherNamespace: nsB.namespace,
        otherJobId: victim.jobId,
        otherEndpoint: "greeter-b",
        workerId: victim.workerId,
        victimAttemptId: victim.attemptId,
      }),
    });
    const info = await nsA.wait(probe, { timeoutSeconds: 120 });
    assert.equal(info.status, "succeeded", `probe ${info.status}: ${info.errorMessage ?? ""}\n${await collectLogs(nsA, probe)}`);
    const results = await resultOf<Record<string, string>>(nsA, probe);
    const codes = Object.fromEntries(Object.entries(results).map(([action, said]) => [action, said.split(":")[0]]));
    assert.deepEqual(
      codes,
      {
        lookupOther: "permission_denied",
        listOtherEndpoints: "permission_denied",
        readOtherJob: "permission_denied",
        terminateOther: "permission_denied",
        registerInOther: "permission_denied",
        listAllEndpoints: "permission_denied",
        listAllJobs: "permission_denied",
        launchInOther: "permission_denied",
        listWorkers: "permission_denied",
        forgedHeartbeat: "permission_denied",
        registerWorker: "permission_denied",
        registerOwn: "ok",
        lookupOwn: "ok",
        listOwnJobs: "ok",
        launchAndTerminateChild: "ok",
        namespaceCredential: "ok",
        otherNamespaceCredential: "permission_denied",
      },
      JSON.stringify(results, null, 2),
    );
    // The refusals say what was wrong.
    assert.match(results.terminateOther ?? "", /may not terminate job .* of namespace b-/);
    assert.match(results.forgedHeartbeat ?? "", /may not call Heartbeat/);
    // The victim was neither terminated nor marked succeeded.
    const victimNow = await nsB.poll(victim.jobId);
    assert.equal(victimNow.status, "running");
    assert.equal(victimNow.tasks[0]?.state, "running");
    assert.equal(victimNow.tasks[0]?.attemptId, victim.attemptId);
    // The operator still sees everything.
    assert.ok((await nsA.listJobs({ allNamespaces: true })).some((j) => j.jobId === victim.jobId));
  });

  test("a heartbeat is accepted only with the worker's own credential", async () => {
    const forged = create(AttemptSchema, { attemptId: victim.attemptId, state: taskStateToProto("succeeded") });
    const heartbeatWith = (token: string, attempts = [forged]) =>
      codeOf(() => createRpcChannel(local.cluster.address, { token }).client(ControllerService).heartbeat({ workerId: victim.workerId, attempts }));
    const identity = local.cluster.server.identity;
    assert.ok(identity, "auth is on");
    const otherWorker = local.cluster.workers.find((w) => w.workerId !== victim.workerId);
    assert.ok(otherWorker);
    assert.equal(await heartbeatWith(OPERATOR_TOKEN), "permission_denied", "the operator token does not speak for a worker");
    assert.equal(await heartbeatWith(await identity.workerCredential(otherWorker.workerId)), "permission_denied", "another worker's credential");
    assert.equal(await heartbeatWith(await identity.jobCredential(victim.jobId, victim.attemptId, nsB.namespace)), "permission_denied", "a job's credential");
    assert.equal(await heartbeatWith("not-a-token"), "unauthenticated");
    // The worker's own credential is accepted (an empty heartbeat: a lease renewal).
    assert.equal(await heartbeatWith(await identity.workerCredential(victim.workerId), []), "ok");
    const victimNow = await nsB.poll(victim.jobId);
    assert.equal(victimNow.status, "running", "the forged outcomes changed nothing");
    assert.equal(victimNow.tasks[0]?.state, "running");
    assert.equal(victimNow.tasks[0]?.attemptId, victim.attemptId);
  });

  test("actor calls work within a namespace and are refused from another", async () => {
    const caller = await nsB.launch({ name: "neighbour", resources: SMALL, entrypoint: Entrypoint.fromFunction(callGreeter, "greeter-b") });
    const stranger = await nsA.launch({ name: "stranger", resources: SMALL, entrypoint: Entrypoint.fromFunction(callGreeterAt, "greeter-b", victim.address) });
    const [neighbourInfo, strangerInfo] = await Promise.all([nsB.wait(caller, { timeoutSeconds: 120 }), nsA.wait(stranger, { timeoutSeconds: 120 })]);
    assert.equal(neighbourInfo.status, "succeeded", `${neighbourInfo.errorMessage ?? ""}\n${await collectLogs(nsB, caller)}`);
    assert.equal(strangerInfo.status, "succeeded", `${strangerInfo.errorMessage ?? ""}\n${await collectLogs(nsA, stranger)}`);
    assert.equal(await resultOf(nsB, caller), `hello neighbour from ${nsB.namespace}`);
    const refused = await resultOf<string>(nsA, stranger);
    assert.match(refused, new RegExp(`^permission_denied: .*a credential of namespace ${nsA.namespace} may not call actors of namespace ${nsB.namespace}`));
    // The operator's client calls the namespace's actors with a namespace credential.
    assert.equal(await new ClusterResolver(nsB).lookup<Greeter>("greeter-b").call({ timeoutSeconds: 20 }).greet("operator"), `hello operator from ${nsB.namespace}`);
    // Without a credential the actor server refuses.
    const anonymous = new FixedResolver({ "greeter-b": victim.address }).lookup<Greeter>("greeter-b");
    const previous = process.env.FLUSTER_TOKEN;
    delete process.env.FLUSTER_TOKEN;
    try {
      assert.equal(await codeOf(() => anonymous.call({ timeoutSeconds: 20 }).greet("nobody")), "unauthenticated");
    } finally {
      if (previous !== undefined) process.env.FLUSTER_TOKEN = previous;
    }
  });

  test("a job's credential is refused once its attempt has ended", async () => {
    const jobId = await nsA.launch({ name: "leaker", resources: SMALL, entrypoint: Entrypoint.fromCommand(["sh", "-c", 'printf "%s" "$FLUSTER_TOKEN"']) });
    const info = await nsA.wait(jobId, { timeoutSeconds: 60 });
    assert.equal(info.status, "succeeded");
    const credential = (await collectLogs(nsA, jobId)).trim();
    assert.match(credential, /^[\w-]+\.[\w-]+\.[\w-]+$/, "the job got a credential, not the cluster token");
    assert.notEqual(credential, OPERATOR_TOKEN);
    const orphan = Cluster.connect(local.cluster.address, { namespace: nsA.namespace, token: credential });
    clients.push(orphan);
    await assert.rejects(orphan.listJobs(), (err: unknown) => err instanceof FlusterError && err.code === "unauthenticated" && /has ended \(succeeded\)/.test(err.message));
  });

  test("a WorkerPool runs tasks on an auth-enabled cluster", async () => {
    pool = new WorkerPool(nsA, { numWorkers: 1, resources: { cpu: 0.5, memory: "256m" } });
    await pool.waitForWorkers(1, { timeoutSeconds: 90 });
    assert.equal(await pool.submit(square, 7), 49);
  });

  test("a cluster job context runs tasks, nested tasks and actors on an auth-enabled cluster", async () => {
    ctx = createJobContext("cluster", { cluster: nsA, maxWorkers: 1, workerResources: { cpu: 0.5, memory: "256m" }, actorResources: { cpu: 0.1, memory: "64m" } });
    assert.equal(await ctx.get(ctx.run(nestedSum, 3)), 6, "a task in a pool worker runs nested tasks on the same pool");
    const counter = await ctx.createActor(Counter, [10], { name: "identity-counter" });
    assert.equal(await counter.incr(5), 15);
  });
});

describe("a worker's credential and a controller restart", { timeout: 120_000 }, () => {
  let stateDir: string;
  let otherDir: string;
  before(() => {
    stateDir = mkdtempSync(join(tmpdir(), "fluster-identity-"));
    otherDir = mkdtempSync(join(tmpdir(), "fluster-identity-other-"));
  });
  after(() => {
    rmSync(stateDir, { recursive: true, force: true });
    rmSync(otherDir, { recursive: true, force: true });
  });

  test("a credential issued before a restart on the same state directory is still accepted; another controller's is not", async () => {
    const logger = silentLogger();
    let server = await startController({ stateDir, token: OPERATOR_TOKEN, logger });
    const port = Number(new URL(server.url).port);
    const daemon = new WorkerDaemon({ controllerUrl: server.url, workerId: "w-restart", token: OPERATOR_TOKEN, workDir: join(stateDir, "worker"), cpu: 1, memory: 256 * 1024 * 1024, logger });
    try {
      await daemon.start();
      const operator = createRpcChannel(server.url, { token: OPERATOR_TOKEN }).client(ControllerService);
      const registered = await operator.registerWorker({
        workerId: "w-restart",
        address: daemon.address,
        resources: create(WorkerResourcesSchema, { cpu: 1, memoryBytes: 256n * 1024n * 1024n }),
      });
      const credential = registered.workerCredential;
      assert.match(credential, /^[\w-]+\.[\w-]+\.[\w-]+$/);
      const publicKey = server.identity?.publicKey;
      await server.shutdown();
      const logs = captureLogs("controller");
      server = await startController({ stateDir, port, token: OPERATOR_TOKEN, logger: logs.logger });
      assert.equal(server.identity?.publicKey, publicKey, "the signing key was kept in the state database");
      const withCredential = createRpcChannel(server.url, { token: credential }).client(ControllerService);
      // The restarted controller knows the worker from its state; the old credential speaks for it.
      await eventually(async () => (await withCredential.heartbeat({ workerId: "w-restart" })).known, { what: "the old credential's heartbeat to be accepted", timeoutMs: 20_000 });
      // A forged heartbeat is refused, and the operator sees it in the controller's log.
      const asOperator = createRpcChannel(server.url, { token: OPERATOR_TOKEN }).client(ControllerService);
      assert.equal(await codeOf(() => asOperator.heartbeat({ workerId: "w-restart" })), "permission_denied");
      assert.ok(
        logs.events("call_denied").some((r) => r.msg === "refused: the cluster token may not call Heartbeat: only a worker's own credential speaks for the worker"),
        logs.messages.join("\n"),
      );
      // A controller with another state directory has another key: the credential means nothing there.
      const stranger = await startController({ stateDir: otherDir, token: OPERATOR_TOKEN, logger });
      try {
        assert.equal(await codeOf(() => createRpcChannel(stranger.url, { token: credential }).client(ControllerService).heartbeat({ workerId: "w-restart" })), "unauthenticated");
      } finally {
        await stranger.shutdown();
      }
    } finally {
      await daemon.shutdown();
      await server.shutdown();
    }
  });
});
