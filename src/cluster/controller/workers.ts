// The controller's table of workers: registration records, connections, the
// attempts placed on each, and health as reconciles find it. Ending the
// attempts of a lost worker is the controller's part; this keeps the books.
import { backoffDelay } from "../../core/backoff.js";
import { ValidationError } from "../../core/errors.js";
import type { AttemptRecord, WorkerCapacityRecord, WorkerRecord } from "./model.js";
import { healthAfterFailure, lostReason, type WorkerFailure, type WorkerHealthState } from "./reconcile.js";
import type { StateStore } from "./store.js";
import type { WorkerConnection } from "./worker-connection.js";

export interface RegisterWorkerInput {
  workerId: string;
  address: string;
  capacity: WorkerCapacityRecord;
  attributes: Record<string, string>;
}

/** A registered worker with what the controller keeps about it in memory. */
export interface WorkerRuntime {
  record: WorkerRecord;
  connection: WorkerConnection;
  /** Attempts placed on this worker that are still active. */
  attempts: Set<AttemptRecord>;
  /**
   * Attempts the controller ended (killed, preempted) whose processes may
   * still run here, each with when to stop counting it (epoch ms): their room
   * counts as used until KillTask answers or fails, or that time passes.
   */
  stopping: Map<AttemptRecord, number>;
  /**
   * When the controller last heard from the worker: a reconcile answered, a
   * heartbeat received, its registration (or, after a controller restart,
   * when the controller loaded it). No contact for the grace period: lost.
   */
  lastContact: number;
  /** When a call to the worker went out with no contact since (see {@link WorkerHealthState.askedSince}). */
  askedSince?: number;
  /** A reconcile of this worker is in flight (rounds never overlap per worker). */
  reconciling: boolean;
  /** RunTask refusals in a row ("no room"); each one holds new attempts back longer. */
  refusals: number;
  /** No new attempts are placed here before this time (after a refusal). */
  placeAfter?: number;
  /** Its VM is being released by the autoscaler: no new attempts are placed here. */
  draining?: boolean;
}

/**
 * How long a worker that refused RunTask gets no new attempts: 1 s, doubling
 * per refusal in a row, at most 30 s, less up to a fifth at random (jitter),
 * so that tasks refused together are not all offered again in one instant.
 * A refusal is not a failure: the task's budgets are not touched.
 */
export function refusalBackoffMs(refusals: number, random: () => number = Math.random): number {
  return backoffDelay(refusals - 1, { initialMs: 1_000, maxMs: 30_000, jitter: 0.2 }, random);
}

/** Validates a registration and builds its record; `device-type`/`device-variant` attributes come from the capacity. */
export function workerRecordOf(input: RegisterWorkerInput, now: number): WorkerRecord {
  if (!input.workerId) throw new ValidationError("workerId", "must not be empty");
  if (!input.address) throw new ValidationError("address", "must not be empty");
  const capacity = input.capacity;
  for (const [key, value] of Object.entries({ cpu: capacity.cpu, memory: capacity.memory, disk: capacity.disk, deviceCount: capacity.deviceCount })) {
    if (!Number.isFinite(value) || value < 0) throw new ValidationError(`resources.${key}`, `must be a non-negative number, got ${value}`);
  }
  const attributes = {
    ...input.attributes,
    "device-type": capacity.deviceType,
    ...(capacity.deviceType !== "cpu" ? { "device-variant": capacity.deviceVariant } : {}),
  };
  return { workerId: input.workerId, address: input.address, capacity, attributes, registeredAt: now, lastSeen: now, health: "healthy" };
}

export class WorkerTable {
  private readonly workers = new Map<string, WorkerRuntime>();
  /** Addresses of workers that were lost, so logs of their attempts can still be asked for. */
  private readonly lostAddresses = new Map<string, string>();

  constructor(
    private readonly store: StateStore,
    private readonly connect: (address: string) => WorkerConnection,
    private readonly graceMs: number,
  ) {}

  /**
   * Takes the workers loaded from the store at start (`now`: their grace
   * period starts anew); lost ones are remembered only by address.
   */
  load(records: readonly WorkerRecord[], now: number): void {
    for (const record of records) {
      if (record.health === "lost") this.lostAddresses.set(record.workerId, record.address);
      else this.workers.set(record.workerId, this.runtimeFor(record, now));
    }
  }

  get(workerId: string): WorkerRuntime | undefined {
    return this.workers.get(workerId);
  }

  /** Whether this runtime is still the table's worker (not lost or replaced since a call to it began). */
  isCurrent(worker: WorkerRuntime): boolean {
    return this.workers.get(worker.record.workerId) === worker;
  }

  values(): IterableIterator<WorkerRuntime> {
    return this.workers.values();
  }

  /** Adds a worker registered now (or loaded from the store), or refreshes the record of one at the same address. */
  upsert(record: WorkerRecord): WorkerRuntime {
    const existing = this.workers.get(record.workerId);
    if (existing && existing.record.address === record.address) {
      const refreshed = { ...record, registeredAt: existing.record.registeredAt };
      this.store.saveWorker(refreshed);
      existing.record = refreshed;
      existing.lastContact = record.lastSeen;
      delete existing.askedSince;
      delete existing.placeAfter;
      existing.refusals = 0;
      return existing;
    }
    this.store.saveWorker(record);
    existing?.connection.close();
    const worker = this.runtimeFor(record, record.lastSeen);
    this.workers.set(record.workerId, worker);
    return worker;
  }

