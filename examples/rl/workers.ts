// The three kinds of job of the RL run, as remote functions: the driver
// launches them by reference and each worker process imports this module.
// Importing it runs nothing; every job finds the shared actors by name.
import { ActorServer, ClusterResolver, currentCluster, remote, type ActorPool } from "fluster";
import { CURRICULUM, CurriculumActor, WEIGHTS, WeightCoordinator } from "./actors.js";

/** How long a job waits for the shared actors or for rewards before giving up. */
const WAIT_SECONDS = 60;

// A toy "environment": the policy is a weights vector, and a task is solved
// well when the weights are close to a hidden target. Harder tasks are less
// forgiving, so rewards drop when the curriculum raises the difficulty.
const TARGET = [1, -2, 0.5, 3];
export const INITIAL_WEIGHTS = [0, 0, 0, 0];

function rolloutReward(weights: readonly number[], difficulty: number): number {
  const distance = Math.hypot(...TARGET.map((t, i) => t - (weights[i] ?? 0)));
  const noise = (Math.random() - 0.5) * 0.1;
  return Math.min(1, Math.max(0, Math.exp((-distance * difficulty) / 2) + noise));
}

/** Stands in for an optimizer step on the batch: move halfway to the target, faster when rewards are poor. */
function trainStep(weights: readonly number[], meanReward: number): number[] {
  const rate = 0.4 + 0.2 * (1 - meanReward);
  return TARGET.map((t, i) => {
    const w = weights[i] ?? 0;
    return Math.round((w + rate * (t - w)) * 1000) / 1000;
  });
}

/** Pools for the two shared actors, once they are registered in this job's namespace. */
async function sharedActors(): Promise<{ curriculum: ActorPool<CurriculumActor>; weights: ActorPool<WeightCoordinator> }> {
  // Inside a job, currentCluster() is the job's own cluster, in the job's namespace:
  // the run's namespace, so lookups see this run's actors and no one else's.
  const resolver = new ClusterResolver(await currentCluster());
  const curriculum = resolver.lookup<CurriculumActor>(CURRICULUM);
  const weights = resolver.lookup<WeightCoordinator>(WEIGHTS);
  await Promise.all([curriculum.waitForSize(1, { timeoutSeconds: WAIT_SECONDS }), weights.waitForSize(1, { timeoutSeconds: WAIT_SECONDS })]);
  return { curriculum, weights };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Coordinator job: hosts both shared actors until the driver stops it. */
export const coordinator = remote(import.meta.url, async function coordinator(initialWeights: number[]) {
  const server = new ActorServer(await currentCluster());
  // The trainer's takeBatch() waits for rewards while rollouts keep reporting,
  // so the curriculum must take more than one call at a time.
  await server.register(CURRICULUM, new CurriculumActor(), { maxConcurrency: 64 });
  await server.register(WEIGHTS, new WeightCoordinator(initialWeights));
  console.log(`serving "${CURRICULUM}" and "${WEIGHTS}" at ${server.address}`);
  await server.serve();
});

/** Training job: `steps` times, take the new rewards, update the weights, publish a version. */
export const trainer = remote(import.meta.url, async function trainer(options: { steps: number; rollouts: number; batchSize: number }) {
  const { curriculum, weights } = await sharedActors();
  // Train only once every rollout worker is producing, as a real trainer waits for its replay buffer to fill.
  const workers = await curriculum.call().waitForWorkers(options.rollouts, WAIT_SECONDS);
  console.log(`${workers.length} rollout worker(s) reporting: ${workers.join(", ")}`);

  let checkpoint = await weights.call().latest();
  for (let step = 1; step <= options.steps; step++) {
    const batch = await curriculum.call().takeBatch(options.batchSize, WAIT_SECONDS);
    const updated = trainStep(checkpoint.weights, batch.meanReward);
    checkpoint = await weights.call().publish(checkpoint.version + 1, updated);
    console.log(
      `step ${step}/${options.steps}: ${batch.count} rewards from ${batch.workers.join(", ")}, ` +
        `mean ${batch.meanReward.toFixed(2)}, difficulty ${batch.difficulty} -> published weights v${checkpoint.version}`,
    );
  }
  return checkpoint.version;
});

/** Rollout job: loop forever — refresh weights, get a task, "generate", report the reward. */
export const rollout = remote(import.meta.url, async function rollout(workerId: string, episodeMs: number) {
  const { curriculum, weights } = await sharedActors();
  let checkpoint = await weights.call().latest();
  console.log(`starting with weights v${checkpoint.version}`);
  for (;;) {
    // Polling each episode is cheap and keeps rollouts at most one episode behind the trainer.
    const latest = await weights.call().latest();
    if (latest.version !== checkpoint.version) {
      checkpoint = latest;
      console.log(`loaded weights v${checkpoint.version}`);
    }
    const task = await curriculum.call().nextTask();
    await sleep(episodeMs); // a real worker samples from the model here
    await curriculum.call().report(workerId, rolloutReward(checkpoint.weights, task.difficulty));
  }
});
