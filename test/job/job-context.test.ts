// Seed 000's backend tests, run on every job context: the same program gives
// the same results inline, on worker threads and on a real LocalCluster.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createJobContext, getJobContext, withJobContext, type JobContext, type JobContextKind } from "../../src/job/index.js";
import { ActorError } from "../../src/actor/errors.js";
import { JobFailedError } from "../../src/cluster/client/cluster.js";
import { ValidationError } from "../../src/core/errors.js";
import type { JobInfo } from "../../src/core/job.js";
import { ResourceConfig } from "../../src/core/resources.js";
import { Counter, PlainCounter, Probe, add, fail, nestedSum, slowIdentity, square, whereAmI } from "../fixtures/job/tasks.js";
import { eventually } from "../helpers/eventually.js";
import { useLocalCluster } from "../helpers/local-cluster.js";

function errorOf(err: unknown): Error {
  // Remote actors wrap what they threw; tasks reject with the error itself or an ActorError around it.
  return err instanceof ActorError && err.cause instanceof Error ? err.cause : (err as Error);
}

for (const kind of ["sync", "threads", "cluster"] as const satisfies readonly JobContextKind[]) {
  describe(`job context: ${kind}`, { timeout: 300_000 }, () => {
    let ctx: JobContext;
    // Registered before the cluster's after() hook, so it runs first: a cluster context's workers are jobs on it.
    after(async () => {
      await ctx?.close();
    });
    const local = kind === "cluster" ? useLocalCluster({ workers: 2, workerCpu: 8, workerMemory: "8g" }) : undefined;
    before(() => {
      ctx = local
        ? createJobContext("cluster", { cluster: local.cluster, maxWorkers: 2, workerResources: { cpu: 1, memory: "256m" }, actorResources: { cpu: 0.1, memory: "64m" } })
        : createJobContext(kind, { maxWorkers: 2 });
    });

    test("run and get", async () => {
      assert.equal(ctx.kind, kind);
      const f = ctx.run(square, 7);
      assert.equal(await ctx.get(f), 49);
      assert.equal(await f, 49, "a future is awaitable");
      assert.equal(await ctx.get(f), 49, "get twice gives the same value");
      assert.deepEqual(await ctx.get([ctx.run(square, 2), ctx.run(add, 2, 3)]), [4, 5]);
    });

    test("many concurrent tasks", async () => {
      const futures = Array.from({ length: 200 }, (_, i) => ctx.run(square, i));
      const values = await ctx.get(futures);
      assert.deepEqual(values, Array.from({ length: 200 }, (_, i) => i * i));
      assert.ok(futures.every((f) => f.done()));
    });

    test("futures and refs as arguments are resolved first", async () => {
      const ref = ctx.put(10);
      assert.equal(await ctx.get(ref), 10);
      const chained = ctx.run(add, ctx.run(square, 3), ref);
      assert.equal(await chained, 19);
    });

    test("a task's exception reaches get with its class and message", async () => {
      const f = ctx.run(fail, "out of range");
      await assert.rejects(ctx.get(f), (err: unknown) => {
        const e = errorOf(err);
        assert.equal(e.name, "RangeError");
        assert.equal(e.message, "out of range");
        assert.equal(e.cause, "because");
        return true;
      });
      assert.ok(f.done());
      assert.equal(await ctx.get(ctx.run(square, 5)), 25, "the context is still usable");
    });

    test("wait returns done in completion order and the rest pending; a timeout gives partial results", async () => {
      const slow = ctx.run(slowIdentity, "slow", 1_500);
      const fast = ctx.run(slowIdentity, "fast", 10);
      const { done, pending } = await ctx.wait([slow, fast], { numReturns: 1 });
      assert.deepEqual(done, [fast]);
      assert.deepEqual(pending, [slow]);
      const partial = await ctx.wait([slow, ctx.run(slowIdentity, "slower", 3_000)], { numReturns: 2, timeoutSeconds: 0.2 });
      assert.ok(partial.done.length < 2, "the timeout returned before both finished");
      assert.equal(partial.done.length + partial.pending.length, 2);
      const all = await ctx.wait([slow, fast], { numReturns: 2 });
      assert.deepEqual(all.done.map((f) => f.id).sort(), [slow.id, fast.id].sort());
      const one = await ctx.wait([slow, fast], { numReturns: 1 });
      assert.equal(one.done.length, 1, "both are done, yet only numReturns come back done");
      assert.equal(one.pending.length, 1);
      await assert.rejects(ctx.wait([fast], { numReturns: 2 }), /numReturns/);
    });

    test("nested tasks: a task runs tasks, ten levels deep", async () => {
      assert.equal(await ctx.get(ctx.run(nestedSum, 10)), 55);
    });

    test("actors keep state; named actors can be fetched; a throwing method leaves state intact", async () => {
      const counter = await ctx.createActor(Counter, [10], { name: `counter-${kind}` });
      assert.equal(await counter.incr(5), 15);
      assert.equal(await counter.incr(), 16);
      const again = await ctx.createActor(Counter, [0], { name: `counter-${kind}`, getIfExists: true });
      assert.equal(await again.get(), 16);
      await assert.rejects(ctx.createActor(Counter, [0], { name: `counter-${kind}` }), /already exists/);
      await assert.rejects(counter.explode(), (err: unknown) => errorOf(err).name === "TypeError");
      assert.equal(await counter.get(), 16);
    });

    test("many actors", async () => {
      const count = kind === "cluster" ? 10 : 50;
      const actors = await Promise.all(Array.from({ length: count }, (_, i) => ctx.createActor(Counter, [i])));
      const values = await Promise.all(actors.map((a) => a.incr(100)));
      assert.deepEqual(values, Array.from({ length: count }, (_, i) => i + 100));
    });

    test("withJobContext scopes the default context", async () => {
      const seen = await withJobContext(ctx, async () => getJobContext().kind);
      assert.equal(seen, kind);
    });

    test(kind === "cluster" ? "a task with resources runs as a job of its own with them" : "a task with resources runs here; the resources are checked and ignored", async () => {
      const wide = ctx.withOptions({ resources: { cpu: 2, memory: "300m" } });
      const [where, plain] = await ctx.get([wide.run(whereAmI, "wide"), ctx.run(whereAmI, "plain")]);
      assert.equal(where.tag, "wide");
      assert.equal(plain.tag, "plain");
      if (!local) {
        assert.deepEqual([where.jobId, plain.jobId], [null, null]);
        return;
      }
      assert.ok(where.jobId && plain.jobId);
      const own = local.cluster.server.controller.getJob(where.jobId);
      assert.equal(own.name, "task/whereAmI");
      assert.equal(own.spec.resources?.cpu, 2);
      assert.equal(own.spec.resources?.memoryBytes, 300n * 1024n * 1024n);
      assert.equal(local.cluster.server.controller.getJob(plain.jobId).spec.resources?.cpu, 1, "a task without resources still runs on the pool");
    });

    test("a task with resources runs nested tasks (on cluster: on the context's pool, which is up)", async () => {
      const pools = async () => (local ? (await local.cluster.listJobs({ prefix: "ctx-" })).length : 0);
      const before = await pools();
      assert.equal(await ctx.get(ctx.withOptions({ resources: { cpu: 0.5, memory: "256m" } }).run(nestedSum, 4)), 10);
      assert.equal(await pools(), before, "no pool of its own was started for the nested tasks");
    });

    test("a task with resources that throws rejects with its error, class and cause kept", async () => {
      const f = ctx.withOptions({ resources: { cpu: 0.5 } }).run(fail, "too wide");
      await assert.rejects(ctx.get(f), (err: unknown) => {
        assert.ok(err instanceof RangeError, String(err));
        assert.equal(err.message, "too wide");
        assert.equal(err.cause, "because");
        return true;
      });
    });

    test(kind === "cluster" ? "a GPU task waits for a GPU worker: it is not run on a CPU one" : "a GPU task runs here", async () => {
      const gpu = ctx.withOptions({ resources: ResourceConfig.withGpu("H100", 1, { memory: "64m" }) });
      const future = gpu.run(square, 6);
      if (!local) {
        assert.equal(await future, 36);
        return;
      }
      let job: JobInfo | undefined;
      await eventually(
        async () => {
          const jobs = await local.cluster.listJobs({ prefix: "task/square" });
          job = jobs.find((j) => local.cluster.server.controller.getJob(j.jobId).spec.resources?.device?.device.case === "gpu");
          return job?.pendingReason !== undefined;
        },
        { what: "the GPU task's job to be listed, pending with a reason" },
      );
      assert.ok(job);
      assert.equal(job.status, "pending");
      assert.match(job.pendingReason ?? "", /gpu/);
      assert.ok(!future.done(), "the task has not run");
      await local.cluster.terminate(job.jobId, "no GPU here");
      const jobId = job.jobId;
      await assert.rejects(ctx.get(future), (err: unknown) => err instanceof JobFailedError && new RegExp(`^job ${jobId} killed`).test(err.message));
    });

    test(kind === "cluster" ? "an actor with resources is hosted by a job with them" : "an actor with resources lives here", async () => {
      const probe = await ctx.createActor(Probe, [], { resources: { cpu: 0.3, memory: "96m" } });
      const view = ctx.withOptions({ resources: { cpu: 0.2, memory: "80m" } });
      const [viaView, overridden] = await Promise.all([view.createActor(Probe, []), view.createActor(Probe, [], { resources: { cpu: 0.4, memory: "64m" } })]);
      const [jobId, viewJobId, overriddenJobId] = [await probe.where(), await viaView.where(), await overridden.where()];
      if (!local) {
        assert.deepEqual([jobId, viewJobId, overriddenJobId], [null, null, null]);
        return;
      }
      assert.ok(jobId && viewJobId && overriddenJobId);
      assert.equal(local.cluster.server.controller.getJob(overriddenJobId).spec.resources?.cpu, 0.4, "the call's own resources win over the view's");
      const spec = local.cluster.server.controller.getJob(jobId).spec.resources;
      assert.deepEqual([spec?.cpu, spec?.memoryBytes], [0.3, 96n * 1024n * 1024n]);
      assert.equal(local.cluster.server.controller.getJob(viewJobId).spec.resources?.cpu, 0.2);
    });

    test("bad resources and unknown options are ValidationErrors naming the field", async () => {
      const field = (name: string) => (err: unknown) => err instanceof ValidationError && err.field === name;
      assert.throws(() => ctx.withOptions({ resources: { cpu: -1 } }), field("resources.cpu"));
      assert.throws(() => ctx.withOptions({ resources: { memory: "lots" } }), field("resources.memory"));
      assert.throws(() => ctx.withOptions({ resources: { replicas: 3 } }), (err: unknown) => field("resources.replicas")(err) && /must be 1/.test((err as Error).message));
      assert.throws(() => ctx.withOptions({ resource: { cpu: 2 } } as never), field("options.resource"));
      assert.throws(() => ctx.withOptions(null as never), field("options"));
      await assert.rejects(ctx.createActor(Probe, [], { resources: { cpu: Number.NaN } }), field("resources.cpu"));
      await assert.rejects(ctx.withOptions({ resources: { cpu: 1 } }).createActor(Probe, [], { resources: { disk: -5 } }), field("resources.disk"));
    });

    test(kind === "cluster" ? "an unmarked class is refused, with the fix in the message" : "any class works in-process", async () => {
      if (kind === "cluster") {
        await assert.rejects(ctx.createActor(PlainCounter, []), /marked with remote\(\).*remote\(import\.meta\.url, class PlainCounter/);
      } else {
        const plain = await ctx.createActor(PlainCounter, []);
        assert.equal(await plain.incr(), 1);
      }
    });
  });
}
