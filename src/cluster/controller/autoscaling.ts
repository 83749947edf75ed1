// The controller's autoscaler loop: each round it brings VM states up to
// date (workers registered, boots timed out, workers lost), asks the pure
// decision (autoscaler/decide.ts) what to allocate and release, and applies
// it through the platforms. Every VM is stored before its platform is asked,
// and a periodic sync with each platform adopts what a previous controller
// asked for, notices VMs the platform took back (preemption), and releases
// VMs nobody knows of, so a controller restart leaks none.
import { randomUUID } from "node:crypto";
import type { BackoffOptions } from "../../core/backoff.js";
import { FlusterError } from "../../core/errors.js";
import type { Logger } from "../../core/logger.js";
import { ALLOCATION_BACKOFF, backoffAfterFailure } from "../autoscaler/backoff.js";
import { decideScaling } from "../autoscaler/decide.js";
import type { GroupBackoff, GroupStatus, PendingDemand, ScaleGroup, ScalingDecision, VmRecord } from "../autoscaler/types.js";
import { workerLabels, type Platform, type Vm, type WorkerBootstrap } from "../platform/types.js";
import type { ManagedVmRecord } from "./model.js";
import type { PendingJob, ReservationDemand, ReservationOutcome } from "./scheduler/index.js";
import type { StateStore } from "./store.js";

/** Options of the controller's autoscaler. */
export interface AutoscalingOptions {
  /** The scale groups, in the order demand tries them. */
  groups: readonly ScaleGroup[];
  /** The platform of each name the groups use. */
  platforms: ReadonlyMap<string, Platform>;
  /** How a VM's workers reach the controller (its URL, token, CA); labels are added per VM. Read when a VM is asked for. */
  bootstrap: () => Omit<WorkerBootstrap, "labels">;
  /** A VM whose workers have not all registered this long after it was requested fails and is released. @default 600_000 (10 min) */
  bootTimeoutMs?: number;
  /** How often each platform is asked for its VMs (adoption, preemption, leaks). @default 10_000 */
  syncIntervalMs?: number;
  /** How long one `allocate` or `release` call may take. @default 600_000 */
  platformCallTimeoutMs?: number;
  /** Delays between a group's failed allocations. @default ALLOCATION_BACKOFF (10 s doubling to 10 min, 20% jitter) */
  allocationBackoff?: BackoffOptions;
}

/** What the autoscaler needs of the controller. */
export interface AutoscalingHost {
  store: StateStore;
  now: () => number;
  logger: Logger;
  /** A live worker's active attempts, or undefined when no live worker has this id. */
  workerLoad(workerId: string): number | undefined;
  /** The worker takes no new attempts (its VM is being released). */
  drainWorker(workerId: string): void;
  /** The worker is gone with its VM: its attempts are retried elsewhere now, not after the grace period. */
  forgetWorker(workerId: string, reason: string): void;
  /** Runs a change of durable state the way the controller's own changes run (a failed write is retried later). */
  background(change: () => void): void;
}

/** A round's input from the scheduler: what waits for room, and which workers hold reservation slots. */
export interface AutoscalingDemand {
  demand: readonly PendingDemand[];
  /** Workers holding reservation slots: their VMs are never idle. */
  slotHolders: ReadonlySet<string>;
}

const LIVE_STATES = new Set<ManagedVmRecord["state"]>(["requested", "booting", "ready", "draining"]);
/** Ended VMs are listed for this long, then forgotten. */
const ENDED_RETENTION_MS = 24 * 3600_000;

/** A job's pending tasks as the autoscaler's demand. */
export function jobDemand(job: PendingJob): PendingDemand {
  return {
    kind: "job",
    id: job.jobId,
    demand: job.demand,
    taskCount: job.taskIndexes.length,
    constraints: job.constraints.filter((c) => !c.preferred),
    preemptible: job.preemptible,
    ...(job.regions?.length ? { regions: job.regions } : {}),
    ...(job.zone !== undefined ? { zone: job.zone } : {}),
    gang: job.gang || job.sameRegion === true || job.sameZone === true || job.groupId !== undefined,
    priority: job.priority,
  };
}

