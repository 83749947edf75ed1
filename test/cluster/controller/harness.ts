// A controller under test: a real Controller on an in-memory (or temporary
// file) SQLite store, a clock the test moves, and in-memory workers that
// implement the WorkerConnection contract. No sockets, no processes.
import Database from "better-sqlite3";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setImmediate as nextTurn } from "node:timers/promises";
import { Controller, type ControllerOptions } from "../../../src/cluster/controller/controller.js";
import { StateStore } from "../../../src/cluster/controller/store.js";
import type { Assignment, DesiredAttempt, ObservedAttempt, ObservedAttempts, WorkerConnection } from "../../../src/cluster/controller/worker-connection.js";
import { FlusterError } from "../../../src/core/errors.js";
import { validateJobRequest, type JobRequest } from "../../../src/core/job.js";
import { Entrypoint } from "../../../src/core/entrypoint.js";
import { jobSpecToProto } from "../../../src/rpc/convert.js";
import type { TaskState } from "../../../src/core/status.js";
import { captureLogs } from "../../helpers/logs.js";

export const GRACE_MS = 10_000;

/**
 * A worker in memory. It answers RunTask by "starting" the attempt (running),
 * reports the states the test sets with `finish`, and fails every call while
 * `reachable` is false, as a hung or partitioned machine would.
 */
export class FakeWorker implements WorkerConnection {
  readonly started: Assignment[] = [];
  readonly killed: string[] = [];
  readonly attempts = new Map<string, ObservedAttempt>();
  reachable = true;
  /** When set, the next RunTask fails with it (the worker refuses that attempt). */
  refuseNext: Error | undefined;
  /** When set, every RunTask fails with it (e.g. "no room", over and over). */
  refuseRunTask: Error | undefined;
  /** When set, every call fails with it, as a worker that refuses the controller would (a wrong token). */
  refuseAll: Error | undefined;
  /**
   * When true, Reconcile calls hang (a silent machine whose connection
   * accepts the request and never answers) until `answerHung()` or their
   * signal aborts.
   */
  hang = false;
  private hung: Array<() => void> = [];
  /** The worker id HealthCheck answers with (a registering worker must match it). */
  answersAs = "";
  /** What RunTask answers: `building` as a worker that fetches a workspace or installs dependencies first. */
  startsAs: "running" | "building" = "running";

  constructor(
    readonly address: string,
    private readonly clock: { now: number },
  ) {}

  async runTask(assignment: Assignment): Promise<ObservedAttempt> {
    this.check();
    const refusal = this.refuseNext ?? this.refuseRunTask;
    this.refuseNext = undefined;
    if (refusal) throw refusal;
    this.started.push(assignment);
    const observed: ObservedAttempt = { attemptId: assignment.attemptId, state: this.startsAs, startedAt: this.clock.now };
    this.attempts.set(assignment.attemptId, observed);
    return observed;
  }

  /**
   * When true, KillTask calls wait for `releaseKills()`, as a worker answers
   * only once the killed processes have exited.
   */
  holdKills = false;
  private heldKills: Array<() => void> = [];

  async killTask(attemptId: string): Promise<void> {
    this.check();
    this.killed.push(attemptId);
    if (this.holdKills) await new Promise<void>((resolve) => this.heldKills.push(resolve));
    this.attempts.delete(attemptId);
  }

  /** Held KillTask calls answer now: the processes are gone. */
  releaseKills(): void {
    this.holdKills = false;
    for (const resolve of this.heldKills.splice(0)) resolve();
  }

  async reconcile(desired: readonly DesiredAttempt[], _stopReasons?: unknown, signal?: AbortSignal): Promise<ObservedAttempts> {
    if (this.hang) {
      await new Promise<void>((resolve, reject) => {
        this.hung.push(resolve);
        signal?.addEventListener("abort", () => reject(new FlusterError(`${this.address} did not answer in time`, "deadline_exceeded")), { once: true });
      });
    }
    this.check();
    const wanted = new Set(desired.map((d) => d.attemptId));
    for (const id of [...this.attempts.keys()]) if (!wanted.has(id)) this.attempts.delete(id);
    const observed: ObservedAttempt[] = [];
    const missing: string[] = [];
    for (const d of desired) {
      const a = this.attempts.get(d.attemptId);
      if (!a) missing.push(d.attemptId);
      else if (a.state !== d.knownState) observed.push(a);
    }
    return { observed, missing };
  }

  /** Hung Reconcile calls answer now (late). */
  answerHung(): void {
    this.hang = false;
    for (const resolve of this.hung.splice(0)) resolve();
  }

