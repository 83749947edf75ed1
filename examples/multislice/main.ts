// Flex multi-slice training on Fluster (SPEC §1, workload 5): a coordinator
// job hosts the SliceCoordinator; slice jobs register, heartbeat and meet at
// a barrier after every step. The driver kills a slice mid-run, sees it end,
// and launches a replacement that joins at the current step — keeping the
// slice count between --min-slices and --max-slices, as a reservation would.
//
//   node --import tsx examples/multislice/main.ts --slices 2 --steps 6
import { parseArgs } from "node:util";
import {
  Cluster,
  ClusterResolver,
  Entrypoint,
  LocalCluster,
  ResourceConfig,
  currentCluster,
  isFinished,
  type FunctionEntrypoint,
  type JobId,
  type JobInfo,
  type JobRequest,
} from "fluster";
import { SLICE_COORDINATOR, type SliceCoordinator, type TimelineEvent } from "./coordinator.js";
import { hostCoordinator, slice } from "./slices.js";

const USAGE = `Usage: node --import tsx examples/multislice/main.ts [options]

Runs flex multi-slice training as Fluster jobs: a coordinator job hosting the
"${SLICE_COORDINATOR}" actor and one job per slice. Midway the driver kills a
slice; the coordinator drops it when its heartbeats stop, training goes on
with the others, and the driver launches a replacement that joins at the
current step. Uses the cluster at FLUSTER_CLUSTER_ADDRESS, else starts a
local one for the run.

Options:
  --slices N             slices to run (default 3)
  --steps S              training steps (default 8)
  --min-slices M         steps complete only with at least M live slices (default N-1, at least 1)
  --max-slices X         never run more than X slice jobs (default N)
  --kill-at K            kill a slice after step K; 0 kills none (default: a third of the steps)
  --step-ms MS           how long one training step takes (default 500)
  --heartbeat-timeout MS drop a slice silent for this long (default 2000)
  --max-restarts R       give up after R slice failures (default 3)
  --tpu VARIANT          ask for a real TPU slice per job, e.g. v5litepod-16 (default: off,
                         small CPU jobs stand in for slices)
  --timeout S            give up when the run takes longer than S seconds (default 120)
  --verbose              also print the slice jobs' own output
  -h, --help             print this help`;

interface Flags {
  slices: number;
  steps: number;
  minSlices: number;
  maxSlices: number;
  killAt: number;
  stepMs: number;
  heartbeatTimeoutMs: number;
  maxRestarts: number;
  tpu: string | undefined;
  timeoutSeconds: number;
  verbose: boolean;
}

interface Summary {
  steps: number;
  joined: Array<{ sliceId: string; startStep: number }>;
  killed: string[];
  dropped: Array<{ sliceId: string; silentMs: number }>;
  replacements: Array<{ sliceId: string; replaced: string }>;
  /** Steps completed with each number of live slices. */
  stepsBySliceCount: Map<number, number>;
}

// Small CPU jobs, so the whole run fits on a 2-core laptop.
const SMALL = { cpu: 0.2, memory: "128m" } as const;

const started = Date.now();
const at = (time = Date.now()) => `[${((time - started) / 1000).toFixed(1).padStart(5)}s]`;
const log = (line: string) => console.log(`multislice: ${line}`);

