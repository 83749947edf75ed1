// The endpoint registry: name → addresses per namespace, the only thing the
// cluster layer knows of services (actors are built on it, SPEC §2). Each
// change is written through to the state store, and seen in memory and
// announced to watchers only once it is committed (see store.ts).
import { EventEmitter } from "node:events";
import { randomBytes } from "node:crypto";
import { FlusterError, ValidationError } from "../../core/errors.js";
import { watchSnapshots } from "../../core/watch.js";
import type { EndpointRecord } from "./model.js";
import type { StateStore } from "./store.js";

export const DEFAULT_NAMESPACE = "default";
const MAX_NAME_LENGTH = 512;
/** The longest TTL: an expiry must stay a valid date (and timestamp) however long it is renewed. */
const MAX_TTL_SECONDS = 365 * 86_400;
/** Endpoints one job may hold at once. */
export const DEFAULT_MAX_ENDPOINTS_PER_JOB = 1000;

export interface RegisterEndpointInput {
  name: string;
  address: string;
  namespace: string;
  /** The job that owns it: the endpoint goes when the job finishes. */
  jobId?: string;
  /** The attempt of `jobId` that owns it: the endpoint goes when the attempt ends. */
  attemptId?: string;
  metadata?: Record<string, string>;
  /** Seconds between renewals before it expires; absent or 0: never. */
  ttlSeconds?: number;
}

export class EndpointRegistry {
  private readonly endpoints = new Map<string, EndpointRecord>();
  private readonly events = new EventEmitter();

  constructor(
    private readonly store: StateStore,
    private readonly now: () => number,
    /** Endpoints one job may hold; one more is refused with `resource_exhausted`. */
    private readonly maxPerJob = DEFAULT_MAX_ENDPOINTS_PER_JOB,
  ) {
    this.events.setMaxListeners(0);
  }

  /** Takes the endpoints loaded from the store at start. */
  load(records: readonly EndpointRecord[]): void {
    for (const e of records) this.endpoints.set(e.endpointId, e);
  }

  /** Validates and stores a new endpoint. The caller checks that its job may own one. */
  register(input: RegisterEndpointInput): EndpointRecord {
    if (typeof input.name !== "string" || input.name.trim() === "") throw new ValidationError("name", "must not be empty");
    if (input.name.length > MAX_NAME_LENGTH) throw new ValidationError("name", `must be at most ${MAX_NAME_LENGTH} characters, got ${input.name.length}`);
    if (typeof input.address !== "string" || input.address.trim() === "") throw new ValidationError("address", "must not be empty");
    if (input.ttlSeconds !== undefined && (!Number.isFinite(input.ttlSeconds) || input.ttlSeconds < 0 || input.ttlSeconds > MAX_TTL_SECONDS)) {
      throw new ValidationError("ttlSeconds", `must be a number from 0 to ${MAX_TTL_SECONDS} (a year), got ${input.ttlSeconds}`);
    }
    if (input.jobId) this.checkRoomFor(input.jobId);
    const now = this.now();
    const endpoint: EndpointRecord = {
      endpointId: `ep-${randomBytes(8).toString("hex")}`,
      name: input.name,
      address: input.address,
      namespace: input.namespace || DEFAULT_NAMESPACE,
      metadata: { ...(input.metadata ?? {}) },
      registeredAt: now,
    };
    if (input.jobId) endpoint.jobId = input.jobId;
    if (input.attemptId) endpoint.attemptId = input.attemptId;
    if (input.ttlSeconds) {
      endpoint.ttlSeconds = input.ttlSeconds;
      endpoint.expiresAt = now + input.ttlSeconds * 1000;
    }
    this.store.saveEndpoint(endpoint);
    this.endpoints.set(endpoint.endpointId, endpoint);
    this.store.onRollback(() => this.endpoints.delete(endpoint.endpointId));
    this.store.afterCommit(() => this.announce(endpoint));
    return endpoint;
  }

  private checkRoomFor(jobId: string): void {
    let held = 0;
    for (const e of this.endpoints.values()) if (e.jobId === jobId) held++;
    if (held >= this.maxPerJob) {
      throw new FlusterError(`job ${jobId} already holds ${held} endpoints, the limit (maxEndpointsPerJob ${this.maxPerJob}): unregister some first`, "resource_exhausted");
    }
  }

