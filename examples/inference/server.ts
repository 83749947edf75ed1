// The inference server: what runs inside each server job. It hosts an
// InferenceActor (a toy model) behind an ActorServer and registers it under
// the shared pool name, so clients find every server by that one name.
//
// Importing this module runs nothing: the driver imports it for the types
// and the `serveInference` reference; a worker imports it to run the job.
import { ActorServer, currentCluster, remote } from "fluster";

/** The name every server registers under; clients load-balance over it. */
export const POOL_NAME = "inference_pool";

export interface Completion {
  prompt: string;
  completion: string;
  /** Which server produced it, so the client can see the load spread. */
  server: string;
}

export interface Health {
  server: string;
  status: "healthy";
  batches: number;
  prompts: number;
  uptimeSeconds: number;
  pid: number;
}

/**
 * A model server. A real one would load weights in the constructor and run
 * a forward pass in `generate`; this one "generates" by reversing the
 * prompt's words after a fixed per-batch delay, which is enough to show
 * batching, load balancing and streaming.
 */
export class InferenceActor {
  private batches = 0;
  private prompts = 0;
  private readonly startedAt = Date.now();

  constructor(
    private readonly server: string,
    private readonly batchDelayMs: number,
  ) {}

  /** Completes a batch of prompts. Calls run one at a time (the actor default), like a model on one accelerator. */
  async generate(prompts: string[]): Promise<Completion[]> {
    await new Promise((resolve) => setTimeout(resolve, this.batchDelayMs));
    this.batches += 1;
    this.prompts += prompts.length;
    return prompts.map((prompt) => ({ prompt, completion: prompt.split(/\s+/).reverse().join(" "), server: this.server }));
  }

  health(): Health {
    return {
      server: this.server,
      status: "healthy",
      batches: this.batches,
      prompts: this.prompts,
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      pid: process.pid,
    };
  }
}

/** A server job: host one InferenceActor under POOL_NAME until the job is terminated. */
export const serveInference = remote(import.meta.url, async function serveInference(server: string, batchDelayMs: number) {
  // Inside a job, currentCluster() reaches the job's own cluster and namespace,
  // so the endpoint lands where the driver looks for it.
  const actorServer = new ActorServer(await currentCluster());
  // The job was launched with ports: ["actor"], so the server binds the port
  // the worker allocated (FLUSTER_PORT_ACTOR).
  await actorServer.register(POOL_NAME, new InferenceActor(server, batchDelayMs), { metadata: { server } });
  console.log(`${server} serving ${POOL_NAME} at ${actorServer.address}`);
  // Terminating the job sends SIGTERM: unregister and drain calls in flight before exiting.
  const stop = () => void actorServer.shutdown();
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
  await actorServer.serve();
});
