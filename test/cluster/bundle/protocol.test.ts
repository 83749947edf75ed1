// The bundle protocol against a real controller: uploads only what it lacks,
// refuses a blob whose bytes do not match its hash, serves manifests and blobs
// to a worker's cache, which unpacks each bundle once; and the sweep of unused bundles.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { BundleStore } from "../../../src/cluster/bundle/blob-store.js";
import { BundleCache } from "../../../src/cluster/bundle/checkout.js";
import { sha256Hex } from "../../../src/cluster/bundle/manifest.js";
import { packWorkspace } from "../../../src/cluster/bundle/pack.js";
import { uploadBundle } from "../../../src/cluster/bundle/upload.js";
import { Cluster } from "../../../src/cluster/client/cluster.js";
import { startController, type ControllerServer } from "../../../src/cluster/controller/server.js";
import { Entrypoint } from "../../../src/core/entrypoint.js";
import { ControllerService, UploadBlobsRequestSchema } from "../../../src/rpc/gen/fluster/cluster/v1/controller_pb.js";
import { createRpcChannel } from "../../../src/rpc/transport.js";
import { silentLogger } from "../../../src/core/logger.js";

function tempDir(t: { after: (fn: () => void) => void }, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function workspace(t: { after: (fn: () => void) => void }): string {
  const root = tempDir(t, "fluster-ws-");
  writeFileSync(join(root, "package.json"), "{}");
  mkdirSync(join(root, "src"));
  writeFileSync(join(root, "src", "main.js"), "console.log('main')\n");
  writeFileSync(join(root, "run.sh"), "#!/bin/sh\n");
  chmodSync(join(root, "run.sh"), 0o755);
  writeFileSync(join(root, "same-a.txt"), "same");
  writeFileSync(join(root, "same-b.txt"), "same");
  writeFileSync(join(root, "big.bin"), Buffer.alloc(2.5 * 1024 * 1024, 7)); // three chunks
  symlinkSync("src/main.js", join(root, "main-link.js"));
  return root;
}

async function controller(t: { after: (fn: () => Promise<void>) => void }): Promise<ControllerServer> {
  const stateDir = mkdtempSync(join(tmpdir(), "fluster-state-"));
  const server = await startController({ stateDir, logger: silentLogger() });
  t.after(async () => {
    await server.shutdown();
    rmSync(stateDir, { recursive: true, force: true });
  });
  return server;
}

const pendingJob = (name: string, workspaceDir: string) => ({
  name,
  resources: { cpu: 0.1, memory: "16m" },
  entrypoint: Entrypoint.fromCommand(["true"]),
  environment: { workspace: workspaceDir },
});

test("a launch uploads each distinct blob once; an unchanged tree uploads nothing, a changed file only itself", async (t) => {
  const server = await controller(t);
  const root = workspace(t);
  const cluster = Cluster.connect(server.url);
  t.after(() => cluster.close());

  const first = await cluster.launch(pendingJob("one", root));
  const files = (await packWorkspace(root)).files;
  const distinct = new Set(files.map((f) => f.sha256)).size;
  assert.equal(distinct, files.length - 1, "same-a.txt and same-b.txt share a blob");
  assert.equal(server.bundles.blobsStored, distinct);
  const bundleId = server.controller.getJob(first).spec.environment?.bundleId ?? "";
  assert.match(bundleId, /^[0-9a-f]{64}$/);
  assert.equal(server.controller.getJob(first).spec.environment?.workspace, root);

  const second = await cluster.launch(pendingJob("two", root));
  assert.equal(server.bundles.blobsStored, distinct, "the second launch uploaded no blob");
  assert.equal(server.controller.getJob(second).spec.environment?.bundleId, bundleId);

  writeFileSync(join(root, "src", "main.js"), "console.log('changed')\n");
  const third = await cluster.launch(pendingJob("three", root));
  assert.equal(server.bundles.blobsStored, distinct + 1, "only the changed file travelled");
  assert.notEqual(server.controller.getJob(third).spec.environment?.bundleId, bundleId);
});

test("a re-launch asks only about blobs the controller did not have before, and uploads again what was swept meanwhile", async (t) => {
  const server = await controller(t);
  const root = workspace(t);
  const cluster = Cluster.connect(server.url);
  t.after(() => cluster.close());
  const asked: number[] = [];
  const missingBlobs = server.bundles.missingBlobs.bind(server.bundles);
  server.bundles.missingBlobs = (hashes) => {
    asked.push(hashes.length);
    return missingBlobs(hashes);
  };

  await cluster.launch(pendingJob("one", root));
  const distinct = server.bundles.blobsStored;
  await cluster.launch(pendingJob("two", root));
  writeFileSync(join(root, "src", "main.js"), "console.log('changed')\n");
  await cluster.launch(pendingJob("three", root));
  assert.deepEqual(asked, [distinct, 1], "first launch: every blob; unchanged: no question; one file changed: its blob only");

  // The controller loses every blob (a sweep that ignores live jobs): the next launch finds out and uploads them all.
  writeFileSync(join(root, "src", "main.js"), "console.log('changed again')\n");
  server.bundles.sweep(new Set(), -60_000);
  const stored = server.bundles.blobsStored;
  const four = await cluster.launch(pendingJob("four", root));
  assert.equal(server.bundles.blobsStored, stored + distinct);
  const bundleId = server.controller.getJob(four).spec.environment?.bundleId ?? "";
  assert.equal(server.bundles.getBundle(bundleId).length, (await packWorkspace(root)).files.length);
});

test("a blob whose bytes do not match its hash is refused and nothing of it is kept", async (t) => {
  const server = await controller(t);
  const channel = createRpcChannel(server.url);
  t.after(() => channel.close());
  const client = channel.client(ControllerService);
  const claimed = sha256Hex("the real content");
  const good = sha256Hex("good");
  await assert.rejects(
    client.uploadBlobs(
      (async function* () {
        yield create(UploadBlobsRequestSchema, { chunks: [{ sha256: good, data: Buffer.from("good"), last: true }] });
        yield create(UploadBlobsRequestSchema, { chunks: [{ sha256: claimed, data: Buffer.from("forged "), last: false }] });
        yield create(UploadBlobsRequestSchema, { chunks: [{ sha256: claimed, data: Buffer.from("content"), last: true }] });
      })(),
    ),
    (err: Error) => /blob [0-9a-f]{64} was refused: its content hashes to [0-9a-f]{64}; nothing of it was kept/.test(err.message),
  );
  assert.deepEqual((await client.missingBlobs({ sha256: [claimed, good] })).missing, [claimed], "the whole blob before it was kept");
  assert.deepEqual(readdirSync(join(server.bundles.dir, "tmp")), [], "no partial file is left");
  await assert.rejects(
    client.putBundle({ files: [{ path: "a.txt", sha256: claimed, size: 16n, mode: 0o644 }] }),
    /bundle refused: 1 blob\(s\) were never uploaded: a\.txt/,
  );
});

test("a worker's cache fetches a bundle once, unpacks it whole with modes and links, and fetches only new blobs for the next", async (t) => {
  const server = await controller(t);
  const root = workspace(t);
  const channel = createRpcChannel(server.url);
  t.after(() => channel.close());
  const client = channel.client(ControllerService);
  const bundleId = await uploadBundle(client, await packWorkspace(root));

  const cacheDir = tempDir(t, "fluster-cache-");
  const cache = new BundleCache(cacheDir, () => client);
  const [a, b] = await Promise.all([cache.checkout(bundleId), cache.checkout(bundleId)]);
  assert.equal(a, join(cacheDir, bundleId));
  assert.equal(b, a, "concurrent checkouts share one fetch");
  assert.deepEqual({ hits: cache.hits, misses: cache.misses }, { hits: 0, misses: 2 }, "both checkouts waited for the fetch");
  const packed = await packWorkspace(root);
  assert.equal(cache.blobsFetched, new Set(packed.files.map((f) => f.sha256)).size);
  assert.equal(readFileSync(join(a, "src", "main.js"), "utf8"), "console.log('main')\n");
  assert.deepEqual(readFileSync(join(a, "big.bin")), readFileSync(join(root, "big.bin")));
  assert.equal(statSync(join(a, "run.sh")).mode & 0o777, 0o755);
  assert.equal(statSync(join(a, "same-a.txt")).mode & 0o777, 0o644);
  assert.ok(lstatSync(join(a, "main-link.js")).isSymbolicLink());
  assert.equal(readlinkSync(join(a, "main-link.js")), "src/main.js");
  assert.deepEqual(readdirSync(cacheDir).filter((n) => n.startsWith(".tmp-")), [], "no temporary tree is left");
  assert.equal((await packWorkspace(a)).bundleId, bundleId, "the copy packs to the same bundle");

  writeFileSync(join(root, "src", "main.js"), "console.log('v2')\n");
  const next = await uploadBundle(client, await packWorkspace(root));
  const fetched = cache.blobsFetched;
  const dir = await cache.checkout(next);
  assert.equal(cache.blobsFetched, fetched + 1, "only the changed file was downloaded");
  assert.equal(readFileSync(join(dir, "src", "main.js"), "utf8"), "console.log('v2')\n");

  // A daemon restarted on the same directory reuses what it unpacked.
  const restarted = new BundleCache(cacheDir, () => {
    throw new Error("must not ask the controller");
  });
  assert.equal(await restarted.checkout(bundleId), a);
  assert.deepEqual({ hits: restarted.hits, misses: restarted.misses }, { hits: 1, misses: 0 });
});

test("the sweep removes bundles and blobs no live job uses once they are old, and keeps the rest", async (t) => {
  const dir = tempDir(t, "fluster-store-");
  let now = Date.now();
  const store = new BundleStore(dir, { now: () => now });
  const put = async (files: Record<string, string>) => {
    await store.receive(
      (async function* () {
        yield Object.values(files).map((content) => ({ sha256: sha256Hex(content), data: Buffer.from(content), last: true }));
      })(),
    );
    return store.putBundle(Object.entries(files).map(([path, content]) => ({ path, sha256: sha256Hex(content), size: content.length, mode: 0o644 })));
  };
  const old = await put({ "a.txt": "only in old", "shared.txt": "shared" });
  const live = await put({ "b.txt": "only in live", "shared.txt": "shared" });
  const day = 86_400_000;

  assert.deepEqual(store.sweep(new Set([live]), day), { bundles: 0, blobs: 0 }, "nothing is old yet");
  now += 2 * day;
  assert.deepEqual(store.sweep(new Set([live]), day), { bundles: 1, blobs: 1 });
  assert.throws(() => store.getBundle(old), /is not in the controller's store/);
  assert.ok(!store.hasBlob(sha256Hex("only in old")));
  assert.ok(store.hasBlob(sha256Hex("shared")), "a blob a kept bundle lists stays");
  assert.equal(store.getBundle(live).length, 2);

  // Registered again, a bundle is young again; no longer live and old, it goes with its blobs.
  assert.equal(store.putBundle(store.getBundle(live)), live);
  assert.deepEqual(store.sweep(new Set(), day), { bundles: 0, blobs: 0 });
  now += 2 * day;
  assert.deepEqual(store.sweep(new Set(), day), { bundles: 1, blobs: 2 });
  assert.ok(!existsSync(join(dir, "manifests", `${live}.json`)));
});

test("over its size limit the store drops unused bundles least recently used first, never a live one nor a blob just uploaded", async (t) => {
  const dir = tempDir(t, "fluster-store-");
  let now = Date.now();
  const store = new BundleStore(dir, { now: () => now });
  const upload = (contents: string[]) =>
    store.receive(
      (async function* () {
        yield contents.map((content) => ({ sha256: sha256Hex(content), data: Buffer.from(content), last: true }));
      })(),
    );
  const put = async (path: string, content: string) => {
    await upload([content]);
    const id = store.putBundle([{ path, sha256: sha256Hex(content), size: content.length, mode: 0o644 }]);
    assert.ok(store.touchBundle(id)); // used now (the fake clock)
    now += 60_000;
    return id;
  };
  const a = await put("a.bin", "A".repeat(1000));
  const b = await put("b.bin", "B".repeat(1000));
  const c = await put("c.bin", "C".repeat(1000));
  const day = 86_400_000;
  now += 20 * 60_000; // the blobs are no longer fresh

  assert.deepEqual(store.sweep(new Set([a]), day, 2500), { bundles: 1, blobs: 1 }, "b, the least recently used unused bundle, goes");
  assert.throws(() => store.getBundle(b), /is not in the controller's store/);
  assert.equal(store.getBundle(a).length, 1, "a is live: it stays though it is the oldest");
  assert.equal(store.getBundle(c).length, 1);
  assert.deepEqual(store.sweep(new Set([a]), day, 2500), { bundles: 0, blobs: 0 }, "under the limit: nothing more goes");
  assert.deepEqual(store.sweep(new Set([a]), day, 0), { bundles: 1, blobs: 1 }, "c goes; live a stays whatever it weighs");
  assert.ok(store.hasBlob(sha256Hex("A".repeat(1000))));

  await upload(["D".repeat(5000)]); // uploaded, its bundle not registered yet
  assert.deepEqual(store.sweep(new Set(), day, 0), { bundles: 1, blobs: 1 }, "a goes once unused; the fresh blob stays");
  assert.ok(store.hasBlob(sha256Hex("D".repeat(5000))));
  assert.equal(store.touchBundle(a), false, "a swept bundle is not there to mark used");
});

test("an unchanged re-launch names its bundle by id alone; one the controller swept meanwhile is refused at launch and uploaded again", async (t) => {
  const server = await controller(t);
  const root = workspace(t);
  const cluster = Cluster.connect(server.url);
  t.after(() => cluster.close());
  let puts = 0;
  const putBundle = server.bundles.putBundle.bind(server.bundles);
  server.bundles.putBundle = (files) => {
    puts += 1;
    return putBundle(files);
  };

  const one = await cluster.launch(pendingJob("one", root));
  const two = await cluster.launch(pendingJob("two", root));
  assert.equal(puts, 1, "the second launch registered nothing");
  const bundleId = server.controller.getJob(one).spec.environment?.bundleId ?? "";
  assert.equal(server.controller.getJob(two).spec.environment?.bundleId, bundleId);

  // Swept as if unused (a day later, say): the client still thinks the controller has it.
  server.bundles.sweep(new Set(), -60_000);
  const three = await cluster.launch(pendingJob("three", root));
  assert.equal(puts, 2, "refused once at launch, then registered again");
  assert.equal(server.controller.getJob(three).spec.environment?.bundleId, bundleId);
  assert.equal(server.bundles.getBundle(bundleId).length, (await packWorkspace(root)).files.length);

  // A launch naming a bundle the controller never had is refused before anything is stored.
  const rpc = createRpcChannel(server.url).client(ControllerService);
  const spec = server.controller.getJob(one).spec;
  const forged = { ...spec, environment: { ...spec.environment, bundleId: "0".repeat(64) } };
  await assert.rejects(rpc.launchJob({ job: forged as typeof spec, namespace: "default" }), /the controller has no workspace bundle 0{64}/);
});