async function main(): Promise<number> {
  let flags: Flags | "help";
  try {
    flags = parseFlags(process.argv.slice(2));
  } catch (err) {
    console.error(`multislice: ${errorMessage(err)} (see --help)`);
    return 2;
  }
  if (flags === "help") {
    console.log(USAGE);
    return 0;
  }

  // A namespace of its own: two runs on one cluster never see each other's coordinator.
  const namespace = Cluster.freshNamespace("multislice");
  const external = process.env.FLUSTER_CLUSTER_ADDRESS;
  log(external ? `using the cluster at ${external}` : "starting a local cluster with 2 workers");
  const cluster = await currentCluster({ namespace, workers: 2 });
  log(`cluster ${cluster.address}, namespace ${namespace}`);
  // A real run would first reserve capacity between min and max slices:
  //   cluster.createReservation({
  //     minResources: ResourceConfig.withTpu("v5litepod-16", { sliceCount: flags.minSlices }),
  //     maxResources: ResourceConfig.withTpu("v5litepod-16", { sliceCount: flags.maxSlices }),
  //   })
  // Reservations are not implemented yet, so this driver keeps the count in range itself.
  log(`${flags.slices} slice(s), kept between ${flags.minSlices} and ${flags.maxSlices} by this driver (cluster reservations are not implemented yet)`);

  const jobs = new RunJobs(cluster, flags.verbose);
  const stop = stopSignals(flags.timeoutSeconds);
  let summary: Summary | undefined;
  let failure: unknown;
  try {
    summary = await Promise.race([runMultislice(cluster, jobs, flags), stop.promise]);
  } catch (err) {
    failure = err;
    if (err instanceof TimedOut) failure = new Error(`${err.message}${await jobs.explainPending()}`);
  } finally {
    stop.dispose();
    // Always clean up: on success the jobs have ended already; this is for errors and Ctrl-C.
    await jobs.stopAll();
    await (cluster instanceof LocalCluster ? cluster.shutdown() : cluster.close());
  }

  if (!summary) {
    console.error(`multislice: error: ${errorMessage(failure)}`);
    return failure instanceof Interrupted ? 130 : 1;
  }
  console.log("");
  console.log("== multi-slice run summary ==");
  console.log(`steps completed    ${summary.steps} / ${flags.steps}`);
  console.log(`slices joined      ${summary.joined.map((j) => `${j.sliceId} (at step ${j.startStep})`).join(", ")}`);
  console.log(`slices killed      ${summary.killed.join(", ") || "none"}`);
  console.log(`dropped (silent)   ${summary.dropped.map((d) => `${d.sliceId} after ${(d.silentMs / 1000).toFixed(1)}s`).join(", ") || "none"}`);
  console.log(`replacements       ${summary.replacements.map((r) => `${r.sliceId} for ${r.replaced}`).join(", ") || "none"}`);
  const bySize = [...summary.stepsBySliceCount].sort(([a], [b]) => b - a);
  console.log(`steps by slices    ${bySize.map(([n, steps]) => `${steps} step(s) on ${n} slice(s)`).join(", ")}`);
  console.log(`elapsed            ${((Date.now() - started) / 1000).toFixed(1)}s`);
  return 0;
}

/** Starts the coordinator and the slices, follows the timeline, kills and replaces a slice, and waits for the last step. */
async function runMultislice(cluster: Cluster, jobs: RunJobs, flags: Flags): Promise<Summary> {
  const summary: Summary = { steps: 0, joined: [], killed: [], dropped: [], replacements: [], stepsBySliceCount: new Map() };
  let done = false;
  let failed: (err: Error) => void = () => undefined;
  const failure = new Promise<never>((_, reject) => (failed = reject));
  failure.catch(() => undefined); // raced below; a failure after the run ended is not news

  const coordinatorId = await jobs.launch(
    "coordinator",
    { resources: SMALL, ports: ["actor"] },
    Entrypoint.fromFunction(hostCoordinator, { minSlices: flags.minSlices, heartbeatTimeoutMs: flags.heartbeatTimeoutMs }),
  );
  void cluster.wait(coordinatorId).then((info) => done || failed(new Error(`${jobs.describeEnd(info)} during the run`)), failed);

  // Slices that run now, by slice id (no job id yet while launching). The
  // driver's whole scaling policy: refill to --slices after a loss, never beyond --max-slices.
  const running = new Map<string, JobId | undefined>();
  let nextSlice = 0;
  let restarts = 0;
  const sliceResources = flags.tpu ? ResourceConfig.withTpu(flags.tpu) : SMALL;
  const launchSlice = async (replaced?: string) => {
    const sliceId = `slice-${nextSlice++}`;
    // Count the slice at once, before the launch returns, so two losses at once cannot overshoot the max.
    running.set(sliceId, undefined);
    const options = { steps: flags.steps, stepMs: flags.stepMs, heartbeatMs: Math.max(50, Math.floor(flags.heartbeatTimeoutMs / 4)) };
    let jobId: JobId;
    try {
      jobId = await jobs.launch(sliceId, { resources: sliceResources }, Entrypoint.fromFunction(slice, sliceId, options));
    } catch (err) {
      running.delete(sliceId);
      throw err;
    }
    running.set(sliceId, jobId);
    if (replaced) {
      summary.replacements.push({ sliceId, replaced });
      console.log(`${at()} driver: launched ${sliceId} (job ${jobId}) to replace ${replaced}`);
    }
    void cluster.wait(jobId).then((info) => onSliceEnded(sliceId, info).catch(failed), failed);
  };
  const onSliceEnded = async (sliceId: string, info: JobInfo) => {
    running.delete(sliceId);
    // A slice that finished the last step just exits; after the run (or during cleanup) nothing is replaced.
    if (done || jobs.stopping || info.status === "succeeded") return;
    // Detected from the job's status, at once; the coordinator notices later, when heartbeats stop.
    console.log(`${at()} driver: ${jobs.describeEnd(info)}`);
    if (++restarts > flags.maxRestarts) throw new Error(`${restarts} slice failures, more than --max-restarts ${flags.maxRestarts}`);
    while (running.size < Math.min(flags.slices, flags.maxSlices)) await launchSlice(sliceId);
  };

  for (let i = 0; i < flags.slices; i++) await launchSlice();
  log(`launched ${jobs.describe()}`);

  // Follow the coordinator's timeline (a long poll: each call waits for news).
  const coordinator = new ClusterResolver(cluster).lookup<SliceCoordinator>(SLICE_COORDINATOR);
  await Promise.race([coordinator.waitForSize(1, { timeoutSeconds: flags.timeoutSeconds }), failure]);
  let seq = 0;
  while (summary.steps < flags.steps) {
    const events = await Promise.race([coordinator.call().events(seq, 1000), failure]);
    for (const event of events) {
      seq = event.seq;
      console.log(`${at(event.at.getTime())} ${describeEvent(event, flags.minSlices)}`);
      if (event.kind === "joined") summary.joined.push({ sliceId: event.sliceId, startStep: event.startStep });
      if (event.kind === "dropped") summary.dropped.push({ sliceId: event.sliceId, silentMs: event.silentMs });
      if (event.kind !== "step") continue;
      summary.steps = event.step;
      summary.stepsBySliceCount.set(event.slices.length, (summary.stepsBySliceCount.get(event.slices.length) ?? 0) + 1);
      if (event.step === flags.killAt) {
        // Simulate losing a slice (a preempted TPU slice, say): stop its job outright.
        const [victim, victimJob] = [...running].filter((entry): entry is [string, JobId] => entry[1] !== undefined).at(-1) ?? [];
        if (victim && victimJob) {
          console.log(`${at()} driver: killing ${victim} (job ${victimJob}) to simulate a lost slice`);
          summary.killed.push(victim);
          await cluster.terminate(victimJob, "killed by the driver to simulate a lost slice");
        }
      }
    }
  }

  done = true;
  log(`step ${flags.steps} reached; waiting for the slices to exit`);
  await cluster.wait(
    [...running.values()].filter((id): id is JobId => id !== undefined),
    { timeoutSeconds: 30 },
  );
  log("stopping the coordinator");
  await cluster.terminate(coordinatorId, "training finished");
  await jobs.drainLogs();
  return summary;
}

