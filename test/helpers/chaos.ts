// The chaos soak, shared by test/cluster/chaos.test.ts (about a minute) and
// bench/soak.ts (ten minutes by default): a LocalCluster whose controller
// drops a share of Heartbeats and whose workers drop a share of Reconciles
// (fault injection), a WorkerPool working through tasks and command jobs
// launched all along, while a worker daemon is SIGKILLed at a fixed period
// and replaced by a new one, so capacity remains. It reports what came back;
// the caller judges it.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { LocalCluster } from "../../src/cluster/client/local-cluster.js";
import type { JobInfo } from "../../src/core/job.js";
import { WorkerPool } from "../../src/pool/worker-pool.js";
import { slowSquare } from "../fixtures/pool/tasks.js";
import { loggingTask, overlapReport, readAttemptIntervals } from "./attempt-intervals.js";

/** Options of {@link runChaos}. */
export interface ChaosOptions {
  /** How long tasks and jobs keep coming and workers keep dying. */
  durationMs: number;
  /** Pool tasks submitted, spread evenly over the duration. */
  poolTasks: number;
  /** Jobs launched, spread evenly over the duration. */
  jobs: number;
  /** A worker daemon is SIGKILLed (and replaced) this often. */
  killEveryMs: number;
  /** Share of Heartbeat (controller side) and Reconcile (worker side) calls dropped, and of RunTask answers. */
  dropProbability: number;
  /** Worker daemons kept running. @default 3 */
  workers?: number;
  /** Seconds of silence before the controller loses a worker. @default 4 */
  workerLostGraceSeconds?: number;
  /** Progress lines. @default none */
  log?: (line: string) => void;
}

/** What a chaos run saw. */
export interface ChaosReport {
  /** Each pool task's result by index; a missing or wrong one is a loss. */
  poolResults: Array<number | undefined>;
  /** Pool tasks that rejected, with why. */
  poolErrors: string[];
  /** Pool tasks sent again after their worker was lost. */
  poolReruns: number;
  jobs: JobInfo[];
  /** Worker daemons SIGKILLed. */
  kills: number;
  /** Longest time two attempts of one job's task ran at once (0: never). */
  maxOverlapMs: number;
  overlaps: string[];
  /** Jobs' attempts lost with their workers (preemption retries), in all. */
  preemptions: number;
  elapsedMs: number;
  /** The pool's worker jobs as they were when the load had settled, before shutdown. */
  poolWorkers: JobInfo[];
  /** The pool's own view then: its workers (calls in flight, held back as dead) and its queue. */
  poolView: ReturnType<WorkerPool["describe"]>;
}

