// Flex multi-slice training on Fluster (SPEC §1, workload 5): a coordinator
// job hosts the SliceCoordinator; slice jobs register, heartbeat and meet at
// a barrier after every step. The slices run in a reservation that holds
// room for --min-slices and lets the run grow to --max-slices. The driver
// kills a slice mid-run, sees it end, and launches a replacement into the
// reservation, which joins at the current step.
//
//   node --import tsx examples/multislice/main.ts --slices 2 --steps 6
import { parseArgs } from "node:util";
import { Cluster, ClusterResolver, Entrypoint, ResourceConfig, type JobId, type JobInfo, type JobRequest, type ReservationId } from "fluster";
import { runMain, wholeNumber, type ExampleRun } from "../shared/run.js";
import { SLICE_COORDINATOR, type SliceCoordinator, type TimelineEvent } from "./coordinator.js";
import { hostCoordinator, slice } from "./slices.js";

const USAGE = `Usage: node --import tsx examples/multislice/main.ts [options]

Runs flex multi-slice training as Fluster jobs: a coordinator job hosting the
"${SLICE_COORDINATOR}" actor and one job per slice. Midway the driver kills a
slice; the driver launches a replacement and tells the coordinator to expect
it, the coordinator drops the lost slice when its heartbeats stop, and steps
pause at the next barrier until the replacement has joined (or
--rejoin-timeout passes), so it joins at the current step. Uses the cluster at FLUSTER_CLUSTER_ADDRESS, else starts a
local one for the run.

Options:
  --slices N             slices to run (default 3)
  --steps S              training steps (default 8)
  --min-slices M         steps complete only with at least M live slices (default N-1, at least 1)
  --max-slices X         never run more than X slice jobs (default N)
  --kill-at K            kill a slice after step K; 0 kills none (default: a third of the steps)
  --step-ms MS           how long one training step takes (default 500)
  --heartbeat-timeout MS drop a slice silent for this long (default 2000)
  --rejoin-timeout S     steps wait at most S seconds for a first slice or a replacement to join (default 60)
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
  rejoinTimeoutSeconds: number;
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

async function main(flags: Flags, run: ExampleRun): Promise<number> {
  // A namespace of its own: two runs on one cluster never see each other's coordinator.
  const cluster = await run.connect({ namespace: Cluster.freshNamespace("multislice"), workers: 2 });
  // Room for min..max slices, held for this run: the first --min-slices
  // start at once even on a busy cluster, a replacement finds its room
  // still free, and the run may grow to --max-slices. stop() releases it.
  const reservationId = await run.reserve({
    minResources: sliceResources(flags, flags.minSlices),
    maxResources: sliceResources(flags, flags.maxSlices),
    ttlSeconds: flags.timeoutSeconds + 60,
  });
  const reservation = await cluster.getReservation(reservationId);
  const hosts = sliceResources(flags).replicas;
  run.log(
    `reservation ${reservationId}: ${reservation.minReplicas / hosts} to ${reservation.maxReplicas / hosts} slice(s) (--min-slices to --max-slices), ` +
      `expires at ${reservation.expiresAt.toISOString()}`,
  );

  const summary = await run.within(flags.timeoutSeconds, runMultislice(cluster, run, flags, reservationId));
  console.log("");
  console.log("== multi-slice run summary ==");
  console.log(`steps completed    ${summary.steps} / ${flags.steps}`);
  console.log(`slices joined      ${summary.joined.map((j) => `${j.sliceId} (at step ${j.startStep})`).join(", ")}`);
  console.log(`slices killed      ${summary.killed.join(", ") || "none"}`);
  console.log(`dropped (silent)   ${summary.dropped.map((d) => `${d.sliceId} after ${(d.silentMs / 1000).toFixed(1)}s`).join(", ") || "none"}`);
  const joinedAt = (sliceId: string) => summary.joined.find((j) => j.sliceId === sliceId)?.startStep;
  const replacement = (r: { sliceId: string; replaced: string }) => {
    const step = joinedAt(r.sliceId);
    return `${r.sliceId} for ${r.replaced} (${step !== undefined ? `joined at step ${step}` : "never joined"})`;
  };
  console.log(`replacements       ${summary.replacements.map(replacement).join(", ") || "none"}`);
  const bySize = [...summary.stepsBySliceCount].sort(([a], [b]) => b - a);
  console.log(`steps by slices    ${bySize.map(([n, steps]) => `${steps} step(s) on ${n} slice(s)`).join(", ")}`);
  console.log(`elapsed            ${((Date.now() - started) / 1000).toFixed(1)}s`);
  return 0;
}

/** Starts the coordinator and the slices, follows the timeline, kills and replaces a slice, and waits for the last step. */
async function runMultislice(cluster: Cluster, run: ExampleRun, flags: Flags, reservationId: ReservationId): Promise<Summary> {
  // With --verbose, a job's own output is streamed as `  [role] line`.
  const launch = (role: string, request: Omit<JobRequest, "name">, inReservation = false) =>
    run.launch({ name: `multislice/${role}`, ...request }, { role, followLogs: flags.verbose, ...(inReservation ? { reservationId } : {}) });

  const summary: Summary = { steps: 0, joined: [], killed: [], dropped: [], replacements: [], stepsBySliceCount: new Map() };
  const coordinator = new ClusterResolver(cluster).lookup<SliceCoordinator>(SLICE_COORDINATOR);
  let done = false;
  let failed: (err: Error) => void = () => undefined;
  const failure = new Promise<never>((_, reject) => (failed = reject));
  failure.catch(() => undefined); // raced below; a failure after the run ended is not news

  const coordinatorId = await launch("coordinator", {
    resources: SMALL,
    ports: ["actor"],
    entrypoint: Entrypoint.fromFunction(hostCoordinator, {
      minSlices: flags.minSlices,
      heartbeatTimeoutMs: flags.heartbeatTimeoutMs,
      // Step 1 waits for every first slice, so one that starts slowly still joins at step 1.
      initialSlices: Array.from({ length: flags.slices }, (_, i) => `slice-${i}`),
      joinTimeoutSeconds: flags.rejoinTimeoutSeconds,
    }),
  });
  void cluster.wait(coordinatorId).then((info) => done || failed(new Error(`${run.describeEnd(info)} during the run`)), failed);

  // Slices that run now, by slice id (no job id yet while launching). The
  // driver's scaling policy: refill to --slices after a loss, never beyond
  // --max-slices (the reservation's maximum: it would not place more).
  const running = new Map<string, JobId | undefined>();
  let nextSlice = 0;
  let restarts = 0;
  const launchSlice = async (replaced?: string) => {
    const sliceId = `slice-${nextSlice++}`;
    // Count the slice at once, before the launch returns, so two losses at once cannot overshoot the max.
    running.set(sliceId, undefined);
    const options = { steps: flags.steps, stepMs: flags.stepMs, heartbeatMs: Math.max(50, Math.floor(flags.heartbeatTimeoutMs / 4)) };
    let jobId: JobId;
    try {
      jobId = await launch(sliceId, { resources: sliceResources(flags), entrypoint: Entrypoint.fromFunction(slice, sliceId, options) }, true);
    } catch (err) {
      running.delete(sliceId);
      throw err;
    }
    running.set(sliceId, jobId);
    if (replaced) {
      summary.replacements.push({ sliceId, replaced });
      console.log(`${at()} driver: launched ${sliceId} (job ${jobId}) to replace ${replaced}`);
      // Steps wait for it at the next barrier, so it joins the run instead of chasing it.
      await coordinator.call().expect(sliceId, flags.rejoinTimeoutSeconds);
    }
    void cluster.wait(jobId).then((info) => onSliceEnded(sliceId, info).catch(failed), failed);
  };
  const onSliceEnded = async (sliceId: string, info: JobInfo) => {
    running.delete(sliceId);
    // A slice that finished the last step just exits; after the run (or during cleanup) nothing is replaced.
    if (done || run.stopping || info.status === "succeeded") return;
    // Detected from the job's status, at once; the coordinator notices later, when heartbeats stop.
    console.log(`${at()} driver: ${run.describeEnd(info)}`);
    if (++restarts > flags.maxRestarts) throw new Error(`${restarts} slice failures, more than --max-restarts ${flags.maxRestarts}`);
    while (running.size < Math.min(flags.slices, flags.maxSlices)) await launchSlice(sliceId);
  };

  for (let i = 0; i < flags.slices; i++) await launchSlice();
  run.log(`launched ${run.describeJobs()}`);

  // Follow the coordinator's timeline (a long poll: each call waits for news).
  await Promise.race([coordinator.waitForSize(1, { timeoutSeconds: flags.timeoutSeconds }), failure]);
  let seq = 0;
  while (summary.steps < flags.steps) {
    const events = await Promise.race([coordinator.call().events(seq, 1), failure]);
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
  run.log(`step ${flags.steps} reached; waiting for the slices to exit`);
  await cluster.wait(
    [...running.values()].filter((id): id is JobId => id !== undefined),
    { timeoutSeconds: 30 },
  );
  run.log("stopping the coordinator");
  await cluster.terminate(coordinatorId, "training finished");
  await run.drainLogs();
  return summary;
}

/** `count` slices' resources: real TPU slices (one task per host) or small CPU stand-ins (one task each). */
function sliceResources(flags: Flags, count = 1): ResourceConfig {
  return flags.tpu ? ResourceConfig.withTpu(flags.tpu, { sliceCount: count }) : new ResourceConfig({ ...SMALL, replicas: count });
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
    case "expecting":
      return `coordinator expects ${event.sliceId}: steps wait for it to join (at most ${event.timeoutSeconds}s)`;
    case "gave-up":
      return `coordinator gave up on ${event.sliceId} after ${(event.waitedMs / 1000).toFixed(1)}s; steps go on without it (${live})`;
    case "step":
      return `step ${event.step} complete on ${event.slices.length} slice(s)`;
  }
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
      "rejoin-timeout": { type: "string", default: "60" },
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
    rejoinTimeoutSeconds: wholeNumber("--rejoin-timeout", values["rejoin-timeout"], 1),
    maxRestarts: wholeNumber("--max-restarts", values["max-restarts"], 0),
    tpu: values.tpu,
    timeoutSeconds: wholeNumber("--timeout", values.timeout, 1),
    verbose: values.verbose,
  };
}

// A timeout or Ctrl-C stops every job the run launched before exiting.
runMain({ usage: USAGE, parseFlags, main, onInterrupt: "stopping the run's jobs", prefix: "multislice: " });
