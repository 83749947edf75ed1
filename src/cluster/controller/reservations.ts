// Reservations: capacity held between a minimum and a maximum for jobs that
// come and go, until a TTL or a release. The table, the validation of a
// ReservationSpec from the wire, what each active reservation asks of a
// scheduling pass, and the figures a reservation reports.
import { FlusterError, ValidationError } from "../../core/errors.js";
import { validateReservationConfig, type ValidatedReservationConfig } from "../../core/reservation.js";
import { isFinished } from "../../core/status.js";
import { resourcesFromProto } from "../../rpc/convert.js";
import type { ReservationSpec } from "../../rpc/gen/fluster/cluster/v1/controller_pb.js";
import { DEFAULT_NAMESPACE } from "./endpoints.js";
import type { JobRecord, ReservationRecord } from "./model.js";
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
