// The controller's Prometheus metrics: what it holds (jobs, tasks, workers,
// the pending queue), read from its records at each scrape, and what it does
// (launches, ended attempts, scheduling passes, reconcile rounds, preemptions,
// lost workers), counted as its observer hears of it.
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { PRIORITIES } from "../../core/job.js";
import { JOB_STATUSES, TASK_STATES, isFinished } from "../../core/status.js";
import type { AttemptRecord, JobRecord, WorkerHealth, WorkerRecord } from "../controller/model.js";
import { ATTEMPT_ENDINGS, type AttemptEnding, type ControllerObserver, type ReconcileRoundReport, type SchedulingPassReport } from "../controller/observer.js";
import { countBy } from "./count-by.js";

/** What the scrape-time gauges read: the controller's records now. */
export interface ControllerReadings {
  /** Every job the controller holds, in every namespace. */
  jobs(): Iterable<JobRecord>;
  /** Every worker in the controller's table (lost ones leave it). */
  workers(): Iterable<WorkerRecord>;
}

/** The health states a worker in the table can be in (a lost one leaves the table). */
const TABLE_HEALTH: readonly WorkerHealth[] = ["healthy", "unreachable", "unhealthy"];

/** Pass and round latency: from under a millisecond (a few jobs) to seconds (thousands, or a slow worker). */
const PASS_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const ROUND_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/**
 * The controller's metrics in `registry`, under `fluster_controller_`. It is
 * the controller's {@link ControllerObserver}; `read` gives the gauges their
 * values at each scrape (docs/metrics.md lists every metric).
 */
export class ControllerMetrics implements ControllerObserver {
  private readonly launches: Counter<"priority">;
  private readonly attemptsEnded: Counter<"state">;
  private readonly placements: Counter;
  private readonly preemptions: Counter;
  private readonly workersLost: Counter;
  private readonly passSeconds: Histogram;
  private readonly roundSeconds: Histogram;

  constructor(registry: Registry, read: ControllerReadings) {
    const registers = [registry];
    new Gauge({
      name: "fluster_controller_jobs",
      help: "Jobs the controller holds, by state (finished ones included until they are deleted).",
      labelNames: ["state"],
      registers,
      collect() {
        this.reset();
        const counts = countBy(JOB_STATUSES, read.jobs(), (job) => [job.state]);
        for (const [state, n] of counts) this.set({ state }, n);
      },
    });
    new Gauge({
      name: "fluster_controller_tasks",
      help: "Tasks of every job the controller holds, by state.",
      labelNames: ["state"],
      registers,
      collect() {
        this.reset();
        const counts = countBy(TASK_STATES, read.jobs(), (job) => job.tasks.map((t) => t.state));
        for (const [state, n] of counts) this.set({ state }, n);
      },
    });
    new Gauge({
      name: "fluster_controller_pending_tasks",
      help: "The scheduling queue's depth: pending tasks of unfinished jobs, by priority band.",
      labelNames: ["priority"],
      registers,
      collect() {
        this.reset();
        const pending = (job: JobRecord) => (isFinished(job.state) ? [] : job.tasks.filter((t) => t.state === "pending").map(() => job.request.priority));
        for (const [priority, n] of countBy(PRIORITIES, read.jobs(), pending)) this.set({ priority }, n);
      },
    });
    new Gauge({
      name: "fluster_controller_workers",
      help: "Registered workers, by health: healthy, unreachable (not answering, lost after the grace) or unhealthy (answers but refuses the controller).",
      labelNames: ["health"],
      registers,
      collect() {
        this.reset();
        for (const [health, n] of countBy(TABLE_HEALTH, read.workers(), (w) => [w.health])) this.set({ health }, n);
      },
    });
    this.launches = new Counter({
      name: "fluster_controller_job_launches_total",
      help: "Jobs accepted and stored (alone or in a group), by priority band.",
      labelNames: ["priority"],
      registers,
    });
    this.attemptsEnded = new Counter({
      name: "fluster_controller_attempts_ended_total",
      help: "Attempts that ended, by final state: succeeded, failed, killed, worker_failed, preempted, or not_started (its worker never ran it; the task was not charged).",
      labelNames: ["state"],
      registers,
    });
    this.placements = new Counter({
      name: "fluster_controller_attempts_placed_total",
      help: "Attempts scheduling passes placed on workers.",
      registers,
    });
    this.preemptions = new Counter({
      name: "fluster_controller_preemptions_total",
      help: "Attempts scheduling passes preempted to make room for higher-priority tasks.",
      registers,
    });
    this.workersLost = new Counter({
      name: "fluster_controller_workers_lost_total",
      help: "Workers lost (silent past their grace period, or restarted); their attempts were retried elsewhere.",
      registers,
    });
    this.passSeconds = new Histogram({
      name: "fluster_controller_scheduling_pass_duration_seconds",
      help: "Seconds a scheduling pass took (deciding, committing and sending its placements); passes with nothing to place are not observed.",
      buckets: PASS_BUCKETS,
      registers,
    });
    this.roundSeconds = new Histogram({
      name: "fluster_controller_reconcile_round_duration_seconds",
      help: "Seconds a reconcile round took, until every worker answered (or its call failed) and the answers were applied.",
      buckets: ROUND_BUCKETS,
      registers,
    });
    // Every series is there from the start, at zero: a rate() over a counter that appears late misses its first increase.
    for (const priority of PRIORITIES) this.launches.inc({ priority }, 0);
    for (const state of ATTEMPT_ENDINGS) this.attemptsEnded.inc({ state }, 0);
  }

  jobLaunched(job: JobRecord): void {
    this.launches.inc({ priority: job.request.priority });
  }

  attemptEnded(_attempt: AttemptRecord, ending: AttemptEnding): void {
    this.attemptsEnded.inc({ state: ending });
  }

  schedulingPass(report: SchedulingPassReport): void {
    this.passSeconds.observe(report.seconds);
    if (report.placements > 0) this.placements.inc(report.placements);
    if (report.preemptions > 0) this.preemptions.inc(report.preemptions);
  }

  reconcileRound(report: ReconcileRoundReport): void {
    this.roundSeconds.observe(report.seconds);
  }

  workerLost(): void {
    this.workersLost.inc();
  }
}
