// Entry point of the process that runs currentCluster()'s own LocalCluster:
// starts it with the options in argv[2], reports its address on fd 3, and
// shuts it down (workers, attempts, temporary directory) when the program
// that started it is gone (its stdin closes, also when that program was
// SIGKILLed) or on SIGTERM/SIGINT.
import { createWriteStream } from "node:fs";
import { LocalCluster } from "./local-cluster.js";
import { localClusterOptionsFromJson, LOCAL_CLUSTER_READY } from "./local-cluster-process.js";

const started = LocalCluster.start(localClusterOptionsFromJson(process.argv[2] ?? "{}"));

let stopping = false;
const stop = (): void => {
  if (stopping) return;
  stopping = true;
  started.then((cluster) => cluster.shutdown()).then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.stdin.on("end", stop);
process.stdin.on("close", stop);
process.stdin.resume();
process.on("SIGTERM", stop);
process.on("SIGINT", stop);

started.then(
  (cluster) => {
    const ready = createWriteStream("", { fd: 3 });
    ready.end(`${LOCAL_CLUSTER_READY} ${JSON.stringify({ url: cluster.address, token: cluster.server.token ?? null, workers: cluster.workers.length })}\n`);
  },
  (err: unknown) => {
    process.stderr.write(`fluster local cluster: cannot start: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
