// Inference (SPEC §1, workload 3): N server jobs each host an InferenceActor
// under one pool name; this client batches prompts, load-balances the
// batches over the servers, and prints results as each batch completes.
//
//   node --import tsx examples/inference/main.ts --servers 2 --prompts 40 --batch-size 8
//
// With FLUSTER_CLUSTER_ADDRESS set it uses that cluster; otherwise it starts
// a LocalCluster of its own.
import { parseArgs } from "node:util";
import { Cluster, ClusterResolver, Entrypoint, ResourceConfig, type ActorPool, type JobId } from "fluster";
import { runMain, wholeNumber, type ExampleRun } from "../shared/run.js";
import { POOL_NAME, serveInference, type Completion, type InferenceActor } from "./server.js";

const USAGE = `usage: node --import tsx examples/inference/main.ts [flags]

Starts inference server jobs, sends them batches of prompts and streams the completions.

flags:
  --servers N          server jobs to launch (default: 2)
  --prompts N          prompts to complete (default: 40)
  --batch-size N       prompts per batch (default: 8)
  --in-flight N        batches in flight at once (default: 2 per server)
  --batch-ms MS        time a server takes per batch (default: 150)
  --ready-timeout S    how long to wait for the servers to come up (default: 60)
  -h, --help           print this help`;

interface Flags {
  servers: number;
  prompts: number;
  batchSize: number;
  inFlight: number;
  batchMs: number;
  readyTimeout: number;
}

