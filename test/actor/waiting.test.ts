// Waiting without polling: ActorPool.waitForSize follows its source's watch,
// and the cluster client streams job and endpoint changes (WatchJob,
// WatchEndpoints) from a real controller.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ActorPool } from "../../src/actor/pool.js";
import { fakeEndpoint, scriptedSource } from "../helpers/endpoint-source.js";
import { Entrypoint } from "../../src/core/entrypoint.js";
import { FlusterError } from "../../src/core/errors.js";
import type { JobStatus } from "../../src/core/status.js";
import { useLocalCluster } from "../helpers/local-cluster.js";
import { square } from "../fixtures/cluster/jobs.js";

const endpoint = fakeEndpoint;


describe("ActorPool.waitForSize", () => {
  test("resolves on the change that reaches the count, never asks resolve(), and closes its watch", async () => {
    const source = scriptedSource();
    const pool = new ActorPool<object>("svc", source);
    source.publish([]);
    const waiting = pool.waitForSize(2, { timeoutSeconds: 30 });
    setTimeout(() => source.publish([endpoint(1)]), 10);
    setTimeout(() => source.publish([endpoint(1), endpoint(2)]), 20);
    const found = await waiting;
    assert.deepEqual(found.map((e) => e.endpointId), ["ep-1", "ep-2"]);
    assert.equal(pool.size, 2, "the pool keeps what it saw");
    assert.equal(source.resolves, 0, "no lookups: the watch is the only source");
    assert.equal(source.watchesOpen, 0, "the watch is closed once the wait is over");
  });

  test("times out with deadline_exceeded naming how many it saw; an abort rejects as cancelled", async () => {
    const source = scriptedSource();
    source.publish([endpoint(1)]);
    const pool = new ActorPool<object>("svc", source, { namespace: "ns1" });
    await assert.rejects(pool.waitForSize(3, { timeoutSeconds: 0.05 }), (err: unknown) => {
      assert.ok(err instanceof FlusterError);
      assert.equal(err.code, "deadline_exceeded");
      assert.match(err.message, /actor "svc" has 1 of 3 endpoint\(s\) in namespace ns1 after 0.05s/);
      return true;
    });
    await assert.rejects(pool.waitForSize(3, { signal: AbortSignal.abort() }), (err: unknown) => err instanceof FlusterError && err.code === "cancelled");
    assert.equal(source.watchesOpen, 0);
  });
});

describe("cluster watches against a real controller", () => {
  const local = useLocalCluster({ workers: 1 });

  test("watchEndpoints streams the set now and after each change until aborted", async () => {
    const { cluster } = local;
    const abort = new AbortController();
    const seen: string[][] = [];
    const watching = (async () => {
      for await (const endpoints of cluster.watchEndpoints("watched", { signal: abort.signal })) {
        seen.push(endpoints.map((e) => e.address));
        if (seen.length === 3) abort.abort();
      }
    })();
    await waitUntil(() => seen.length === 1);
    const id = await cluster.registerEndpoint("watched", "http://127.0.0.1:9");
    await waitUntil(() => seen.length === 2);
    await cluster.unregisterEndpoint(id);
    await watching;
    assert.deepEqual(seen, [[], ["http://127.0.0.1:9"], []]);
  });

  test("watch(jobId) yields the job as it changes and ends once it is finished", async () => {
    const { cluster } = local;
    const jobId = await cluster.launch({ name: "watched-job", resources: { cpu: 0.5, memory: "64m" }, entrypoint: Entrypoint.fromFunction(square, 6) });
    const states: JobStatus[] = [];
    for await (const info of cluster.watch(jobId)) states.push(info.status);
    assert.equal(states.at(-1), "succeeded");
    assert.ok(states.length >= 2, `saw ${states.join(", ")}`);
    assert.equal(new Set(states).size, states.length, `each snapshot is a change: ${states.join(", ")}`);
  });
});

async function waitUntil(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !condition(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(condition(), "condition not met within 5 s");
}
