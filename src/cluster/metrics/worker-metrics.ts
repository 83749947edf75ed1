// A worker daemon's Prometheus metrics: its attempts (by state, started and
// ended, and what each running one uses of CPU and memory, read from /proc at
// each scrape) and its bundle and environment caches.
import { Counter, Gauge, type Registry } from "prom-client";
import type { TaskState } from "../../core/status.js";
import { groupsUsage, type GroupUsage } from "../worker/process-group.js";
import { countBy } from "./count-by.js";

/** The states of an attempt a worker holds before it ends. */
export type ActiveAttemptState = Extract<TaskState, "assigned" | "building" | "running">;
/** The states an attempt ends in on a worker. */
export type EndedAttemptState = Extract<TaskState, "succeeded" | "failed" | "killed" | "worker_failed">;

const ACTIVE_STATES: readonly ActiveAttemptState[] = ["assigned", "building", "running"];
const ENDED_STATES: readonly EndedAttemptState[] = ["succeeded", "failed", "killed", "worker_failed"];

/** A running attempt's process group, for its usage gauges. */
export interface RunningAttemptProcess {
  jobId: string;
  taskIndex: number;
  /** Its process group id (the pid of its first process). */
  pgid: number;
}

/** Hits and misses of a cache since it opened. */
export interface CacheCounts {
  hits: number;
  misses: number;
}

/** What the scrape-time metrics read from the daemon. */
export interface WorkerReadings {
  /** The state of each attempt that has not ended. */
  activeAttempts(): Iterable<ActiveAttemptState>;
  /** The processes of the attempts running now. */
  runningProcesses(): Iterable<RunningAttemptProcess>;
  /** The bundle cache's counts, once it exists. */
  bundleCache(): CacheCounts | undefined;
  /** The environment cache's counts, once it exists. */
  environmentCache(): CacheCounts | undefined;
  /** What process groups use now. @default from /proc (process-group.ts) */
  groupsUsage?: (pgids: ReadonlySet<number>) => Promise<Map<number, GroupUsage>>;
}

/**
 * A worker daemon's metrics in `registry`, under `fluster_worker_`: the
 * daemon calls {@link attemptStarted} and {@link attemptEnded}; the rest is
 * read at each scrape (docs/metrics.md lists every metric).
 */
export class WorkerMetrics {
  private readonly started: Counter;
  private readonly ended: Counter<"state">;

  constructor(registry: Registry, read: WorkerReadings) {
    const registers = [registry];
    const usageOf = read.groupsUsage ?? groupsUsage;
    new Gauge({
      name: "fluster_worker_attempts",
      help: "Attempts on this worker that have not ended, by state: assigned (fetching its workspace), building (its environment) or running.",
      labelNames: ["state"],
      registers,
      collect() {
        this.reset();
        for (const [state, n] of countBy(ACTIVE_STATES, read.activeAttempts(), (s) => [s])) this.set({ state }, n);
      },
    });
    this.started = new Counter({
      name: "fluster_worker_attempts_started_total",
      help: "Attempts this worker accepted to run (RunTask calls for a new attempt).",
      registers,
    });
    this.ended = new Counter({
      name: "fluster_worker_attempts_ended_total",
      help: "Attempts that ended on this worker, by final state: succeeded, failed, killed, or worker_failed (fenced: the worker lost its lease).",
      labelNames: ["state"],
      registers,
    });
    for (const state of ENDED_STATES) this.ended.inc({ state }, 0);
    // Both usage gauges come from one pass over /proc, made by whichever is collected first in a scrape.
    let usage: Promise<{ processes: RunningAttemptProcess[]; usage: Map<number, GroupUsage> }> | undefined;
    const readUsage = () => {
      usage ??= (async () => {
        const processes = [...read.runningProcesses()];
        return { processes, usage: await usageOf(new Set(processes.map((p) => p.pgid))) };
      })().finally(() => setImmediate(() => (usage = undefined)));
      return usage;
    };
    const usageGauge = (name: string, help: string, value: (u: GroupUsage) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ["job_id", "task_index"],
        registers,
        async collect() {
          this.reset();
          const now = await readUsage();
          for (const p of now.processes) {
            const used = now.usage.get(p.pgid);
            if (used) this.inc({ job_id: p.jobId, task_index: String(p.taskIndex) }, value(used));
          }
        },
      });
    usageGauge("fluster_worker_attempt_cpu_seconds", "CPU time (user and system) the live processes of a running attempt have used; the series goes when the attempt ends.", (u) => u.cpuSeconds);
    usageGauge("fluster_worker_attempt_resident_memory_bytes", "Resident memory of the live processes of a running attempt; the series goes when the attempt ends.", (u) => u.residentBytes);
    cacheCounter(registry, "fluster_worker_bundle_cache_hits_total", "Workspace bundle checkouts that found the bundle on this worker already.", () => read.bundleCache()?.hits);
    cacheCounter(registry, "fluster_worker_bundle_cache_misses_total", "Workspace bundle checkouts that fetched the bundle from the controller (or waited for a fetch in progress).", () => read.bundleCache()?.misses);
    cacheCounter(registry, "fluster_worker_environment_cache_hits_total", "Attempts whose npm environment was built already.", () => read.environmentCache()?.hits);
    cacheCounter(registry, "fluster_worker_environment_cache_misses_total", "Attempts that waited for their npm environment to be built (here or by another daemon sharing the cache).", () => read.environmentCache()?.misses);
  }

  /** A new attempt was accepted. */
  attemptStarted(): void {
    this.started.inc();
  }

  /** An attempt ended (each attempt once). */
  attemptEnded(state: EndedAttemptState): void {
    this.ended.inc({ state });
  }
}

/** A counter that shows a count kept elsewhere (0 until there is one). */
function cacheCounter(registry: Registry, name: string, help: string, count: () => number | undefined): void {
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      this.inc(count() ?? 0);
    },
  });
}
