// Job groups (co-located jobs launched all-or-nothing) and reservations
// (resources held for jobs that come and go, within a min/max).
import { ValidationError, describeValue } from "./errors.js";
import type { JobId, Namespace } from "./job.js";
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

/** A reservation as last observed. */
export interface ReservationInfo {
  reservationId: ReservationId;
  allocatedResources: ResourceConfig;
  pendingResources: ResourceConfig;
  jobs: JobId[];
  expiresAt: Date;
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
