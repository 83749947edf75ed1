// The RPC metrics interceptor on a real server over loopback: unary calls are
// counted by code and timed; a server stream is counted when it ends (`ok`,
// its error's code, or `canceled` when its client leaves) and never timed.
// Its options are checked.
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Registry } from "prom-client";
import { rpcMetricsInterceptor } from "../../src/rpc/rpc-metrics.js";
import { ControllerService } from "../../src/rpc/gen/fluster/cluster/v1/controller_pb.js";
import { createRpcChannel, startRpcServer } from "../../src/rpc/transport.js";
import { FlusterError, ValidationError } from "../../src/core/errors.js";
import { eventually } from "../helpers/index.js";
import { parseSamples } from "../helpers/prometheus.js";

let cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

const SERVICE = "fluster.cluster.v1.ControllerService";

/** A ControllerService with a few methods, its calls recorded in a fresh registry under `test_`. */
async function serve() {
  const registry = new Registry();
  const server = await startRpcServer({
    interceptors: [rpcMetricsInterceptor(registry, { prefix: "test" })],
    routes: (router) =>
      router.service(ControllerService, {
        listWorkers: () => ({ workers: [] }),
        getJobStatus: (req) => {
          throw new FlusterError(`job ${req.jobId} not found`, "not_found");
        },
        async *watchCluster(req, ctx) {
          // minIntervalMs 1: two messages and the end; otherwise until the client leaves.
          yield { revision: 1n };
          yield { revision: 2n };
          if (req.minIntervalMs === 1) return;
          if (req.minIntervalMs === 2) throw new FlusterError("the store is gone", "unavailable");
          await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve, { once: true }));
        },
      }),
  });
  cleanup.push(() => server.shutdown());
  const channel = createRpcChannel(server.url, { token: "" });
  cleanup.push(() => channel.close());
  const value = async (name: string, labels: Record<string, string>) =>
    parseSamples(await registry.metrics())
      .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
      .reduce((sum, s) => sum + s.value, 0);
  return { client: channel.client(ControllerService), value, registry };
}

describe("rpcMetricsInterceptor", () => {
  test("unary calls are counted by method and code, and timed", async () => {
    const { client, value } = await serve();
    await client.listWorkers({});
    await client.listWorkers({});
    await assert.rejects(client.getJobStatus({ jobId: "nope" }), /not found/);
    const of = (method: string, code?: string) => ({ service: SERVICE, method, ...(code ? { code } : {}) });
    assert.equal(await value("test_rpc_started_total", of("ListWorkers")), 2);
    assert.equal(await value("test_rpc_handled_total", of("ListWorkers", "ok")), 2);
    assert.equal(await value("test_rpc_handling_seconds_count", of("ListWorkers")), 2);
    assert.equal(await value("test_rpc_handled_total", of("GetJobStatus", "not_found")), 1);
    assert.equal(await value("test_rpc_handled_total", of("GetJobStatus", "ok")), 0);
    assert.equal(await value("test_rpc_handling_seconds_count", of("GetJobStatus")), 1, "errors are timed too");
  });

  test("a server stream counts when it ends: ok, its error's code, or canceled when its client leaves; it is never timed", async () => {
    const { client, value } = await serve();
    const revisions: bigint[] = [];
    for await (const res of client.watchCluster({ minIntervalMs: 1 })) revisions.push(res.revision);
    assert.deepEqual(revisions, [1n, 2n]);
    await assert.rejects(
      (async () => {
        for await (const _ of client.watchCluster({ minIntervalMs: 2 }));
      })(),
      /the store is gone/,
    );
    const leaving = new AbortController();
    for await (const res of client.watchCluster({}, { signal: leaving.signal })) {
      if (res.revision === 2n) break;
    }
    leaving.abort();
    const of = (code?: string) => ({ service: SERVICE, method: "WatchCluster", ...(code ? { code } : {}) });
    assert.equal(await value("test_rpc_started_total", of()), 3);
    // The server learns of the client leaving when its stream is reset.
    await eventually(async () => (await value("test_rpc_handled_total", of())) === 3, { what: "the left stream to end on the server" });
    assert.equal(await value("test_rpc_handled_total", of("canceled")), 1);
    assert.equal(await value("test_rpc_handled_total", of("ok")), 1);
    assert.equal(await value("test_rpc_handled_total", of("unavailable")), 1);
    assert.equal(await value("test_rpc_handling_seconds_count", of()), 0);
  });

  test("a bad prefix or bucket list is refused, naming the field", () => {
    const registry = new Registry();
    assert.throws(() => rpcMetricsInterceptor(registry, { prefix: "9lives" }), (err) => err instanceof ValidationError && /prefix/.test(err.message));
    assert.throws(() => rpcMetricsInterceptor(registry, { prefix: "has-dash" }), (err) => err instanceof ValidationError && /prefix/.test(err.message));
    assert.throws(() => rpcMetricsInterceptor(registry, { prefix: "ok", buckets: [1, 0.5] }), (err) => err instanceof ValidationError && /buckets/.test(err.message));
    assert.throws(() => rpcMetricsInterceptor(registry, { prefix: "ok", buckets: [] }), (err) => err instanceof ValidationError && /buckets/.test(err.message));
  });
});
