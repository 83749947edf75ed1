// One scheduling pass: plans per kind of job (its eligible workers, ranked),
// first-fit placement with all-or-nothing gangs, then the pending reasons.
import { take, toNeed, toSlot, type Amounts, type Need, type Slot } from "./amounts.js";
import { Candidates } from "./candidates.js";
import { explain } from "./explain.js";
import { constraintKey, deviceCheck, deviceKey, deviceWords, feasibilityChecks, missingDeviceReason, preferenceChecks } from "./feasibility.js";
import { compareJobs, compareMachines, groupSlots, rankSlots } from "./rank.js";
import { bandRank, Preemptor, type ClaimPart, type Claims } from "./preempt.js";
import { completeSlices, hostIndexOf, placeOnSlices, undoSlices, type Slice } from "./slices.js";
import type { PendingJob, Placement, ReservationDemand, ReservationOutcome, ScheduleResult, SchedulerWorker } from "./types.js";
import { WorkerSet } from "./worker-set.js";

/** Where a kind of job may go: worked out once per pass for every job with the same device, filters and preferences. */
export interface Plan {
  /** Set when no registered worker passes the job's filters. */
  readonly blocked?: string;
  /** Every eligible worker. */
  readonly eligible: Candidates;
  /** One list per region or zone for same-region/zone jobs, else `[eligible]`. */
  readonly groups: readonly Candidates[];
  /** "region" or "zone" for grouped plans. */
  readonly groupedBy?: "region" | "zone";
  /** How reasons name the eligible workers: "worker", "gpu H100 worker", "matching worker". */
  readonly noun: string;
  /** Names the plan: jobs with equal keys share it. */
  readonly key: string;
  /** The eligible workers as a set; absent when blocked. */
  readonly members?: WorkerSet;
}


/** Jobs with equal keys have the same eligible workers in the same order. */
function planKey(job: PendingJob): string {
  let key = `${deviceKey(job.demand)} ${job.preemptible} ${job.sameZone ? "zone" : job.sameRegion ? "region" : "any"}`;
  // Region, zone and constraint text can hold any character: JSON keeps the parts apart.
  if (job.regions?.length) key += ` regions ${JSON.stringify(job.regions)}`;
  if (job.zone !== undefined) key += ` zone ${JSON.stringify(job.zone)}`;
  if (job.slice) key += ` slice ${job.slice.hosts}`;
  for (const c of job.constraints) key += ` ${c.preferred ? "preferred" : "required"} ${constraintKey(c)}`;
  return key;
}

/** A job's outcome in this pass, before reasons are written. */
export interface Outcome {
  job: PendingJob;
  plan: Plan;
  need: Need;
  /** Tasks still unplaced. */
  left: number;
  /** For a gang that did not fit: most of its tasks that fit at once. */
  gangFitted?: number;
  /** For a job on TPU slices that did not fit: why (no whole slice free, or none registered). */
  slices?: { reason: string; never: boolean };
}

/** A reason fixed during placement (a group, a reservation's cap), written instead of explain's. */
interface Fixed {
  reason: string;
  never: boolean;
}

/** One job of a group being placed: the list it fills and what it took, so a failed group is undone. */
interface GroupEntry {
  job: PendingJob;
  candidates: Candidates;
  need: Need;
  cursor: number;
  used: number[];
  /** A slice job's tasks, placed by slice rather than through `candidates`. */
  sliced?: ReadonlyArray<{ taskIndex: number; slot: Slot }>;
}

function compareReservations(a: ReservationDemand, b: ReservationDemand): number {
  return b.priority - a.priority || a.sequence - b.sequence || (a.reservationId < b.reservationId ? -1 : a.reservationId > b.reservationId ? 1 : 0);
}