/** Runs the soak and tears everything down; throws only if the cluster cannot start. */
export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const log = options.log ?? (() => undefined);
  const started = Date.now();
  const dir = mkdtempSync(join(tmpdir(), "fluster-chaos-"));
  const cluster = await LocalCluster.start({
    workers: options.workers ?? 3,
    workerCpu: 2,
    workerMemory: "2g",
    reconcileIntervalSeconds: 0.3,
    workerLostGraceSeconds: options.workerLostGraceSeconds ?? 4,
    killGraceSeconds: 1,
    controllerFaults: { rpc: { Heartbeat: { dropProbability: options.dropProbability } } },
    // Lost RunTask answers too: the attempt may run although the controller heard nothing.
    workerFaults: { rpc: { Reconcile: { dropProbability: options.dropProbability }, RunTask: { dropResponseProbability: options.dropProbability } } },
  });
  let pool: WorkerPool | undefined;
  let kills = 0;
  try {
    pool = new WorkerPool(cluster, { numWorkers: 3, resources: { cpu: 0.5, memory: "256m" } });
    await pool.waitForWorkers(3, { timeoutSeconds: 120 });
    log(`chaos: cluster and pool up in ${Date.now() - started} ms; running ${options.durationMs / 1000}s`);
    const poolResults: Array<number | undefined> = new Array(options.poolTasks).fill(undefined);
    const poolErrors: string[] = [];
    const pending: Promise<void>[] = [];
    const jobIds: string[] = [];
    const t0 = Date.now();
    const waves = Math.max(1, Math.round(options.durationMs / 1000));
    let submitted = 0;
    let launched = 0;
    let nextKill = t0 + options.killEveryMs;
    for (let wave = 0; wave < waves; wave++) {
      // Tasks and jobs for this second.
      const taskTarget = Math.round((options.poolTasks * (wave + 1)) / waves);
      for (; submitted < taskTarget; submitted++) {
        const i = submitted;
        const p = pool.submit(slowSquare, i, 200).then(
          (r) => {
            if (poolResults[i] !== undefined) poolErrors.push(`task ${i} resolved twice`);
            poolResults[i] = r.value;
          },
          (err: unknown) => void poolErrors.push(`task ${i}: ${err instanceof Error ? err.message : String(err)}`),
        );
        pending.push(p);
      }
      const jobTarget = Math.round((options.jobs * (wave + 1)) / waves);
      for (; launched < jobTarget; launched++) {
        jobIds.push(await cluster.launch({ name: `chaos-${launched}`, resources: { cpu: 0.25, memory: "32m" }, entrypoint: loggingTask(dir, 2) }));
      }
      if (wave > 0 && wave % 30 === 0) {
        const { succeeded, rerun, queued } = pool.stats;
        log(`chaos: ${wave}s: ${submitted} pool tasks submitted, ${succeeded} done, ${queued} queued, ${rerun} re-run; ${pool.size} pool worker(s) joined`);
      }
      if (Date.now() >= nextKill) {
        nextKill += options.killEveryMs;
        const live = cluster.workers;
        const victim = live[Math.floor(Math.random() * live.length)];
        if (victim?.process.pid) {
          process.kill(victim.process.pid, "SIGKILL");
          kills += 1;
          log(`chaos: SIGKILLed worker ${victim.workerId} at ${((Date.now() - t0) / 1000).toFixed(1)}s; starting a replacement`);
          await cluster.addWorker();
        }
      }
      const nextWave = t0 + ((wave + 1) * options.durationMs) / waves;
      await sleep(Math.max(0, nextWave - Date.now()));
    }
    log(`chaos: load done at ${((Date.now() - t0) / 1000).toFixed(1)}s; waiting for the last results`);
    const settleLimit = sleep(120_000).then(() => "timeout" as const);
    await Promise.race([Promise.all(pending), settleLimit]);
    const jobs = (await cluster.wait(jobIds, { timeoutSeconds: 120 })) as JobInfo[];
    const poolWorkers = await Promise.all((await pool.jobIds()).map((id) => cluster.poll(id)));
    const poolView = pool.describe();
    const overlap = overlapReport(readAttemptIntervals(dir));
    return {
      poolResults,
      poolErrors,
      poolReruns: pool.stats.rerun,
      jobs,
      kills,
      maxOverlapMs: overlap.maxOverlapMs,
      overlaps: overlap.overlaps,
      preemptions: jobs.reduce((n, j) => n + (j.tasks[0]?.preemptionCount ?? 0), 0),
      elapsedMs: Date.now() - started,
      poolWorkers,
      poolView,
    };
  } finally {
    await pool?.shutdown().catch(() => undefined);
    await cluster.shutdown();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** One line per property the soak must hold that did not; empty when all held. */
export function chaosProblems(report: ChaosReport): string[] {
  const problems: string[] = [];
  const wrong = report.poolResults.flatMap((v, i) => (v === i * i ? [] : [`${i}: ${v}`]));
  if (wrong.length > 0) problems.push(`${wrong.length} pool task(s) without their result: ${wrong.slice(0, 5).join(", ")}`);
  problems.push(...report.poolErrors.slice(0, 5));
  const failed = report.jobs.filter((j) => j.status !== "succeeded");
  if (failed.length > 0) problems.push(`${failed.length} job(s) did not succeed: ${failed.slice(0, 3).map((j) => `${j.name} ${j.status} ${j.errorMessage ?? ""}`).join("; ")}`);
  problems.push(...report.overlaps);
  // A pool worker between attempts (pending after a kill) is fine; one that ended is not.
  const gone = report.poolWorkers.filter((j) => ["succeeded", "failed", "killed", "unschedulable"].includes(j.status));
  if (gone.length > 0) problems.push(`${gone.length} pool worker job(s) ended before the pool: ${gone.map((j) => `${j.name} ${j.status} ${j.errorMessage ?? ""}`).join("; ")}`);
  return problems;
}

/** A one-paragraph summary of a report. */
export function chaosSummary(report: ChaosReport): string {
  const done = report.poolResults.filter((v, i) => v === i * i).length;
  const succeeded = report.jobs.filter((j) => j.status === "succeeded").length;
  return (
    `${done}/${report.poolResults.length} pool results (${report.poolReruns} re-run after a worker loss), ` +
    `${succeeded}/${report.jobs.length} jobs succeeded (${report.preemptions} attempt(s) lost with their workers), ` +
    `pool workers ${report.poolWorkers.map((j) => `${j.name.split("/").pop()} ${j.status} (${j.tasks[0]?.preemptionCount ?? 0} preempted, ${j.tasks[0]?.failureCount ?? 0} failed)`).join(", ")}; ` +
    `pool view ${report.poolView.workers.length} worker(s) joined (${report.poolView.workers.filter((w) => w.dead).length} held back as dead, ${report.poolView.workers.reduce((n, w) => n + w.inFlight, 0)} call(s) in flight), ${report.poolView.queued} task(s) queued, ${report.poolView.watching ? "following" : "not following"} the registry; ` +
    `${report.kills} worker daemon(s) SIGKILLed, overlap ${report.maxOverlapMs.toFixed(0)} ms, ${(report.elapsedMs / 1000).toFixed(1)}s in all`
  );
}
