// The jobs of a multi-slice run, as remote functions: the coordinator job
// hosting the SliceCoordinator, and the slice job (one per TPU slice in a
// real run; a small CPU job here). Importing this module runs nothing.
import { ActorServer, ClusterResolver, currentCluster, remote } from "fluster";
import { SLICE_COORDINATOR, SliceCoordinator, type SliceCoordinatorOptions } from "./coordinator.js";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Coordinator job: hosts the SliceCoordinator until the driver stops it. */
export const hostCoordinator = remote(import.meta.url, async function hostCoordinator(options: SliceCoordinatorOptions) {
  const server = new ActorServer(await currentCluster());
  // Barriers and the driver's event long-poll wait inside the actor, so it takes many calls at once.
  await server.register(SLICE_COORDINATOR, new SliceCoordinator(options), { maxConcurrency: 256 });
  console.log(`serving "${SLICE_COORDINATOR}" at ${server.address} (min ${options.minSlices} live slice(s), heartbeat timeout ${options.heartbeatTimeoutMs}ms)`);
  await server.serve();
});

export interface SliceOptions {
  /** The run's last step: the slice exits after it. */
  steps: number;
  /** How long one training step takes. */
  stepMs: number;
  /** How often to heartbeat in the background (well under the coordinator's timeout). */
  heartbeatMs: number;
}

/**
 * Slice job: register, then train step after step — heartbeat, barrier —
 * until the run's last step. Resolves to the last step it finished.
 */
export const slice = remote(import.meta.url, async function slice(sliceId: string, options: SliceOptions) {
  // On a multi-host TPU slice every host runs this job; host 0 speaks for the
  // slice, the others follow it through the accelerator's collectives.
  const host = Number(process.env.FLUSTER_TASK_INDEX ?? 0);
  if (host !== 0) {
    console.log(`${sliceId} host ${host}: follows host 0`);
    return 0;
  }

  const pool = new ClusterResolver(await currentCluster()).lookup<SliceCoordinator>(SLICE_COORDINATOR);
  await pool.waitForSize(1, { timeoutSeconds: 60 });
  const coordinator = pool.call();
  const { startStep, peers } = await coordinator.register(sliceId);
  console.log(`registered; starting at step ${startStep}${peers.length ? ` with ${peers.join(", ")}` : ""}`);

  let finished = startStep - 1;
  // Heartbeats between steps would not do: a slice waiting in a barrier for a
  // slow peer must not look dead. So they also run in the background.
  const beat = setInterval(() => {
    coordinator.heartbeat(sliceId, finished).catch((err: unknown) => {
      console.error(`heartbeat failed: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    });
  }, options.heartbeatMs);
  try {
    for (let step = startStep; step <= options.steps; step++) {
      await sleep(options.stepMs); // the slice's share of the step; JAX collectives in a real run
      finished = step;
      await coordinator.heartbeat(sliceId, step);
      const { slices } = await coordinator.barrier(step);
      console.log(`step ${step} done with ${slices.length} slice(s): ${slices.join(", ")}`);
    }
  } finally {
    clearInterval(beat);
  }
  return finished;
});
