// Actors of a cluster job context restart when their process dies, within
// the budget `maxRestarts` sets; getIfExists finds a restarting actor instead
// of launching a second one, and replaces one whose job has ended.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Cluster } from "../../src/cluster/client/cluster.js";
import { FlusterError, ValidationError } from "../../src/core/errors.js";
import type { JobInfo } from "../../src/core/job.js";
import { createJobContext, type ActorHandle, type JobContext } from "../../src/job/index.js";
import { Broken, Fragile, type FragileIdentity } from "../fixtures/job/restart.js";
import { eventually } from "../helpers/eventually.js";
import { useLocalCluster } from "../helpers/local-cluster.js";

/** How long a restarted Fragile blocks in its constructor: the window with a live job and no endpoint. */
const RESTART_DELAY_MS = 4000;

describe("cluster job context: actors restart when their process dies", { timeout: 300_000 }, () => {
  const contexts: JobContext[] = [];
  let markers: string | undefined;
  // Registered before the cluster's after() hook, so it runs first: the actors are jobs on it.
  after(async () => {
    await Promise.all(contexts.map((ctx) => ctx.close({ timeoutSeconds: 0 })));
    if (markers) await rm(markers, { recursive: true, force: true });
  });
  const local = useLocalCluster({ workers: 1, workerCpu: 8, workerMemory: "8g" });

  function context(): JobContext {
    const ctx = createJobContext("cluster", { cluster: local.cluster, actorResources: { cpu: 0.1, memory: "64m" }, actorStartTimeoutSeconds: 60 });
    contexts.push(ctx);
    return ctx;
  }

  async function marker(name: string): Promise<string> {
    markers ??= await mkdtemp(join(tmpdir(), "fluster-actor-restart-"));
    return join(markers, name);
  }

  /** Kills the actor's process through its own method; the call cannot answer. */
  async function crash(actor: ActorHandle<InstanceType<typeof Fragile>>): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const hung = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error("crash() neither failed nor answered within 30 s")), 30_000)));
    try {
      await assert.rejects(Promise.race([actor.crash(), hung]), (err: unknown) => !(err instanceof Error && err.message.startsWith("crash() neither")));
    } finally {
      clearTimeout(timer);
    }
  }

  async function jobsNamed(cluster: Cluster, name: string): Promise<JobInfo[]> {
    return (await cluster.listJobs({ prefix: name })).filter((job) => job.name === name);
  }

  async function job(jobId: string): Promise<JobInfo> {
    return local.cluster.poll(jobId);
  }

  test("a crashed actor is started again in a new process, with fresh state, and the same handle reaches it", async () => {
    const ctx = context();
    const actor = await ctx.createActor(Fragile, ["a", await marker("a"), 0], { name: "fragile-a", maxRestarts: 2 });
    const first: FragileIdentity = await actor.whoami();
    assert.equal((await actor.whoami()).calls, 2, "the actor keeps its state between calls");
    assert.ok(first.jobId && first.attemptId);
    await crash(actor);
    await eventually(async () => (await job(first.jobId!)).tasks[0]?.failureCount === 1, { what: "the actor's job to count the crash as a failure", timeoutMs: 30_000 });
    // The dead attempt's endpoint goes with it: a lookup never offers it again.
    const [endpoint] = await waitForEndpoint(local.cluster, "fragile-a");
    assert.notEqual(endpoint?.attemptId, first.attemptId, "the endpoint is the new attempt's");
    assert.equal(endpoint?.jobId, first.jobId, "the same job hosts the restarted actor");
    const second = await actor.whoami();
    assert.notEqual(second.pid, first.pid, "a new process");
    assert.equal(second.jobId, first.jobId);
    assert.equal(second.attemptId, endpoint?.attemptId);
    assert.deepEqual([second.tag, second.calls], ["a", 1], "constructed again with the same args: its state is not kept");
    assert.equal((await job(first.jobId!)).status, "running");
    assert.equal((await jobsNamed(local.cluster, "actor/fragile-a")).length, 1, "a restart is a retry of the same job, not a new job");
  });

  test("getIfExists while the actor restarts waits for it: no second job", async () => {
    const owner = context();
    const actor = await owner.createActor(Fragile, ["b", await marker("b"), RESTART_DELAY_MS], { name: "fragile-b" });
    const first = await actor.whoami();
    await crash(actor);
    await eventually(async () => (await job(first.jobId!)).tasks[0]?.failureCount === 1, { what: "the crash to be counted", timeoutMs: 30_000 });
    // Another context (another program, say) asks for the actor while its job is alive and no endpoint is up.
    assert.deepEqual(await local.cluster.lookupEndpoints("fragile-b"), [], "the restart window: the old endpoint is gone, the new one not up");
    const other = context();
    const found = await other.createActor(Fragile, ["b-other", await marker("b-other"), 0], { name: "fragile-b", getIfExists: true });
    const reached = await found.whoami();
    assert.equal(reached.jobId, first.jobId, "the handle reaches the restarted actor of the same job");
    assert.notEqual(reached.pid, first.pid);
    assert.equal(reached.tag, "b", "it is the existing actor, not one built from the second call's args");
    assert.equal((await jobsNamed(local.cluster, "actor/fragile-b")).length, 1, "getIfExists launched nothing");
    // The context that found the actor does not own it: closing it leaves the actor up.
    await other.close();
    assert.equal((await job(first.jobId!)).status, "running");
    assert.equal((await actor.whoami()).pid, reached.pid);
  });

  test("with maxRestarts 0 a crash fails the job for good; getIfExists then starts a fresh actor", async () => {
    const ctx = context();
    const actor = await ctx.createActor(Fragile, ["c", await marker("c"), 0], { name: "fragile-c", maxRestarts: 0 });
    const first = await actor.whoami();
    await crash(actor);
    const ended = await local.cluster.wait(first.jobId!, { timeoutSeconds: 30 });
    assert.equal(ended.status, "failed");
    assert.equal(ended.tasks[0]?.failureCount, 1, "one attempt, never retried");
    assert.deepEqual(await local.cluster.lookupEndpoints("fragile-c"), [], "the failed job's endpoint is gone");
    // A program that asks for the actor again gets a fresh one, in a new job, in this context and in another.
    const again = await ctx.createActor(Fragile, ["c2", await marker("c2"), 0], { name: "fragile-c", getIfExists: true });
    const fresh = await again.whoami();
    assert.notEqual(fresh.jobId, first.jobId);
    assert.deepEqual([fresh.tag, fresh.calls], ["c2", 1]);
    const jobs = await jobsNamed(local.cluster, "actor/fragile-c");
    assert.deepEqual(jobs.map((j) => j.status).sort(), ["failed", "running"]);
    const fromOther = await context().createActor(Fragile, ["c3", await marker("c3"), 0], { name: "fragile-c", getIfExists: true });
    assert.equal((await fromOther.whoami()).jobId, fresh.jobId, "another context finds the live one");
    assert.equal((await jobsNamed(local.cluster, "actor/fragile-c")).length, 2);
  });

  test("an actor whose first start fails is not restarted: createActor says why at once", async () => {
    const ctx = context();
    await assert.rejects(
      ctx.createActor(Broken, ["no"], { name: "broken", maxRestarts: 5 }),
      (err: unknown) => err instanceof FlusterError && err.code === "unavailable" && /actor broken did not start: its job \S+ failed at its first start.*Broken refuses to start: no/s.test(err.message),
    );
    const [broken] = await jobsNamed(local.cluster, "actor/broken");
    assert.ok(broken);
    const ended = await local.cluster.wait(broken.jobId, { timeoutSeconds: 30 });
    assert.equal(ended.status, "killed");
    assert.equal(ended.tasks[0]?.failureCount, 1, "one attempt only, of the five restarts allowed");
  });

  test("maxRestarts must be a whole number ≥ 0", async () => {
    const ctx = context();
    for (const bad of [-1, 1.5, "3"]) {
      await assert.rejects(
        ctx.createActor(Fragile, ["d", await marker("d"), 0], { name: "fragile-d", maxRestarts: bad as number }),
        (err: unknown) => err instanceof ValidationError && err.field === "maxRestarts",
      );
    }
    assert.deepEqual(await jobsNamed(local.cluster, "actor/fragile-d"), [], "nothing was launched");
  });
});

/** The endpoints of `name` once there is one (a restarted actor's registration). */
async function waitForEndpoint(cluster: Cluster, name: string): Promise<Awaited<ReturnType<Cluster["lookupEndpoints"]>>> {
  let endpoints: Awaited<ReturnType<Cluster["lookupEndpoints"]>> = [];
  await eventually(
    async () => {
      endpoints = await cluster.lookupEndpoints(name);
      return endpoints.length > 0;
    },
    { what: `an endpoint of ${name}`, timeoutMs: 60_000, intervalMs: 100 },
  );
  return endpoints;
}
