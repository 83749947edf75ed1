// RL on Fluster (SPEC §1, workload 4): a coordinator job hosts the shared
// CurriculumActor and WeightCoordinator, a training job publishes new weights
// for --steps steps, and --rollouts rollout jobs keep generating rewards with
// the latest weights. Every job finds the shared actors by name.
//
//   node --import tsx examples/rl/main.ts --steps 3 --rollouts 2
import { parseArgs } from "node:util";
import { Cluster, ClusterResolver, Entrypoint, type FunctionEntrypoint, type JobId } from "fluster";
import { runMain, wholeNumber, type ExampleRun } from "../shared/run.js";
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

async function main(flags: Flags, run: ExampleRun): Promise<number> {
  const started = Date.now();
  // A namespace of its own: two runs on one cluster never see each other's actors.
  const cluster = await run.connect({ namespace: Cluster.freshNamespace("rl"), workers: 2 });
  const summary = await run.within(flags.timeoutSeconds, runRl(cluster, run, flags));
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
async function runRl(cluster: Cluster, run: ExampleRun, flags: Flags): Promise<Summary> {
  // Every job's output is streamed as `  [role] line`.
  const job = (role: string, entrypoint: FunctionEntrypoint, ports: string[] = []) => ({
    request: { name: `rl/${role}`, resources: SMALL, entrypoint, ports },
    role,
    followLogs: true,
  });
  // One job group: the coordinator, the trainer and the rollouts are placed
  // all together (in one region) or not at all, so a run never starts half
  // its jobs and waits for the rest. Order does not matter: every job waits
  // for the shared actors by name.
  const [coordinatorId, trainerId, ...rolloutIds] = (await run.launchGroup(
    [
      job("coordinator", Entrypoint.fromFunction(coordinator, INITIAL_WEIGHTS), ["actor"]),
      job("trainer", Entrypoint.fromFunction(trainer, { steps: flags.steps, rollouts: flags.rollouts, batchSize: flags.batch })),
      ...Array.from({ length: flags.rollouts }, (_, i) => job(`rollout-${i}`, Entrypoint.fromFunction(rollout, `rollout-${i}`, flags.episodeMs))),
    ],
    { name: "rl", sameRegion: true },
  )) as [JobId, JobId, ...JobId[]];
  run.log(`launched ${run.jobIds.length} jobs as one group: ${run.describeJobs()}`);

  // The trainer decides when the run is over. The other jobs serve or loop
  // until stopped, so any of them ending first is a failure.
  const trained = await Promise.race([
    cluster.wait(trainerId),
    ...[coordinatorId, ...rolloutIds].map(async (id) => {
      throw new Error(`${run.describeEnd(await cluster.wait(id))} before training finished`);
    }),
  ]);
  if (trained.status !== "succeeded") throw new Error(run.describeEnd(trained));
  run.log(`trainer finished ${flags.steps} step(s); stopping ${rolloutIds.length} rollout worker(s)`);
  await Promise.all(rolloutIds.map((id) => cluster.terminate(id, "training finished")));

  // The driver is a client of the same namespace, so it reads the final state from the actors directly.
  const resolver = new ClusterResolver(cluster);
  const curriculum = await resolver.lookup<CurriculumActor>(CURRICULUM).call().stats();
  const checkpoint = await resolver.lookup<WeightCoordinator>(WEIGHTS).call().latest();
  run.log("stopping the coordinator");
  await cluster.terminate(coordinatorId, "training finished");
  await run.drainLogs();
  return { steps: flags.steps, checkpoint, curriculum };
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
  const rollouts = wholeNumber("--rollouts", values.rollouts, 1);
  return {
    steps: wholeNumber("--steps", values.steps, 1),
    rollouts,
    batch: values.batch === undefined ? 2 * rollouts : wholeNumber("--batch", values.batch, 1),
    episodeMs: wholeNumber("--episode-ms", values["episode-ms"], 1),
    timeoutSeconds: wholeNumber("--timeout", values.timeout, 1),
  };
}

// A timeout or Ctrl-C stops every job the run launched before exiting.
runMain({ usage: USAGE, parseFlags, main, onInterrupt: "stopping the run's jobs", prefix: "rl: " });
