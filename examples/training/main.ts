// Training (SPEC §1, workload 1): one long job on accelerators, launched,
// its logs streamed, and waited on.
//
//   node --import tsx examples/training/main.ts                 # a TPU v5litepod-16 slice
//   node --import tsx examples/training/main.ts --gpu H100:8    # 8 H100s
//   node --import tsx examples/training/main.ts --cpu           # CPU workers (runs anywhere)
//
// With FLUSTER_CLUSTER_ADDRESS set it uses that cluster; otherwise it starts
// a LocalCluster of its own, which has no accelerators: there, an accelerator
// job cannot be placed, and the example says so instead of waiting forever.
import { parseArgs } from "node:util";
import { Entrypoint, JobFailedError, ResourceConfig, type Cluster, type JobId } from "fluster";
import { runMain, wholeNumber, type ExampleRun } from "../shared/run.js";
import { train } from "./train.js";

const USAGE = `usage: node --import tsx examples/training/main.ts [flags]

Launches a training job, streams its logs and waits for it.

flags:
  --tpu VARIANT          train on a TPU slice (default: v5litepod-16)
  --gpu VARIANT:COUNT    train on GPUs instead, e.g. H100:8
  --cpu                  train on CPU workers instead (works on any cluster)
  --steps N              training steps (default: 20)
  --step-ms MS           time one step takes (default: 200)
  --name NAME            run name (default: demo)
  --schedule-timeout S   give up when no worker fits within S seconds (default: 10)
  -h, --help             print this help`;

interface Flags {
  resources: ResourceConfig;
  device: string;
  steps: number;
  stepMs: number;
  name: string;
  scheduleTimeout: number;
}

function parseFlags(argv: string[]): Flags | "help" {
  const { values } = parseArgs({
    args: argv,
    options: {
      tpu: { type: "string" },
      gpu: { type: "string" },
      cpu: { type: "boolean", default: false },
      steps: { type: "string", default: "20" },
      "step-ms": { type: "string", default: "200" },
      name: { type: "string", default: "demo" },
      "schedule-timeout": { type: "string", default: "10" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) return "help";
  if ([values.tpu !== undefined, values.gpu !== undefined, values.cpu].filter(Boolean).length > 1) {
    throw new Error("pass at most one of --tpu, --gpu and --cpu");
  }
  let resources: ResourceConfig;
  let device: string;
  if (values.cpu) {
    resources = ResourceConfig.withCpu({ cpu: 1, memory: "512m" });
    device = "CPU";
  } else if (values.gpu !== undefined) {
    const [variant, count = "1"] = values.gpu.split(":");
    resources = ResourceConfig.withGpu(variant || "auto", wholeNumber("--gpu count", count, 1));
    device = `GPU ${variant}×${count}`;
  } else {
    const variant = values.tpu ?? "v5litepod-16";
    resources = ResourceConfig.withTpu(variant);
    device = `TPU ${variant}`;
  }
  return {
    resources,
    device,
    steps: wholeNumber("--steps", values.steps, 1),
    stepMs: wholeNumber("--step-ms", values["step-ms"], 0),
    name: values.name,
    scheduleTimeout: wholeNumber("--schedule-timeout", values["schedule-timeout"], 1),
  };
}

async function main(flags: Flags, run: ExampleRun): Promise<number> {
  // The cluster in FLUSTER_CLUSTER_ADDRESS, else a LocalCluster started for this run.
  const cluster = await run.connect();

  const started = Date.now();
  const jobId = await run.launch({
    name: `train-${flags.name}`,
    resources: flags.resources,
    entrypoint: Entrypoint.fromFunction(train, { steps: flags.steps, stepMs: flags.stepMs, runName: flags.name }),
    environment: { envVars: { RUN_NAME: flags.name } },
    // Machines come and go (preemption); a training job resumes from its
    // checkpoint, so restarting it on another machine is the right answer.
    maxRetriesPreemption: 10,
    // Without this a job no worker fits stays pending forever: an
    // accelerator job on a CPU-only cluster should fail fast and say why.
    schedulingTimeoutSeconds: flags.scheduleTimeout,
  });
  const r = flags.resources;
  const chips = r.chipCount() > 0 ? `, ${r.chipCount()} chips` : "";
  console.log(`launched ${jobId}: train-${flags.name} on ${flags.device} (${r.replicas} task(s)${chips}), ${flags.steps} steps`);

  // monitor() streams the job's output until it finishes. Meanwhile, if no
  // worker has taken the job after a moment, say what the scheduler is waiting for.
  const [info] = await Promise.all([cluster.monitor(jobId), reportPending(cluster, jobId)]);
  if (run.stopping) return 130; // Ctrl-C
  if (info.status === "unschedulable") {
    console.error(`error: no worker fits this job (${flags.device}): ${info.errorMessage ?? info.pendingReason ?? "no reason given"}`);
    console.error("hint: pass --cpu to run the same training on CPU workers");
    return 1;
  }
  try {
    // raiseOnFailure turns every other unhappy ending (failed, killed) into a JobFailedError.
    await cluster.wait(jobId, { raiseOnFailure: true });
  } catch (err) {
    if (!(err instanceof JobFailedError) || run.stopping) throw err;
    console.error(`error: training ${err.job.status}: ${err.job.errorMessage ?? "see the log above"}`);
    return 1;
  }
  console.log(`training ${jobId} succeeded in ${((Date.now() - started) / 1000).toFixed(1)}s (${flags.steps} steps on ${flags.device})`);
  return 0;
}

/** Prints the scheduler's reason once if the job is still waiting for a worker after a second. */
async function reportPending(cluster: Cluster, jobId: JobId): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const info = await cluster.poll(jobId);
  if (info.status === "pending") console.log(`waiting for a worker: ${info.pendingReason ?? "not placed yet"}`);
}

// Ctrl-C terminates the job too: a training job left running holds accelerators for nothing.
runMain({ usage: USAGE, parseFlags, main, onInterrupt: "stopping the training job" });