/** One scheduling pass: the mutable working state behind `schedule()`. */
export class SchedulingPass {
  /** Every worker, smallest machine first. */
  private readonly slots: Slot[];
  /** Workers passing each filter, by filter key; shared by all plans. */
  private readonly sets = new Map<string, WorkerSet>();
  private readonly plans = new Map<string, Plan>();
  /** Per plan and region or zone value, the plan's workers there (for job groups). */
  private readonly local = new Map<string, Candidates>();
  /** Per plan of slice jobs, the complete slices among its workers. */
  private readonly sliceLists = new Map<string, Slice[]>();
  private readonly placements: Placement[] = [];

  constructor(workers: readonly SchedulerWorker[]) {
    const shapes = new Map<string, Readonly<Amounts>>();
    this.slots = [...workers].sort(compareMachines).map((worker, order) => toSlot(worker, order, shapes));
  }

  run(jobs: readonly PendingJob[], reservations: readonly ReservationDemand[] = []): ScheduleResult {
    const sorted = jobs.filter((job) => job.taskIndexes.length > 0).sort(compareJobs);
    const byId = new Map(reservations.map((r) => [r.reservationId, r]));
    /** Tasks placed per reservation in this pass. */
    const placedFor = new Map<string, number>();
    /** Tasks placed per job while serving its reservation: a prefix of its taskIndexes. */
    const placedEarly = new Map<PendingJob, number>();
    const capLeft = (r: ReservationDemand): number => r.maxTasks - r.activeTasks - (placedFor.get(r.reservationId) ?? 0);
    const noteFor = (r: ReservationDemand, n: number): void => void placedFor.set(r.reservationId, (placedFor.get(r.reservationId) ?? 0) + n);

    const groups = new Map<string, PendingJob[]>();
    for (const job of sorted) if (job.groupId !== undefined) groups.set(job.groupId, [...(groups.get(job.groupId) ?? []), job]);
    const groupFailures: Array<{ groupId: string; failed: Outcome; jobs: PendingJob[] }> = [];
    /** Places a group whole now, unless already tried; the tasks of its jobs in `r`, or undefined when it was not placed. */
    const placeGroupFor = (groupId: string, r: ReservationDemand): number | undefined => {
      const members = groups.get(groupId);
      if (!members) return undefined;
      const mine = members.filter((m) => m.reservationId === r.reservationId).reduce((n, m) => n + m.taskIndexes.length, 0);
      // A group too big for what the reservation may still grow by waits for the normal order (and its cap).
      if (mine > capLeft(r)) return undefined;
      groups.delete(groupId);
      const failed = this.placeGroup(members);
      if (!failed) return mine;
      groupFailures.push({ groupId, failed, jobs: members });
      return undefined;
    };

    // 1. Reservations, highest first: their own jobs (a group launched into
    // one goes whole, at its first job's turn), then holds on the room left.
    const holds: Array<{ r: ReservationDemand; want: number; held: number; workerIds: string[]; outcome?: Outcome; blocked?: string }> = [];
    for (const r of [...reservations].sort(compareReservations)) {
      let placed = 0;
      for (const job of sorted) {
        if (job.reservationId !== r.reservationId) continue;
        const cap = capLeft(r);
        if (placed >= r.holdCount || cap <= 0) break;
        if (job.groupId !== undefined) {
          const n = placeGroupFor(job.groupId, r);
          if (n !== undefined) {
            placed += n;
            noteFor(r, n);
          }
          continue;
        }
        const plan = this.planFor(job);
        if (plan.blocked) continue;
        const whole = job.gang || plan.groupedBy !== undefined;
        const count = whole ? job.taskIndexes.length : Math.min(job.taskIndexes.length, r.holdCount - placed, cap);
        if (count > cap) continue;
        const outcome = this.place({ ...job, taskIndexes: job.taskIndexes.slice(0, count) }, plan, toNeed(job.demand));
        const n = count - outcome.left;
        placedEarly.set(job, n);
        placed += n;
        noteFor(r, n);
      }
      const want = Math.max(0, r.holdCount - placed);
      const shape: PendingJob = { jobId: r.reservationId, priority: "production", sequence: r.sequence, demand: r.shape, taskIndexes: [], gang: false, constraints: [], preemptible: r.preemptible };
      const plan = this.planFor(shape);
      const need = toNeed(r.shape);
      if (plan.blocked) {
        holds.push({ r, want, held: 0, workerIds: [], blocked: plan.blocked });
        continue;
      }
      // A hold takes room like a placement, without an attempt: nothing placed later can use it.
      const used = want > 0 ? this.fill(plan.eligible, need, want) : [];
      const workerIds = used.map((index) => plan.eligible.slots[index]?.worker.workerId ?? "");
      holds.push({ r, want, held: used.length, workerIds, ...(used.length < want ? { outcome: { job: shape, plan, need, left: want - used.length } } : {}) });
    }

    // 2. Every other job (and the rest of reservations' jobs) in band and submission order; a group goes whole at its first job.
    const outcomes: Outcome[] = [];
    const fixed = new Map<string, Fixed>();
    for (const original of sorted) {
      if (original.groupId !== undefined) {
        const members = groups.get(original.groupId);
        if (!members) continue;
        groups.delete(original.groupId);
        const failed = this.placeGroup(members);
        if (failed) groupFailures.push({ groupId: original.groupId, failed, jobs: members });
        continue;
      }
      const job = { ...original, taskIndexes: original.taskIndexes.slice(placedEarly.get(original) ?? 0) };
      if (job.taskIndexes.length === 0) continue;
      const plan = this.planFor(job);
      const need = toNeed(job.demand);
      if (plan.blocked) {
        outcomes.push({ job, plan, need, left: job.taskIndexes.length });
        continue;
      }
      const r = job.reservationId !== undefined ? byId.get(job.reservationId) : undefined;
      if (!r) {
        const outcome = this.place(job, plan, need);
        if (outcome.left > 0) outcomes.push(outcome);
        continue;
      }
      // A reservation's jobs grow to its maximum, never beyond.
      const cap = Math.max(0, capLeft(r));
      const whole = job.gang || plan.groupedBy !== undefined;
      const atMax = `reservation ${r.reservationId} is at its maximum of ${r.maxTasks} tasks`;
      if (cap === 0 || (whole && job.taskIndexes.length > cap)) {
        fixed.set(job.jobId, { reason: atMax, never: false });
        outcomes.push({ job, plan, need, left: job.taskIndexes.length });
        continue;
      }
      const count = Math.min(job.taskIndexes.length, cap);
      const outcome = this.place({ ...job, taskIndexes: job.taskIndexes.slice(0, count) }, plan, need);
      noteFor(r, count - outcome.left);
      const left = job.taskIndexes.length - (count - outcome.left);
      if (left === 0) continue;
      if (outcome.left === 0) fixed.set(job.jobId, { reason: atMax, never: false });
      outcomes.push({ ...outcome, job, left });
    }

    // 3. Preemption for production and interactive tasks still unplaced.
    const claims = this.preempt(outcomes, fixed, groupFailures);

    // Reasons are written after every placement, so the amounts they quote
    // ("most free on any worker") describe the cluster as this pass leaves it.
    const pending = new Map<string, string>();
    const neverFits = new Map<string, string>();
    for (const { groupId, failed, jobs: members } of groupFailures) {
      const groupClaims = members.map((m) => claims?.get(m.jobId)).filter((c): c is Claims => c !== undefined);
      if (groupClaims.length > 0) {
        const total = { victims: 0, waitingOn: [] as string[] };
        for (const c of groupClaims) {
          total.victims += c.victims;
          for (const w of c.waitingOn) if (!total.waitingOn.includes(w)) total.waitingOn.push(w);
        }
        const text = `group ${groupId}: ${waitingReason(total)}`;
        for (const member of members) pending.set(member.jobId, text);
        continue;
      }
      const { reason, never } = explain(failed);
      const text = `group ${groupId}: job ${failed.job.jobId} does not fit: ${reason}`;
      for (const member of members) {
        pending.set(member.jobId, text);
        if (never) neverFits.set(member.jobId, text);
      }
    }
    for (const outcome of outcomes) {
      const id = outcome.job.jobId;
      const claim = claims?.get(id);
      if (claim) {
        pending.set(id, waitingReason(claim));
        continue;
      }
      const { reason, never } = fixed.get(id) ?? explain(outcome);
      pending.set(id, reason);
      if (never) neverFits.set(id, reason);
    }
    const reservationOutcomes = new Map<string, ReservationOutcome>();
    for (const { r, want, held, workerIds, outcome, blocked } of holds) {
      const why = blocked ?? (outcome ? explain(outcome).reason : undefined);
      reservationOutcomes.set(r.reservationId, {
        held,
        workerIds,
        placedTasks: placedFor.get(r.reservationId) ?? 0,
        ...(why !== undefined ? { reason: `${held} of ${want} slots held: ${why}` } : {}),
      });
    }
    return { placements: this.placements, pending, neverFits, preemptions: this.preemptor?.preemptions ?? [], reservations: reservationOutcomes };
  }

