// Errors that say what to do: the real `fluster` bin pointed at wrong
// controller URLs (a closed port, a worker, a server that never answers,
// https to a plain server, a wrong token) answers with one line that names
// the address and the fix, and does so at once (or within its connect
// deadline), not after HTTP/2 keepalive gives up.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { startController, type ControllerServer } from "../../src/cluster/controller/server.js";
import type { LocalCluster } from "../../src/cluster/client/local-cluster.js";
import { Cluster } from "../../src/cluster/client/cluster.js";
import { FlusterError } from "../../src/core/errors.js";
import { REPO_ROOT, cleanEnv, freePort, runNode, type NodeResult } from "../helpers/index.js";
import { useLocalCluster } from "../helpers/local-cluster.js";

const bin = join(REPO_ROOT, "bin", "fluster.js");

/** Runs the real bin; resolves to how it ended and how long it took. */
async function fluster(args: string[], env: NodeJS.ProcessEnv = {}): Promise<NodeResult & { seconds: number }> {
  const started = Date.now();
  const result = await runNode([bin, ...args], { env: cleanEnv(env), timeoutMs: 60_000 });
  return { ...result, seconds: (Date.now() - started) / 1000 };
}

function oneLine(result: NodeResult): string {
  const lines = result.stderr.split("\n").filter((l) => l.length > 0);
  assert.equal(lines.length, 1, `expected one line on stderr, got: ${result.stderr}`);
  return lines[0] ?? "";
}

describe("fluster against a wrong controller URL", { timeout: 120_000, concurrency: true }, () => {
  const local = useLocalCluster({ workers: 1 });
  let silent: Server;
  let silentPort: number;
  const held: Socket[] = [];
  let guarded: ControllerServer;

  before(async () => {
    // Accepts connections and never writes a byte.
    silent = createServer((socket) => void held.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    silentPort = (silent.address() as { port: number }).port;
    guarded = await startController({ stateDir: ":memory:", token: "the-right-token" });
  });

  after(async () => {
    for (const socket of held) socket.destroy();
    await new Promise<void>((resolve) => silent.close(() => resolve()));
    await guarded.shutdown();
  });

  const cluster = (): LocalCluster => local.cluster;

  test("a closed port: no controller there, is it running, how to start one", async () => {
    const port = await freePort();
    const result = await fluster(["--controller", `http://127.0.0.1:${port}`, "job", "list"]);
    assert.equal(result.code, 1);
    assert.equal(oneLine(result), `fluster: no controller at http://127.0.0.1:${port}: is it running? (start one with \`fluster cluster start --local\`)`);
    assert.ok(result.seconds < 15, `took ${result.seconds} s`);
  });

  test("a worker's URL: says it is a worker, not a controller", async () => {
    const worker = cluster().workers[0];
    assert.ok(worker);
    const result = await fluster(["job", "run", "--", "node", "-e", "1"], { FLUSTER_CLUSTER_ADDRESS: worker.address });
    assert.equal(result.code, 1);
    assert.match(oneLine(result), new RegExp(`^fluster: ${worker.address} is a Fluster worker, not a controller: use the controller's URL`));
    assert.ok(result.seconds < 15, `took ${result.seconds} s`);
  });

  test("a server that never answers: no answer within the connect deadline", async () => {
    const result = await fluster(["--controller", `http://127.0.0.1:${silentPort}`, "job", "status", "some-job"]);
    assert.equal(result.code, 1);
    assert.match(oneLine(result), new RegExp(`^fluster: no answer from http://127\\.0\\.0\\.1:${silentPort} within 10 s: is that a Fluster controller's URL\\?`));
    assert.ok(result.seconds < 25, `took ${result.seconds} s (HTTP/2 keepalive alone gives up after about 31 s)`);
  });

  test("https to a plain controller: it does not speak TLS, use http://", async () => {
    const plain = cluster().address;
    const tls = plain.replace(/^http:/, "https:");
    const result = await fluster(["--controller", tls, "job", "list"]);
    assert.equal(result.code, 1);
    assert.equal(oneLine(result), `fluster: ${tls} does not speak TLS: the controller serves plain HTTP, use ${plain}`);
    assert.ok(result.seconds < 15, `took ${result.seconds} s`);
  });

  test("a wrong or missing token: the controller's own hint says where the right one is", async () => {
    const wrong = await fluster(["--controller", guarded.url, "job", "list"], { FLUSTER_TOKEN: "not-it" });
    assert.equal(wrong.code, 1);
    assert.equal(oneLine(wrong), `fluster: the controller at ${guarded.url} refused the token in FLUSTER_TOKEN: set FLUSTER_TOKEN to the token the controller was started with`);
    const missing = await fluster(["--controller", guarded.url, "job", "list"]);
    assert.equal(oneLine(missing), `fluster: the controller at ${guarded.url} requires a token: set FLUSTER_TOKEN to the token the controller was started with`);
    const right = await fluster(["--controller", guarded.url, "job", "list", "--json"], { FLUSTER_TOKEN: "the-right-token" });
    assert.equal(right.code, 0, right.stderr);
    assert.deepEqual(JSON.parse(right.stdout), []);
  });

  test("programs get the same errors from the Cluster client, with codes", async () => {
    const port = await freePort();
    const client = Cluster.connect(`http://127.0.0.1:${port}`);
    try {
      await assert.rejects(client.poll("x"), (err: unknown) => err instanceof FlusterError && err.code === "unavailable" && /^no controller at /.test(err.message));
      // A stream first proves the address with one unary call, so it fails the same way instead of retrying.
      await assert.rejects(client.wait("x"), (err: unknown) => err instanceof FlusterError && /^no controller at /.test(err.message));
    } finally {
      await client.close();
    }
  });

  test("a controller's own answers keep their message, without an internal verb in front", async () => {
    const result = await fluster(["--controller", cluster().address, "job", "stop", "nope-123"]);
    assert.equal(result.code, 1);
    assert.match(oneLine(result), /^fluster: job nope-123 not found: no job in namespace "default" has that id or name \(see `fluster job list`\)$/);
  });
});
