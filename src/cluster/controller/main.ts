// Entry point of a controller process started by the CLI or a test: reads its
// options as JSON from argv[2], runs until SIGTERM/SIGINT.
import { startController, type ControllerServerOptions } from "./server.js";

const options = JSON.parse(process.argv[2] ?? "{}") as ControllerServerOptions;
startController(options).then(
  (server) => {
    process.stdout.write(`fluster-controller-ready ${JSON.stringify({ url: server.url })}\n`);
    let stopping = false;
    const stop = () => {
      if (stopping) return;
      stopping = true;
      server.close().then(() => process.exit(0), () => process.exit(1));
    };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
  },
  (err: unknown) => {
    process.stderr.write(`fluster controller: cannot start: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
