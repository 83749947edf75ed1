// Reservations: capacity held between a minimum and a maximum for jobs that
// come and go, until a TTL or a release. `Reservations`, the controller's
// collaborator for them: creating one (stored before it is seen), releasing
// and expiring them, and what they ask of and keep from a scheduling pass.
// The table, the validation of a ReservationSpec from the wire, what each
// active reservation asks of a scheduling pass, and the figures a
// reservation reports.
import { randomUUID } from "node:crypto";
import { FlusterError, ValidationError } from "../../core/errors.js";
import type { Logger } from "../../core/logger.js";
import { validateReservationConfig, type ValidatedReservationConfig } from "../../core/reservation.js";
import { isFinished } from "../../core/status.js";
import { resourcesFromProto } from "../../rpc/convert.js";
import type { ReservationSpec } from "../../rpc/gen/fluster/cluster/v1/controller_pb.js";
import { DEFAULT_NAMESPACE } from "./endpoints.js";
import { namespaceFor, type JobTable } from "./jobs.js";
import type { JobRecord, ReservationRecord } from "./model.js";
import type { StateStore } from "./store.js";
import type { ReservationDemand, ReservationOutcome, TaskDemand } from "./scheduler/index.js";
import { isActiveAttempt } from "./task-state.js";

export interface ReservationFilter {
  namespace?: string;
  allNamespaces?: boolean;
  /** Also expired and released ones. */
  includeEnded?: boolean;
}

/** Longest TTL a reservation may have: ten years (an expiry time must stay a date). */
export const MAX_RESERVATION_TTL_SECONDS = 10 * 365 * 24 * 3600;

/**
 * Validates a ReservationSpec from the wire; errors name `minResources.…`,
 * `maxResources.…`, `ttlSeconds`, …. `maxReplicas` bounds the slots, as it
 * bounds a job's tasks.
 */
export function validateReservationSpec(spec: ReservationSpec | undefined, maxReplicas = Number.POSITIVE_INFINITY): ValidatedReservationConfig {
  if (!spec) throw new ValidationError("reservation", "is required");
  if (!spec.minResources) throw new ValidationError("minResources", "is required");
  if (!spec.maxResources) throw new ValidationError("maxResources", "is required");
  if (spec.ttlSeconds > MAX_RESERVATION_TTL_SECONDS) throw new ValidationError("ttlSeconds", `must be at most ${MAX_RESERVATION_TTL_SECONDS} (ten years), got ${spec.ttlSeconds}`);
  for (const [field, bound] of [["minResources", spec.minResources], ["maxResources", spec.maxResources]] as const) {
    if (bound.replicas !== undefined && bound.replicas > maxReplicas) {
      throw new ValidationError(`${field}.replicas`, `is ${bound.replicas}, above the limit of ${maxReplicas} (maxReplicas)`);
    }
  }
  return validateReservationConfig({
    minResources: resourcesFromProto(spec.minResources, "minResources"),
    maxResources: resourcesFromProto(spec.maxResources, "maxResources"),
    priority: spec.priority,
    // 0 on the wire: unset, the library's default.
    ...(spec.ttlSeconds ? { ttlSeconds: spec.ttlSeconds } : {}),
    preemptible: spec.preemptible,
  });
}

/** One slot of the reservation: the per-task shape of its minimum. */
export function slotShape(config: ValidatedReservationConfig): TaskDemand {
  const r = config.minResources;
  return {
    cpu: r.cpu,
    memory: r.memory,
    disk: r.disk,
    deviceType: r.device.kind,
    deviceVariant: r.device.kind === "cpu" ? "" : r.device.variant,
    deviceCount: r.chipsPerTask(),
  };
}

/** Tasks of these jobs that hold room now (placed and not ended). */
export function activeTasks(jobs: readonly JobRecord[]): number {
  let count = 0;
  for (const job of jobs) {
    if (isFinished(job.state)) continue;
    for (const task of job.tasks) {
      const current = task.attempts.at(-1);
      if (current && isActiveAttempt(current.state)) count++;
    }
  }
  return count;
}

/** A reservation with its validated spec, its jobs and the last pass's outcome. */
export interface ReservationEntry {
  record: ReservationRecord;
  config: ValidatedReservationConfig;
  jobIds: string[];
  /** What the last scheduling pass held for it; in memory only (every pass recomputes it). */
  outcome?: ReservationOutcome;
}

/** The figures a reservation reports, in slots. */
export interface ReservationFigures {
  used: number;
  held: number;
  /** Part of the minimum neither used nor held. */
  pending: number;
  min: number;
  max: number;
  workerIds: readonly string[];
  /** Why part of the minimum waits (active), or why it ended. */
  message?: string;
}

export class ReservationTable {
  private readonly entries = new Map<string, ReservationEntry>();
  private readonly byRequestId = new Map<string, ReservationEntry>();

  /** Adds a stored reservation (its spec was validated when it was created). */
  add(record: ReservationRecord): ReservationEntry {
    const entry: ReservationEntry = { record, config: validateReservationSpec(record.spec), jobIds: [] };
    this.entries.set(record.reservationId, entry);
    if (record.requestId) this.byRequestId.set(record.requestId, entry);
    return entry;
  }

