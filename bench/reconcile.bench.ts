// Reconcile tick with 5,000 running tasks over 100 workers. The workers are
// simulated in this process but sit behind the real RPC stack (one h2c
// WorkerService server each), so a tick pays for real encoding and sockets.
//   node --import tsx bench/reconcile.bench.ts [--tasks 5000] [--workers 100]
import { create } from "@bufbuild/protobuf";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { startController } from "../src/cluster/controller/server.js";
import { Entrypoint } from "../src/core/entrypoint.js";
import { createLogger } from "../src/core/logger.js";
import { validateJobRequest } from "../src/core/job.js";
import { ResourceConfig } from "../src/core/resources.js";
import { jobSpecToProto, taskStateToProto } from "../src/rpc/convert.js";
import { AttemptSchema } from "../src/rpc/gen/fluster/cluster/v1/types_pb.js";
import { WorkerService } from "../src/rpc/gen/fluster/worker/v1/worker_pb.js";
import { startRpcServer, type RpcServer } from "../src/rpc/transport.js";
import { machine, printTable, summarize } from "./stats.js";

const { values } = parseArgs({ options: { tasks: { type: "string", default: "5000" }, workers: { type: "string", default: "100" } } });
const taskCount = Number(values.tasks);
const workerCount = Number(values.workers);

/** A worker that runs nothing but answers like one running everything it was given. */
async function simulatedWorker(): Promise<{ server: RpcServer; attempts: Set<string> }> {
  const attempts = new Set<string>();
  const running = taskStateToProto("running");
  const server = await startRpcServer({
    routes: (router) =>
      router.service(WorkerService, {
        runTask(req) {
          attempts.add(req.task?.attemptId ?? "");
          return { attempt: create(AttemptSchema, { attemptId: req.task?.attemptId ?? "", state: running }) };
        },
        reconcile(req) {
          const observed = [];
          const missing = [];
          for (const [i, attemptId] of req.attemptIds.entries()) {
            if (!attempts.has(attemptId)) missing.push(attemptId);
            else if (req.knownStates[i] !== running) observed.push(create(AttemptSchema, { attemptId, state: running }));
          }
          return { observed, missing };
        },
      }),
  });
  return { server, attempts };
}

console.log(`machine: ${machine()}`);
const stateDir = mkdtempSync(join(tmpdir(), "fluster-bench-"));
// Warnings only: 5,000 attempts starting would be 5,000 info lines in the measurement.
const controllerServer = await startController({ stateDir, reconcileIntervalSeconds: 3_600, logger: createLogger({ component: "controller", level: "warn" }) });
const controller = controllerServer.controller;
const workers = await Promise.all(Array.from({ length: workerCount }, () => simulatedWorker()));
try {
  workers.forEach((w, i) =>
    controller.registerWorker({
      workerId: `sim-${i}`,
      address: w.server.url,
      capacity: { cpu: 1000, memory: 1e12, disk: 1e12, deviceType: "cpu", deviceVariant: "", deviceCount: 0 },
      attributes: {},
    }),
  );
  const spec = jobSpecToProto(validateJobRequest({ name: "sim", resources: ResourceConfig.withCpu({ cpu: 0.01, memory: "1m" }), entrypoint: Entrypoint.fromCommand(["true"]) }));
  const dispatchStart = performance.now();
  await Promise.all(Array.from({ length: taskCount }, () => controller.launchJob(spec)));
  // Scheduling and dispatch are event-driven; wait until every worker has its share.
  while (workers.reduce((n, w) => n + w.attempts.size, 0) < taskCount) await new Promise((r) => setTimeout(r, 5));
  const dispatchMs = performance.now() - dispatchStart;
  await controller.reconcileAll();
  const running = controller.listJobs({ states: ["running"], limit: taskCount + 1 }).length;
  const ticks: number[] = [];
  for (let i = 0; i < Number(process.env.TICKS ?? 20); i++) {
    const start = performance.now();
    await controller.reconcileAll();
    ticks.push(performance.now() - start);
  }
  const t = summarize(ticks);
  printTable([
    { measure: `launch + place + dispatch ${taskCount} tasks`, ms: dispatchMs },
    { measure: "steady reconcile tick (median)", ms: t.median },
    { measure: "steady reconcile tick (p99)", ms: t.p99 },
  ]);
  console.log(`\n${running} jobs running on ${workerCount} workers; target: steady tick ≤ 100 ms → ${t.median <= 100 ? "met" : "NOT met"}`);
} finally {
  await controllerServer.shutdown();
  await Promise.all(workers.map((w) => w.server.shutdown()));
  rmSync(stateDir, { recursive: true, force: true });
}