function parseFlags(argv: string[]): Flags | "help" {
  const { values } = parseArgs({
    args: argv,
    options: {
      servers: { type: "string", default: "2" },
      prompts: { type: "string", default: "40" },
      "batch-size": { type: "string", default: "8" },
      "in-flight": { type: "string" },
      "batch-ms": { type: "string", default: "150" },
      "ready-timeout": { type: "string", default: "60" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) return "help";
  const servers = wholeNumber("--servers", values.servers, 1);
  return {
    servers,
    prompts: wholeNumber("--prompts", values.prompts, 1),
    batchSize: wholeNumber("--batch-size", values["batch-size"], 1),
    inFlight: values["in-flight"] !== undefined ? wholeNumber("--in-flight", values["in-flight"], 1) : 2 * servers,
    batchMs: wholeNumber("--batch-ms", values["batch-ms"], 0),
    readyTimeout: wholeNumber("--ready-timeout", values["ready-timeout"], 1),
  };
}

async function main(flags: Flags, run: ExampleRun): Promise<number> {
  // A namespace of our own: endpoints left by another run (or another user)
  // under the same pool name can never be mistaken for our servers.
  const cluster = await run.connect({ namespace: Cluster.freshNamespace("inference") });

  // 1. Launch the servers. Each is its own job; `ports: ["actor"]` asks the
  //    worker for a port, which the ActorServer in the job binds.
  for (let i = 0; i < flags.servers; i++) {
    await run.launch({
      name: `inference/server-${i}`,
      resources: ResourceConfig.withCpu({ cpu: 0.5, memory: "256m" }),
      entrypoint: Entrypoint.fromFunction(serveInference, `server-${i}`, flags.batchMs),
      ports: ["actor"],
    });
  }
  console.log(`launched ${flags.servers} server job(s): ${run.jobIds.join(", ")}`);

  // 2. Wait until every server has registered under the pool name.
  const pool = new ClusterResolver(cluster).lookup<InferenceActor>(POOL_NAME);
  let started = Date.now();
  await waitForServers(cluster, pool, run.jobIds, flags.readyTimeout);
  console.log(`pool ${POOL_NAME} ready: ${pool.size} server(s) after ${seconds(started)}`);
  await checkHealth(pool);

  // 3. Batch the prompts and keep several batches in flight. Each call()
  //    goes to the next server round-robin; results print as each batch
  //    returns, not when all are done.
  const prompts = makePrompts(flags.prompts);
  const batches: string[][] = [];
  for (let i = 0; i < prompts.length; i += flags.batchSize) batches.push(prompts.slice(i, i + flags.batchSize));
  console.log(`sending ${prompts.length} prompts in ${batches.length} batches of ≤ ${flags.batchSize}, ${flags.inFlight} in flight`);
  started = Date.now();
  const perServer = new Map<string, number>();
  let done = 0;
  let next = 0;
  const lane = async () => {
    while (next < batches.length) {
      const index = next++;
      const batch = batches[index] as string[];
      const sentAt = Date.now();
      const results: Completion[] = await pool.call().generate(batch);
      console.log(`batch ${index + 1}/${batches.length} from ${results[0]?.server ?? "?"} in ${Date.now() - sentAt} ms:`);
      for (const r of results) {
        console.log(`  [${r.server}] ${JSON.stringify(r.prompt)} -> ${JSON.stringify(r.completion)}`);
        perServer.set(r.server, (perServer.get(r.server) ?? 0) + 1);
      }
      done += results.length;
    }
  };
  await Promise.all(Array.from({ length: Math.min(flags.inFlight, batches.length) }, lane));
  const elapsed = seconds(started);

  // 4. Ask every server how it is doing; the run then terminates the server jobs.
  await checkHealth(pool);
  const spread = [...perServer].sort(([a], [b]) => a.localeCompare(b)).map(([server, n]) => `${server} ${n}`);
  console.log(`done: ${done}/${prompts.length} prompts in ${batches.length} batches, ${elapsed}; per server: ${spread.join(", ")}`);
  console.log(`stopping ${run.jobIds.length} server job(s)`);
  return done === prompts.length ? 0 : 1;
}

/**
 * Waits until `jobs.length` servers serve the pool, failing fast (rather than
 * at the timeout) if a server job ends first, e.g. because it crashed on start.
 */
async function waitForServers(cluster: Cluster, pool: ActorPool<InferenceActor>, jobs: JobId[], timeoutSeconds: number): Promise<void> {
  const abort = new AbortController();
  const serverEnded = Promise.race(
    jobs.map(async (id) => {
      const info = await cluster.wait(id);
      throw new Error(`server job ${id} ended ${info.status} before the pool was ready${info.errorMessage ? `: ${info.errorMessage}` : ""}`);
    }),
  );
  serverEnded.catch(() => undefined); // also ends (harmlessly) when cleanup terminates the servers
  try {
    await Promise.race([pool.waitForSize(jobs.length, { timeoutSeconds, signal: abort.signal }), serverEnded]);
  } finally {
    abort.abort();
  }
}

/** broadcast() calls every server at once and gives one settled result per endpoint. */
async function checkHealth(pool: ActorPool<InferenceActor>): Promise<void> {
  const results = await pool.broadcast().health();
  for (const r of results) {
    const server = r.endpoint.metadata.server ?? "?";
    if (r.status === "fulfilled") {
      const h = r.value;
      console.log(`health ${server} at ${r.endpoint.address}: ${h.status}, ${h.batches} batches, ${h.prompts} prompts, pid ${h.pid}`);
    } else {
      console.log(`health ${server} at ${r.endpoint.address}: unreachable: ${r.reason instanceof Error ? r.reason.message : String(r.reason)}`);
    }
  }
}

/** Deterministic sample prompts. */
function makePrompts(count: number): string[] {
  const topics = ["the capital of France", "a haiku about rain", "the speed of light", "how tides work", "a good name for a cat"];
  return Array.from({ length: count }, (_, i) => `prompt ${i + 1}: tell me about ${topics[i % topics.length]}`);
}

function seconds(since: number): string {
  return `${((Date.now() - since) / 1000).toFixed(1)}s`;
}

// Stopping a server job SIGTERMs its process, whose ActorServer unregisters and drains.
runMain({ usage: USAGE, parseFlags, main, onInterrupt: "stopping the server jobs" });
