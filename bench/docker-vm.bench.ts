// Docker VM start: from the docker platform's `allocate` to the first task
// running on that VM (a command job waiting for it, placed there by a label
// constraint), beside `docker run --rm` of the same image running `node -e 0`
// (a container that runs a trivial node program) and running the fluster CLI
// (`fluster --version`: what loading fluster in a container costs at least),
// in the same run, in turns. Each VM round also splits its time: `docker run
// -d` returned, the worker registered, the task running.
//   node --import tsx bench/docker-vm.bench.ts [--rounds 7] [--reconcile 1]
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Cluster } from "../src/cluster/client/cluster.js";
import { startController } from "../src/cluster/controller/server.js";
import { ensureWorkerImage, IMAGE_PACKAGE_DIR } from "../src/cluster/platform/docker/image.js";
import { DockerPlatform } from "../src/cluster/platform/docker/platform.js";
import { VM_LABEL, workerLabels } from "../src/cluster/platform/types.js";
import { Entrypoint } from "../src/core/entrypoint.js";
import { silentLogger } from "../src/core/logger.js";
import { dockerGroup, removeClusterContainers, requireDocker, testClusterName } from "../test/helpers/docker.js";
import { machine, printTable, summarize } from "./stats.js";

const { values } = parseArgs({ options: { rounds: { type: "string", default: "7" }, reconcile: { type: "string", default: "1" } } });
const rounds = Number(values.rounds);
const reconcileIntervalSeconds = Number(values.reconcile);

requireDocker();
console.log(`machine: ${machine()}, load average ${loadavg().map((l) => l.toFixed(2)).join(" ")} at the start; controller reconcile interval ${reconcileIntervalSeconds} s`);
const image = await ensureWorkerImage();
const clusterName = testClusterName("fluster-vmbench");
const workspace = mkdtempSync(join(tmpdir(), "fluster-vm-bench-"));
writeFileSync(join(workspace, "package.json"), `${JSON.stringify({ name: "vm-bench", private: true, type: "module" })}\n`);
const controller = await startController({ stateDir: ":memory:", reconcileIntervalSeconds, logger: silentLogger() });
const cluster = Cluster.connect(controller.url);
const platform = new DockerPlatform({ clusterName, image, stopGraceSeconds: 2 });
const group = dockerGroup("bench", {}, { cpu: 1, memory: 512 * 1024 ** 2 });

/** Wall time of `docker run --rm` of the worker image running `command`, with the platform's flags. */
function dockerRun(command: readonly string[]): Promise<number> {
  const start = performance.now();
  return new Promise((resolve, reject) => {
    execFile("docker", ["run", "--rm", "--init", "--network", "host", "--pull", "never", image, ...command], (err) => (err ? reject(err) : resolve(performance.now() - start)));
  });
}

/** One VM: allocate → registered → its first task running. */
async function vmRound(round: number): Promise<{ allocated: number; registered: number; running: number }> {
  const vmId = `bench-${round}`;
  // Waiting before the VM exists, as the demand that would make an autoscaler allocate it.
  const jobId = await cluster.launch({
    name: `first-task-${round}`,
    resources: { cpu: 0.1, memory: "64m" },
    entrypoint: Entrypoint.fromCommand(["sleep", "60"]),
    environment: { workspace },
    constraints: [{ key: VM_LABEL, op: "eq", value: vmId }],
  });
  const start = performance.now();
  await platform.allocate({ vmId, group, worker: { controllerUrl: controller.url, labels: workerLabels(vmId, group) } });
  const allocated = performance.now() - start;
  let registered = 0;
  for (;;) {
    const [workers, job] = await Promise.all([registered ? undefined : cluster.listWorkers(), cluster.poll(jobId)]);
    const now = performance.now() - start;
    if (!registered && workers?.some((w) => w.workerId === vmId)) registered = now;
    if (job.status === "running") {
      registered ||= now;
      await cluster.terminate(jobId);
      await platform.release(vmId);
      return { allocated, registered, running: now };
    }
    if (now > 60_000) throw new Error(`the first task on ${vmId} was not running after 60 s: ${job.pendingReason ?? job.status}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const nodeRun: number[] = [];
const flusterRun: number[] = [];
const vm = { allocated: [] as number[], registered: [] as number[], running: [] as number[] };
try {
  // Warm-up, not counted: the image's layers in the page cache, the controller's first jobs.
  await dockerRun(["node", "-e", "0"]);
  await vmRound(-1);
  for (let round = 0; round < rounds; round++) {
    nodeRun.push(await dockerRun(["node", "-e", "0"]));
    flusterRun.push(await dockerRun(["node", `${IMAGE_PACKAGE_DIR}/bin/fluster.js`, "--version"]));
    const r = await vmRound(round);
    vm.allocated.push(r.allocated);
    vm.registered.push(r.registered);
    vm.running.push(r.running);
  }
} finally {
  removeClusterContainers(clusterName);
  await cluster.close();
  await controller.shutdown();
  rmSync(workspace, { recursive: true, force: true });
}

const median = (samples: number[]) => summarize(samples).median;
const ms = (value: number) => value.toFixed(0);
printTable([
  { what: "docker run --rm <image> node -e 0", "median ms": ms(median(nodeRun)), "min ms": ms(Math.min(...nodeRun)), "max ms": ms(Math.max(...nodeRun)) },
  { what: "docker run --rm <image> fluster --version", "median ms": ms(median(flusterRun)), "min ms": ms(Math.min(...flusterRun)), "max ms": ms(Math.max(...flusterRun)) },
  { what: "VM: allocate returned (docker run -d)", "median ms": ms(median(vm.allocated)), "min ms": ms(Math.min(...vm.allocated)), "max ms": ms(Math.max(...vm.allocated)) },
  { what: "VM: worker registered", "median ms": ms(median(vm.registered)), "min ms": ms(Math.min(...vm.registered)), "max ms": ms(Math.max(...vm.registered)) },
  { what: "VM: first task running", "median ms": ms(median(vm.running)), "min ms": ms(Math.min(...vm.running)), "max ms": ms(Math.max(...vm.running)) },
]);
const ratio = median(vm.running) / median(nodeRun);
console.log(`allocate → first task running / docker run node -e 0: ${ratio.toFixed(2)}x (target ≤ 1.5: ${ratio <= 1.5 ? "met" : "missed"})`);
console.log(`allocate → first task running / docker run fluster --version: ${(median(vm.running) / median(flusterRun)).toFixed(2)}x`);
