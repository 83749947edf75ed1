// Actors that survive their endpoints: a call on a name with no live endpoint
// waits for one (a SIGKILLed host's replacement), waiting ends with an error
// naming the actor, ActorServer.unregister stops hosting one actor while the
// server serves the rest, and resolvers list actors by prefix. Real processes,
// servers and a LocalCluster.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Cluster } from "../../src/cluster/client/cluster.js";
import { ActorServer } from "../../src/actor/server.js";
import { ActorPool } from "../../src/actor/pool.js";
import { scriptedSource } from "../helpers/endpoint-source.js";
import { ClusterResolver, FixedResolver } from "../../src/actor/resolver.js";
import { CallNotDeliveredError } from "../../src/actor/errors.js";
import { FlusterError } from "../../src/core/errors.js";
import { Calculator } from "../fixtures/actor/calculator.js";
import { REPO_ROOT, cleanEnv, eventually, stopProcess, waitForLine } from "../helpers/index.js";
import { useLocalCluster } from "../helpers/local-cluster.js";

const program = join(REPO_ROOT, "test", "fixtures", "actor", "serve-outside-job.ts");

/** An actor whose `hold()` stays in flight until the test releases it. */
class Gate {
  private enter: () => void = () => undefined;
  private release: () => void = () => undefined;
  /** Resolves once a `hold()` call has started on the actor. */
  readonly entered = new Promise<void>((resolve) => (this.enter = resolve));
  private readonly released = new Promise<void>((resolve) => (this.release = resolve));

  constructor(readonly id: string) {}

  async hold(): Promise<string> {
    this.enter();
    await this.released;
    return "finished";
  }

  whoAmI(): string {
    return this.id;
  }

  open(): void {
    this.release();
  }
}


