// RL on Fluster (SPEC §1, workload 4): a coordinator job hosts the shared
// CurriculumActor and WeightCoordinator, a training job publishes new weights
// for --steps steps, and --rollouts rollout jobs keep generating rewards with
// the latest weights. Every job finds the shared actors by name.
//
//   node --import tsx examples/rl/main.ts --steps 3 --rollouts 2
import { parseArgs } from "node:util";
import {
  Cluster,
  ClusterResolver,
  Entrypoint,
  LocalCluster,
  currentCluster,
  isFinished,
  type FunctionEntrypoint,
  type JobId,
  type JobInfo,
} from "fluster";
import { CURRICULUM, WEIGHTS, type Checkpoint, type CurriculumActor, type CurriculumStats, type WeightCoordinator } from "./actors.js";
import { INITIAL_WEIGHTS, coordinator, rollout, trainer } from "./workers.js";

const USAGE = `Usage: node --import tsx examples/rl/main.ts [options]

Runs a small reinforcement-learning loop as Fluster jobs: a coordinator job
hosting the shared "${CURRICULUM}" and "${WEIGHTS}" actors, one training
job and N rollout jobs. Uses the cluster at FLUSTER_CLUSTER_ADDRESS, else
starts a local one for the run.

Options:
  --steps K         training steps, i.e. weight versions to publish (default 5)
  --rollouts N      rollout worker jobs (default 2)
  --batch B         rewards the trainer consumes per step (default 2 per rollout worker)
  --episode-ms MS   how long one rollout episode takes (default 100)
  --timeout S       give up when the run takes longer than S seconds (default 120)
  -h, --help        print this help`;

interface Flags {
  steps: number;
  rollouts: number;
  batch: number;
  episodeMs: number;
  timeoutSeconds: number;
}

/** What the run reports at the end. */
interface Summary {
  steps: number;
  checkpoint: Checkpoint;
  curriculum: CurriculumStats;
}

// Small jobs, so the whole run fits on a 2-core laptop. A real run would ask
// for accelerators, e.g. ResourceConfig.withTpu("v5litepod-16") for the trainer.
const SMALL = { cpu: 0.2, memory: "128m" } as const;

const log = (line: string) => console.log(`rl: ${line}`);

async function main(): Promise<number> {
  let flags: Flags | "help";
  try {
    flags = parseFlags(process.argv.slice(2));
  } catch (err) {
    console.error(`rl: ${errorMessage(err)} (see --help)`);
    return 2;
  }
  if (flags === "help") {
    console.log(USAGE);
    return 0;
  }

  const started = Date.now();
  // A namespace of its own: two runs on one cluster never see each other's actors.
  const namespace = Cluster.freshNamespace("rl");
  const external = process.env.FLUSTER_CLUSTER_ADDRESS;
  log(external ? `using the cluster at ${external}` : "starting a local cluster with 2 workers");
  const cluster = await currentCluster({ namespace, workers: 2 });
  log(`cluster ${cluster.address}, namespace ${namespace}`);

  const jobs = new RunJobs(cluster);
  const stop = stopSignals(flags.timeoutSeconds);
  let summary: Summary | undefined;
  let failure: unknown;
  try {
    summary = await Promise.race([runRl(cluster, jobs, flags), stop.promise]);
  } catch (err) {
    failure = err;
  } finally {
    stop.dispose();
    // Always clean up: on success the jobs are already stopped, this is for errors and Ctrl-C.
    await jobs.stopAll();
    await (cluster instanceof LocalCluster ? cluster.shutdown() : cluster.close());
  }

  if (!summary) {
    console.error(`rl: error: ${errorMessage(failure)}`);
    return failure instanceof Interrupted ? 130 : 1;
  }
  const { checkpoint, curriculum } = summary;
  const perWorker = Object.entries(curriculum.rewardsByWorker).map(([worker, n]) => `${worker}: ${n}`);
  console.log("");
  console.log("== RL run summary ==");
  console.log(`training steps     ${summary.steps}`);
  console.log(`weights version    ${checkpoint.version} [${checkpoint.weights.join(", ")}]`);
  console.log(`final difficulty   ${curriculum.difficulty}`);
  console.log(`rewards reported   ${perWorker.join(", ")} (${curriculum.reports} total, mean ${curriculum.meanReward.toFixed(2)})`);
  console.log(`elapsed            ${((Date.now() - started) / 1000).toFixed(1)}s`);
  return 0;
}