/** A reservation's unheld minimum as the autoscaler's demand, or undefined when it is all held. */
export function reservationDemand(reservation: ReservationDemand, outcome: ReservationOutcome | undefined): PendingDemand | undefined {
  const short = reservation.holdCount - (outcome?.held ?? 0) - (outcome?.placedTasks ?? 0);
  if (short <= 0) return undefined;
  return { kind: "reservation", id: reservation.reservationId, demand: reservation.shape, taskCount: short, constraints: [], preemptible: reservation.preemptible };
}

export class Autoscaling {
  private readonly groups: readonly ScaleGroup[];
  private readonly groupByName: ReadonlyMap<string, ScaleGroup>;
  private readonly vms = new Map<string, ManagedVmRecord>();
  /** Ready VMs running nothing, since when (in memory: a restarted controller starts counting again). */
  private readonly idleSince = new Map<string, number>();
  private readonly backoff: Record<string, GroupBackoff> = {};
  /** VMs with an allocate or release call under way: a sync leaves them alone. */
  private readonly inFlight = new Set<string>();
  private readonly bootTimeoutMs: number;
  private readonly syncIntervalMs: number;
  private readonly callTimeoutMs: number;
  private readonly backoffPolicy: Readonly<Required<BackoffOptions>>;
  private lastDecision: ScalingDecision | undefined;
  private lastSyncAt = Number.NEGATIVE_INFINITY;
  private syncing = false;
  private stopped = false;

  constructor(
    private readonly options: AutoscalingOptions,
    private readonly host: AutoscalingHost,
  ) {
    this.groups = options.groups;
    this.groupByName = new Map(options.groups.map((g) => [g.name, g]));
    for (const group of options.groups) {
      if (!options.platforms.has(group.platform)) throw new FlusterError(`scale group ${group.name} names platform ${group.platform}, which was not built`, "invalid_argument");
    }
    this.bootTimeoutMs = options.bootTimeoutMs ?? 600_000;
    this.syncIntervalMs = options.syncIntervalMs ?? 10_000;
    this.callTimeoutMs = options.platformCallTimeoutMs ?? 600_000;
    this.backoffPolicy = { ...ALLOCATION_BACKOFF, ...options.allocationBackoff };
  }

  /** Whether any scale group is configured. */
  get enabled(): boolean {
    return this.groups.length > 0;
  }

  /**
   * Takes the VMs a previous controller stored and resumes what it was doing:
   * a VM still `requested` is asked for again (allocate is idempotent on the
   * vm id, so one the platform already made is found, not made twice), one
   * `draining` is released again. The first sync follows at the next round.
   */
  load(vms: readonly ManagedVmRecord[]): void {
    for (const vm of vms) this.vms.set(vm.vmId, vm);
    for (const vm of vms) {
      if (vm.state === "requested") this.allocate(vm);
      else if (vm.state === "draining") this.callRelease(vm, vm.reason ?? "released");
    }
  }

  /** Every VM known, oldest first (ended ones for a day). */
  list(): ManagedVmRecord[] {
    return [...this.vms.values()].map((vm) => ({ ...vm }));
  }

  /** Each group with its status after the last round, in config order. */
  groupStatuses(): Array<{ group: ScaleGroup; status: GroupStatus }> {
    return this.groups.map((group, i) => ({
      group,
      status: this.lastDecision?.groups[i] ?? { group: group.name, vms: { requested: 0, booting: 0, ready: 0, draining: 0 }, allocate: 0, release: 0, waitingTasks: 0, reason: "not decided yet" },
    }));
  }

  /**
   * One round at `now`: VM states brought up to date, one decision, its
   * actions started (their platform calls finish in the background), and a
   * platform sync when one is due. Returns the decision.
   */
  step(now: number, input: AutoscalingDemand): ScalingDecision {
    this.refresh(now, input.slotHolders);
    const vms: VmRecord[] = [];
    for (const vm of this.vms.values()) {
      if (!LIVE_STATES.has(vm.state)) continue;
      const idle = this.idleSince.get(vm.vmId);
      vms.push({ vmId: vm.vmId, group: vm.group, state: vm.state, since: vm.since, ...(idle !== undefined ? { idleSince: idle } : {}) });
    }
    const decision = decideScaling({ groups: this.groups, vms, demand: input.demand, backoff: this.backoff }, now);
    this.lastDecision = decision;
    for (const action of decision.actions) {
      if (action.type === "allocate") {
        const group = this.groupByName.get(action.group) as ScaleGroup;
        this.host.logger.info(
          { event: "vms_allocating", group: group.name, count: action.count, reason: action.reason },
          `scale group ${group.name}: allocating ${action.count} VM(s): ${action.reason}`,
        );
        for (let i = 0; i < action.count; i++) this.requestVm(group, now);
      } else {
        const vm = this.vms.get(action.vmId);
        if (vm) this.release(vm, action.reason);
      }
    }
    if (now - this.lastSyncAt >= this.syncIntervalMs && !this.syncing) {
      this.lastSyncAt = now;
      void this.sync();
    }
    return decision;
  }