  private preemptor?: Preemptor;

  /**
   * Claims room for the unplaced tasks of production and interactive jobs, in
   * job order: room being freed first, else the fewest lower-band victims.
   * A failed group claims for all its jobs at its first job's turn; jobs
   * held back by their reservation's maximum do not preempt. Returns each
   * asking job's claims.
   */
  private preempt(
    outcomes: readonly Outcome[],
    fixed: ReadonlyMap<string, Fixed>,
    groupFailures: ReadonlyArray<{ groupId: string; jobs: PendingJob[] }>,
  ): ReadonlyMap<string, Claims> | undefined {
    // Jobs and failed groups (at their first job) in job order.
    const items: Array<{ first: PendingJob; outcome?: Outcome; group?: { groupId: string; jobs: PendingJob[] } }> = [
      ...outcomes.map((outcome) => ({ first: outcome.job, outcome })),
      ...groupFailures.flatMap((group) => (group.jobs[0] ? [{ first: group.jobs[0], group }] : [])),
    ].sort((a, b) => compareJobs(a.first, b.first));
    for (const { outcome, group } of items) {
      if (group) {
        this.preemptForGroup(group.groupId, group.jobs);
        continue;
      }
      if (!outcome) continue;
      const { job, plan, need, left } = outcome;
      const band = bandRank(job.priority);
      // Preempting for whole slices is not done: a slice job waits for one to be free.
      if (job.slice) continue;
      if (band >= 2 || plan.blocked || fixed.has(job.jobId) || left === 0) continue;
      const members = plan.members;
      if (!members) continue;
      this.preemptor ??= new Preemptor(this.slots);
      const preemptor = this.preemptor;
      if (plan.groupedBy) {
        plan.groups.some((g, i) => {
          const inGroup = new Set(g.slots);
          return preemptor.claim(job.jobId, band, need, left, g.slots, (slot) => inGroup.has(slot), `${plan.key} ${plan.groupedBy ?? ""} ${i}`);
        });
      } else if (job.gang) {
        preemptor.claim(job.jobId, band, need, left, plan.eligible.slots, (slot) => members.has(slot), plan.key);
      } else {
        for (let i = 0; i < left; i++) if (!preemptor.claim(job.jobId, band, need, 1, plan.eligible.slots, (slot) => members.has(slot), plan.key)) break;
      }
    }
    return this.preemptor?.claims;
  }

