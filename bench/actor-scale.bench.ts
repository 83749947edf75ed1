// Actors at scale, as Ray's microbenchmark measures them, each scenario beside
// a raw node:http2 echo and the raw Connect unary echo measured in the same run:
// - nn: C client processes × S server processes, each client keeping K calls in
//   flight per server, spread round-robin over all S servers; total calls/s.
// - big: sequential calls whose 1 MiB argument is echoed back (both directions
//   carry it); median latency and MiB/s.
// - broadcast: one call to each of 100 endpoints of one name, spread over the
//   S server processes (25 ActorServers per process at the defaults: an
//   ActorServer hosts one actor per name); time per broadcast.
// bench/actor.bench.ts measures 1:1 sequential and 64-in-flight calls.
//   node --import tsx bench/actor-scale.bench.ts [--scenario all|nn|big|broadcast] [--rounds 3]
//     [--servers 4] [--clients 4] [--in-flight 16] [--seconds 1] [--mib 1] [--big-calls 20]
//     [--actors 100] [--broadcasts 30] [--targets http2,connect,actor]
// Servers and clients run in child processes (bench/servers/scale-*.ts); the
// actor targets use only the public client API (FixedResolver, pool.call(),
// pool.broadcast()), so this measures whatever the data plane is.
// BENCH_CPU_PROF_DIR=dir writes a CPU profile of every child there (run this
// process with --cpu-prof for its own, the big and broadcast client).
import type { ChildProcess } from "node:child_process";
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import type { RunReply, RunRequest } from "./servers/scale-client.js";
import { createTargetClient, TARGETS, type TargetClient, type TargetKey } from "./servers/scale-targets.js";
import { startServer, stopServers, type Server } from "./servers/spawn.js";
import { machine, printTable, rng, summarize } from "./stats.js";

const { values } = parseArgs({
  options: {
    scenario: { type: "string", default: "all" },
    rounds: { type: "string", default: "3" },
    servers: { type: "string", default: "4" },
    clients: { type: "string", default: "4" },
    "in-flight": { type: "string", default: "16" },
    seconds: { type: "string", default: "1" },
    mib: { type: "string", default: "1" },
    "big-calls": { type: "string", default: "20" },
    actors: { type: "string", default: "100" },
    broadcasts: { type: "string", default: "30" },
    targets: { type: "string", default: "http2,connect,actor" },
    "max-seconds": { type: "string", default: "900" },
  },
});

function wholeNumber(name: string, min = 1): number {
  const value = Number(values[name as keyof typeof values]);
  if (!Number.isSafeInteger(value) || value < min) throw new Error(`--${name} must be a whole number ≥ ${min}, got ${values[name as keyof typeof values]}`);
  return value;
}
function positive(name: string): number {
  const value = Number(values[name as keyof typeof values]);
  if (!(value > 0)) throw new Error(`--${name} must be a positive number, got ${values[name as keyof typeof values]}`);
  return value;
}

const SCENARIOS = ["nn", "big", "broadcast"] as const;
type Scenario = (typeof SCENARIOS)[number];
const scenarios: readonly Scenario[] =
  values.scenario === "all" ? SCENARIOS : SCENARIOS.includes(values.scenario as Scenario) ? [values.scenario as Scenario] : [];
if (scenarios.length === 0) throw new Error(`--scenario must be all, ${SCENARIOS.join(", ")}; got ${values.scenario}`);
const chosen = TARGETS.filter((t) => (values.targets ?? "").split(",").includes(t.key));
if (chosen.length === 0) throw new Error(`--targets must name some of ${TARGETS.map((t) => t.key).join(", ")}; got ${values.targets}`);
/** Targets take turns, round after round (order rotated), so load from elsewhere slows them about equally. */
const rounds = wholeNumber("rounds");
const serverCount = wholeNumber("servers");
const clientCount = wholeNumber("clients");
/** n:n: calls each client keeps in flight per server. */
const inFlightPerServer = wholeNumber("in-flight");
/** n:n: seconds timed per target per round, after NN_WARMUP_MS. */
const nnSeconds = positive("seconds");
const payloadBytes = Math.round(positive("mib") * 1024 * 1024);
/** big: sequential calls timed per target per round. */
const bigCalls = wholeNumber("big-calls");
/** broadcast: endpoints of the one name, spread over the server processes. */
const actorCount = wholeNumber("actors");
/** broadcast: broadcasts timed per target per round. */
const broadcastCount = wholeNumber("broadcasts");
/** The whole run is given up (children stopped, exit 1) after this long: nothing may hang. */
const maxSeconds = positive("max-seconds");

const NN_WARMUP_MS = 300;
const SEQUENTIAL_WARMUP = 3;
/** A sequential loop also stops after this long, whatever its count. */
const LOOP_LIMIT_MS = 60_000;
/** Ray's published n:n actor calls/s (64-vCPU m5.16xlarge), issue 16's target on the 16-core machine. */
const RAY_NN_CALLS_PER_S = 27_376;