  /**
   * Releases every live VM and waits for the platforms to confirm (a
   * LocalCluster's shutdown: its VMs end with it). A `controller serve`
   * never does this: its VMs outlive a restart and are adopted.
   */
  async releaseAll(reason: string): Promise<void> {
    const releases: Array<Promise<void>> = [];
    for (const vm of this.vms.values()) {
      if (!LIVE_STATES.has(vm.state)) continue;
      const platform = this.options.platforms.get(vm.platform);
      if (!platform) continue;
      for (const workerId of vm.workerIds) this.host.drainWorker(workerId);
      releases.push(
        platform.release(vm.vmId, AbortSignal.timeout(this.callTimeoutMs)).then(
          () => this.update(vm, { state: "released", since: this.host.now(), reason }),
          (err: unknown) => this.host.logger.warn({ event: "vm_release_failed", vmId: vm.vmId, error: (err as Error).message }, `releasing VM ${vm.vmId} failed: ${(err as Error).message}`),
        ),
      );
    }
    await Promise.all(releases);
  }

  /** Stops starting platform calls; calls under way finish on their own. */
  stop(): void {
    this.stopped = true;
  }

  /** Asks every platform once for its VMs now (also run every `syncIntervalMs`); resolves when done. */
  async sync(): Promise<void> {
    if (this.syncing) return;
    this.syncing = true;
    try {
      const used = new Set<string>([...this.groups.map((g) => g.platform), ...[...this.vms.values()].filter((v) => LIVE_STATES.has(v.state)).map((v) => v.platform)]);
      for (const name of used) {
        const platform = this.options.platforms.get(name);
        if (platform && !this.stopped) await this.syncPlatform(platform);
      }
      const forgetBefore = this.host.now() - ENDED_RETENTION_MS;
      for (const vm of [...this.vms.values()]) if (!LIVE_STATES.has(vm.state) && vm.since < forgetBefore) this.vms.delete(vm.vmId);
      this.host.background(() => this.host.store.deleteEndedVms(forgetBefore));
    } finally {
      this.syncing = false;
    }
  }

  // ---------------------------------------------------------------- states

  /** Registered workers make VMs ready; boots time out; a ready VM whose worker is gone failed; idle time is counted. */
  private refresh(now: number, slotHolders: ReadonlySet<string>): void {
    for (const vm of this.vms.values()) {
      if (vm.state === "requested" || vm.state === "booting") {
        const registered = vm.workerIds.length > 0 && vm.workerIds.every((id) => this.host.workerLoad(id) !== undefined);
        if (vm.state === "booting" && registered) {
          this.update(vm, { state: "ready", since: now });
          this.host.logger.info({ event: "vm_ready", vmId: vm.vmId, group: vm.group, bootMs: now - vm.createdAt }, `VM ${vm.vmId} (${vm.group}) is ready: its worker registered ${((now - vm.createdAt) / 1000).toFixed(1)} s after it was asked for`);
        } else if (now - vm.createdAt > this.bootTimeoutMs && !this.inFlight.has(vm.vmId)) {
          this.fail(vm, `its worker did not register within ${Math.round(this.bootTimeoutMs / 1000)} s of the request`);
        }
      } else if (vm.state === "ready") {
        const loads = vm.workerIds.map((id) => this.host.workerLoad(id));
        if (loads.some((load) => load === undefined)) {
          this.fail(vm, "its worker was lost");
          continue;
        }
        const idle = loads.every((load) => load === 0) && !vm.workerIds.some((id) => slotHolders.has(id));
        if (!idle) this.idleSince.delete(vm.vmId);
        else if (!this.idleSince.has(vm.vmId)) this.idleSince.set(vm.vmId, now);
      }
    }
  }

