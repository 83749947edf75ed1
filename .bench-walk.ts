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
const isWF = (s: string): boolean => (s as unknown as { isWellFormed(): boolean }).isWellFormed();
function walkKeys(x: unknown): number {
  if (typeof x === "string") return isWF(x) ? 1 : 0;
  if (typeof x !== "object" || x === null) return 1;
  if (Array.isArray(x)) { let n = 0; for (let i = 0; i < x.length; i++) n += walkKeys(x[i]); return n; }
  const o = x as Record<string, unknown>; const keys = Object.keys(o); let n = 0;
  for (let i = 0; i < keys.length; i++) { const k = keys[i] as string; if (!isWF(k)) return -1; n += walkKeys(o[k]); }
  return n;
}
function walkKeysNoWF(x: unknown): number {
  if (typeof x === "string") return 1;
  if (typeof x !== "object" || x === null) return 1;
  if (Array.isArray(x)) { let n = 0; for (let i = 0; i < x.length; i++) n += walkKeysNoWF(x[i]); return n; }
  const o = x as Record<string, unknown>; const keys = Object.keys(o); let n = 0;
  for (let i = 0; i < keys.length; i++) { const k = keys[i] as string; n += walkKeysNoWF(o[k]); }
  return n;
}
function walkForIn(x: unknown): number {
  if (typeof x === "string") return isWF(x) ? 1 : 0;
  if (typeof x !== "object" || x === null) return 1;
  if (Array.isArray(x)) { let n = 0; for (let i = 0; i < x.length; i++) n += walkForIn(x[i]); return n; }
  const o = x as Record<string, unknown>; let n = 0;
  for (const k in o) { if (!isWF(k)) return -1; n += walkForIn(o[k]); }
  return n;
}
function time(name: string, f: () => unknown) {
  for (let i = 0; i < 20000; i++) f();
  const t = performance.now(); let n = 0;
  while (performance.now() - t < 1000) { for (let i = 0; i < 1000; i++) f(); n += 1000; }
  console.log(name, Math.round(n / ((performance.now() - t) / 1000)));
}
time("keys+wf", () => walkKeys(v));
time("keys", () => walkKeysNoWF(v));
time("forin+wf", () => walkForIn(v));