const stopAndExit = (code: number) => void stopServers().finally(() => process.exit(code));
process.once("SIGINT", () => stopAndExit(130));
process.once("SIGTERM", () => stopAndExit(143));
setTimeout(() => {
  console.error(`actor-scale.bench.ts: still running after --max-seconds ${maxSeconds}; stopping`);
  stopAndExit(1);
}, maxSeconds * 1000).unref();

/** One target's figures in one scenario: per-round values of its main figure, and samples. */
interface Measured {
  samples: number[];
  rounds: number[];
  calls: number;
  seconds: number;
  cpuUs: number;
}
const emptyMeasured = (): Measured => ({ samples: [], rounds: [], calls: 0, seconds: 0, cpuUs: 0 });

/** Visits every (round, target) pair, rotating the target order each round. */
async function inTurns(visit: (target: TargetKey) => Promise<void>): Promise<void> {
  for (let round = 0; round < rounds; round++) {
    for (let j = 0; j < chosen.length; j++) await visit((chosen[(j + round) % chosen.length] as (typeof chosen)[number]).key);
  }
}

/** `count` sequential calls (stopping early after LOOP_LIMIT_MS), each timed, in ms. */
async function timeSequential(call: () => Promise<unknown>, count: number): Promise<number[]> {
  const latencies: number[] = [];
  const end = performance.now() + LOOP_LIMIT_MS;
  for (let k = 0; k < count && performance.now() < end; k++) {
    const t0 = performance.now();
    await call();
    latencies.push(performance.now() - t0);
  }
  return latencies;
}

const x = (value: number) => `${value.toFixed(2)}x`;
/** Actor over each baseline, overall and the lowest–highest per-round ratio. */
function printRatios(measured: Map<TargetKey, Measured>, what: string, overall: (m: Measured) => number): void {
  const actor = measured.get("actor");
  if (!actor) return;
  for (const base of ["http2", "connect"] as const) {
    const other = measured.get(base);
    if (!other) continue;
    const perRound = actor.rounds.map((v, i) => v / (other.rounds[i] as number));
    console.log(`  actor / raw ${base === "http2" ? "http2" : "Connect"} ${what}: ${x(overall(actor) / overall(other))} [rounds ${x(Math.min(...perRound))}–${x(Math.max(...perRound))}]`);
  }
}

/** Sends `request` to a client process; resolves with its reply, rejects if it exits or takes too long. */
function ask(child: ChildProcess, request: RunRequest, timeoutMs: number): Promise<RunReply> {
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      child.off("message", onMessage);
      child.off("exit", onExit);
    };
    const onMessage = (message: RunReply) => {
      if (typeof message !== "object" || !("done" in message || "failed" in message)) return;
      done();
      resolve(message);
    };
    const onExit = (code: number | null) => {
      done();
      reject(new Error(`n:n client ${child.pid} exited with ${code} during a run`));
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`n:n client ${child.pid} did not answer within ${timeoutMs} ms`));
    }, timeoutMs);
    child.on("message", onMessage);
    child.once("exit", onExit);
    child.send(request);
  });
}

async function runNn(servers: readonly Server[]): Promise<void> {
  const endpoints = Object.fromEntries(chosen.map((t) => [t.key, servers.map((s) => (s.endpoints[t.key] as string[])[0] as string)]));
  const inFlight = inFlightPerServer * serverCount;
  const clients = await Promise.all(Array.from({ length: clientCount }, () => startServer("scale-client.ts", [JSON.stringify(endpoints), String(inFlight)])));
  const measured = new Map(chosen.map((t) => [t.key, emptyMeasured()]));
  const windowMs = nnSeconds * 1000;
  // Far more calls per slot than a window can hold; the bound is there so no loop depends on time alone.
  const maxCallsPerSlot = Math.ceil(windowMs) * 1000;
  await inTurns(async (key) => {
    // Every client starts its window at the same wall-clock moment.
    const request: RunRequest = { run: key, startAt: Date.now() + 100, warmupMs: NN_WARMUP_MS, ms: windowMs, maxCallsPerSlot };
    const replies = await Promise.all(clients.map((c) => ask(c.child, request, NN_WARMUP_MS + windowMs + 30_000)));
    const m = measured.get(key) as Measured;
    let roundRate = 0;
    for (const reply of replies) {
      if ("failed" in reply) throw new Error(reply.failed);
      roundRate += reply.calls / reply.seconds;
      m.samples.push(reply.calls / reply.seconds);
      m.calls += reply.calls;
      m.cpuUs += reply.cpuUs;
    }
    m.rounds.push(roundRate);
  });
  console.log(
    `\n== n:n: ${clientCount} client processes × ${serverCount} server processes (one endpoint each), ` +
      `${inFlight} calls in flight per client (${inFlightPerServer} per server, round-robin); ${rounds} rounds of ${NN_WARMUP_MS} ms warm-up + ${nnSeconds} s timed\n`,
  );
  printTable(
    chosen.map((t) => {
      const m = measured.get(t.key) as Measured;
      const perClient = summarize(m.samples);
      return {
        target: t.label,
        "calls/s (all clients)": Math.round(summarize(m.rounds).mean),
        "rounds min–max": `${Math.round(Math.min(...m.rounds))}–${Math.round(Math.max(...m.rounds))}`,
        "per client calls/s (median)": Math.round(perClient.median),
        "client CPU µs/call": m.cpuUs / m.calls,
      };
    }),
  );
  printRatios(measured, "calls/s", (m) => summarize(m.rounds).mean);
  console.log(`  (Ray n:n async: ${RAY_NN_CALLS_PER_S} calls/s on a 64-vCPU m5.16xlarge)`);
}

