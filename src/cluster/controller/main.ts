// Entry point of a controller process started by the CLI or a test: reads its
// options as JSON from argv[2] (ControllerServerOptions, plus `logLevel` and
// `logFormat` for its logger on stderr), runs until SIGTERM/SIGINT.
import { loggerFromSettings, type LogSettings } from "../../core/logger.js";
import { startController, type ControllerServerOptions } from "./server.js";

const starting = (async () => {
  const { logLevel, logFormat, ...options } = JSON.parse(process.argv[2] ?? "{}") as Omit<ControllerServerOptions, "logger"> & LogSettings;
  // startController checks the options and names a bad field.
  return startController({ ...options, logger: loggerFromSettings("controller", { logLevel, logFormat }) });
})();
starting.then(
  (server) => {
    process.stdout.write(`fluster-controller-ready ${JSON.stringify({ url: server.url })}\n`);
    let stopping = false;
    const stop = () => {
      if (stopping) return;
      stopping = true;
      server.shutdown().then(() => process.exit(0), () => process.exit(1));
    };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
  },
  (err: unknown) => {
    process.stderr.write(`fluster controller: cannot start: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