  /**
   * A group that did not fit claims room for every task of every job, all or
   * none (in one region or zone when asked), each job preempting only bands
   * below its own.
   */
  private preemptForGroup(groupId: string, jobs: readonly PendingJob[]): void {
    if (jobs.every((job) => bandRank(job.priority) >= 2) || jobs.some((job) => job.slice)) return;
    const parts = jobs.map((job) => ({ job, plan: this.planFor(job), need: toNeed(job.demand) }));
    if (parts.some((p) => !p.plan.members)) return;
    this.preemptor ??= new Preemptor(this.slots);
    const preemptor = this.preemptor;
    const owner = `group ${groupId}`;
    const by = jobs.some((j) => j.sameZone) ? ("zone" as const) : jobs.some((j) => j.sameRegion) ? ("region" as const) : undefined;
    const claimParts = (listOf: (plan: Plan) => { slots: readonly Slot[]; key: string }): ClaimPart[] =>
      parts.map(({ job, plan, need }) => {
        const { slots, key } = listOf(plan);
        const members = new Set(slots);
        return { jobId: job.jobId, band: bandRank(job.priority), need, count: job.taskIndexes.length, list: slots, eligible: (slot: Slot) => members.has(slot), eligibleKey: key };
      });
    if (!by) {
      preemptor.claimAll(owner, claimParts((plan) => ({ slots: plan.eligible.slots, key: plan.key })));
      return;
    }
    const values: string[] = [];
    for (const p of parts) for (const slot of p.plan.eligible.slots) if (!values.includes(slot[by])) values.push(slot[by]);
    for (const value of values) {
      const claimed = preemptor.claimAll(owner, claimParts((plan) => ({ slots: this.localCandidates(plan, by, value).slots, key: `${plan.key} ${by} ${JSON.stringify(value)}` })));
      if (claimed) return;
    }
  }