async function runBig(servers: readonly Server[]): Promise<void> {
  // Random bytes, so nothing on the way could shrink them.
  const random = rng(16);
  const payload = new Uint8Array(payloadBytes);
  for (let i = 0; i < payload.length; i++) payload[i] = Math.floor(random() * 256);
  const clients = new Map(chosen.map((t) => [t.key, createTargetClient(t.key, [(servers[0] as Server).endpoints[t.key]?.[0] as string], payload)]));
  for (const client of clients.values()) await client.check();
  const measured = new Map(chosen.map((t) => [t.key, emptyMeasured()]));
  await inTurns(async (key) => {
    const client = clients.get(key) as TargetClient;
    await timeSequential(client.big, SEQUENTIAL_WARMUP);
    const latencies = await timeSequential(client.big, bigCalls);
    const m = measured.get(key) as Measured;
    m.samples.push(...latencies);
    m.rounds.push(summarize(latencies).median);
    m.calls += latencies.length;
    m.seconds += latencies.reduce((a, b) => a + b, 0) / 1000;
  });
  for (const client of clients.values()) client.close();
  const mib = payloadBytes / (1024 * 1024);
  console.log(
    `\n== ${mib} MiB argument echoed back: sequential calls to one server process; ${rounds} rounds of ${SEQUENTIAL_WARMUP} warm-up + ${bigCalls} timed calls\n`,
  );
  printTable(
    chosen.map((t) => {
      const m = measured.get(t.key) as Measured;
      const s = summarize(m.samples);
      return { target: t.label, "median ms": s.median, "p99 ms": s.p99, "MiB/s each way": (m.calls * mib) / m.seconds, n: s.n };
    }),
  );
  printRatios(measured, "median latency", (m) => summarize(m.samples).median);
}

async function runBroadcast(servers: readonly Server[]): Promise<void> {
  const endpointsOf = (key: TargetKey) => {
    // Dealt out across the processes: endpoint i of every process before endpoint i + 1 of any.
    const lists = servers.map((s) => s.endpoints[key] ?? []);
    const urls: string[] = [];
    for (let i = 0; urls.length < actorCount && i < Math.max(...lists.map((l) => l.length)); i++) {
      for (const list of lists) if (urls.length < actorCount && list[i] !== undefined) urls.push(list[i] as string);
    }
    return urls;
  };
  const clients = new Map(chosen.map((t) => [t.key, createTargetClient(t.key, endpointsOf(t.key), new Uint8Array(16))]));
  for (const client of clients.values()) await client.check();
  const measured = new Map(chosen.map((t) => [t.key, emptyMeasured()]));
  await inTurns(async (key) => {
    const client = clients.get(key) as TargetClient;
    const broadcast = async () => {
      const answered = await client.broadcast();
      if (answered !== actorCount) throw new Error(`${key} broadcast: ${answered} of ${actorCount} endpoints answered`);
    };
    await timeSequential(broadcast, SEQUENTIAL_WARMUP);
    const latencies = await timeSequential(broadcast, broadcastCount);
    const m = measured.get(key) as Measured;
    m.samples.push(...latencies);
    m.rounds.push(summarize(latencies).median);
  });
  for (const client of clients.values()) client.close();
  console.log(
    `\n== broadcast to ${actorCount} endpoints of one name over ${serverCount} server processes (actor: one ActorServer per endpoint); ` +
      `${rounds} rounds of ${SEQUENTIAL_WARMUP} warm-up + ${broadcastCount} timed broadcasts\n`,
  );
  printTable(
    chosen.map((t) => {
      const s = summarize((measured.get(t.key) as Measured).samples);
      return { target: t.label, "median ms": s.median, "p99 ms": s.p99, "endpoint calls/s": Math.round((actorCount / s.median) * 1000), n: s.n };
    }),
  );
  printRatios(measured, "median latency", (m) => summarize(m.samples).median);
}

const startedAt = performance.now();
console.log(`machine: ${machine()}; load average at start ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
try {
  // Enough endpoints per process for the broadcast; the other scenarios use each process's first.
  const perProcess = scenarios.includes("broadcast") ? Math.ceil(actorCount / serverCount) : 1;
  const servers = await Promise.all(Array.from({ length: serverCount }, () => startServer("scale-server.ts", [String(perProcess)])));
  for (const scenario of scenarios) {
    if (scenario === "nn") await runNn(servers);
    else if (scenario === "big") await runBig(servers);
    else await runBroadcast(servers);
  }
} finally {
  await stopServers();
}
console.log(`\ntotal ${((performance.now() - startedAt) / 1000).toFixed(1)} s; load average at end ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
// Idle HTTP/2 sessions to the closed servers must not keep this process alive.
process.exit(0);
