// Prometheus metrics at /metrics on a real LocalCluster with a token: the
// controller in this process and a worker daemon as a child process, jobs as
// real processes, scraped over HTTP as Prometheus would.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Entrypoint } from "../../src/core/entrypoint.js";
import type { JobRequest } from "../../src/core/job.js";
import { REPO_ROOT, eventually, flusterErrorOf } from "../helpers/index.js";
import { collectLogs, useLocalCluster } from "../helpers/local-cluster.js";
import { family, sampleValue, scrapeMetrics, series, type Scrape } from "../helpers/prometheus.js";

const TOKEN = "metrics-test-token";
const CONTROLLER_SERVICE = "fluster.cluster.v1.ControllerService";
const small = { cpu: 0.1, memory: "64m" } as const;
const command = (name: string, argv: string[]): JobRequest => ({ name, resources: small, entrypoint: Entrypoint.fromCommand(argv) });

/** Every fluster_* family has a HELP line with text and a TYPE, in the text and as parsed, and a row in docs/metrics.md. */
function assertDescribed(scrape: Scrape, prefix: string): void {
  const names = new Set(scrape.families.map((f) => f.name).filter((n) => n.startsWith("fluster_")));
  assert.ok([...names].some((n) => n.startsWith(prefix)), `no ${prefix}* family in the scrape`);
  const docs = readFileSync(join(REPO_ROOT, "docs", "metrics.md"), "utf8");
  for (const name of names) {
    assert.ok(docs.includes(`| \`${name}\` |`), `docs/metrics.md does not document ${name}`);
    const f = family(scrape, name);
    assert.ok(f.help.trim().length > 0, `${name} has no HELP text`);
    assert.notEqual(f.type, "UNTYPED", `${name} has no TYPE`);
    assert.match(scrape.text, new RegExp(`^# HELP ${name} \\S`, "m"));
    assert.match(scrape.text, new RegExp(`^# TYPE ${name} (counter|gauge|histogram)$`, "m"));
  }
  // The process's default metrics keep their standard names.
  assert.ok(scrape.families.some((f) => f.name === "process_cpu_user_seconds_total"));
  assert.ok(scrape.families.some((f) => f.name === "nodejs_heap_size_used_bytes"));
}

