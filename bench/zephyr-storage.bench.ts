// Zephyr storage throughput: a streaming write then a streaming read of the
// same object through the local store, the S3 fake (s3rver behind its proxy)
// and the GCS fake, all on this machine, in interleaved rounds so that load
// from elsewhere falls on every store alike. Prints MiB/s per store and the
// ratio to local disk. The fakes are not S3 or GCS: the numbers say what the
// client side and the protocol cost, not what a cloud bucket delivers.
//
//   node --import tsx bench/zephyr-storage.bench.ts            # 50 MiB, 3 rounds
//   MIB=200 ROUNDS=5 node --import tsx bench/zephyr-storage.bench.ts
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { configureStorage, storeFor } from "../src/zephyr/fs/index.js";
import { FakeGcs } from "../test/fakes/gcs-fake.js";
import { FakeS3 } from "../test/fakes/s3-fake.js";

const MIB = Number(process.env.MIB ?? 50);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
/** Bytes per write into the sink: what a LineWriter hands over. */
const BLOCK = 1 << 20;

async function writeThenRead(path: string, block: Buffer): Promise<{ writeS: number; readS: number }> {
  const store = storeFor(path);
  const start = performance.now();
  const sink = await store.openWrite(path);
  for (let i = 0; i < MIB; i++) {
    if (!sink.stream.write(block)) await new Promise((resolve) => sink.stream.once("drain", resolve));
  }
  const written = await sink.commit();
  const wrote = performance.now();
  let read = 0;
  for await (const chunk of store.read(path)) read += chunk.byteLength;
  const done = performance.now();
  if (written !== MIB * BLOCK || read !== written) throw new Error(`${path}: wrote ${written} bytes, read ${read}`);
  await store.remove(path);
  return { writeS: (wrote - start) / 1000, readS: (done - wrote) / 1000 };
}

const dir = mkdtempSync(join(tmpdir(), "zephyr-storage-bench-"));
const [s3, gcs] = await Promise.all([FakeS3.start(["bench"]), FakeGcs.start({ buckets: ["bench"] })]);
Object.assign(process.env, s3.env(), { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true" });
configureStorage({ s3: {}, gcs: { apiEndpoint: gcs.endpoint } });
try {
  const block = randomBytes(BLOCK);
  const targets = { local: join(dir, "object.bin"), s3: "s3://bench/object.bin", gcs: "gs://bench/object.bin" };
  const totals = Object.fromEntries(Object.keys(targets).map((k) => [k, { writeS: 0, readS: 0 }])) as Record<keyof typeof targets, { writeS: number; readS: number }>;
  await writeThenRead(join(dir, "warm.bin"), block); // first-use costs (module loads) out of the timing
  await writeThenRead("s3://bench/warm.bin", block);
  await writeThenRead("gs://bench/warm.bin", block);
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, path] of Object.entries(targets) as [keyof typeof targets, string][]) {
      const t = await writeThenRead(path, block);
      totals[name].writeS += t.writeS;
      totals[name].readS += t.readS;
    }
  }
  const rate = (seconds: number) => (MIB * ROUNDS) / seconds;
  console.log(`${MIB} MiB written then read, ${ROUNDS} interleaved rounds`);
  for (const [name, t] of Object.entries(totals)) {
    const write = rate(t.writeS);
    const read = rate(t.readS);
    console.log(
      `${name.padEnd(6)} write ${write.toFixed(0).padStart(6)} MiB/s (${(write / rate(totals.local.writeS)).toFixed(2)}× local)   read ${read.toFixed(0).padStart(6)} MiB/s (${(read / rate(totals.local.readS)).toFixed(2)}× local)`,
    );
  }
} finally {
  await Promise.all([s3.stop(), gcs.stop()]);
  rmSync(dir, { recursive: true, force: true });
}