  /** A job launched into a reservation (at launch, or at load). */
  addJob(job: JobRecord): void {
    if (job.reservationId) this.entries.get(job.reservationId)?.jobIds.push(job.jobId);
  }

  /** The reservation, or a `not_found` error naming it. */
  get(reservationId: string): ReservationEntry {
    if (typeof reservationId !== "string" || reservationId === "") throw new ValidationError("reservationId", "must not be empty");
    const entry = this.entries.get(reservationId);
    if (!entry) throw new FlusterError(`reservation ${reservationId} not found`, "not_found");
    return entry;
  }

  find(reservationId: string): ReservationEntry | undefined {
    return this.entries.get(reservationId);
  }

  byRequest(requestId: string): ReservationEntry | undefined {
    return this.byRequestId.get(requestId);
  }

  /**
   * The reservation a job may be launched into, in `namespace`: an unknown,
   * ended or foreign one is `failed_precondition` naming it (the job would
   * otherwise wait for room nobody holds for it).
   */
  forLaunch(reservationId: string, namespace: string): ReservationEntry {
    const entry = this.entries.get(reservationId);
    if (!entry) throw new FlusterError(`reservation ${reservationId} not found: launch into an active reservation, or without one`, "failed_precondition");
    const { record } = entry;
    if (record.state !== "active") {
      throw new FlusterError(`reservation ${reservationId} is ${record.state}${record.message ? ` (${record.message})` : ""}: it holds nothing for new jobs`, "failed_precondition");
    }
    if (record.namespace !== namespace) {
      throw new FlusterError(`reservation ${reservationId} belongs to namespace ${record.namespace}, not ${namespace}`, "failed_precondition");
    }
    return entry;
  }

  active(): ReservationEntry[] {
    return [...this.entries.values()].filter((e) => e.record.state === "active");
  }

  /** Reservations matching `filter`, newest first. */
  list(filter: ReservationFilter = {}): ReservationEntry[] {
    const namespace = filter.namespace || DEFAULT_NAMESPACE;
    const out: ReservationEntry[] = [];
    for (const entry of this.entries.values()) {
      if (!filter.allNamespaces && entry.record.namespace !== namespace) continue;
      if (!filter.includeEnded && entry.record.state !== "active") continue;
      out.push(entry);
    }
    return out.sort((a, b) => b.record.seq - a.record.seq);
  }

  /** Keeps a pass's outcomes (reservations it did not see keep none). */
  noteOutcomes(outcomes: ReadonlyMap<string, ReservationOutcome>): void {
    for (const entry of this.entries.values()) {
      const outcome = outcomes.get(entry.record.reservationId);
      if (outcome) entry.outcome = outcome;
      else delete entry.outcome;
    }
  }
}

/** What an active reservation asks of a scheduling pass. */
export function reservationDemand(entry: ReservationEntry, jobs: readonly JobRecord[]): ReservationDemand {
  const { config, record } = entry;
  const active = activeTasks(jobs);
  return {
    reservationId: record.reservationId,
    priority: config.priority,
    sequence: record.seq,
    shape: slotShape(config),
    holdCount: Math.max(0, config.minResources.replicas - active),
    maxTasks: config.maxResources.replicas,
    activeTasks: active,
    preemptible: config.preemptible,
  };
}

/** Used, held and pending slots; an ended reservation holds nothing and waits for nothing. */
export function reservationFigures(entry: ReservationEntry, jobs: readonly JobRecord[]): ReservationFigures {
  const { config, record, outcome } = entry;
  const min = config.minResources.replicas;
  const max = config.maxResources.replicas;
  const used = activeTasks(jobs);
  if (record.state !== "active") return { used, held: 0, pending: 0, min, max, workerIds: [], ...(record.message ? { message: record.message } : {}) };
  const held = outcome?.held ?? 0;
  const pending = Math.max(0, min - used - held);
  const message = outcome?.reason ?? (outcome === undefined && pending > 0 ? "waiting for a scheduling pass" : undefined);
  return { used, held, pending, min, max, workerIds: outcome?.workerIds ?? [], ...(message ? { message } : {}) };
}

/** What {@link Reservations} needs of the controller. */
export interface ReservationsDeps {
  store: Pick<StateStore, "defer" | "transaction" | "keep" | "saveReservation">;
  /** The controller's jobs (the ledger's table), to find a reservation's. */
  jobs: Pick<JobTable, "find">;
  now: () => number;
  /** The next submission sequence number. */
  nextSeq: () => number;
  maxReplicas: number;
  /** Where expiries are logged. */
  logger: Logger;
  /** Asks for a scheduling pass (see Controller.requestSchedule). */
  requestSchedule: (capacityChanged?: boolean) => void;
  /** Runs a change the controller makes on its own (see Controller.background). */
  background: (change: () => void) => void;
}

/**
 * The controller's reservations: creation, reads, release and expiry, and
 * what a scheduling pass is asked and keeps. The controller checks it is
 * running before it delegates here.
 */
