// Client process of bench/actor-scale.bench.ts's n:n scenario: holds a client
// of every target over the given endpoints and, each time the parent asks,
// keeps calls in flight against one target through a window that starts at a
// wall-clock time the parent chose (so every client process runs at once),
// then answers with how many calls completed.
//   node --import tsx bench/servers/scale-client.ts <endpoints as JSON: {"http2": [urls], …}> <calls in flight>
import { announce } from "./ready.js";
import { createTargetClient, type TargetClient, type TargetKey } from "./scale-targets.js";

/** What the parent sends: run target `key` from `startAt` (Date.now() time). */
export interface RunRequest {
  run: TargetKey;
  startAt: number;
  warmupMs: number;
  ms: number;
  /** Calls per in-flight slot at most, so the window ends even if time stood still. */
  maxCallsPerSlot: number;
}

/** What this process answers. */
export type RunReply = { done: TargetKey; calls: number; seconds: number; cpuUs: number } | { failed: string };

const endpoints = JSON.parse(process.argv[2] ?? "{}") as Record<TargetKey, string[]>;
const inFlight = Number(process.argv[3] ?? "64");
const clients = new Map<TargetKey, TargetClient>();
for (const key of Object.keys(endpoints) as TargetKey[]) clients.set(key, createTargetClient(key, endpoints[key], new Uint8Array(16)));
for (const [key, client] of clients) {
  await client.check().catch((err: unknown) => {
    throw new Error(`n:n client ${process.pid}: ${key}: ${String(err)}`);
  });
}

/** Runs `call` with `inFlight` calls outstanding for `ms`; returns [calls completed, seconds]. */
async function saturate(call: () => Promise<unknown>, ms: number, maxCallsPerSlot: number): Promise<[number, number]> {
  let done = 0;
  const start = performance.now();
  const end = start + ms;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      for (let k = 0; k < maxCallsPerSlot && performance.now() < end; k++) {
        await call();
        done++;
      }
    }),
  );
  return [done, (performance.now() - start) / 1000];
}

async function run(request: RunRequest): Promise<RunReply> {
  const client = clients.get(request.run);
  if (!client) return { failed: `n:n client ${process.pid} has no endpoints for ${request.run}` };
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, request.startAt - Date.now())));
  await saturate(client.small, request.warmupMs, request.maxCallsPerSlot);
  const cpu0 = process.cpuUsage();
  const [calls, seconds] = await saturate(client.small, request.ms, request.maxCallsPerSlot);
  const cpu = process.cpuUsage(cpu0);
  return { done: request.run, calls, seconds, cpuUs: cpu.user + cpu.system };
}

process.on("message", (message: RunRequest | string) => {
  if (typeof message !== "object" || !("run" in message)) return;
  void run(message).then(
    (reply) => process.send?.(reply),
    (err: unknown) => process.send?.({ failed: `n:n client ${process.pid}: ${message.run}: ${String(err)}` } satisfies RunReply),
  );
});
announce("", async () => clients.forEach((client) => client.close()));
