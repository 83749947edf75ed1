// Seed 004's actor scenarios over real sockets: ActorServers registered with a
// real LocalCluster, called through typed proxies.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Cluster } from "../../src/cluster/client/cluster.js";
import { ActorServer } from "../../src/actor/server.js";
import { ClusterResolver, FixedResolver } from "../../src/actor/resolver.js";
import { ActorError } from "../../src/actor/errors.js";
import { actorConnections } from "../../src/actor/connections.js";
import { actorContext } from "../../src/actor/context.js";
import { Entrypoint } from "../../src/core/entrypoint.js";
import { FlusterError } from "../../src/core/errors.js";
import { Calculator, hostCalculator } from "../fixtures/actor/calculator.js";
import { eventually } from "../helpers/index.js";
import { useLocalCluster } from "../helpers/local-cluster.js";

describe("actors", { timeout: 120_000 }, () => {
  const servers: ActorServer[] = [];
  // Registered before the cluster's after() hook, so it runs first: servers unregister from a live cluster.
  after(async () => {
    await Promise.all(servers.map((s) => s.shutdown()));
  });
  const local = useLocalCluster({ workers: 2 });

  async function host(name: string, instance: object, client: Cluster = local.cluster): Promise<ActorServer> {
    const server = new ActorServer(client);
    servers.push(server);
    await server.register(name, instance);
    return server;
  }

  test("register and call, typed", async () => {
    await host("calculator", new Calculator());
    const pool = new ClusterResolver(local.cluster).lookup<Calculator>("calculator");
    await pool.waitForSize(1, { timeoutSeconds: 10 });
    const sum: number = await pool.call().add(2, 3);
    assert.equal(sum, 5);
    // @ts-expect-error: add takes numbers
    void (() => pool.call().add("2", 3));
    // @ts-expect-error: no such method
    void (() => pool.call().subtract(1, 1));
  });

  test("a throwing method arrives as ActorError, and the actor keeps its state", async () => {
    await host("stateful", new Calculator());
    const pool = new ClusterResolver(local.cluster).lookup<Calculator>("stateful");
    assert.equal(await pool.call().accumulate(10), 10);
    await assert.rejects(pool.call().fail("too big"), (err: unknown) => {
      assert.ok(err instanceof ActorError);
      assert.equal(err.remoteName, "RangeError");
      assert.equal(err.message, "too big");
      assert.match(err.remoteStack, /RangeError: too big/);
      assert.match(err.remoteStack, /calculator\.ts/);
      assert.ok(err.cause instanceof RangeError);
      assert.equal((err.cause as Error & { code: string }).code, "E_CALC");
      assert.equal(((err.cause as Error).cause as Error).message, "root cause");
      return true;
    });
    assert.equal(await pool.call().accumulate(5), 15, "state survived the throw");
    await assert.rejects(pool.call().echo.call(undefined, 1).then(() => (pool.call() as unknown as { nope(): Promise<void> }).nope()), (err: unknown) => err instanceof ActorError && err.remoteName === "TypeError" && /has no method "nope"/.test(err.message));
  });

  test("rich values round-trip", async () => {
    await host("echoer", new Calculator());
    const pool = new ClusterResolver(local.cluster).lookup<Calculator>("echoer");
    const value = {
      map: new Map<unknown, unknown>([[1, "one"], ["k", new Set([1n, 2n])]]),
      date: new Date("2026-01-02T03:04:05.678Z"),
      big: 2n ** 70n,
      bytes: new Uint8Array([1, 2, 255]),
      error: new TypeError("carried", { cause: "why" }),
      nothing: undefined,
    };
    // Generic methods lose their type parameter through the proxy (a TypeScript limit of `infer`).
    const back = (await pool.call().echo(value)) as typeof value;
    assert.ok(back.map instanceof Map && back.map.get("k") instanceof Set);
    assert.equal(back.date.getTime(), value.date.getTime());
    assert.equal(back.big, 2n ** 70n);
    assert.deepEqual([...back.bytes], [1, 2, 255]);
    assert.ok(back.error instanceof TypeError && back.error.cause === "why");
    assert.ok(Object.hasOwn(back, "nothing"));
  });

  test("broadcast reaches every endpoint; call() spreads round-robin", async () => {
    for (const id of ["a", "b", "c"]) await host("spread", new Calculator(id));
    const pool = new ClusterResolver(local.cluster).lookup<Calculator>("spread");
    await pool.waitForSize(3, { timeoutSeconds: 10 });
    const all = await pool.broadcast().whoAmI();
    assert.deepEqual(all.map((r) => (r.status === "fulfilled" ? r.value : "x")).sort(), ["a", "b", "c"]);
    const counts = new Map<string, number>();
    for (let i = 0; i < 30; i++) {
      const id = await pool.call().whoAmI();
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    assert.deepEqual([...counts.values()], [10, 10, 10]);
    const failures = await pool.broadcast().fail("everywhere");
    assert.ok(failures.every((r) => r.status === "rejected" && r.reason instanceof ActorError));
  });

  test("FixedResolver calls a known address", async () => {
    const server = new ActorServer(undefined);
    servers.push(server);
    await server.register("fixed", new Calculator("fixed-one"));
    const pool = new FixedResolver({ fixed: server.address }).lookup<Calculator>("fixed");
    assert.equal(await pool.call().whoAmI(), "fixed-one");
    assert.throws(() => new FixedResolver({ fixed: server.address }).lookup("other"), /not in this FixedResolver/);
  });

  test("a call to a dead endpoint is re-resolved and sent to a live one", async () => {
    await host("survivor", new Calculator("alive"));
    // A registration whose server is gone: connections to it are refused.
    const dead = new ActorServer(undefined);
    await dead.register("survivor", new Calculator("dead"));
    const deadAddress = dead.address;
    await dead.shutdown();
    await local.cluster.registerEndpoint("survivor", deadAddress);
    const pool = new ClusterResolver(local.cluster).lookup<Calculator>("survivor");
    await pool.waitForSize(2, { timeoutSeconds: 10 });
    for (let i = 0; i < 6; i++) assert.equal(await pool.call().whoAmI(), "alive");
  });

  test("calls run one at a time in arrival order unless the actor opts into concurrency", async () => {
    const order: string[] = [];
    class Recorder {
      async step(tag: string, ms: number): Promise<void> {
        order.push(`start ${tag}`);
        await new Promise((r) => setTimeout(r, ms));
        order.push(`end ${tag}`);
      }
    }
    const serial = new ActorServer(undefined);
    servers.push(serial);
    await serial.register("serial", new Recorder());
    const pool = new FixedResolver({ serial: serial.address }).lookup<Recorder>("serial");
    await Promise.all([pool.call().step("1", 60), pool.call().step("2", 10), pool.call().step("3", 10)]);
    assert.deepEqual(order, ["start 1", "end 1", "start 2", "end 2", "start 3", "end 3"]);

    order.length = 0;
    const concurrent = new ActorServer(undefined);
    servers.push(concurrent);
    await concurrent.register("concurrent", new Recorder(), { maxConcurrency: 4 });
    const pool2 = new FixedResolver({ concurrent: concurrent.address }).lookup<Recorder>("concurrent");
    await Promise.all([pool2.call().step("1", 60), pool2.call().step("2", 10)]);
    assert.deepEqual(order.slice(0, 2), ["start 1", "start 2"]);
  });

  test("actorContext gives the method its namespace and name; outside a method it throws", async () => {
    const other = Cluster.connect(local.cluster.address, { namespace: "ctx-ns" });
    await host("ctx", new Calculator(), other);
    const pool = new ClusterResolver(other).lookup<Calculator>("ctx");
    const ctx = await pool.call().context();
    assert.deepEqual(ctx, { namespace: "ctx-ns", jobId: undefined, actorName: "ctx" });
    assert.equal(new ClusterResolver(local.cluster).lookup<Calculator>("ctx").size, 0);
    await assert.rejects(new ClusterResolver(local.cluster).lookup<Calculator>("ctx").call({ waitForEndpointSeconds: 0 }).whoAmI(), /no endpoint serves actor "ctx" in namespace default/);
    assert.throws(() => actorContext(), /outside an actor method/);
    await other.close();
  });

  test("closing a cluster client lets go of the connections its pools opened", async () => {
    const server = await host("closing", new Calculator());
    const client = Cluster.connect(local.cluster.address);
    const before = actorConnections.size;
    const pools = [new ClusterResolver(client).lookup<Calculator>("closing"), new ClusterResolver(client).lookup<Calculator>("closing")];
    assert.deepEqual(await Promise.all(pools.map((p) => p.call().add(1, 2))), [3, 3]);
    assert.equal(actorConnections.size, before + 1, "both pools share one connection to the server");
    await client.close();
    await eventually(() => actorConnections.size === before, { what: "the closed client's connection to go", timeoutMs: 5_000 });
    // Another client's pool still reaches the same server.
    assert.equal(await new ClusterResolver(local.cluster).lookup<Calculator>("closing").call().add(2, 2), 4);
    assert.equal(server.state, "serving");
  });

  test("a call can be aborted or time out", async () => {
    await host("slow", new Calculator());
    const pool = new ClusterResolver(local.cluster).lookup<Calculator>("slow");
    await assert.rejects(pool.call({ timeoutSeconds: 0.05 }).slowEcho(1, 2_000), (err: unknown) => err instanceof FlusterError && err.code === "deadline_exceeded");
    const controller = new AbortController();
    const call = pool.call({ signal: controller.signal }).slowEcho(1, 2_000);
    setTimeout(() => controller.abort(), 30);
    // As everywhere in Fluster (docs/cancellation.md): the signal's reason, here an AbortError.
    await assert.rejects(call, (err: unknown) => err === controller.signal.reason && (err as Error).name === "AbortError");
    await assert.rejects(pool.call({ signal: AbortSignal.abort() }).add(1, 2), { name: "AbortError" });
  });

  test("shutdown unregisters, lets calls in flight finish, then closes the port", async () => {
    const server = new ActorServer(local.cluster);
    await server.register("draining", new Calculator());
    const pool = new ClusterResolver(local.cluster).lookup<Calculator>("draining");
    await pool.waitForSize(1, { timeoutSeconds: 10 });
    const inFlight = pool.call().slowEcho("finished", 300);
    await new Promise((r) => setTimeout(r, 50));
    await server.shutdown();
    assert.equal(await inFlight, "finished", "the call in flight completed");
    assert.equal(server.state, "stopped");
    assert.deepEqual(await local.cluster.lookupEndpoints("draining"), [], "unregistered");
    await assert.rejects(new FixedResolver({ draining: server.address }).lookup<Calculator>("draining").call({ waitForEndpointSeconds: 0 }).add(1, 2), FlusterError);
  });

  test("waitForSize times out with a clear error", async () => {
    const pool = new ClusterResolver(local.cluster).lookup<Calculator>("nobody-home");
    const start = Date.now();
    await assert.rejects(pool.waitForSize(1, { timeoutSeconds: 0.5 }), (err: unknown) => {
      assert.ok(err instanceof FlusterError);
      assert.equal(err.code, "deadline_exceeded");
      assert.match(err.message, /actor "nobody-home" has 0 of 1 endpoint\(s\) in namespace default after 0.5s/);
      return true;
    });
    assert.ok(Date.now() - start < 2_000);
  });

  test("an actor hosted by a cluster job is found by name, and goes when the job ends", async () => {
    const jobId = await local.cluster.launch({ name: "calc-server", resources: { cpu: 0.2, memory: "128m" }, ports: ["actor"], entrypoint: Entrypoint.fromFunction(hostCalculator, "job-calc") });
    const pool = new ClusterResolver(local.cluster).lookup<Calculator>("job-calc");
    const [endpoint] = await pool.waitForSize(1, { timeoutSeconds: 30 });
    assert.equal(await pool.call().add(20, 22), 42);
    assert.equal(await pool.call().whoAmI(), `job-${jobId}`);
    const registered = await local.cluster.lookupEndpoints("job-calc");
    assert.equal(registered[0]?.jobId, jobId);
    assert.ok(endpoint);
    await local.cluster.terminate(jobId);
    assert.deepEqual(await local.cluster.lookupEndpoints("job-calc"), [], "the endpoint went with its job");
    // The controller tells the worker at once; the process is gone moments later.
    let failure: unknown;
    await eventually(
      async () => (failure = await pool.call({ waitForEndpointSeconds: 0 }).add(1, 1).then(() => undefined, (err: unknown) => err)) !== undefined,
      { what: "a call to fail" },
    );
    assert.ok(failure instanceof FlusterError, `calls fail once the job is gone: ${String(failure)}`);
  });
});