  /** Extends TTL endpoints; returns the ids that no longer exist. */
  renew(ids: readonly string[]): string[] {
    const missing: string[] = [];
    const now = this.now();
    this.store.transaction(() => {
      for (const id of ids) {
        const e = this.endpoints.get(id);
        if (!e) missing.push(id);
        else if (e.ttlSeconds) {
          this.store.keep(e);
          e.expiresAt = now + e.ttlSeconds * 1000;
          this.store.saveEndpoint(e);
        }
      }
    });
    return missing;
  }

  /** Removes one endpoint; unknown ids are ignored (removal is idempotent). */
  remove(endpointId: string): void {
    const e = this.endpoints.get(endpointId);
    if (!e) return;
    this.store.deleteEndpoint(endpointId);
    this.endpoints.delete(endpointId);
    this.store.onRollback(() => this.endpoints.set(endpointId, e));
    this.store.afterCommit(() => this.announce(e));
  }

  /** Removes the endpoints a finished job owned. */
  removeOwnedBy(jobId: string): void {
    for (const e of [...this.endpoints.values()]) if (e.jobId === jobId) this.remove(e.endpointId);
  }

  /** Removes the endpoints an ended attempt owned. */
  removeOwnedByAttempt(attemptId: string): void {
    for (const e of [...this.endpoints.values()]) if (e.attemptId === attemptId) this.remove(e.endpointId);
  }

  /** Removes the endpoints whose owning attempt is not live (at start: one that ended or is unknown). */
  removeOwnedByEndedAttempts(isLive: (attemptId: string) => boolean): void {
    for (const e of [...this.endpoints.values()]) if (e.attemptId !== undefined && !isLive(e.attemptId)) this.remove(e.endpointId);
  }

  /** Removes TTL endpoints not renewed in time. */
  expire(): void {
    const now = this.now();
    const expired = [...this.endpoints.values()].filter((e) => e.expiresAt !== undefined && e.expiresAt <= now);
    if (expired.length > 0) this.store.transaction(() => expired.forEach((e) => this.remove(e.endpointId)));
  }

  /** Endpoints registered under exactly `name` in `namespace`, oldest first. */
  /** The endpoint with this id, if it exists. */
  find(endpointId: string): EndpointRecord | undefined {
    return this.endpoints.get(endpointId);
  }

  lookup(name: string, namespace: string): EndpointRecord[] {
    if (typeof name !== "string" || name === "") throw new ValidationError("name", "must not be empty");
    const ns = namespace || DEFAULT_NAMESPACE;
    return [...this.endpoints.values()].filter((e) => e.namespace === ns && e.name === name).sort((a, b) => a.registeredAt - b.registeredAt);
  }

  /** Endpoints whose name starts with `prefix`, in `namespace` or all of them, by name. */
  list(prefix: string, namespace: string, allNamespaces = false): EndpointRecord[] {
    const ns = namespace || DEFAULT_NAMESPACE;
    return [...this.endpoints.values()]
      .filter((e) => (allNamespaces || e.namespace === ns) && e.name.startsWith(prefix))
      .sort((a, b) => a.name.localeCompare(b.name) || a.registeredAt - b.registeredAt);
  }

  /**
   * The endpoints under `name` now and after every change, until `signal`
   * aborts. Changes that arrive while the consumer is busy are folded into
   * one snapshot: a slow watcher sees the latest set, not every step.
   */
  watch(name: string, namespace: string, signal: AbortSignal): AsyncGenerator<EndpointRecord[]> {
    let last: string | undefined;
    return watchSnapshots(this.events, eventName(namespace || DEFAULT_NAMESPACE, name), signal, () => {
      const endpoints = this.lookup(name, namespace);
      const key = endpoints.map((e) => e.endpointId).join(",");
      if (key === last) return undefined;
      last = key;
      return endpoints;
    });
  }

  private announce(e: EndpointRecord): void {
    this.events.emit(eventName(e.namespace, e.name));
  }
}

function eventName(namespace: string, name: string): string {
  return `${namespace}\u0000${name}`;
}
