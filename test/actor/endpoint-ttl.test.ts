// Endpoints of programs that are not jobs: registered through
// FLUSTER_CLUSTER_ADDRESS, they carry a TTL the program renews while it
// lives, so a SIGKILLed program's actor leaves the registry (and stops
// showing up in broadcast() as a rejected result) within the TTL.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { ClusterResolver } from "../../src/actor/resolver.js";
import { REPO_ROOT, cleanEnv, eventually, stopProcess, waitForLine } from "../helpers/index.js";
import { useLocalCluster } from "../helpers/local-cluster.js";
import type { Calculator } from "../fixtures/actor/calculator.js";

const program = join(REPO_ROOT, "test", "fixtures", "actor", "serve-outside-job.ts");
const TTL_SECONDS = 2;

/** Starts the fixture program; resolves once its actor is registered, with its endpoint id. */
async function serveOutsideJob(address: string, name: string): Promise<{ child: ChildProcess; endpointId: string }> {
  const child = spawn(process.execPath, ["--import", "tsx", program], {
    cwd: REPO_ROOT,
    env: cleanEnv({ FLUSTER_CLUSTER_ADDRESS: address, ENDPOINT_TTL_SECONDS: String(TTL_SECONDS), ACTOR_NAME: name }),
    stdio: ["ignore", "pipe", "inherit"],
  });
  const [, endpointId] = await waitForLine(child, /^registered (\S+)$/);
  return { child, endpointId: endpointId ?? "" };
}

describe("endpoints registered outside a job", { timeout: 90_000 }, () => {
  const local = useLocalCluster({ workers: 0 });

  test("carry a TTL, are renewed while the program lives, and go within the TTL once it is SIGKILLed", async () => {
    const { cluster } = local;
    const live = await serveOutsideJob(cluster.address, "ttl-live");
    const doomed = await serveOutsideJob(cluster.address, "ttl-doomed");
    try {
      const [liveEndpoint] = await cluster.lookupEndpoints("ttl-live");
      assert.equal(liveEndpoint?.endpointId, live.endpointId);
      assert.equal(liveEndpoint?.jobId, undefined);
      assert.ok(liveEndpoint?.expiresAt, "an endpoint outside a job has an expiry");

      // Without the TTL it would stay for ever; with it, it goes within the TTL (plus a reconcile tick).
      doomed.child.kill("SIGKILL");
      await eventually(async () => (await cluster.lookupEndpoints("ttl-doomed")).length === 0, { what: "the killed program's endpoint to expire", timeoutMs: 15_000 });

      // Well past its TTL, the live one is still there (renewed), and answers.
      await sleep(TTL_SECONDS * 2 * 1000);
      assert.deepEqual((await cluster.lookupEndpoints("ttl-live")).map((e) => e.endpointId), [live.endpointId]);
      const pool = new ClusterResolver(cluster).lookup<Calculator>("ttl-live");
      const results = await pool.broadcast().add(2, 3);
      assert.deepEqual(results.map((r) => r.status), ["fulfilled"]);

      // A clean shutdown unregisters at once.
      await stopProcess(live.child, "SIGTERM");
      assert.deepEqual(await cluster.lookupEndpoints("ttl-live"), []);
    } finally {
      await stopProcess(live.child, "SIGKILL");
      await stopProcess(doomed.child, "SIGKILL");
    }
  });

  test("an explicit ttlSeconds stays the caller's to renew", async () => {
    const { cluster } = local;
    const own = await cluster.registerEndpoint("ttl-own", "http://127.0.0.1:1", { ttlSeconds: 1 });
    await eventually(async () => (await cluster.lookupEndpoints("ttl-own")).length === 0, { what: "an endpoint nobody renews to expire", timeoutMs: 10_000 });
    assert.deepEqual(await cluster.renewEndpoints([own]), [own]);
  });
});