  /**
   * Places every pending task of every job of a group, or none; with a
   * region or zone asked by any of them, all in one, trying each in turn.
   * Returns the outcome of the job that did not fit, or undefined when placed.
   */
  private placeGroup(jobs: readonly PendingJob[]): Outcome | undefined {
    const parts = jobs.map((job) => ({ job, plan: this.planFor(job), need: toNeed(job.demand) }));
    const blocked = parts.find((p) => p.plan.blocked);
    if (blocked) return { ...blocked, left: blocked.job.taskIndexes.length };
    const by = jobs.some((j) => j.sameZone) ? ("zone" as const) : jobs.some((j) => j.sameRegion) ? ("region" as const) : undefined;
    if (!by) {
      const failed = this.tryGroup(parts.map((p) => ({ ...p, candidates: p.plan.eligible })));
      return failed && { ...failed, left: failed.job.taskIndexes.length };
    }
    const values: string[] = [];
    for (const p of parts) for (const slot of p.plan.eligible.slots) if (!values.includes(slot[by])) values.push(slot[by]);
    let first: Outcome | undefined;
    for (const value of values) {
      const failed = this.tryGroup(parts.map((p) => ({ ...p, candidates: this.localCandidates(p.plan, by, value) })));
      if (!failed) return undefined;
      first ??= { ...failed, left: failed.job.taskIndexes.length };
    }
    // Unblocked plans have workers, so some value was tried; the fallback only keeps "not placed" true.
    const [head] = parts;
    return first ?? (head && { ...head, left: head.job.taskIndexes.length });
  }

