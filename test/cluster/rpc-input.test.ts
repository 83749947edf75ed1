// Nothing a client sends can crash the controller: every RPC answers bad
// input with a Connect code naming the problem, and the controller keeps serving.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { startController, type ControllerServer } from "../../src/cluster/controller/server.js";
import { ControllerService } from "../../src/rpc/gen/fluster/cluster/v1/controller_pb.js";
import { createRpcChannel } from "../../src/rpc/transport.js";
import { fromConnectError } from "../../src/rpc/errors.js";
import { FlusterError } from "../../src/core/errors.js";

let server: ControllerServer;
before(async () => {
  server = await startController({ stateDir: ":memory:" });
});
after(async () => {
  await server.shutdown();
});

/** Codes a well-behaved server may answer bad input with. */
const CLIENT_ERRORS = new Set(["invalid_argument", "not_found", "failed_precondition", "unimplemented", "already_exists", "out_of_range"]);

async function post(method: string, body: string | Uint8Array, contentType = "application/json"): Promise<{ status: number; code?: string; message?: string }> {
  const res = await fetch(`${server.url}/fluster.cluster.v1.ControllerService/${method}`, { method: "POST", headers: { "content-type": contentType }, body });
  const text = await res.text();
  if (res.status === 200) return { status: 200 };
  const parsed = JSON.parse(text) as { code?: string; message?: string };
  return { status: res.status, ...parsed };
}

const BAD_BODIES: Record<string, string[]> = {
  LaunchJob: [
    "{}",
    `{"job":{}}`,
    `{"job":{"name":"ok","resources":{"cpu":1,"replicas":1}}}`,
    `{"job":{"name":"ok","resources":{"cpu":1,"replicas":0},"entrypoint":{"command":{"argv":["true"]}}}}`,
    `{"job":{"name":"ok","resources":{"cpu":1,"replicas":1,"memoryBytes":"-5"},"entrypoint":{"command":{"argv":["true"]}}}}`,
    `{"job":{"name":"ok","resources":{"cpu":1,"replicas":1},"entrypoint":{"command":{"argv":[]}}}}`,
    `{"job":{"name":"ok","resources":{"cpu":1,"replicas":1},"entrypoint":{"function":{"module":"","name":""}}}}`,
    `{"job":{"name":"ok","resources":{"cpu":1,"replicas":1,"device":{"tpu":{"variant":"v99-1"}}},"entrypoint":{"command":{"argv":["true"]}}}}`,
    `{"job":{"name":"${"x".repeat(300)}","resources":{"cpu":1,"replicas":1},"entrypoint":{"command":{"argv":["true"]}}}}`,
    `{"job":{"name":"ok","resources":{"cpu":1,"replicas":1},"entrypoint":{"command":{"argv":["true"]}}},"parentJobId":"nope"}`,
    `{"job":{"name":"ok","resources":{"cpu":1,"replicas":1},"entrypoint":{"command":{"argv":["true"]}}},"namespace":"bad namespace!"}`,
    `{"job":{"name":"ok","resources":{"cpu":1,"replicas":1},"entrypoint":{"command":{"argv":["true"]}},"constraints":[{"key":"zone","op":"CONSTRAINT_OP_IN"}]}}`,
    `{"job":{"name":5}}`,
    `not json at all`,
  ],
  GetJobStatus: ["{}", `{"jobId":""}`, `{"jobId":"missing"}`, `{"jobId":[1,2]}`],
  TerminateJob: ["{}", `{"jobId":"missing"}`],
  ListJobs: [`{"states":["JOB_STATE_UNSPECIFIED"]}`, `{"states":[99]}`, `{"limit":-1}`],
  RegisterWorker: [
    "{}",
    `{"workerId":"w"}`,
    `{"workerId":"w","address":"http://x:1"}`,
    `{"workerId":"w","address":"http://x:1","resources":{"cpu":-1}}`,
    `{"workerId":"","address":"http://x:1","resources":{"cpu":1}}`,
  ],
  Heartbeat: ["{}", `{"workerId":"ghost","attempts":[{"attemptId":"a","state":"TASK_STATE_UNSPECIFIED"}]}`],
  RegisterEndpoint: ["{}", `{"name":"x"}`, `{"name":"x","address":"http://a","jobId":"missing"}`, `{"name":"x","address":"http://a","ttlSeconds":-1}`],
  UnregisterEndpoint: ["{}"],
  LookupEndpoints: ["{}"],
  CreateReservation: ["{}"],
  GetReservation: ["{}"],
  ReleaseReservation: ["{}"],
  LaunchJobGroup: ["{}"],
};

test("every ControllerService RPC answers malformed JSON input with a client error code", async () => {
  for (const [method, bodies] of Object.entries(BAD_BODIES)) {
    for (const body of bodies) {
      const res = await post(method, body);
      if (res.status === 200) continue; // some odd inputs are harmless (an unknown worker's heartbeat)
      assert.ok(res.code && CLIENT_ERRORS.has(res.code), `${method} ${body.slice(0, 80)} → ${res.status} ${res.code}: ${res.message}`);
      assert.ok((res.message ?? "").length > 0, `${method} ${body.slice(0, 80)} has no message`);
    }
  }
});

test("random bytes in the binary protocol are rejected, not fatal", async () => {
  for (const method of Object.keys(BAD_BODIES)) {
    for (let i = 0; i < 5; i++) {
      const res = await post(method, randomBytes(1 + i * 37), "application/proto");
      if (res.status === 200) continue; // some random bytes are a valid (empty-ish) message
      // connect-es says "internal" for undecodable protobuf; the server rewrites it (src/rpc/early-errors.ts).
      assert.ok(res.code && CLIENT_ERRORS.has(res.code), `${method} random bytes → ${res.status} ${res.code}: ${res.message}`);
    }
  }
});

test("streaming RPCs reject unknown jobs, and the controller keeps serving", async () => {
  const channel = createRpcChannel(server.url);
  try {
    const client = channel.client(ControllerService);
    const drain = async (stream: AsyncIterable<unknown>) => {
      for await (const _ of stream) void _;
    };
    for (const stream of [client.watchJob({ jobId: "missing" }), client.streamJobLogs({ jobId: "missing", follow: true })]) {
      await assert.rejects(drain(stream).catch((e: unknown) => Promise.reject(fromConnectError(e))), (err: unknown) => err instanceof FlusterError && err.code === "not_found");
    }
    const jobs = await client.listJobs({});
    assert.deepEqual(jobs.jobs, [], "no bad request created a job");
    const workers = await client.listWorkers({});
    assert.deepEqual(workers.workers, [], "no bad request registered a worker");
  } finally {
    channel.close();
  }
});
