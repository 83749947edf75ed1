// Client process of bench/bundle.bench.ts: packs and uploads a workspace to a
// controller with the functions `Cluster.launch` calls (packWorkspace, then
// uploadBundle), timing each step. A fresh process has a cold hash cache, so
// its first pack reads and hashes every file; later packs in it are the
// re-launches a driver makes. Answers one JSON object on the IPC channel.
//   node --import tsx bench/servers/bundle-client.ts <controller url> <workspace> <reps>
import { appendFileSync } from "node:fs";
import { join } from "node:path";
import { Cluster } from "../../src/cluster/client/cluster.js";
import { packWorkspace } from "../../src/cluster/bundle/pack.js";
import { uploadBundle } from "../../src/cluster/bundle/upload.js";
import { Entrypoint } from "../../src/core/entrypoint.js";
import { ControllerService } from "../../src/rpc/gen/fluster/cluster/v1/controller_pb.js";
import { createRpcChannel } from "../../src/rpc/transport.js";

const [url = "", workspace = "", repsArg = "7"] = process.argv.slice(2);
const reps = Number(repsArg);
const channel = createRpcChannel(url);
const client = channel.client(ControllerService);
// As a Cluster keeps it: the blobs this controller had at an earlier upload.
const known = new Set<string>();

export interface BundleStep {
  packMs: number;
  uploadMs: number;
  totalMs: number;
  files: number;
  bytes: number;
}

async function packAndUpload(): Promise<BundleStep> {
  const start = performance.now();
  const packed = await packWorkspace(workspace);
  const packedAt = performance.now();
  await uploadBundle(client, packed, known);
  const end = performance.now();
  return { packMs: packedAt - start, uploadMs: end - packedAt, totalMs: end - start, files: packed.files.length, bytes: packed.totalBytes };
}

// One small call first, so the cold figure does not include opening the HTTP/2 session.
await client.missingBlobs({ sha256: [] });
const cold = await packAndUpload();
const unchanged: BundleStep[] = [];
for (let i = 0; i < reps; i++) unchanged.push(await packAndUpload());
// One file edited between launches: its hash is read again and its one blob travels.
const touched: BundleStep[] = [];
for (let i = 0; i < reps; i++) {
  appendFileSync(join(workspace, "src/m1/p0/f1.ts"), `// edit ${process.pid}-${i}\n`);
  touched.push(await packAndUpload());
}
// Whole launches of an unchanged workspace through the Cluster client (to a controller
// with no workers, so the job stays pending): bundle work plus LaunchJob.
const cluster = Cluster.connect(url);
const launches: number[] = [];
for (let i = 0; i < reps; i++) {
  const start = performance.now();
  await cluster.launch({ name: `bundle-bench-${i}`, resources: { cpu: 0.1, memory: "32m" }, entrypoint: Entrypoint.fromCommand(["node", "-e", "0"]), environment: { workspace } });
  launches.push(performance.now() - start);
}
await cluster.close();
channel.close();
process.send?.({ cold, unchanged, touched, launches }, () => process.exit(0));