function describeEvent(event: TimelineEvent, minSlices: number): string {
  const live = `live: ${event.slices.join(", ") || "none"}`;
  switch (event.kind) {
    case "joined":
      return `${event.sliceId} joined at step ${event.startStep} (${live})`;
    case "dropped": {
      const paused = event.slices.length < minSlices ? `; below ${minSlices}, steps pause until a slice joins` : "";
      return `coordinator dropped ${event.sliceId}: no heartbeat for ${(event.silentMs / 1000).toFixed(1)}s (${live}${paused})`;
    }
    case "step":
      return `step ${event.step} complete on ${event.slices.length} slice(s)`;
  }
}

/** The jobs this run launched, with their roles; with `verbose`, their output is streamed as `[role] line`. */
class RunJobs {
  private readonly roles = new Map<JobId, string>();
  private readonly logPumps: Promise<void>[] = [];
  /** Set when cleanup begins: no more launches. */
  stopping = false;

  constructor(
    private readonly cluster: Cluster,
    private readonly verbose: boolean,
  ) {}

  async launch(role: string, request: Pick<JobRequest, "resources" | "ports">, entrypoint: FunctionEntrypoint): Promise<JobId> {
    if (this.stopping) throw new Error(`not launching ${role}: the run is stopping`);
    const jobId = await this.cluster.launch({ name: `multislice/${role}`, entrypoint, ...request });
    this.roles.set(jobId, role);
    // Cleanup may have begun while this launch was in flight: the new job must not outlive the run.
    if (this.stopping) {
      await this.cluster.terminate(jobId, "driver stopped");
      throw new Error(`${role} launched while the run was stopping`);
    }
    if (this.verbose) this.logPumps.push(pumpLogs(this.cluster, jobId, role));
    return jobId;
  }

  describe(): string {
    return [...this.roles].map(([id, role]) => `${role} (${id})`).join(", ");
  }

  describeEnd(info: JobInfo): string {
    const role = this.roles.get(info.jobId) ?? info.name;
    return `${role} job ${info.jobId} ended ${info.status}${info.errorMessage ? `: ${info.errorMessage}` : ""}`;
  }

  /** Why jobs still wait to be placed, e.g. `; slice-0 pending: insufficient tpu ...`. */
  async explainPending(): Promise<string> {
    const infos = await Promise.all([...this.roles.keys()].map((id) => this.cluster.poll(id).catch(() => undefined)));
    return infos
      .filter((info): info is JobInfo => info?.status === "pending")
      .map((info) => `; ${this.roles.get(info.jobId)} pending${info.pendingReason ? `: ${info.pendingReason}` : ""}`)
      .join("");
  }