/** Launches the run's jobs, waits for the trainer, then stops the rest and collects the stats. */
async function runRl(cluster: Cluster, jobs: RunJobs, flags: Flags): Promise<Summary> {
  // One job group in the design; launchGroup() is not implemented yet, so one by one.
  // Order does not matter: every job waits for the shared actors by name.
  const coordinatorId = await jobs.launch("coordinator", Entrypoint.fromFunction(coordinator, INITIAL_WEIGHTS), ["actor"]);
  const trainerId = await jobs.launch(
    "trainer",
    Entrypoint.fromFunction(trainer, { steps: flags.steps, rollouts: flags.rollouts, batchSize: flags.batch }),
  );
  const rolloutIds: JobId[] = [];
  for (let i = 0; i < flags.rollouts; i++) {
    rolloutIds.push(await jobs.launch(`rollout-${i}`, Entrypoint.fromFunction(rollout, `rollout-${i}`, flags.episodeMs)));
  }
  log(`launched ${jobs.size} jobs: ${jobs.describe()}`);

  // The trainer decides when the run is over. The other jobs serve or loop
  // until stopped, so any of them ending first is a failure.
  const trained = await Promise.race([
    cluster.wait(trainerId),
    ...[coordinatorId, ...rolloutIds].map(async (id) => {
      throw new Error(`${jobs.describeEnd(await cluster.wait(id))} before training finished`);
    }),
  ]);
  if (trained.status !== "succeeded") throw new Error(jobs.describeEnd(trained));
  log(`trainer finished ${flags.steps} step(s); stopping ${rolloutIds.length} rollout worker(s)`);
  await Promise.all(rolloutIds.map((id) => cluster.terminate(id, "training finished")));

  // The driver is a client of the same namespace, so it reads the final state from the actors directly.
  const resolver = new ClusterResolver(cluster);
  const curriculum = await resolver.lookup<CurriculumActor>(CURRICULUM).call().stats();
  const checkpoint = await resolver.lookup<WeightCoordinator>(WEIGHTS).call().latest();
  log("stopping the coordinator");
  await cluster.terminate(coordinatorId, "training finished");
  await jobs.drainLogs();
  return { steps: flags.steps, checkpoint, curriculum };
}

/** The jobs this run launched, with their roles, logs streamed to stdout as `[role] line`. */
class RunJobs {
  private readonly roles = new Map<JobId, string>();
  private readonly logPumps: Promise<void>[] = [];
  /** Set when cleanup begins: no more launches. */
  stopping = false;

  constructor(private readonly cluster: Cluster) {}

  get size(): number {
    return this.roles.size;
  }

  async launch(role: string, entrypoint: FunctionEntrypoint, ports: string[] = []): Promise<JobId> {
    if (this.stopping) throw new Error(`not launching ${role}: the run is stopping`);
    const jobId = await this.cluster.launch({ name: `rl/${role}`, resources: SMALL, entrypoint, ports });
    this.roles.set(jobId, role);
    // Cleanup may have begun while this launch was in flight: the new job must not outlive the run.
    if (this.stopping) {
      await this.cluster.terminate(jobId, "driver stopped");
      throw new Error(`${role} launched while the run was stopping`);
    }
    this.logPumps.push(pumpLogs(this.cluster, jobId, role));
    return jobId;
  }

  describe(): string {
    return [...this.roles].map(([id, role]) => `${role} (${id})`).join(", ");
  }

  describeEnd(info: JobInfo): string {
    const role = this.roles.get(info.jobId) ?? info.name;
    return `${role} job ${info.jobId} ended ${info.status}${info.errorMessage ? `: ${info.errorMessage}` : ""}`;
  }

  /** Waits (briefly) for the last log lines of stopped jobs, so they print before the summary. */
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
        const info = await this.cluster.poll(id);
        if (!isFinished(info.status)) await this.cluster.terminate(id, "driver stopped");
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

/** A promise that rejects on Ctrl-C, SIGTERM or the run's timeout, so the driver can clean up. */
function stopSignals(timeoutSeconds: number): { promise: Promise<never>; dispose(): void } {
  let reject!: (err: Error) => void;
  const promise = new Promise<never>((_, r) => (reject = r));
  promise.catch(() => undefined); // handled by whoever races it
  const onSignal = (signal: NodeJS.Signals) => reject(new Interrupted(`interrupted by ${signal}; stopped the run's jobs`));
  const timer = setTimeout(() => reject(new Error(`the run did not finish within ${timeoutSeconds}s`)), timeoutSeconds * 1000);
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
      steps: { type: "string", default: "5" },
      rollouts: { type: "string", default: "2" },
      batch: { type: "string" },
      "episode-ms": { type: "string", default: "100" },
      timeout: { type: "string", default: "120" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) return "help";
  const rollouts = positiveInt("--rollouts", values.rollouts);
  return {
    steps: positiveInt("--steps", values.steps),
    rollouts,
    batch: values.batch === undefined ? 2 * rollouts : positiveInt("--batch", values.batch),
    episodeMs: positiveInt("--episode-ms", values["episode-ms"]),
    timeoutSeconds: positiveInt("--timeout", values.timeout),
  };
}

function positiveInt(flag: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} must be a whole number ≥ 1, got ${JSON.stringify(value)}`);
  return n;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

// Exit explicitly: the cluster is shut down by now, and nothing else should keep the process alive.
main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`rl: error: ${errorMessage(err)}`);
    process.exit(1);
  },
);
