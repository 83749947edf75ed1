import { Packr } from "msgpackr";
import { encodeValue, decodeValue } from "./src/rpc/codec.js";
const rawPackr = new Packr({ useRecords: false, moreTypes: true, useBigIntExtension: true, int64AsType: "bigint", copyBuffers: true, variableMapSize: true });
let s = 1;
const random = () => { s = (s * 16807) % 2147483647; return s / 2147483647; };
const word = (): string => ["alpha", "beta", "gamma", "delta", "train"][Math.floor(random() * 5)] as string;
function taskRecord(i: number): Record<string, unknown> {
  return { id: `job-${1000 + i}/task-${i}`, attempt: i % 3, state: i % 5 === 0 ? "failed" : "running",
    worker: { host: `10.0.${i % 8}.${i % 250}`, port: 8000 + (i % 100), labels: { region: word(), zone: `${word()}-b` } },
    resources: { cpu: 0.5 + (i % 4), memory: 2 ** 30 * (1 + (i % 8)), gpus: i % 2 }, startedAt: 1_712_345_678_901 + i * 1000,
    progress: Math.round(random() * 10_000) / 100, tags: [word(), word(), word()], exitCode: i % 5 === 0 ? 1 : null };
}
const v = { jobId: "job-77", tasks: [0, 1, 2, 3].map(taskRecord), done: false };
function time(name: string, f: () => unknown) {
  for (let i = 0; i < 20000; i++) f();
  const t = performance.now(); let n = 0;
  while (performance.now() - t < 1000) { for (let i = 0; i < 1000; i++) f(); n += 1000; }
  console.log(name, Math.round(n / ((performance.now() - t) / 1000)));
}
const enc = encodeValue(v); const raw = rawPackr.pack(v);
time("raw pack", () => rawPackr.pack(v));
time("codec encode", () => encodeValue(v));
time("raw unpack", () => rawPackr.unpack(raw));
time("codec decode", () => decodeValue(enc));
time("raw unpack(copy buf)", () => rawPackr.unpack(Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength)));