describe("Prometheus metrics", { timeout: 120_000 }, () => {
  const local = useLocalCluster({ workers: 1, workerCpu: 2, token: TOKEN });
  const controllerUrl = () => local.cluster.server.url;
  const workerUrl = () => {
    const [worker] = local.cluster.workers;
    assert.ok(worker, "the cluster's worker is running");
    return worker.address;
  };

  test("/metrics needs the bearer token on the controller and on a worker", async () => {
    for (const url of [controllerUrl(), workerUrl()]) {
      const missing = await fetch(`${url}/metrics`);
      assert.equal(missing.status, 401, await missing.text());
      assert.equal(missing.headers.get("www-authenticate"), "Bearer");
      const wrong = await fetch(`${url}/metrics`, { headers: { authorization: "Bearer not-the-token" } });
      assert.equal(wrong.status, 401, await wrong.text());
      const right = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
      assert.equal(right.status, 200, await right.text());
    }
  });

  test("both scrapes parse, and every fluster_* family is described", async () => {
    assertDescribed(await scrapeMetrics(controllerUrl(), TOKEN), "fluster_controller_");
    assertDescribed(await scrapeMetrics(workerUrl(), TOKEN), "fluster_worker_");
  });

  test("the controller's counters, gauges and histograms move as jobs run", async () => {
    const before = await scrapeMetrics(controllerUrl(), TOKEN);
    const ok = await local.cluster.launch(command("metrics-ok", ["node", "-e", "console.log('fine')"]));
    const bad = await local.cluster.launch(command("metrics-bad", ["node", "-e", "process.exit(3)"]));
    const [okInfo, badInfo] = await local.cluster.wait([ok, bad], { timeoutSeconds: 60 });
    assert.equal(okInfo?.status, "succeeded");
    assert.equal(badInfo?.status, "failed");
    const unknown = await flusterErrorOf(() => local.cluster.poll("no-such-job-123"));
    assert.equal(unknown.code, "not_found");
    // A server stream, counted when it ends.
    assert.match(await collectLogs(local.cluster, ok), /fine/);

    const after = await scrapeMetrics(controllerUrl(), TOKEN);
    const delta = (name: string, labels: Record<string, string> = {}) => sampleValue(after, name, labels) - sampleValue(before, name, labels);
    assert.equal(delta("fluster_controller_job_launches_total"), 2);
    assert.equal(delta("fluster_controller_job_launches_total", { priority: "interactive" }), 2);
    assert.equal(delta("fluster_controller_jobs", { state: "succeeded" }), 1);
    assert.equal(delta("fluster_controller_jobs", { state: "failed" }), 1);
    assert.equal(delta("fluster_controller_tasks", { state: "succeeded" }), 1);
    assert.equal(delta("fluster_controller_attempts_ended_total", { state: "succeeded" }), 1);
    assert.equal(delta("fluster_controller_attempts_ended_total", { state: "failed" }), 1);
    assert.equal(delta("fluster_controller_attempts_placed_total"), 2);
    assert.ok(delta("fluster_controller_scheduling_pass_duration_seconds") >= 1, "a scheduling pass was timed");
    assert.ok(sampleValue(after, "fluster_controller_reconcile_round_duration_seconds") >= 1, "a reconcile round was timed");
    assert.equal(sampleValue(after, "fluster_controller_workers", { health: "healthy" }), 1);
    assert.equal(sampleValue(after, "fluster_controller_pending_tasks"), 0);
    assert.equal(sampleValue(after, "fluster_controller_preemptions_total"), 0);
    assert.equal(sampleValue(after, "fluster_controller_workers_lost_total"), 0);

    const rpc = (method: string, code?: string) => ({ service: CONTROLLER_SERVICE, method, ...(code ? { code } : {}) });
    assert.equal(delta("fluster_controller_rpc_handled_total", rpc("LaunchJob", "ok")), 2);
    assert.equal(delta("fluster_controller_rpc_started_total", rpc("LaunchJob")), 2);
    assert.equal(delta("fluster_controller_rpc_handling_seconds", rpc("LaunchJob")), 2, "each unary call is timed");
    assert.equal(delta("fluster_controller_rpc_handled_total", rpc("GetJobStatus", "not_found")), 1);
    assert.ok(delta("fluster_controller_rpc_handled_total", rpc("Heartbeat", "ok")) >= 1, "the worker's heartbeats are counted");
    assert.equal(delta("fluster_controller_rpc_handled_total", rpc("StreamJobLogs", "ok")), 1);
    assert.deepEqual(series(after, "fluster_controller_rpc_handling_seconds", rpc("StreamJobLogs")), [], "server streams are not timed");
  });

  test("a worker shows a running attempt's CPU and memory until it ends, and counts its attempts", async () => {
    const before = await scrapeMetrics(workerUrl(), TOKEN);
    // Busy for at most a minute: the test terminates it once it has been seen.
    const jobId = await local.cluster.launch(command("metrics-busy", ["node", "-e", "const end = Date.now() + 60_000; while (Date.now() < end) {}"]));
    const labels = { job_id: jobId, task_index: "0" };
    let seen: Scrape | undefined;
    await eventually(
      async () => {
        const scrape = await scrapeMetrics(workerUrl(), TOKEN);
        if (sampleValue(scrape, "fluster_worker_attempt_cpu_seconds", labels) <= 0) return false;
        seen = scrape;
        return true;
      },
      { what: "the busy attempt's CPU time on the worker's /metrics", timeoutMs: 30_000, intervalMs: 200 },
    );
    assert.ok(seen);
    assert.equal(series(seen, "fluster_worker_attempt_cpu_seconds", labels).length, 1);
    assert.ok(sampleValue(seen, "fluster_worker_attempt_resident_memory_bytes", labels) > 1024 * 1024, "a node process holds more than a MiB");
    assert.equal(sampleValue(seen, "fluster_worker_attempts", { state: "running" }), 1);
    assert.equal(sampleValue(seen, "fluster_worker_attempts_started_total") - sampleValue(before, "fluster_worker_attempts_started_total"), 1);
    assert.ok(sampleValue(seen, "fluster_worker_rpc_handled_total", { method: "RunTask", code: "ok" }) >= 1);
    // The job's workspace (this repository) came as a bundle: one checkout, fetched or found in the cache.
    const checkouts = (scrape: Scrape) => sampleValue(scrape, "fluster_worker_bundle_cache_hits_total") + sampleValue(scrape, "fluster_worker_bundle_cache_misses_total");
    assert.equal(checkouts(seen) - checkouts(before), 1);

    assert.equal((await local.cluster.terminate(jobId)).status, "killed");
    let gone: Scrape | undefined;
    await eventually(
      async () => {
        const scrape = await scrapeMetrics(workerUrl(), TOKEN);
        if (sampleValue(scrape, "fluster_worker_attempts_ended_total", { state: "killed" }) <= sampleValue(before, "fluster_worker_attempts_ended_total", { state: "killed" })) return false;
        gone = scrape;
        return true;
      },
      { what: "the worker to count the killed attempt", timeoutMs: 30_000, intervalMs: 200 },
    );
    assert.ok(gone);
    assert.deepEqual(series(gone, "fluster_worker_attempt_cpu_seconds", labels), [], "the CPU series goes with the attempt");
    assert.deepEqual(series(gone, "fluster_worker_attempt_resident_memory_bytes", labels), []);
    assert.equal(sampleValue(gone, "fluster_worker_attempts", { state: "running" }), 0);
    assert.ok(sampleValue(gone, "fluster_worker_rpc_handled_total", { method: "KillTask", code: "ok" }) >= 1);
    const controller = await scrapeMetrics(controllerUrl(), TOKEN);
    assert.ok(sampleValue(controller, "fluster_controller_attempts_ended_total", { state: "killed" }) >= 1);
  });
});
