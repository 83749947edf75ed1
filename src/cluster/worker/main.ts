// Entry point of a worker daemon process started by LocalCluster or a
// platform: reads its options as JSON from argv[2] (WorkerDaemonOptions, plus
// `logLevel` and `logFormat` for its logger on stderr), runs until SIGTERM/SIGINT.
import { loggerFromSettings, type LogSettings } from "../../core/logger.js";
import { WorkerDaemon, type WorkerDaemonOptions } from "./daemon.js";

let daemon: WorkerDaemon;
try {
  const { logLevel, logFormat, ...options } = JSON.parse(process.argv[2] ?? "{}") as Omit<WorkerDaemonOptions, "logger"> & LogSettings;
  // The constructor checks the options and names a bad field.
  daemon = new WorkerDaemon({ ...options, logger: loggerFromSettings("worker", { logLevel, logFormat }) });
} catch (err) {
  process.stderr.write(`fluster worker: cannot start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
let stopping = false;
const stop = (signal: string) => {
  if (stopping) return;
  stopping = true;
  daemon.shutdown().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`fluster worker: error while stopping on ${signal}: ${String(err)}\n`);
      process.exit(1);
    },
  );
};
process.on("SIGTERM", () => stop("SIGTERM"));
process.on("SIGINT", () => stop("SIGINT"));
// Started by a LocalCluster: die with it, even if it was SIGKILLed.
if (process.env.FLUSTER_PARENT_WATCH === "stdin") {
  process.stdin.on("close", () => stop("parent exit"));
  process.stdin.on("end", () => stop("parent exit"));
  process.stdin.resume();
}
// LocalCluster watches for this line to know the worker is registered.
daemon.start().then(
  () => process.stdout.write(`fluster-worker-ready ${JSON.stringify({ workerId: daemon.workerId, address: daemon.address })}\n`),
  (err: unknown) => {
    process.stderr.write(`fluster worker: cannot start: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
