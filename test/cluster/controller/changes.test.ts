// The change feed live views read (WatchCluster): the store's revision now,
// after each committed change with bursts folded, and a keepalive; served over
// HTTP/1.1 with JSON, as a browser calls it.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { StateStore } from "../../../src/cluster/controller/store.js";
import { watchRevisions } from "../../../src/cluster/controller/changes.js";
import { startController } from "../../../src/cluster/controller/server.js";
import type { WorkerRecord } from "../../../src/cluster/controller/model.js";

function worker(id: string): WorkerRecord {
  const now = Date.now();
  const capacity = { cpu: 1, memory: 1 << 30, disk: 0, deviceType: "cpu" as const, deviceVariant: "", deviceCount: 0 };
  return { workerId: id, address: `http://127.0.0.1:1/${id}`, capacity, attributes: {}, registeredAt: now, lastSeen: now, health: "healthy" };
}

describe("watchRevisions", () => {
  test("yields the revision now, then once per burst of commits, then keepalives", async () => {
    const store = new StateStore(":memory:");
    const stop = new AbortController();
    try {
      const feed = watchRevisions(store, stop.signal, { minIntervalMs: 100, keepaliveMs: 300 });
      const first = await feed.next();
      assert.equal(first.value?.revision, store.revision);
      // Ten commits in one turn: one message carries them all.
      for (let i = 0; i < 10; i++) store.transaction(() => store.saveWorker(worker(`w-${i}`)));
      const second = await feed.next();
      assert.equal(second.value?.revision, (first.value?.revision ?? 0) + 10);
      // Nothing changes: the keepalive repeats the revision with a later time.
      const third = await feed.next();
      assert.equal(third.value?.revision, second.value?.revision);
      assert.ok((third.value?.time ?? 0) >= (second.value?.time ?? 0) + 300 - 5, "the keepalive waited keepaliveMs");
      stop.abort();
      assert.equal((await feed.next()).done, true, "aborting ends the feed");
    } finally {
      stop.abort();
      store.close();
    }
  });

  test("an aborted signal ends the feed before its first message", async () => {
    const store = new StateStore(":memory:");
    try {
      const feed = watchRevisions(store, AbortSignal.abort());
      assert.equal((await feed.next()).done, true);
    } finally {
      store.close();
    }
  });
});

describe("WatchCluster", () => {
  test("streams over HTTP/1.1 with JSON, and the revision grows when an endpoint is registered", async () => {
    const server = await startController({ stateDir: ":memory:" });
    const stop = new AbortController();
    try {
      // The Connect protocol's server-streaming framing: a 5-byte envelope per message.
      const body = JSON.stringify({ minIntervalMs: 50 });
      const envelope = Buffer.concat([Buffer.from([0, 0, 0, 0, 0]), Buffer.from(body)]);
      envelope.writeUInt32BE(body.length, 1);
      const res = await fetch(`${server.url}/fluster.cluster.v1.ControllerService/WatchCluster`, {
        method: "POST",
        headers: { "content-type": "application/connect+json" },
        body: envelope,
        signal: stop.signal,
      });
      assert.equal(res.status, 200);
      const reader = res.body!.getReader();
      let buffered = Buffer.alloc(0);
      const nextMessage = async (): Promise<{ revision: string; time: string }> => {
        for (;;) {
          if (buffered.length >= 5) {
            const size = buffered.readUInt32BE(1);
            if (buffered.length >= 5 + size) {
              const message = JSON.parse(buffered.subarray(5, 5 + size).toString()) as { revision?: string; time: string };
              buffered = buffered.subarray(5 + size);
              return { revision: message.revision ?? "0", time: message.time };
            }
          }
          const { value, done } = await reader.read();
          if (done) throw new Error("the stream ended");
          buffered = Buffer.concat([buffered, Buffer.from(value)]);
        }
      };
      const first = await nextMessage();
      assert.match(first.time, /^\d{4}-\d\d-\d\dT/);
      const registered = await fetch(`${server.url}/fluster.cluster.v1.ControllerService/RegisterEndpoint`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name: "watched", address: "http://127.0.0.1:9", ttlSeconds: 60 }),
      });
      assert.equal(registered.status, 200, await registered.text());
      let next = await nextMessage();
      for (let i = 0; i < 20 && BigInt(next.revision) <= BigInt(first.revision); i++) next = await nextMessage();
      assert.ok(BigInt(next.revision) > BigInt(first.revision), `revision ${next.revision} after ${first.revision}`);
      await reader.cancel();
    } finally {
      stop.abort();
      await server.shutdown();
    }
  });
});