  private update(vm: ManagedVmRecord, change: Partial<ManagedVmRecord>): void {
    this.host.background(() =>
      this.host.store.transaction(() => {
        this.host.store.keep(vm);
        Object.assign(vm, change);
        this.host.store.saveVm(vm);
      }),
    );
    if (vm.state !== "ready") this.idleSince.delete(vm.vmId);
  }

  // ---------------------------------------------------------------- allocation

  private requestVm(group: ScaleGroup, now: number): void {
    const vmId = newVmId(group.name);
    const vm: ManagedVmRecord = { vmId, group: group.name, platform: group.platform, state: "requested", since: now, createdAt: now, workerIds: [vmId] };
    // Stored before the platform is asked: a controller that dies in between finds it and asks again.
    this.host.background(() => this.host.store.transaction(() => this.host.store.saveVm(vm)));
    this.vms.set(vmId, vm);
    this.allocate(vm);
  }

  private allocate(vm: ManagedVmRecord): void {
    const group = this.groupByName.get(vm.group);
    const platform = this.options.platforms.get(vm.platform);
    if (!group || !platform) {
      this.fail(vm, group ? `platform ${vm.platform} is not configured` : `scale group ${vm.group} is no longer configured`);
      return;
    }
    if (this.stopped) return;
    this.inFlight.add(vm.vmId);
    const request = { vmId: vm.vmId, group, worker: { ...this.options.bootstrap(), labels: workerLabels(vm.vmId, group) } };
    platform.allocate(request, AbortSignal.timeout(this.callTimeoutMs)).then(
      (answer) => {
        this.inFlight.delete(vm.vmId);
        delete this.backoff[vm.group];
        if (vm.state !== "requested") {
          // Given up on while the platform worked (a boot timeout): not kept.
          this.callRelease(vm, vm.reason ?? "no longer wanted");
          return;
        }
        if (answer.state === "failed" || answer.state === "terminated") {
          this.fail(vm, answer.reason ?? `the platform reports it ${answer.state}`);
          return;
        }
        this.update(vm, { state: "booting", since: this.host.now(), ...platformFields(answer) });
      },
      (err: unknown) => {
        this.inFlight.delete(vm.vmId);
        const message = FlusterError.from(err, "unavailable").message;
        this.backoff[vm.group] = backoffAfterFailure(this.backoff[vm.group], this.host.now(), message, Math.random, this.backoffPolicy);
        const next = this.backoff[vm.group] as GroupBackoff;
        this.host.logger.warn(
          { event: "vm_allocation_failed", vmId: vm.vmId, group: vm.group, error: message, failures: next.consecutiveFailures, retryAt: new Date(next.nextAttemptAt).toISOString() },
          `scale group ${vm.group}: allocating VM ${vm.vmId} failed: ${message}; the group backs off until ${new Date(next.nextAttemptAt).toISOString()}`,
        );
        if (vm.state === "requested" || vm.state === "booting") this.update(vm, { state: "failed", since: this.host.now(), reason: `allocation failed: ${message}` });
      },
    );
  }

  // ---------------------------------------------------------------- release and failure

  /** Starts giving a VM back: its workers take nothing new, and it is released once the platform confirms. */
  private release(vm: ManagedVmRecord, reason: string): void {
    if (!LIVE_STATES.has(vm.state) || vm.state === "draining") return;
    this.host.logger.info({ event: "vm_releasing", vmId: vm.vmId, group: vm.group, reason }, `releasing VM ${vm.vmId} (${vm.group}): ${reason}`);
    this.update(vm, { state: "draining", since: this.host.now(), reason });
    for (const workerId of vm.workerIds) this.host.drainWorker(workerId);
    this.callRelease(vm, reason);
  }

  private callRelease(vm: ManagedVmRecord, reason: string): void {
    const platform = this.options.platforms.get(vm.platform);
    if (!platform || this.stopped || this.inFlight.has(vm.vmId)) return;
    this.inFlight.add(vm.vmId);
    platform.release(vm.vmId, AbortSignal.timeout(this.callTimeoutMs)).then(
      () => {
        this.inFlight.delete(vm.vmId);
        if (vm.state === "draining") this.update(vm, { state: "released", since: this.host.now(), reason });
        for (const workerId of vm.workerIds) this.host.forgetWorker(workerId, `its VM ${vm.vmId} was released (${reason})`);
      },
      (err: unknown) => {
        this.inFlight.delete(vm.vmId);
        // Left draining (or failed): the next sync releases it again.
        const message = FlusterError.from(err, "unavailable").message;
        this.host.logger.warn({ event: "vm_release_failed", vmId: vm.vmId, group: vm.group, error: message }, `releasing VM ${vm.vmId} failed: ${message}; tried again at the next sync`);
      },
    );
  }