  /** One try at a group on the given lists; undone whole when a job does not fit. Returns the job that did not. */
  private tryGroup(parts: ReadonlyArray<{ job: PendingJob; plan: Plan; need: Need; candidates: Candidates }>): { job: PendingJob; plan: Plan; need: Need; slices?: Outcome["slices"] } | undefined {
    const entries: GroupEntry[] = [];
    const undo = (): void => {
      for (const entry of entries.reverse()) {
        if (entry.sliced) undoSlices(entry.sliced, entry.need);
        else this.rollback(entry.candidates, entry.used, entry.need, entry.cursor);
      }
      // A slot two lists share was read by each while the group held room there:
      // re-read it everywhere, or a list would keep a too-low maximum and skip it.
      for (const entry of entries) {
        const slots = entry.sliced ? entry.sliced.map((p) => p.slot) : entry.used.map((index) => entry.candidates.slots[index]);
        for (const slot of slots) if (slot) for (const other of entries) other.candidates.refreshSlot(slot);
      }
    };
    for (const part of parts) {
      const { job, candidates, need } = part;
      const cursor = candidates.cursor(need);
      if (job.slice) {
        const result = placeOnSlices(job, job.slice, this.slicesOf(part.plan, job.slice.hosts), need);
        if (!result.placed) {
          undo();
          return { ...part, slices: { reason: result.reason, never: result.never } };
        }
        entries.push({ job, candidates, need, cursor, used: [], sliced: result.placed });
        continue;
      }
      const used = this.fill(candidates, need, job.taskIndexes.length);
      entries.push({ job, candidates, need, cursor, used });
      if (used.length < job.taskIndexes.length) {
        undo();
        return part;
      }
    }
    for (const entry of entries) {
      if (entry.sliced) this.commitSlices(entry.job, entry.sliced);
      else this.commit(entry.job, entry.candidates, entry.used);
    }
    return undefined;
  }

  /** The complete slices among a slice plan's workers, worked out once per plan. */
  private slicesOf(plan: Plan, hosts: number): Slice[] {
    let list = this.sliceLists.get(plan.key);
    if (!list) {
      list = completeSlices(plan.eligible.slots, hosts);
      this.sliceLists.set(plan.key, list);
    }
    return list;
  }

  private commitSlices(job: PendingJob, placed: ReadonlyArray<{ taskIndex: number; slot: Slot }>): void {
    for (const { taskIndex, slot } of placed) this.placements.push({ jobId: job.jobId, taskIndex, workerId: slot.worker.workerId });
  }

  private localCandidates(plan: Plan, by: "region" | "zone", value: string): Candidates {
    const key = `${plan.key} ${by} ${JSON.stringify(value)}`;
    let list = this.local.get(key);
    if (!list) {
      list = new Candidates(plan.eligible.slots.filter((slot) => slot[by] === value));
      this.local.set(key, list);
    }
    return list;
  }

  private place(job: PendingJob, plan: Plan, need: Need): Outcome {
    const count = job.taskIndexes.length;
    if (job.slice) {
      // Room is taken on the slots themselves: the lists' indexes keep upper bounds, as for any slot another list changed.
      const result = placeOnSlices(job, job.slice, this.slicesOf(plan, job.slice.hosts), need);
      if (!result.placed) return { job, plan, need, left: count, slices: { reason: result.reason, never: result.never } };
      this.commitSlices(job, result.placed);
      return { job, plan, need, left: 0 };
    }
    if (!job.gang && !plan.groupedBy) {
      const placed = this.fill(plan.eligible, need, count);
      this.commit(job, plan.eligible, placed);
      return { job, plan, need, left: count - placed.length };
    }
    let gangFitted = 0;
    for (const group of plan.groups) {
      const cursor = group.cursor(need);
      const placed = this.fill(group, need, count);
      if (placed.length === count) {
        this.commit(job, group, placed);
        return { job, plan, need, left: 0 };
      }
      this.rollback(group, placed, need, cursor);
      gangFitted = Math.max(gangFitted, placed.length);
    }
    return { job, plan, need, left: count, gangFitted };
  }

  /** Takes room for up to `count` tasks, first fit; returns the slot indexes used, one per task. */
  private fill(candidates: Candidates, need: Need, count: number): number[] {
    const used: number[] = [];
    const { slots, index: tree } = candidates;
    let from = candidates.cursor(need);
    while (used.length < count) {
      const index = from < slots.length ? tree.findFirst(need, from) : -1;
      const slot = slots[index];
      if (!slot) {
        from = slots.length;
        break;
      }
      take(slot, need, 1);
      tree.refresh(index);
      used.push(index);
      from = index;
    }
    candidates.setCursor(need, from);
    return used;
  }

