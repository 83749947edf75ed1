// One scheduling pass: plans per kind of job (its eligible workers, ranked),
// first-fit placement with all-or-nothing gangs, then the pending reasons.
import { take, toNeed, toSlot, type Amounts, type Need, type Slot } from "./amounts.js";
import { Candidates } from "./candidates.js";
import { explain } from "./explain.js";
import { constraintKey, deviceCheck, deviceKey, deviceWords, feasibilityChecks, missingDeviceReason, preferenceChecks } from "./feasibility.js";
import { compareJobs, compareMachines, groupSlots, rankSlots } from "./rank.js";
import type { PendingJob, Placement, ReservationDemand, ScheduleResult, SchedulerWorker } from "./types.js";
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
}


/** Jobs with equal keys have the same eligible workers in the same order. */
function planKey(job: PendingJob): string {
  let key = `${deviceKey(job.demand)} ${job.preemptible} ${job.sameZone ? "zone" : job.sameRegion ? "region" : "any"}`;
  // Region, zone and constraint text can hold any character: JSON keeps the parts apart.
  if (job.regions?.length) key += ` regions ${JSON.stringify(job.regions)}`;
  if (job.zone !== undefined) key += ` zone ${JSON.stringify(job.zone)}`;
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
}

/** One scheduling pass: the mutable working state behind `schedule()`. */
export class SchedulingPass {
  /** Every worker, smallest machine first. */
  private readonly slots: Slot[];
  /** Workers passing each filter, by filter key; shared by all plans. */
  private readonly sets = new Map<string, WorkerSet>();
  private readonly plans = new Map<string, Plan>();
  private readonly placements: Placement[] = [];

  constructor(workers: readonly SchedulerWorker[]) {
    const shapes = new Map<string, Readonly<Amounts>>();
    this.slots = [...workers].sort(compareMachines).map((worker, order) => toSlot(worker, order, shapes));
  }

  run(jobs: readonly PendingJob[], _reservations: readonly ReservationDemand[] = []): ScheduleResult {
    const outcomes: Outcome[] = [];
    for (const job of [...jobs].sort(compareJobs)) {
      if (job.taskIndexes.length === 0) continue;
      const plan = this.planFor(job);
      const need = toNeed(job.demand);
      const outcome = plan.blocked ? { job, plan, need, left: job.taskIndexes.length } : this.place(job, plan, need);
      if (outcome.left > 0) outcomes.push(outcome);
    }
    // Reasons are written after every placement, so the amounts they quote
    // ("most free on any worker") describe the cluster as this pass leaves it.
    const pending = new Map<string, string>();
    const neverFits = new Map<string, string>();
    for (const outcome of outcomes) {
      const { reason, never } = explain(outcome);
      pending.set(outcome.job.jobId, reason);
      if (never) neverFits.set(outcome.job.jobId, reason);
    }
    return { placements: this.placements, pending, neverFits, preemptions: [], reservations: new Map() };
  }

  private place(job: PendingJob, plan: Plan, need: Need): Outcome {
    const count = job.taskIndexes.length;
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
      plan = this.buildPlan(job);
      this.plans.set(key, plan);
    }
    return plan;
  }

  /** Intersects the job's feasibility checks, reporting the first one that leaves no worker. */
  private buildPlan(job: PendingJob): Plan {
    const { demand } = job;
    const noun = `${deviceWords(demand)}worker`;
    const blocked = (reason: string): Plan => ({ blocked: reason, eligible: new Candidates([]), groups: [], noun });
    const device = this.workersPassing(deviceCheck(demand));
    if (device.isEmpty()) return blocked(missingDeviceReason(this.slots.map((s) => s.worker), demand));
    let eligibleSet = device;
    for (const check of feasibilityChecks(job, noun)) {
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
    return { eligible, groups, noun: filtered ? `matching ${noun}` : noun, ...(groupedBy ? { groupedBy } : {}) };
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