  async drainLogs(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled(this.logPumps), new Promise((r) => (timer = setTimeout(r, 3000)))]);
    clearTimeout(timer);
  }

  /** Terminates every job that is still running; never throws (it runs during cleanup). */
  async stopAll(): Promise<void> {
    this.stopping = true;
    await Promise.allSettled(
      [...this.roles.keys()].map(async (id) => {
        if (!isFinished((await this.cluster.poll(id)).status)) await this.cluster.terminate(id, "driver stopped");
      }),
    );
  }
}

/** Copies a job's output to stdout line by line, prefixed with its role, until the job ends. */
async function pumpLogs(cluster: Cluster, jobId: JobId, role: string): Promise<void> {
  const partial = { stdout: "", stderr: "" };
  try {
    for await (const chunk of cluster.logs(jobId, { follow: true })) {
      const lines = (partial[chunk.stream] + chunk.data).split("\n");
      partial[chunk.stream] = lines.pop() ?? "";
      for (const line of lines) console.log(`  [${role}] ${line}`);
    }
  } catch {
    // The cluster went away during cleanup: nothing more to show.
  }
  for (const rest of Object.values(partial)) if (rest) console.log(`  [${role}] ${rest}`);
}

class Interrupted extends Error {
  override name = "Interrupted";
}

class TimedOut extends Error {
  override name = "TimedOut";
}

/** A promise that rejects on Ctrl-C, SIGTERM or the run's timeout, so the driver can clean up. */
function stopSignals(timeoutSeconds: number): { promise: Promise<never>; dispose(): void } {
  let reject!: (err: Error) => void;
  const promise = new Promise<never>((_, r) => (reject = r));
  promise.catch(() => undefined); // handled by whoever races it
  const onSignal = (signal: NodeJS.Signals) => reject(new Interrupted(`interrupted by ${signal}; stopped the run's jobs`));
  const timer = setTimeout(() => reject(new TimedOut(`the run did not finish within ${timeoutSeconds}s`)), timeoutSeconds * 1000);
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  return {
    promise,
    dispose() {
      clearTimeout(timer);
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    },
  };
}

function parseFlags(argv: string[]): Flags | "help" {
  const { values } = parseArgs({
    args: argv,
    options: {
      slices: { type: "string", default: "3" },
      steps: { type: "string", default: "8" },
      "min-slices": { type: "string" },
      "max-slices": { type: "string" },
      "kill-at": { type: "string" },
      "step-ms": { type: "string", default: "500" },
      "heartbeat-timeout": { type: "string", default: "2000" },
      "max-restarts": { type: "string", default: "3" },
      tpu: { type: "string" },
      timeout: { type: "string", default: "120" },
      verbose: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) return "help";
  const slices = wholeNumber("--slices", values.slices, 1);
  const steps = wholeNumber("--steps", values.steps, 1);
  const minSlices = values["min-slices"] === undefined ? Math.max(1, slices - 1) : wholeNumber("--min-slices", values["min-slices"], 1);
  const maxSlices = values["max-slices"] === undefined ? slices : wholeNumber("--max-slices", values["max-slices"], 1);
  if (minSlices > slices) throw new Error(`--min-slices (${minSlices}) must not exceed --slices (${slices})`);
  if (slices > maxSlices) throw new Error(`--slices (${slices}) must not exceed --max-slices (${maxSlices})`);
  const killAt = values["kill-at"] === undefined ? Math.min(Math.ceil(steps / 3), steps - 1) : wholeNumber("--kill-at", values["kill-at"], 0);
  if (killAt >= steps) throw new Error(`--kill-at (${killAt}) must be below --steps (${steps}) so the run outlives the kill`);
  if (values.tpu !== undefined) ResourceConfig.withTpu(values.tpu); // an unknown variant fails here, with the known ones listed
  return {
    slices,
    steps,
    minSlices,
    maxSlices,
    killAt,
    stepMs: wholeNumber("--step-ms", values["step-ms"], 1),
    heartbeatTimeoutMs: wholeNumber("--heartbeat-timeout", values["heartbeat-timeout"], 100),
    maxRestarts: wholeNumber("--max-restarts", values["max-restarts"], 0),
    tpu: values.tpu,
    timeoutSeconds: wholeNumber("--timeout", values.timeout, 1),
    verbose: values.verbose,
  };
}

function wholeNumber(flag: string, value: string, min: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new Error(`${flag} must be a whole number ≥ ${min}, got ${JSON.stringify(value)}`);
  return n;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

// Exit explicitly: the cluster is shut down by now, and nothing else should keep the process alive.
main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`multislice: error: ${errorMessage(err)}`);
    process.exit(1);
  },
);
