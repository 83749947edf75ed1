// Cluster.wait, results, monitor and logs with an AbortSignal, on a real
// LocalCluster: an aborted signal rejects at once, an aborting one stops the
// wait or stream with the signal's reason, and the job itself runs on.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { getEventListeners } from "node:events";
import { PassThrough } from "node:stream";
import { Entrypoint } from "../../src/core/entrypoint.js";
import { ValidationError } from "../../src/core/errors.js";
import type { JobId } from "../../src/core/job.js";
import { slowCount } from "../fixtures/cluster/jobs.js";
import { useLocalCluster } from "../helpers/local-cluster.js";
import { eventually } from "../helpers/index.js";

const isAbortError = (signal: AbortSignal) => (err: unknown) => err === signal.reason && (err as Error).name === "AbortError";

describe("Cluster waits and streams with an AbortSignal", { timeout: 180_000 }, () => {
  const local = useLocalCluster({ workers: 1 });
  let jobId: JobId;
  before(async () => {
    // Ticks once a second for a minute: long enough to be running through every test.
    jobId = await local.cluster.launch({ name: "abort-ticker", resources: { cpu: 0.1, memory: "64m" }, entrypoint: Entrypoint.fromFunction(slowCount, 60) });
    await eventually(async () => (await local.cluster.poll(jobId)).status === "running", { what: "the ticker to run", timeoutMs: 60_000 });
  });
  after(async () => {
    if (jobId) await local.cluster.terminate(jobId, "test done").catch(() => undefined);
  });

  test("an already-aborted signal rejects at once, before anything is asked of the controller", async () => {
    const { cluster } = local;
    const signal = AbortSignal.abort();
    await assert.rejects(cluster.wait(jobId, { signal }), isAbortError(signal));
    await assert.rejects(cluster.wait([jobId, jobId], { signal }), isAbortError(signal));
    await assert.rejects(cluster.results(jobId, { signal }), isAbortError(signal));
    await assert.rejects(cluster.monitor(jobId, { signal, out: new PassThrough(), err: new PassThrough() }), isAbortError(signal));
    const lines = cluster.logs(jobId, { follow: true, signal });
    await assert.rejects(lines.next(), isAbortError(signal));
    assert.equal((await cluster.poll(jobId)).status, "running", "the job runs on");
  });

  test("aborting a wait (or results) rejects with the reason; the job runs on and no listener is left", async () => {
    const { cluster } = local;
    for (const start of [
      (signal: AbortSignal) => cluster.wait(jobId, { signal, timeoutSeconds: 120 }),
      (signal: AbortSignal) => cluster.wait([jobId, jobId], { signal }),
      (signal: AbortSignal) => cluster.results(jobId, { signal }),
    ]) {
      const abort = new AbortController();
      const waiting = start(abort.signal);
      setTimeout(() => abort.abort(), 300);
      await assert.rejects(waiting, isAbortError(abort.signal));
      assert.equal(getEventListeners(abort.signal, "abort").length, 0);
    }
    assert.equal((await cluster.poll(jobId)).status, "running");
  });

  test("a custom reason is what rejects, not a deadline error", async () => {
    const abort = new AbortController();
    const reason = new Error("user pressed Ctrl-C");
    const waiting = local.cluster.wait(jobId, { signal: abort.signal, timeoutSeconds: 100 });
    setTimeout(() => abort.abort(reason), 200);
    await assert.rejects(waiting, (err: unknown) => err === reason);
  });

  test("aborting a followed log stream ends it: the next step throws the reason", async () => {
    const abort = new AbortController();
    const seen: string[] = [];
    await assert.rejects(
      (async () => {
        for await (const line of local.cluster.logs(jobId, { follow: true, signal: abort.signal })) {
          seen.push(line.data);
          if (seen.join("").includes("tick")) abort.abort();
        }
      })(),
      isAbortError(abort.signal),
    );
    assert.match(seen.join(""), /tick \d+/);
    // The RPC stream is closed: it no longer listens to the signal.
    await eventually(() => getEventListeners(abort.signal, "abort").length === 0, { what: "the log stream to drop its abort listener" });
  });

  test("aborting monitor stops streaming and waiting; the job runs on", async () => {
    const abort = new AbortController();
    const out = new PassThrough();
    let text = "";
    out.on("data", (chunk: Buffer) => {
      text += chunk.toString();
      if (text.includes("tick")) abort.abort();
    });
    await assert.rejects(local.cluster.monitor(jobId, { out, err: new PassThrough(), signal: abort.signal }), isAbortError(abort.signal));
    assert.match(text, /tick \d+/);
    await eventually(() => getEventListeners(abort.signal, "abort").length === 0, { what: "monitor's streams to drop their abort listeners" });
    assert.equal((await local.cluster.poll(jobId)).status, "running");
  });

  test("a signal that is not an AbortSignal is refused, naming the field", async () => {
    await assert.rejects(local.cluster.wait(jobId, { signal: "soon" as unknown as AbortSignal }), (err: unknown) => err instanceof ValidationError && err.field === "signal");
    await assert.rejects(local.cluster.logs(jobId, { signal: {} as AbortSignal }).next(), ValidationError);
  });
});