  /** The attempt ends on this worker as `state`; the next reconcile reports it. */
  finish(attemptId: string, state: TaskState, fields: Partial<ObservedAttempt> = {}): void {
    this.attempts.set(attemptId, { attemptId, state, finishedAt: this.clock.now, ...fields });
  }

  /** The worker forgets an attempt (e.g. it restarted). */
  forget(attemptId: string): void {
    this.attempts.delete(attemptId);
  }

  /** The id of the last attempt started here. */
  get lastStarted(): string {
    const last = this.started.at(-1);
    if (!last) throw new Error(`nothing was started on ${this.address}`);
    return last.attemptId;
  }

  async healthCheck(): Promise<{ workerId: string }> {
    this.check();
    return { workerId: this.answersAs };
  }

  close(): void {}

  private check(): void {
    if (!this.reachable) throw new FlusterError(`${this.address} is unreachable`, "unavailable");
    if (this.refuseAll) throw this.refuseAll;
  }
}

function registration(workerId: string, address: string, cpu: number) {
  return { workerId, address, capacity: { cpu, memory: 16 * 1024 ** 3, disk: 100 * 1024 ** 3, deviceType: "cpu" as const, deviceVariant: "", deviceCount: 0 }, attributes: {} };
}

/** A controller, its clock and its workers; `close()` releases everything. */
export class Harness {
  readonly clock = { now: 1_000_000 };
  readonly workers = new Map<string, FakeWorker>();
  /** What the controller logged (every level). */
  readonly logs = captureLogs("controller");

  /** The messages the controller logged, in order. */
  get logged(): string[] {
    return this.logs.messages;
  }
  controller: Controller;
  private readonly dir: string | undefined;

  /** Extra controller options (fault injection, say). */
  private readonly extra: Partial<ControllerOptions>;

  /** `durable`: the store is a SQLite file in a temporary directory, so a second controller can start on it. */
  constructor(options: { durable?: boolean; controller?: Partial<ControllerOptions> } = {}) {
    this.dir = options.durable ? mkdtempSync(join(tmpdir(), "fluster-controller-test-")) : undefined;
    this.extra = options.controller ?? {};
    this.controller = this.newController();
  }

  private newController(): Controller {
    return new Controller({
      store: new StateStore(this.dir ?? ":memory:"),
      connectWorker: (address) => this.workerAt(address),
      // Ticks are driven by the test, never by the timer.
      reconcileIntervalMs: 3_600_000,
      workerLostGraceMs: GRACE_MS,
      now: () => this.clock.now,
      logger: this.logs.logger,
      ...this.extra,
    });
  }

  workerAt(address: string): FakeWorker {
    let worker = this.workers.get(address);
    if (!worker) this.workers.set(address, (worker = new FakeWorker(address, this.clock)));
    return worker;
  }

  start(): this {
    this.controller.start();
    return this;
  }

  /** Registers a worker with `cpu` cores and 16 GiB; returns its fake. */
  addWorker(workerId: string, cpu = 4): FakeWorker {
    const address = `http://${workerId}:1`;
    this.controller.registerWorker(registration(workerId, address, cpu));
    return this.workerAt(address);
  }

  /** A worker registering through RegisterWorker: the controller calls it once before it is admitted. */
  admitWorker(workerId: string, address = `http://${workerId}:1`, cpu = 4): Promise<unknown> {
    return this.controller.admitWorker(registration(workerId, address, cpu));
  }

  async launch(request: Partial<JobRequest> = {}): Promise<string> {
    const spec = jobSpecToProto(
      validateJobRequest({ name: "job", resources: { cpu: 1, memory: "1g" }, entrypoint: Entrypoint.fromCommand(["true"]), ...request }),
    );
    const job = await this.controller.launchJob(spec);
    await this.settle();
    return job.jobId;
  }

  /** Lets queued scheduling passes, dispatches and store commits run. */
  async settle(): Promise<void> {
    for (let i = 0; i < 5; i++) await nextTurn();
  }

  /** One reconcile round, answers applied, and what it scheduled dispatched. */
  async reconcile(): Promise<void> {
    this.controller.tick();
    await this.controller.reconcileAll();
    await this.settle();
  }

  advance(ms: number): void {
    this.clock.now += ms;
  }

  /** Stops this controller and starts a new one on the same store (a restart); `whileDown` may edit the database meanwhile. */
  async restart(whileDown?: (db: Database.Database) => void): Promise<void> {
    await this.controller.shutdown();
    if (whileDown) {
      if (!this.dir) throw new Error("only a durable harness has a database to edit");
      const db = new Database(join(this.dir, "controller.sqlite"));
      try {
        whileDown(db);
      } finally {
        db.close();
      }
    }
    this.controller = this.newController();
    this.controller.start();
    await this.settle();
  }

  async close(): Promise<void> {
    await this.controller.shutdown();
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}
