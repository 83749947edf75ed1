// Entry point of a controller process started by the CLI or a test: reads its
// options as JSON from argv[2], runs until SIGTERM/SIGINT.
import { startController } from "./server.js";

// startController checks the options and names a bad field.
startController(JSON.parse(process.argv[2] ?? "{}") as unknown as object).then(
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
