// The training program: what runs inside the training job. A toy stand-in for
// a real trainer (JAX, PyTorch, ...): it "trains" for a number of steps,
// printing the loss as it goes, and ends by saving a checkpoint.
//
// It is a remote function, so the driver launches it by reference
// (Entrypoint.fromFunction) and the worker imports this module to call it.
// Importing the module runs nothing; `node --import tsx examples/training/train.ts`
// runs one training locally, without a cluster, which is handy when debugging.
import { isMain, remote } from "fluster";

export interface TrainOptions {
  /** Optimiser steps to run. */
  steps: number;
  /** Time one step takes (the sleep that stands in for real work), in ms. */
  stepMs: number;
  /** Run name, as an experiment tracker would know it. */
  runName: string;
}

/** What a finished training returns (the job's result). */
export interface TrainResult {
  steps: number;
  finalLoss: number;
}

export const train = remote(import.meta.url, async function train(options: TrainOptions): Promise<TrainResult> {
  // A multi-host job (a TPU slice has one task per host) runs this once per
  // host; each task knows its place from the environment the worker sets.
  const task = Number(process.env.FLUSTER_TASK_INDEX ?? 0);
  const tasks = Number(process.env.FLUSTER_NUM_TASKS ?? 1);
  const worker = process.env.FLUSTER_WORKER_ID ?? "this machine";
  console.log(`run ${options.runName}: task ${task + 1}/${tasks} on ${worker}, ${options.steps} steps`);

  let loss = 0;
  for (let step = 1; step <= options.steps; step++) {
    await new Promise((resolve) => setTimeout(resolve, options.stepMs));
    loss = lossAt(step, options.steps);
    console.log(`step ${step}/${options.steps} loss=${loss.toFixed(4)}`);
  }

  // Only the first host writes the checkpoint, as in real multi-host training.
  if (task === 0) console.log(`checkpoint saved: ${options.runName}/step-${options.steps} (loss=${loss.toFixed(4)})`);
  return { steps: options.steps, finalLoss: loss };
});

/** A plausible, deterministic loss curve: fast decay towards a floor, with a little wobble. */
function lossAt(step: number, steps: number): number {
  const progress = step / Math.max(1, steps);
  return 0.35 + 2.2 * Math.exp(-4 * progress) + 0.03 * Math.sin(step * 1.7);
}

if (isMain(import.meta)) {
  const steps = Number(process.argv[2] ?? 5);
  await train({ steps, stepMs: 100, runName: "local-debug" });
}
