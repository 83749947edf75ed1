// Job groups (co-located jobs launched all-or-nothing) and reservations
// (resources held for jobs that come and go, within a min/max).
import { ValidationError, describeValue } from "./errors.js";
import type { JobId, Namespace } from "./job.js";
import type { JobStatus } from "./status.js";
import { ResourceConfig, checkResourceRange, type ResourceConfigInit } from "./resources.js";
import { checkBoolean, checkInteger, checkString } from "./validate.js";

export type ReservationId = string;

/** Jobs scheduled together, with locality guarantees. */
export interface JobGroupConfig {
  name: string;
  /** Namespace for the whole group. @default the client's namespace */
  namespace?: Namespace;
  /** Place every job in one region. @default true */
  sameRegion?: boolean;
  /** Place every job in one zone. @default false */
  sameZone?: boolean;
}

/** Resources to hold for upcoming jobs. */
export interface ReservationConfig {
  minResources: ResourceConfig | ResourceConfigInit;
  maxResources: ResourceConfig | ResourceConfigInit;
  /** Higher reservations are filled first. @default 0 */
  priority?: number;
  /** Released automatically after this long. @default 3600 */
  ttlSeconds?: number;
  /** @default true */
  preemptible?: boolean;
}

export interface ValidatedReservationConfig {
  readonly minResources: ResourceConfig;
  readonly maxResources: ResourceConfig;
  readonly priority: number;
  readonly ttlSeconds: number;
  readonly preemptible: boolean;
}

/**
 * - `active`: holds capacity (or waits for room) until its TTL or a release.
 * - `expired`: its TTL passed; it holds nothing, its jobs run on as ordinary jobs.
 * - `released`: released by request; likewise.
 */
export type ReservationState = "active" | "expired" | "released";

/**
 * A reservation as last observed. Amounts are in slots of `minResources`'
 * per-task shape: `allocatedResources` has `replicas` = used + held,
 * `pendingResources` the part of the minimum not held yet (no room now).
 */
export interface ReservationInfo {
  reservationId: ReservationId;
  allocatedResources: ResourceConfig;
  pendingResources: ResourceConfig;
  /** Jobs launched into it, oldest first. */
  jobs: JobId[];
  expiresAt: Date;
  state: ReservationState;
  /** Why it ended, or why part of its minimum waits. */
  message?: string;
  /** Active tasks of its jobs. */
  usedReplicas: number;
  /** Slots held for it and not used by its jobs yet. */
  heldReplicas: number;
  minReplicas: number;
  maxReplicas: number;
  priority: number;
  preemptible: boolean;
  createdAt: Date;
  namespace: Namespace;
}

/** A job group as last observed. */
export interface JobGroupInfo {
  groupId: string;
  name: string;
  namespace: Namespace;
  /**
   * Rolled up from its jobs: `pending` until every job has been placed;
   * `failed` or `unschedulable` as soon as one job is (the others are then
   * killed: a group is a unit); once all have ended, `succeeded` if all
   * did, else `killed` (a job stopped on request ends alone); otherwise
   * `running` (or `building`).
   */
  status: JobStatus;
  /** In launch order. */
  jobIds: JobId[];
  reservationId?: ReservationId;
  sameRegion: boolean;
  sameZone: boolean;
  /** Why it waits, from its first waiting job. */
  pendingReason?: string;
  errorMessage?: string;
  createdAt: Date;
  finishedAt?: Date;
}

export function validateJobGroupConfig(group: unknown): Required<Omit<JobGroupConfig, "namespace">> & Pick<JobGroupConfig, "namespace"> {
  if (group === null || typeof group !== "object") throw new ValidationError("group", `must be a JobGroupConfig, got ${describeValue(group)}`);
  const g = group as Record<string, unknown>;
  return Object.freeze({
    name: checkString(g.name, "group.name", { nonEmpty: true }),
    ...(g.namespace !== undefined ? { namespace: checkString(g.namespace, "group.namespace", { nonEmpty: true }) } : {}),
    sameRegion: checkBoolean(g.sameRegion ?? true, "group.sameRegion"),
    sameZone: checkBoolean(g.sameZone ?? false, "group.sameZone"),
  });
}

/** Validates a reservation: both bounds valid, minimum ≤ maximum in every dimension. */
export function validateReservationConfig(config: unknown): ValidatedReservationConfig {
  if (config === null || typeof config !== "object") {
    throw new ValidationError("reservation", `must be a ReservationConfig, got ${describeValue(config)}`);
  }
  const c = config as Record<string, unknown>;
  const toResources = (value: unknown, field: string) =>
    value instanceof ResourceConfig ? value : new ResourceConfig((value ?? {}) as ResourceConfigInit, field);
  const minResources = toResources(c.minResources, "minResources");
  const maxResources = toResources(c.maxResources, "maxResources");
  checkResourceRange(minResources, maxResources, "minResources", "maxResources");
  return Object.freeze({
    minResources,
    maxResources,
    priority: checkInteger(c.priority ?? 0, "priority", Number.MIN_SAFE_INTEGER),
    ttlSeconds: checkInteger(c.ttlSeconds ?? 3600, "ttlSeconds", 1),
    preemptible: checkBoolean(c.preemptible ?? true, "preemptible"),
  });
}

/**
 * `shape` counted in slots: `replicas` is `slots`, which may be 0. The
 * rules of a launch (at least one replica, a TPU's hosts × slices) do not
 * apply to a count of held or pending slots.
 */
export function slotResources(shape: ResourceConfig, slots: number): ResourceConfig {
  const counted = Object.assign(Object.create(ResourceConfig.prototype) as ResourceConfig, { ...shape, replicas: slots });
  return Object.freeze(counted);
}
