// Round-trip speed (encode + decode) of the value codec against JSON and
// v8.serialize, on realistic payloads of about 100 B, 1 KB and 100 KB, all in the
// same run. "msgpackr raw" is the library alone, without the codec's walk, to
// show what the walk costs. Run: node --import tsx bench/codec.bench.ts [--seconds 2]
import assert from "node:assert/strict";
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import v8 from "node:v8";
import { Packr, isNativeAccelerationEnabled } from "msgpackr";
import { decodeValue, encodeValue } from "../src/rpc/codec.js";
import { machine, printTable, rng, summarize } from "./stats.js";

const { values } = parseArgs({ options: { seconds: { type: "string", default: "2" } } });
const BUDGET_MS = Number(values.seconds) * 1000;
const WARMUP_MS = Math.min(500, BUDGET_MS / 4);
const SAMPLE_MS = 100;

const random = rng(42);
const word = (): string => ["alpha", "beta", "gamma", "delta", "train", "eval", "shard", "worker", "us-east1", "ok"][Math.floor(random() * 10)] as string;

/** A task record as Fluster moves them around: ids, names, numbers, labels, a nested spec. */
function taskRecord(i: number): Record<string, unknown> {
  return {
    id: `job-${1000 + i}/task-${i}`,
    attempt: i % 3,
    state: i % 5 === 0 ? "failed" : "running",
    worker: { host: `10.0.${i % 8}.${i % 250}`, port: 8000 + (i % 100), labels: { region: word(), zone: `${word()}-b` } },
    resources: { cpu: 0.5 + (i % 4), memory: 2 ** 30 * (1 + (i % 8)), gpus: i % 2 },
    startedAt: 1_712_345_678_901 + i * 1000,
    progress: Math.round(random() * 10_000) / 100,
    tags: [word(), word(), word()],
    exitCode: i % 5 === 0 ? 1 : null,
  };
}

const payloads: Array<{ name: string; value: unknown }> = [
  { name: "~100 B call", value: { fn: "train", args: [42, "shard-7", true], opts: { lr: 0.001, epochs: 3 } } },
  { name: "~1 KB status", value: { jobId: "job-77", tasks: [0, 1, 2, 3].map(taskRecord), done: false } },
  { name: "~100 KB list", value: { jobs: Array.from({ length: 330 }, (_, i) => taskRecord(i)), page: 1, total: 330 } },
  {
    name: "~100 KB with bytes",
    value: { chunk: 7, rows: Array.from({ length: 120 }, (_, i) => taskRecord(i)), data: new Uint8Array(64 * 1024).map((_, i) => (i * 131) & 0xff) },
  },
];

// JSON cannot carry bytes; a JSON codec would send them as base64, so this one does.
const jsonReplacer = (_key: string, value: unknown): unknown => (value instanceof Uint8Array ? { $bytes: Buffer.from(value).toString("base64") } : value);
const jsonReviver = (_key: string, value: unknown): unknown =>
  value !== null && typeof value === "object" && "$bytes" in value ? new Uint8Array(Buffer.from(String(value.$bytes), "base64")) : value;

const rawPackr = new Packr({ useRecords: false, moreTypes: true, useBigIntExtension: true, int64AsType: "bigint", copyBuffers: true, variableMapSize: true });

type Codec = { encode: (value: unknown) => Uint8Array | string; decode: (encoded: never) => unknown };
const jsonCodec = (withBytes: boolean): Codec =>
  withBytes
    ? { encode: (v) => JSON.stringify(v, jsonReplacer), decode: (s: string) => JSON.parse(s, jsonReviver) as unknown }
    : { encode: (v) => JSON.stringify(v), decode: (s: string) => JSON.parse(s) as unknown };
const v8Codec: Codec = { encode: (v) => v8.serialize(v), decode: (b: Buffer) => v8.deserialize(b) as unknown };
const rawCodec: Codec = { encode: (v) => rawPackr.pack(v), decode: (b: Buffer) => rawPackr.unpack(b) as unknown };
const flusterCodec: Codec = { encode: encodeValue, decode: decodeValue };

/**
 * Round trips per second of each codec on one value. The codecs take turns in
 * ~100 ms samples, so a noisy neighbour slows all of them alike; each gets the
 * median of its samples, after a warm-up.
 */
function measure(contenders: Record<string, Codec>, value: unknown): Record<string, number> {
  let sink = 0;
  const runners = Object.entries(contenders).map(([label, codec]) => {
    const roundTrip = () => {
      const decoded = codec.decode(codec.encode(value) as never);
      sink += decoded === null ? 0 : 1;
    };
    // Grow the batch until one takes ~5 ms, so timer reads do not dominate.
    let batch = 1;
    const warmEnd = performance.now() + WARMUP_MS;
    while (performance.now() < warmEnd) {
      const start = performance.now();
      for (let i = 0; i < batch; i++) roundTrip();
      if (performance.now() - start < 5) batch *= 2;
    }
    return { label, roundTrip, batch, rates: [] as number[] };
  });
  const end = performance.now() + BUDGET_MS * runners.length;
  while (performance.now() < end) {
    for (const runner of runners) {
      let n = 0;
      let elapsed = 0;
      const start = performance.now();
      do {
        for (let i = 0; i < runner.batch; i++) runner.roundTrip();
        n += runner.batch;
        elapsed = performance.now() - start;
      } while (elapsed < SAMPLE_MS);
      runner.rates.push((n * 1000) / elapsed);
    }
  }
  if (sink < 0) console.log(sink);
  return Object.fromEntries(runners.map((r) => [r.label, summarize(r.rates).median]));
}

console.log(`machine: ${machine()}`);
console.log(`load average at start: ${loadavg().map((n) => n.toFixed(2)).join(" ")}`);
console.log(`msgpackr native acceleration: ${isNativeAccelerationEnabled}; budget ${BUDGET_MS / 1000} s per case`);
const rows: Array<Record<string, string | number>> = [];
const ratio = (a: number, b: number): string => `${(a / b).toFixed(2)}x`;
for (const { name, value } of payloads) {
  assert.deepEqual(decodeValue(encodeValue(value)), value, `${name}: the codec must round-trip the payload`);
  const json = jsonCodec(name.includes("bytes"));
  const ops = measure({ json, v8: v8Codec, raw: rawCodec, codec: flusterCodec }, value);
  const [jsonOps, v8Ops, rawOps, codecOps] = [ops.json, ops.v8, ops.raw, ops.codec].map((n) => n ?? Number.NaN) as [number, number, number, number];
  rows.push({
    payload: name,
    "JSON bytes": Buffer.byteLength(json.encode(value) as string),
    "codec bytes": encodeValue(value).byteLength,
    "JSON ops/s": Math.round(jsonOps),
    "v8 ops/s": Math.round(v8Ops),
    "msgpackr raw ops/s": Math.round(rawOps),
    "codec ops/s": Math.round(codecOps),
    "codec/JSON": ratio(codecOps, jsonOps),
    "codec/v8": ratio(codecOps, v8Ops),
    "codec/raw": ratio(codecOps, rawOps),
  });
  console.log(`  ${name}: done`);
}
console.log("\nround trips (encode + decode) per second, median of interleaved ~100 ms samples; bytes = encoded size");
printTable(rows);
