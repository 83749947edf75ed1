// Signed credentials and the authenticator hook of the RPC server, over real
// loopback sockets: who the token names reaches the handler; a tampered,
// foreign or expired credential is refused.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { createContextKey } from "@connectrpc/connect";
import { CredentialIssuer, CredentialVerifier, looksLikeCredential, type CredentialClaims } from "../../src/rpc/credentials.js";
import { WorkerService } from "../../src/rpc/gen/fluster/worker/v1/worker_pb.js";
import { bearerToken, createRpcChannel, startRpcServer } from "../../src/rpc/transport.js";
import { fromConnectError } from "../../src/rpc/errors.js";

describe("credentials", () => {
  test("a credential verifies with its issuer's public key only, and says who it is", async () => {
    const issuer = await CredentialIssuer.generate();
    const verifier = new CredentialVerifier(issuer.publicJwk);
    const job: CredentialClaims = { kind: "job", jobId: "j-1", attemptId: "j-1-0-a", namespace: "ns-a" };
    const token = await issuer.issue(job);
    assert.ok(looksLikeCredential(token));
    assert.deepEqual(await verifier.verify(token), job);
    assert.deepEqual(await verifier.verify(token), job, "again, from the cache");
    // Same key restored from its stored form: the same verifier accepts what it signs.
    const restored = await CredentialIssuer.fromPrivateJwk(issuer.privateJwk);
    assert.equal(restored.publicJwk, issuer.publicJwk);
    assert.deepEqual(await verifier.verify(await restored.issue({ kind: "worker", workerId: "w-1" })), { kind: "worker", workerId: "w-1" });
    // Another key, a changed payload, garbage: refused.
    const other = await CredentialIssuer.generate();
    assert.equal(await verifier.verify(await other.issue(job)), undefined);
    const [header, , signature] = token.split(".");
    const forgedPayload = Buffer.from(JSON.stringify({ flk: "job", job: "j-2", att: "x", ns: "ns-b", iss: "fluster" })).toString("base64url");
    assert.equal(await verifier.verify(`${header}.${forgedPayload}.${signature}`), undefined);
    assert.equal(await verifier.verify("operator-token"), undefined);
    assert.throws(() => new CredentialVerifier(issuer.privateJwk), /public key, not the private one/);
  });

  test("a namespace credential expires", async () => {
    const issuer = await CredentialIssuer.generate();
    const verifier = new CredentialVerifier(issuer.publicJwk);
    const token = await issuer.issue({ kind: "namespace", namespace: "ns-a" }, 1);
    assert.deepEqual(await verifier.verify(token), { kind: "namespace", namespace: "ns-a" });
    await sleep(2100);
    assert.equal(await verifier.verify(token), undefined, "expired, also when cached");
  });

  test("the bearer scheme is read in any case", () => {
    assert.equal(bearerToken("Bearer abc"), "abc");
    assert.equal(bearerToken("bearer abc"), "abc");
    assert.equal(bearerToken("BEARER  abc "), "abc");
    assert.equal(bearerToken("Basic abc"), undefined);
    assert.equal(bearerToken(null), undefined);
  });
});

describe("the server's authenticator hook", () => {
  test("the caller the token names reaches the handler; an unknown token is refused as wrong", async () => {
    const CALLER = createContextKey<string | undefined>(undefined);
    const server = await startRpcServer({
      authenticator: { key: CALLER, authenticate: (token) => (token.startsWith("user-") ? token.slice(5) : undefined) },
      tokenHint: "ask the admin",
      routes: (router) => router.service(WorkerService, { healthCheck: (_req, ctx) => ({ healthy: true, workerId: `called by ${ctx.values.get(CALLER)}` }) }),
    });
    try {
      const as = (token: string) => createRpcChannel(server.url, { token }).client(WorkerService).healthCheck({});
      assert.equal((await as("user-ada")).workerId, "called by ada");
      await assert.rejects(as("robot-1"), (err: unknown) => fromConnectError(err).message === "wrong bearer token: ask the admin");
      await assert.rejects(as(""), (err: unknown) => fromConnectError(err).message === "missing bearer token: ask the admin");
      // A token that changes: the channel asks for it at every call.
      let current = "user-bob";
      const channel = createRpcChannel(server.url, { token: () => current });
      assert.equal((await channel.client(WorkerService).healthCheck({})).workerId, "called by bob");
      current = "user-eve";
      assert.equal((await channel.client(WorkerService).healthCheck({})).workerId, "called by eve");
      // A call's own Authorization header wins over the channel's token.
      assert.equal((await channel.client(WorkerService).healthCheck({}, { headers: { authorization: "Bearer user-zoe" } })).workerId, "called by zoe");
      channel.close();
    } finally {
      await server.shutdown();
    }
  });
});