export class Reservations {
  /** Reservations (the table above). */
  private readonly reservations = new ReservationTable();
  /** Reservation creations with a request id whose commit is under way. */
  private readonly reservationCreating = new Map<string, Promise<ReservationRecord>>();

  constructor(private readonly deps: ReservationsDeps) {}

  /** A stored reservation, at load. */
  add(record: ReservationRecord): void {
    this.reservations.add(record);
  }

  /** A job launched into a reservation (at launch, or at load). */
  addJob(job: JobRecord): void {
    this.reservations.addJob(job);
  }

  /** See {@link ReservationTable.forLaunch}. */
  forLaunch(reservationId: string, namespace: string): ReservationEntry {
    return this.reservations.forLaunch(reservationId, namespace);
  }

  /** Creates a reservation, durably; a retry with the same request id gets the first one. */
  async create(spec: ReservationSpec | undefined, options: { namespace?: string; requestId?: string } = {}): Promise<ReservationRecord> {
    const { store } = this.deps;
    const { requestId } = options;
    const existing = requestId ? (this.reservations.byRequest(requestId)?.record ?? this.reservationCreating.get(requestId)) : undefined;
    if (existing) return existing;
    const create = (async () => {
      const config = validateReservationSpec(spec, this.deps.maxReplicas);
      const namespace = namespaceFor(options.namespace, undefined);
      const now = this.deps.now();
      const record: ReservationRecord = {
        reservationId: `reservation-${randomUUID().slice(0, 12)}`,
        namespace,
        spec: spec as ReservationSpec,
        state: "active",
        createdAt: now,
        expiresAt: now + config.ttlSeconds * 1000,
        seq: this.deps.nextSeq(),
        ...(requestId ? { requestId } : {}),
      };
      await store.defer(() => store.saveReservation(record));
      this.reservations.add(record);
      this.deps.requestSchedule();
      return record;
    })();
    if (requestId) {
      this.reservationCreating.set(requestId, create);
      const forget = () => void this.reservationCreating.delete(requestId);
      create.then(forget, forget);
    }
    return create;
  }

  get(reservationId: string): ReservationRecord {
    return this.reservations.get(reservationId).record;
  }

  find(reservationId: string): ReservationRecord | undefined {
    return this.reservations.find(reservationId)?.record;
  }

  /** The reservation a creation with this request id made, if any. */
  findByRequest(requestId: string): ReservationRecord | undefined {
    return this.reservations.byRequest(requestId)?.record;
  }

  list(filter: ReservationFilter = {}): ReservationRecord[] {
    return this.reservations.list(filter).map((e) => e.record);
  }

  /** Used, held and pending slots of a reservation, with its jobs. */
  figures(reservationId: string): ReservationFigures & { jobIds: readonly string[] } {
    const entry = this.reservations.get(reservationId);
    return { ...reservationFigures(entry, this.jobsOfReservation(entry)), jobIds: entry.jobIds };
  }

  private jobsOfReservation(entry: ReservationEntry): JobRecord[] {
    return entry.jobIds.map((id) => this.deps.jobs.find(id)).filter((j): j is JobRecord => j !== undefined);
  }

  /** Ends a reservation now: it holds nothing more, its jobs run on as ordinary jobs. Releasing an ended one changes nothing. */
  release(reservationId: string, reason: string): ReservationRecord {
    const entry = this.reservations.get(reservationId);
    if (entry.record.state !== "active") return entry.record;
    this.endReservation(entry, "released", reason || "released by request");
    return entry.record;
  }

  private endReservation(entry: ReservationEntry, state: "expired" | "released", message: string): void {
    const { record } = entry;
    const { store } = this.deps;
    store.transaction(() => {
      store.keep(record);
      record.state = state;
      record.message = message;
      record.endedAt = this.deps.now();
      store.saveReservation(record);
    });
    delete entry.outcome;
    // The room it held is free for others now.
    this.deps.requestSchedule();
  }

  /** Reservations past their TTL expire (one log line each). */
  expire(now: number): void {
    for (const entry of this.reservations.active()) {
      if (now < entry.record.expiresAt) continue;
      this.deps.background(() => {
        this.endReservation(entry, "expired", `expired after its TTL of ${entry.config.ttlSeconds}s`);
        const { reservationId, namespace } = entry.record;
        this.deps.logger.info(
          { event: "reservation_expired", reservationId, namespace, ttlSeconds: entry.config.ttlSeconds },
          `reservation ${reservationId} (namespace ${namespace}) expired after its TTL of ${entry.config.ttlSeconds}s`,
        );
      });
    }
  }

  /** What each active reservation asks of a scheduling pass. */
  demands(): ReservationDemand[] {
    return this.reservations.active().map((entry) => reservationDemand(entry, this.jobsOfReservation(entry)));
  }

  /** Keeps what a pass held for each reservation, for GetReservation (in memory: every pass recomputes it). */
  noteOutcomes(outcomes: ReadonlyMap<string, ReservationOutcome>): void {
    this.reservations.noteOutcomes(outcomes);
  }

  /** Whether the reservation exists and is active (a job launched into it is placed in its room). */
  isActive(reservationId: string): boolean {
    return this.reservations.find(reservationId)?.record.state === "active";
  }
}
