// Actor call latency and throughput, beside two baselines measured in the same
// run: a bare Connect unary echo of the same ActorService, and a bare
// node:http2 echo. Each server runs in its own child process (client and
// server get a core each); this process is the client.
//   node --import tsx bench/actor.bench.ts [--rounds 5] [--calls 600] [--seconds 0.6] [--only actor]
// BENCH_CPU_PROF_DIR=dir also writes a CPU profile of each server there (run
// this process with --cpu-prof for the client's).
import { create, toBinary } from "@bufbuild/protobuf";
import * as http2 from "node:http2";
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import { FixedResolver } from "../src/actor/resolver.js";
import { decodeValue, encodeValue } from "../src/rpc/codec.js";
import { ActorService, CallRequestSchema, type CallResponse } from "../src/rpc/gen/fluster/actor/v1/actor_pb.js";
import { createRpcChannel } from "../src/rpc/transport.js";
import { serverCpuUs, startServer, stopServers, type Server } from "./servers/spawn.js";
import { rawUnaryPost } from "./servers/scale-targets.js";
import { machine, printTable, summarize } from "./stats.js";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "5" },
    calls: { type: "string", default: "600" },
    seconds: { type: "string", default: "0.6" },
    only: { type: "string" },
  },
});
/** Targets take turns, round after round, so load from elsewhere slows them about equally. */
const rounds = Number(values.rounds);
/** Sequential calls timed per target per round. */
const callsPerRound = Number(values.calls);
/** Seconds of saturated calls timed per target per round. */
const secondsPerRound = Number(values.seconds);
const IN_FLIGHT = 64;
const WARMUP_CALLS = 300;
const WARMUP_SATURATED_MS = 300;

type TargetKey = "http2" | "connect" | "actor";

interface Target {
  key: TargetKey;
  label: string;
  /** Script under bench/servers/. */
  server: string;
  /** Set up once the server is up. */
  connect(url: string): Client;
}

interface Client {
  call: () => Promise<unknown>;
  answersRight: (answer: unknown) => boolean;
  close: () => void;
}

// The same request everywhere: method "add" of actor "bench" with args [1, 2].
const args = encodeValue([1, 2]);
const requestBody = toBinary(CallRequestSchema, create(CallRequestSchema, { actor: "bench", method: "add", args }));

const targets: Target[] = [
  {
    key: "http2",
    label: "raw node:http2 echo",
    server: "http2-echo.ts",
    connect(url) {
      // The path, headers and protobuf body a Connect client sends, over one session.
      const session = http2.connect(url);
      const call = () => rawUnaryPost(session, requestBody);
      return { call, answersRight: (answer) => Buffer.from(requestBody).equals(answer as Buffer), close: () => session.close() };
    },
  },
  {
    key: "connect",
    label: "raw Connect unary echo",
    server: "connect-echo.ts",
    connect(url) {
      const channel = createRpcChannel(url);
      const client = channel.client(ActorService);
      return {
        call: () => client.call({ actor: "bench", method: "add", args }),
        answersRight: (answer) => {
          const result = (answer as CallResponse).result;
          return result.case === "value" && JSON.stringify(decodeValue(result.value)) === "[1,2]";
        },
        close: () => channel.close(),
      };
    },
  },
  {
    key: "actor",
    label: "fluster actor call",
    server: "actor.ts",
    connect(url) {
      const pool = new FixedResolver({ bench: url }).lookup<{ add(a: number, b: number): number }>("bench");
      // As users write it: arguments encoded and the result decoded on every call.
      return { call: () => pool.call().add(1, 2), answersRight: (answer) => answer === 3, close: () => undefined };
    },
  },
];

function clientCpuUs(): number {
  const usage = process.cpuUsage();
  return usage.user + usage.system;
}

/** Runs `call` with IN_FLIGHT calls outstanding for `ms`; returns [calls completed, seconds]. */
async function saturate(call: () => Promise<unknown>, ms: number): Promise<[number, number]> {
  let done = 0;
  const start = performance.now();
  const end = start + ms;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (performance.now() < end) {
        await call();
        done++;
      }
    }),
  );
  return [done, (performance.now() - start) / 1000];
}

interface Measured {
  latenciesUs: number[];
  calls: number;
  seconds: number;
  /** CPU time used while saturated, in µs. */
  clientCpuUs: number;
  serverCpuUs: number;
  /** Per round: median sequential latency (µs) and calls/s, to show how much rounds differ. */
  roundMedians: number[];
  roundThroughputs: number[];
}

process.once("SIGINT", () => void stopServers().finally(() => process.exit(130)));