describe("actors that survive their endpoints", { timeout: 120_000 }, () => {
  const servers: ActorServer[] = [];
  const children: ChildProcess[] = [];
  const clients: Cluster[] = [];
  // Registered before the cluster's after() hook, so it runs first: servers unregister from a live cluster.
  after(async () => {
    for (const child of children) await stopProcess(child, "SIGKILL");
    await Promise.all(servers.map((s) => s.shutdown()));
    await Promise.all(clients.map((c) => c.close()));
  });
  const local = useLocalCluster({ workers: 0 });

  async function host(name: string, instance: object, cluster: Cluster | undefined = local.cluster): Promise<ActorServer> {
    const server = new ActorServer(cluster);
    servers.push(server);
    await server.register(name, instance);
    return server;
  }

  test("calls made after the only endpoint was SIGKILLed wait for a replacement that comes 2 s later, and each runs there once", async () => {
    const child = spawn(process.execPath, ["--import", "tsx", program], {
      cwd: REPO_ROOT,
      env: cleanEnv({ FLUSTER_CLUSTER_ADDRESS: local.cluster.address, ENDPOINT_TTL_SECONDS: "2", ACTOR_NAME: "phoenix" }),
      stdio: ["ignore", "pipe", "inherit"],
    });
    children.push(child);
    await waitForLine(child, /^registered \S+$/);
    const pool = new ClusterResolver(local.cluster).lookup<Calculator>("phoenix");
    assert.equal(await pool.call().pid(), child.pid, "the child serves the name");

    await stopProcess(child, "SIGKILL");
    // Let this process see the dropped connection, so the calls below are refused, not cut off mid-request.
    await sleep(200);
    // The registry still lists the dead endpoint (until its TTL runs out): these calls are refused and wait.
    const early = Array.from({ length: 10 }, () => pool.call().accumulate(1));
    await eventually(async () => (await local.cluster.lookupEndpoints("phoenix")).length === 0, { what: "the killed endpoint to expire", timeoutMs: 20_000 });
    // Now no endpoint serves the name at all: these wait too.
    const late = Array.from({ length: 10 }, () => pool.call({ timeoutSeconds: 60 }).accumulate(1));
    const calls = [...early, ...late];
    let settled = 0;
    for (const call of calls) call.then(() => settled++, () => settled++);

    await sleep(2_000);
    assert.equal(settled, 0, "no call gave up while no endpoint was there");
    const replacement = new Calculator("replacement");
    await host("phoenix", replacement);
    const totals = await Promise.all(calls);
    assert.deepEqual(totals.sort((a, b) => a - b), Array.from({ length: 20 }, (_, i) => i + 1), "each call ran once");
    assert.equal(replacement.total, 20, "every call ran on the replacement");
  });

  test("a wait for an endpoint ends: unavailable after waitForEndpointSeconds, deadline_exceeded after timeoutSeconds, the reason on abort", async () => {
    const other = Cluster.connect(local.cluster.address, { namespace: "survive-ns" });
    clients.push(other);
    const pool = new ClusterResolver(other).lookup<Calculator>("nobody");

    let start = Date.now();
    await assert.rejects(pool.call({ waitForEndpointSeconds: 0.5 }).add(1, 2), (err: unknown) => {
      assert.ok(err instanceof CallNotDeliveredError, String(err));
      assert.equal(err.code, "unavailable");
      assert.match(err.message, /no endpoint serves actor "nobody" in namespace survive-ns \(waited 0\.5s for one\)/);
      return true;
    });
    assert.ok(Date.now() - start >= 450, `it waited (${Date.now() - start} ms)`);

    start = Date.now();
    await assert.rejects(pool.call({ timeoutSeconds: 0.3 }).add(1, 2), (err: unknown) => {
      assert.ok(err instanceof FlusterError, String(err));
      assert.equal(err.code, "deadline_exceeded");
      assert.match(err.message, /actor "nobody" in namespace survive-ns \(waited 0\.3s/);
      return true;
    });
    assert.ok(Date.now() - start >= 250, `it waited (${Date.now() - start} ms)`);

    const controller = new AbortController();
    const reason = new Error("the caller gave up");
    const call = pool.call({ signal: controller.signal }).add(1, 2);
    setTimeout(() => controller.abort(reason), 100);
    await assert.rejects(call, (err: unknown) => err === reason);

    assert.throws(() => pool.call({ waitForEndpointSeconds: -1 }), /waitForEndpointSeconds/);
  });

  test("calls waiting on one pool share one watch of its source, closed once none waits", async () => {
    const calculator = new Calculator();
    const server = await host("late", calculator, undefined);
    const source = scriptedSource();
    const pool = new ActorPool<Calculator>("late", source);
    const calls = Array.from({ length: 5 }, () => pool.call().accumulate(1));
    await eventually(() => source.watchesOpen === 1, { what: "the waiting calls to watch the source" });
    await sleep(100);
    source.publish([{ address: server.address, endpointId: "late-1", metadata: {} }]);
    assert.deepEqual((await Promise.all(calls)).sort((a, b) => a - b), [1, 2, 3, 4, 5]);
    assert.equal(source.watchesOpened, 1, "one watch for five waiting calls");
    await eventually(() => source.watchesOpen === 0, { what: "the watch to close" });

    const empty = scriptedSource();
    const nobody = new ActorPool<Calculator>("nobody", empty);
    await assert.rejects(nobody.call({ waitForEndpointSeconds: 0.1 }).add(1, 2), CallNotDeliveredError);
    await eventually(() => empty.watchesOpen === 0, { what: "the watch of a call that gave up to close" });
  });

  test("unregister: the other endpoint takes the calls, the server still serves its other actor, listings drop it, its call in flight finishes", async () => {
    const gateA = new Gate("a");
    const a = await host("twin", gateA);
    await a.register("bystander", new Calculator());
    const b = await host("twin", new Gate("b"));
    const resolver = new ClusterResolver(local.cluster);
    const pool = resolver.lookup<Gate>("twin");
    await pool.waitForSize(2, { timeoutSeconds: 10 });

    const inFlight = new FixedResolver({ twin: a.address }).lookup<Gate>("twin").call().hold();
    await gateA.entered;
    let unregistered = false;
    const unregistering = a.unregister("twin").then(() => (unregistered = true));
    await eventually(async () => (await local.cluster.lookupEndpoints("twin")).every((e) => e.address === b.address), { what: "a's endpoint to leave the registry" });
    assert.equal(unregistered, false, "unregister waits for the call in flight");

    // The pool still knows a's endpoint: "no actor here" sends its calls on to b.
    const answers = await Promise.all(Array.from({ length: 6 }, () => pool.call().whoAmI()));
    assert.deepEqual(answers, Array(6).fill("b"));
    assert.equal(await new FixedResolver({ bystander: a.address }).lookup<Calculator>("bystander").call().add(2, 3), 5, "a still serves its other actor");
    await assert.rejects(new FixedResolver({ twin: a.address }).lookup<Gate>("twin").call({ waitForEndpointSeconds: 0 }).whoAmI(), (err: unknown) => {
      assert.ok(err instanceof CallNotDeliveredError, String(err));
      assert.match(err.message, /no actor "twin" here \(hosting: bystander\)/);
      return true;
    });
    assert.deepEqual((await resolver.listActors("twin")).map((e) => [e.name, e.address]), [["twin", b.address]]);

    gateA.open();
    assert.equal(await inFlight, "finished", "the call in flight completed");
    await unregistering;
    assert.equal(unregistered, true);
    await assert.rejects(a.unregister("twin"), (err: unknown) => {
      assert.ok(err instanceof FlusterError);
      assert.equal(err.code, "not_found");
      assert.match(err.message, /no actor "twin" to unregister here \(hosting: bystander\)/);
      return true;
    });
  });

  test("ClusterResolver.listActors lists the endpoints of its own namespace whose name has the prefix", async () => {
    const other = Cluster.connect(local.cluster.address, { namespace: "survive-list" });
    clients.push(other);
    const ids = [
      await local.cluster.registerEndpoint("listed-alpha", "http://127.0.0.1:9", { metadata: { role: "first" } }),
      await local.cluster.registerEndpoint("listed-beta", "http://127.0.0.1:10"),
      await local.cluster.registerEndpoint("unlisted", "http://127.0.0.1:11"),
      await other.registerEndpoint("listed-gamma", "http://127.0.0.1:12"),
    ];
    try {
      const mine = await new ClusterResolver(local.cluster).listActors("listed-");
      assert.deepEqual(
        mine.map((e) => [e.name, e.address, e.metadata]).sort(),
        [
          ["listed-alpha", "http://127.0.0.1:9", { role: "first" }],
          ["listed-beta", "http://127.0.0.1:10", {}],
        ],
      );
      assert.ok(mine.every((e) => ids.includes(e.endpointId)));
      assert.deepEqual((await new ClusterResolver(other).listActors("listed-")).map((e) => e.name), ["listed-gamma"], "only its own namespace");
      assert.ok((await new ClusterResolver(local.cluster).listActors()).some((e) => e.name === "unlisted"), "no prefix lists every actor");
    } finally {
      await Promise.all(ids.slice(0, 3).map((id) => local.cluster.unregisterEndpoint(id)));
      await other.unregisterEndpoint(ids[3] as string);
    }
  });
});

describe("FixedResolver.listActors", () => {
  test("lists the table's addresses whose name has the prefix, one entry per address", async () => {
    const resolver = new FixedResolver({ "calc-a": ["http://127.0.0.1:1", "http://127.0.0.1:2/"], "calc-b": "127.0.0.1:3", other: "http://127.0.0.1:4" });
    assert.deepEqual(
      (await resolver.listActors("calc-")).map((e) => [e.name, e.address]),
      [
        ["calc-a", "http://127.0.0.1:1"],
        ["calc-a", "http://127.0.0.1:2"],
        ["calc-b", "http://127.0.0.1:3"],
      ],
    );
    assert.equal((await resolver.listActors()).length, 4);
    assert.deepEqual(await resolver.listActors("nothing-"), []);
  });
});
