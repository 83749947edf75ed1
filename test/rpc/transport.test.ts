// The RPC transport over real loopback sockets: h2c and HTTP/1.1 on one port,
// bearer-token auth, and error codes mapped both ways.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as http from "node:http";
import { createServer, type AddressInfo, type Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import { WorkerService } from "../../src/rpc/gen/fluster/worker/v1/worker_pb.js";
import { createRpcChannel, normalizeBaseUrl, startRpcServer, type RpcServer } from "../../src/rpc/transport.js";
import { fromConnectError } from "../../src/rpc/errors.js";
import { FlusterError, ValidationError } from "../../src/core/errors.js";

function serveWorker(token?: string): Promise<RpcServer> {
  return startRpcServer({
    ...(token ? { token } : {}),
    routes: (router) =>
      router.service(WorkerService, {
        healthCheck: () => ({ healthy: true, workerId: "w-1", runningTasks: 3 }),
        getTaskStatus: (req) => {
          if (req.attemptId === "") throw new ValidationError("attemptId", "must not be empty");
          throw new FlusterError(`no attempt ${req.attemptId}`, "not_found");
        },
      }),
  });
}

describe("rpc transport", () => {
  let server: RpcServer;
  before(async () => {
    server = await serveWorker();
  });
  after(async () => {
    await server.shutdown();
  });

  test("h2c call round-trips", async () => {
    const channel = createRpcChannel(server.url);
    try {
      const res = await channel.client(WorkerService).healthCheck({});
      assert.equal(res.healthy, true);
      assert.equal(res.workerId, "w-1");
      assert.equal(res.runningTasks, 3);
    } finally {
      channel.close();
    }
  });

  test("HTTP/1.1 JSON call (curl, browsers) on the same port", async () => {
    const res = await fetch(`${server.url}/fluster.worker.v1.WorkerService/HealthCheck`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { healthy: true, workerId: "w-1", runningTasks: 3 });
  });

  test("thrown Fluster errors arrive with their code and message", async () => {
    const channel = createRpcChannel(server.url);
    try {
      const client = channel.client(WorkerService);
      await assert.rejects(
        client.getTaskStatus({ attemptId: "" }).catch((e: unknown) => Promise.reject(fromConnectError(e))),
        (err: unknown) => err instanceof FlusterError && err.code === "invalid_argument" && err.message === "attemptId must not be empty",
      );
      await assert.rejects(
        client.getTaskStatus({ attemptId: "a-9" }).catch((e: unknown) => Promise.reject(fromConnectError(e))),
        (err: unknown) => err instanceof FlusterError && err.code === "not_found" && /a-9/.test(err.message),
      );
    } finally {
      channel.close();
    }
  });

  test("a refused connection is an unavailable error", async () => {
    const dead = await serveWorker();
    const url = dead.url;
    await dead.shutdown();
    const channel = createRpcChannel(url);
    try {
      await assert.rejects(
        channel.client(WorkerService).healthCheck({}).catch((e: unknown) => Promise.reject(fromConnectError(e))),
        (err: unknown) => err instanceof FlusterError && err.code === "unavailable",
      );
    } finally {
      channel.close();
    }
  });
});

describe("bearer token", () => {
  test("calls without the right token are rejected; with it they pass", async () => {
    const server = await serveWorker("s3cret");
    const good = createRpcChannel(server.url, { token: "s3cret" });
    const bad = createRpcChannel(server.url, { token: "wrong" });
    const none = createRpcChannel(server.url, { token: "" });
    try {
      assert.equal((await good.client(WorkerService).healthCheck({})).healthy, true);
      for (const channel of [bad, none]) {
        await assert.rejects(
          channel.client(WorkerService).healthCheck({}).catch((e: unknown) => Promise.reject(fromConnectError(e))),
          (err: unknown) => err instanceof FlusterError && err.code === "unauthenticated" && /bearer token/.test(err.message),
        );
      }
    } finally {
      good.close();
      bad.close();
      none.close();
      await server.shutdown();
    }
  });
});

test("normalizeBaseUrl", () => {
  assert.equal(normalizeBaseUrl("127.0.0.1:8080"), "http://127.0.0.1:8080");
  assert.equal(normalizeBaseUrl("http://host:1/"), "http://host:1");
  assert.throws(() => normalizeBaseUrl("ftp://x"), /unsupported scheme/);
  assert.throws(() => normalizeBaseUrl("http://"), /not a valid server address/);
});

describe("bearer token refusals", () => {
  test("say whether the token was missing or wrong, end with the server's hint, and are reported to the server", async () => {
    const refused: string[] = [];
    const server = await startRpcServer({
      token: "s3cret",
      tokenHint: "set FLUSTER_TOKEN to the contents of /srv/fluster/token on the controller host",
      onUnauthenticated: (r) => refused.push(`${r.procedure} ${r.reason}`),
      routes: (router) => router.service(WorkerService, { healthCheck: () => ({ healthy: true }) }),
    });
    const bad = createRpcChannel(server.url, { token: "wrong" });
    const none = createRpcChannel(server.url, { token: "" });
    try {
      for (const [channel, reason] of [[bad, "wrong"], [none, "missing"]] as const) {
        await assert.rejects(
          channel.client(WorkerService).healthCheck({}).catch((e: unknown) => Promise.reject(fromConnectError(e))),
          (err: unknown) => err instanceof FlusterError && err.message === `${reason} bearer token: set FLUSTER_TOKEN to the contents of /srv/fluster/token on the controller host`,
        );
      }
      assert.deepEqual(refused, ["fluster.worker.v1.WorkerService/HealthCheck wrong", "fluster.worker.v1.WorkerService/HealthCheck missing"]);
    } finally {
      bad.close();
      none.close();
      await server.shutdown();
    }
  });
});

describe("first answer", () => {
  test("until a server has answered, a unary call that gets no answer fails within firstAnswerTimeoutMs", async () => {
    const sockets: Socket[] = [];
    const silent = createServer((socket) => void sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(silent.address() as { port: number }).port}`;
    const channel = createRpcChannel(url, { firstAnswerTimeoutMs: 300 });
    try {
      await assert.rejects(channel.client(WorkerService).healthCheck({}), (err: unknown) => {
        const error = fromConnectError(err);
        return error.code === "deadline_exceeded" && error.message === `no answer from ${url} within 0.3 s`;
      });
      assert.equal(channel.answered, false);
    } finally {
      channel.close();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  test("a server's answer, result or error, marks the channel answered; a refused connection does not", async () => {
    const server = await serveWorker();
    const channel = createRpcChannel(server.url, { firstAnswerTimeoutMs: 5_000 });
    const refused = createRpcChannel("http://127.0.0.1:1", { firstAnswerTimeoutMs: 5_000 });
    try {
      await assert.rejects(channel.client(WorkerService).getTaskStatus({ attemptId: "a" }));
      assert.equal(channel.answered, true, "an error the server sent is an answer");
      await assert.rejects(refused.client(WorkerService).healthCheck({}));
      assert.equal(refused.answered, false);
    } finally {
      channel.close();
      refused.close();
      await server.shutdown();
    }
  });

  test("a connection reset by the peer is not an answer, though connect-node calls it aborted", async () => {
    // A peer that resets the connection, as a TLS server can do to a plain HTTP/2 client whose preface fails its handshake:
    // the CLI then asked no TLS probe and showed a bare "read ECONNRESET" (a CI failure of test/cli/tls.test.ts).
    const resetting = createServer((socket) => socket.resetAndDestroy());
    await new Promise<void>((resolve) => resetting.listen(0, "127.0.0.1", resolve));
    const channel = createRpcChannel(`http://127.0.0.1:${(resetting.address() as AddressInfo).port}`, { firstAnswerTimeoutMs: 5_000 });
    try {
      await assert.rejects(channel.client(WorkerService).healthCheck({}), (err: unknown) => {
        assert.ok(err instanceof ConnectError, String(err));
        assert.equal(err.code, Code.Aborted, `connect-node's code for a reset: ${err.message}`);
        return true;
      });
      assert.equal(channel.answered, false, "a reset is the socket's failure, not the server's answer");
    } finally {
      channel.close();
      await new Promise<void>((resolve) => resetting.close(() => resolve()));
    }
  });
});

describe("a peer that is not a Fluster server", () => {
  test("an HTTP/1.1 server answering h2c fails the call with an error and never crashes the process", async () => {
    const h1 = http.createServer((_req, res) => {
      res.statusCode = 404;
      res.end("not here");
    });
    await new Promise<void>((resolve) => h1.listen(0, "127.0.0.1", resolve));
    const channel = createRpcChannel(`http://127.0.0.1:${(h1.address() as AddressInfo).port}`, { token: "" });
    try {
      for (let i = 0; i < 2; i++) {
        await assert.rejects(channel.client(WorkerService).healthCheck({}, { timeoutMs: 3_000 }), /Protocol error/);
      }
      // The session's own 'error' event came after connect-node let go of it: unhandled, it killed the process.
      await sleep(300);
      channel.close();
      await sleep(100);
    } finally {
      h1.close();
    }
  });
});
