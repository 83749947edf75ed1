// Property-based fuzzing of every RPC of ControllerService and WorkerService,
// on real servers over real sockets: well-typed messages generated from the
// protobuf descriptors (HTTP/2 binary, HTTP/1.1 JSON and binary) and
// ill-typed ones (random bytes, random JSON). Every answer is a success or a
// Connect error that blames the request (never internal/unknown), the
// servers stay up, and the controller's database stays intact.
// bench/fuzz.ts runs the same cases by the hundred thousand.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { acceptable, createFuzzSender, describeCase, illTypedCase, startFuzzBed, wellTypedCase, type FuzzBed, type FuzzCase, type FuzzSender } from "../helpers/fuzz.js";

/** Cases per property; 2,400 in all. FLUSTER_FUZZ_SCALE multiplies them (e.g. 10 for a longer local run). */
const SCALE = Number(process.env.FLUSTER_FUZZ_SCALE ?? 1);
const runs = (n: number) => Math.max(1, Math.round(n * SCALE));

let bed: FuzzBed;
let sender: FuzzSender;
before(async () => {
  bed = await startFuzzBed();
  sender = createFuzzSender(bed);
});
after(async () => {
  sender?.close();
  await bed?.shutdown();
});

async function holds(c: FuzzCase): Promise<void> {
  const outcome = await sender.send(c);
  assert.ok(acceptable(outcome), `${describeCase(c)}\n→ ${outcome.ok ? "ok" : `${outcome.code}: ${outcome.message}`}`);
}

test("well-typed messages over HTTP/2 get a success or a client error", { timeout: 120_000 }, async () => {
  await fc.assert(fc.asyncProperty(wellTypedCase(["h2"]), holds), { numRuns: runs(1000) });
});

test("well-typed messages over HTTP/1.1 (JSON and binary) get a success or a client error", { timeout: 120_000 }, async () => {
  await fc.assert(fc.asyncProperty(wellTypedCase(["h1-json", "h1-binary"]), holds), { numRuns: runs(700) });
});

test("random bytes and random JSON get a client error, never internal", { timeout: 120_000 }, async () => {
  await fc.assert(fc.asyncProperty(illTypedCase(), holds), { numRuns: runs(700) });
});

test("after the fuzzing both servers answer and the database is intact", { timeout: 60_000 }, async () => {
  await bed.healthCheck();
  sender.close();
  const integrity = await bed.shutdown();
  bed = undefined as unknown as FuzzBed;
  assert.equal(integrity, "ok");
});