  /** The VM is lost to its group: its workers' attempts are retried now, and whatever the platform still has of it is released. */
  private fail(vm: ManagedVmRecord, reason: string): void {
    if (!LIVE_STATES.has(vm.state)) return;
    this.host.logger.warn({ event: "vm_failed", vmId: vm.vmId, group: vm.group, state: vm.state, reason }, `VM ${vm.vmId} (${vm.group}) failed: ${reason}`);
    this.update(vm, { state: "failed", since: this.host.now(), reason });
    for (const workerId of vm.workerIds) this.host.forgetWorker(workerId, `its VM ${vm.vmId} failed: ${reason}`);
    if (!this.inFlight.has(vm.vmId)) this.callRelease(vm, reason);
  }

  // ---------------------------------------------------------------- platform sync

  private async syncPlatform(platform: Platform): Promise<void> {
    let listed: Vm[];
    try {
      listed = await platform.listVms(AbortSignal.timeout(this.callTimeoutMs));
    } catch (err) {
      const message = FlusterError.from(err, "unavailable").message;
      this.host.logger.warn({ event: "vm_sync_failed", platform: platform.name, error: message }, `listing the VMs of platform ${platform.name} failed: ${message}`);
      return;
    }
    const byId = new Map(listed.map((vm) => [vm.vmId, vm]));
    for (const vm of [...this.vms.values()]) {
      if (vm.platform !== platform.name || !LIVE_STATES.has(vm.state) || this.inFlight.has(vm.vmId)) continue;
      const seen = byId.get(vm.vmId);
      const gone = !seen || seen.state === "terminated" || seen.state === "failed";
      if (vm.state === "requested") {
        // Asked for by a controller that stopped before the platform answered: asked again (idempotent).
        this.allocate(vm);
      } else if (vm.state === "draining") {
        if (gone) {
          this.update(vm, { state: "released", since: this.host.now() });
          for (const workerId of vm.workerIds) this.host.forgetWorker(workerId, `its VM ${vm.vmId} was released`);
        } else this.callRelease(vm, vm.reason ?? "released");
      } else if (gone) {
        this.fail(vm, seen?.reason ?? `platform ${platform.name} no longer has it`);
      } else if (seen.hosts.length > 0 && seen.hosts.map((h) => h.workerId).join() !== vm.workerIds.join()) {
        this.update(vm, platformFields(seen));
      }
    }
    // VMs of this cluster that no live record wants: an allocation that finished after its VM was given up, or a record lost.
    for (const seen of listed) {
      const known = this.vms.get(seen.vmId);
      if (seen.state === "terminated" || (known && LIVE_STATES.has(known.state)) || this.inFlight.has(seen.vmId)) continue;
      this.host.logger.warn(
        { event: "vm_leak_released", vmId: seen.vmId, platform: platform.name, group: seen.group },
        `platform ${platform.name} has VM ${seen.vmId} that no live record of this controller wants; releasing it`,
      );
      this.inFlight.add(seen.vmId);
      platform.release(seen.vmId, AbortSignal.timeout(this.callTimeoutMs)).then(
        () => this.inFlight.delete(seen.vmId),
        () => this.inFlight.delete(seen.vmId),
      );
    }
  }
}

/** What a platform's answer sets on the record: its hosts' worker ids and its platform name. */
function platformFields(vm: Vm): Partial<ManagedVmRecord> {
  return {
    ...(vm.hosts.length > 0 ? { workerIds: vm.hosts.map((h) => h.workerId) } : {}),
    ...(vm.platformId !== undefined ? { platformId: vm.platformId } : {}),
  };
}

/** A new DNS-safe vm id naming its group: `<group>-<8 hex>`, lower case, at most 63 characters. */
export function newVmId(group: string): string {
  let base = group.toLowerCase().replace(/[^a-z0-9-]+/g, "-").replace(/^-+|-+$/g, "");
  if (!/^[a-z]/.test(base)) base = `vm-${base}`;
  return `${base.slice(0, 50).replace(/-+$/, "")}-${randomUUID().slice(0, 8)}`;
}