const chosen = targets.filter((t) => values.only === undefined || values.only === t.key);
const measured = new Map<TargetKey, Measured>();
const startedAt = performance.now();
console.log(`machine: ${machine()}; load average at start ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
try {
  const servers = await Promise.all(chosen.map((t) => startServer(t.server)));
  const clients = chosen.map((t, i) => t.connect((servers[i] as Server).url));
  // Every target answers the same request correctly before anything is timed.
  for (const [i, t] of chosen.entries()) {
    const client = clients[i] as Client;
    if (!client.answersRight(await client.call())) throw new Error(`${t.label} answered wrongly`);
    measured.set(t.key, { latenciesUs: [], calls: 0, seconds: 0, clientCpuUs: 0, serverCpuUs: 0, roundMedians: [], roundThroughputs: [] });
  }
  for (let round = 0; round < rounds; round++) {
    for (let j = 0; j < chosen.length; j++) {
      // Rotate the order so no target always runs first or last in a round.
      const i = (j + round) % chosen.length;
      const target = chosen[i] as Target;
      const server = servers[i] as Server;
      const { call } = clients[i] as Client;
      const m = measured.get(target.key) as Measured;
      for (let k = 0; k < WARMUP_CALLS; k++) await call();
      const latencies: number[] = [];
      for (let k = 0; k < callsPerRound; k++) {
        const t0 = performance.now();
        await call();
        latencies.push((performance.now() - t0) * 1000);
      }
      m.latenciesUs.push(...latencies);
      m.roundMedians.push(summarize(latencies).median);
      await saturate(call, WARMUP_SATURATED_MS);
      const client0 = clientCpuUs();
      const server0 = await serverCpuUs(server);
      const [calls, seconds] = await saturate(call, secondsPerRound * 1000);
      const client1 = clientCpuUs();
      const server1 = await serverCpuUs(server);
      m.calls += calls;
      m.seconds += seconds;
      m.clientCpuUs += client1 - client0;
      m.serverCpuUs += server1 - server0;
      m.roundThroughputs.push(calls / seconds);
    }
  }
  for (const c of clients) c.close();
} finally {
  await stopServers();
}

console.log(
  `\n${rounds} rounds, targets in turn; per target per round: ${WARMUP_CALLS} warm-up + ${callsPerRound} timed sequential calls, ` +
    `then ${WARMUP_SATURATED_MS} ms warm-up + ${secondsPerRound} s timed with ${IN_FLIGHT} calls in flight\n`,
);
printTable(
  chosen.map((t) => {
    const m = measured.get(t.key) as Measured;
    const s = summarize(m.latenciesUs);
    return {
      target: t.label,
      "median µs": s.median,
      "p99 µs": s.p99,
      "sequential n": s.n,
      [`calls/s (${IN_FLIGHT} in flight)`]: Math.round(m.calls / m.seconds),
      "client CPU µs/call": m.clientCpuUs / m.calls,
      "server CPU µs/call": m.serverCpuUs / m.calls,
    };
  }),
);

const stat = (key: TargetKey) => {
  const m = measured.get(key);
  if (!m) return undefined;
  const s = summarize(m.latenciesUs);
  return { median: s.median, p99: s.p99, throughput: m.calls / m.seconds, m };
};
const x = (value: number) => `${value.toFixed(2)}x`;
/** The lowest and highest per-round ratio, e.g. "0.95x–1.10x". */
const spread = (a: readonly number[], b: readonly number[]) => {
  const ratios = a.map((v, i) => v / (b[i] as number));
  return `${x(Math.min(...ratios))}–${x(Math.max(...ratios))}`;
};
const actor = stat("actor");
const connect = stat("connect");
const raw = stat("http2");
const verdict = (met: boolean) => (met ? "met" : "NOT met");
// Issue 16's targets: an actor call at the physical limit (raw HTTP/2), far ahead of a Connect unary call.
if (actor && raw) {
  const latency = actor.median / raw.median;
  const throughput = actor.throughput / raw.throughput;
  console.log(`\nactor / raw http2 (per-round range in brackets):`);
  console.log(`  median latency ${x(latency)} [${spread(actor.m.roundMedians, raw.m.roundMedians)}] (target ≤ 2: ${verdict(latency <= 2)})`);
  console.log(`  p99 latency    ${x(actor.p99 / raw.p99)}`);
  console.log(`  throughput     ${x(throughput)} [${spread(actor.m.roundThroughputs, raw.m.roundThroughputs)}] (target ≥ 0.6: ${verdict(throughput >= 0.6)})`);
}
if (actor && connect) {
  const throughput = actor.throughput / connect.throughput;
  console.log(`actor / raw Connect:`);
  console.log(`  median latency ${x(actor.median / connect.median)} [${spread(actor.m.roundMedians, connect.m.roundMedians)}]`);
  console.log(`  throughput     ${x(throughput)} [${spread(actor.m.roundThroughputs, connect.m.roundThroughputs)}] (target ≥ 3: ${verdict(throughput >= 3)})`);
}
if (connect && raw) {
  console.log(
    `raw Connect / raw http2 (context): median ${x(connect.median / raw.median)}, p99 ${x(connect.p99 / raw.p99)}, throughput ${x(connect.throughput / raw.throughput)}`,
  );
}
console.log(`total ${((performance.now() - startedAt) / 1000).toFixed(1)} s; load average at end ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
// Idle HTTP/2 sessions to the closed servers must not keep the client alive.
process.exit(0);