  /** Marks a worker lost and forgets it (its address stays known for logs). Its attempts are the caller's to end first. */
  remove(worker: WorkerRuntime): void {
    const { store } = this;
    store.keep(worker.record);
    worker.record.health = "lost";
    store.saveWorker(worker.record);
    this.lostAddresses.set(worker.record.workerId, worker.record.address);
    this.workers.delete(worker.record.workerId);
    store.onRollback(() => this.workers.set(worker.record.workerId, worker));
    store.afterCommit(() => worker.connection.close());
  }

  /** Forgets workers lost before `lastSeenBefore` (epoch ms): their rows go, and their addresses; returns their ids. */
  pruneLost(lastSeenBefore: number): string[] {
    const pruned = this.store.deleteLostWorkers(lastSeenBefore);
    for (const workerId of pruned) this.lostAddresses.delete(workerId);
    return pruned;
  }

  /** Where a worker is or was, for log streaming. */
  addressOf(workerId: string): string | undefined {
    return this.workers.get(workerId)?.record.address ?? this.lostAddresses.get(workerId);
  }

  /** A reconcile answered: the worker is healthy. Returns true when it was not (room may be back). */
  answered(worker: WorkerRuntime, now: number): boolean {
    this.contact(worker, now);
    if (worker.record.health === "healthy") return false;
    const { healthReason: _, ...healthy } = worker.record;
    this.store.saveWorker({ ...healthy, health: "healthy" });
    worker.record.health = "healthy";
    delete worker.record.healthReason;
    return true;
  }

  /**
   * The worker was heard from (a heartbeat): its grace period starts over.
   * Its health is left alone: only an answered reconcile proves the
   * controller can reach it.
   */
  contact(worker: WorkerRuntime, now: number): void {
    worker.record.lastSeen = now;
    worker.lastContact = Math.max(worker.lastContact, now);
    delete worker.askedSince;
  }

  /** A call to the worker goes out at `now`. */
  asking(worker: WorkerRuntime, now: number): void {
    worker.askedSince ??= now;
  }

  /**
   * The controller itself was stalled for `ms` (its loop did not run): it
   * could hear from no worker meanwhile, so that time is not their silence.
   */
  credit(ms: number): void {
    for (const worker of this.workers.values()) worker.lastContact += ms;
  }

  /** Why the worker is lost at `now` (no contact for longer than the grace period, calls in flight or not); undefined while it is not. */
  silence(worker: WorkerRuntime, now: number): string | undefined {
    const reason = lostReason(this.healthState(worker), now, this.graceMs);
    return reason ? `worker ${worker.record.workerId} ${reason}` : undefined;
  }

  /**
   * A call to the worker failed: it becomes unreachable (transient) or
   * unhealthy (misconfigured); returns why it is lost once it has been out
   * of contact for longer than the grace period.
   */
  failed(worker: WorkerRuntime, now: number, failure?: WorkerFailure): string | undefined {
    const { health } = worker.record;
    const next = healthAfterFailure(this.healthState(worker), now, this.graceMs, failure);
    worker.askedSince = next.askedSince;
    if (next.lostReason) return `worker ${worker.record.workerId} ${next.lostReason}`;
    if (next.health !== health) this.store.saveWorker({ ...worker.record, health: next.health });
    if (next.reason) worker.record.healthReason = next.reason;
    worker.record.health = next.health;
    return undefined;
  }

  /** The worker turned an attempt down (no room): hold new attempts back, longer for each refusal in a row. */
  refused(worker: WorkerRuntime, now: number): void {
    worker.refusals += 1;
    worker.placeAfter = now + refusalBackoffMs(worker.refusals);
  }

  /** The worker took an attempt: refusals are forgotten. */
  accepted(worker: WorkerRuntime): void {
    worker.refusals = 0;
    delete worker.placeAfter;
  }

  /** Whether new attempts may go to the worker now: it is healthy and not holding back after a refusal. */
  isPlaceable(worker: WorkerRuntime, now: number): boolean {
    return worker.record.health === "healthy" && !worker.draining && (worker.placeAfter === undefined || worker.placeAfter <= now);
  }

  private healthState(worker: WorkerRuntime): WorkerHealthState {
    const { health, healthReason } = worker.record;
    return {
      health,
      lastContact: worker.lastContact,
      ...(worker.askedSince !== undefined ? { askedSince: worker.askedSince } : {}),
      ...(healthReason ? { reason: healthReason } : {}),
    };
  }

  private runtimeFor(record: WorkerRecord, lastContact: number): WorkerRuntime {
    return { record, connection: this.connect(record.address), attempts: new Set(), stopping: new Map(), lastContact, reconciling: false, refusals: 0 };
  }

  closeAll(): void {
    for (const w of this.workers.values()) w.connection.close();
  }
}