  /**
   * Gives back a failed gang's space. The cursor returns to where it was:
   * the freed space may fit a later job of the same shape. With nothing
   * placed, nothing changed, and the cursor at the end stays as a memo.
   */
  private rollback(candidates: Candidates, used: readonly number[], need: Need, cursor: number): void {
    if (used.length === 0) return;
    candidates.setCursor(need, cursor);
    for (const index of used) {
      const slot = candidates.slots[index];
      if (!slot) continue;
      take(slot, need, -1);
      candidates.index.refresh(index);
    }
  }

  private commit(job: PendingJob, candidates: Candidates, used: readonly number[]): void {
    used.forEach((index, i) => {
      const slot = candidates.slots[index];
      const taskIndex = job.taskIndexes[i];
      if (slot && taskIndex !== undefined) this.placements.push({ jobId: job.jobId, taskIndex, workerId: slot.worker.workerId });
    });
  }

  private planFor(job: PendingJob): Plan {
    const key = planKey(job);
    let plan = this.plans.get(key);
    if (!plan) {
      plan = this.buildPlan(job, key);
      this.plans.set(key, plan);
    }
    return plan;
  }

  /** Intersects the job's feasibility checks, reporting the first one that leaves no worker. */
  private buildPlan(job: PendingJob, key: string): Plan {
    const { demand } = job;
    const noun = `${deviceWords(demand)}worker`;
    const blocked = (reason: string): Plan => ({ blocked: reason, eligible: new Candidates([]), groups: [], noun, key });
    const device = this.workersPassing(deviceCheck(demand));
    if (device.isEmpty()) return blocked(missingDeviceReason(this.slots.map((s) => s.worker), demand));
    let eligibleSet = device;
    const checks = feasibilityChecks(job, noun);
    const hosts = job.slice?.hosts;
    if (hosts !== undefined) {
      checks.unshift({
        key: `tpu slice hosts ${hosts}`,
        test: (w) => hostIndexOf(w, hosts) !== undefined,
        reason: `no ${noun} is a host of a TPU slice (labels fluster-tpu-slice and fluster-tpu-host): a ${hosts}-host slice's tasks run only on its hosts`,
      });
    }
    for (const check of checks) {
      eligibleSet = eligibleSet.and(this.workersPassing(check));
      if (eligibleSet.isEmpty()) return blocked(check.reason);
    }

    const preferred = preferenceChecks(job).map((check) => this.workersPassing(check));
    const slots = eligibleSet.members(this.slots);
    const ordered = rankSlots(slots, preferred);
    const eligible = new Candidates(ordered);
    const groupedBy = job.sameZone ? ("zone" as const) : job.sameRegion ? ("region" as const) : undefined;
    const groups = groupedBy ? groupSlots(ordered, groupedBy).map((g) => new Candidates(g)) : [eligible];
    const filtered = slots.length < device.size();
    return { eligible, groups, noun: filtered ? `matching ${noun}` : noun, key, members: eligibleSet, ...(groupedBy ? { groupedBy } : {}) };
  }

  /** Workers passing one check; each check is evaluated once per pass. */
  private workersPassing(check: { key: string; test: (worker: SchedulerWorker) => boolean }): WorkerSet {
    let set = this.sets.get(check.key);
    if (!set) {
      set = WorkerSet.where(this.slots, check.test);
      this.sets.set(check.key, set);
    }
    return set;
  }
}

/** Why a job that claimed room waits: the attempts preempted for it, or the room being freed it waits for. */
function waitingReason(claims: Claims): string {
  if (claims.victims > 0) return `waiting for ${claims.victims} preempted ${claims.victims === 1 ? "attempt" : "attempts"} of lower-priority jobs to stop`;
  if (claims.waitingOn.length > 0) return `waiting for room being freed on ${claims.waitingOn.join(", ")}`;
  return "waiting for room being freed";
}
