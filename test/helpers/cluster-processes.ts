// A controller and workers as real child processes on a state directory of
// the test's choosing, to SIGKILL and restart: the fault, full-disk and
// backup tests share them. Each child dies with the test process (its stdin).
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { create } from "@bufbuild/protobuf";
import { Entrypoint } from "../../src/core/entrypoint.js";
import { validateJobRequest } from "../../src/core/job.js";
import { jobSpecToProto } from "../../src/rpc/convert.js";
import type { JobSpec } from "../../src/rpc/gen/fluster/cluster/v1/types_pb.js";
import { LaunchJobRequestSchema, type LaunchJobRequest } from "../../src/rpc/gen/fluster/cluster/v1/controller_pb.js";
import { stopProcess, waitForLine } from "./processes.js";

export const CONTROLLER_MAIN = fileURLToPath(new URL("../../src/cluster/controller/main.ts", import.meta.url));
export const WORKER_MAIN = fileURLToPath(new URL("../../src/cluster/worker/main.ts", import.meta.url));

/** A child process started from an entry point, with what it wrote to stderr so far. */
export interface ChildHandle {
  readonly child: ChildProcess;
  stderr(): string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts an entry point (options as JSON in argv[2]) and resolves once it prints its ready line; rejects with its stderr if it exits first. */
export async function startEntryProcess(main: string, options: object, readyLine: RegExp, env: NodeJS.ProcessEnv = {}): Promise<ChildHandle> {
  const child = spawn(process.execPath, ["--import", "tsx", main, JSON.stringify(options)], {
    stdio: ["pipe", "pipe", "pipe"],
    env: { ...process.env, ...env, FLUSTER_PARENT_WATCH: "stdin" },
  });
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    stderr = (stderr + chunk).slice(-64 * 1024);
  });
  try {
    await waitForLine(child, readyLine);
  } catch (err) {
    throw new Error(`${(err as Error).message}; its stderr: ${stderr.trim()}`);
  }
  return { child, stderr: () => stderr, stop: (signal = "SIGTERM") => stopProcess(child, signal) };
}

export function startControllerProcess(options: object, env?: NodeJS.ProcessEnv): Promise<ChildHandle> {
  return startEntryProcess(CONTROLLER_MAIN, options, /^fluster-controller-ready/, env);
}

export function startWorkerProcess(options: object, env?: NodeJS.ProcessEnv): Promise<ChildHandle> {
  return startEntryProcess(WORKER_MAIN, options, /^fluster-worker-ready/, env);
}

/** A small command job's spec, as LaunchJob takes it (no workspace bundle: it runs `argv` as is). */
export function commandJobSpec(name: string, argv: readonly string[], extra: { maxRetriesPreemption?: number } = {}): JobSpec {
  return jobSpecToProto(
    validateJobRequest({ name, resources: { cpu: 0.1, memory: "32m" }, entrypoint: Entrypoint.fromCommand([...argv]), ...extra }),
  );
}

/** A LaunchJob request for `spec` with a request id (a retry with the same id gets the same job). */
export function launchRequest(spec: JobSpec, requestId: string): LaunchJobRequest {
  return create(LaunchJobRequestSchema, { job: spec, requestId, namespace: "" });
}
