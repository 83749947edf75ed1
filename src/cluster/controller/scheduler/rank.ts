// Ranking: the order jobs are tried in and the order workers are offered in.
import { PRIORITIES } from "../../../core/job.js";
import type { Slot } from "./amounts.js";
import type { WorkerSet } from "./worker-set.js";
import type { PendingJob, SchedulerWorker } from "./types.js";

/**
 * The pass's base order: machines without accelerators first (a CPU-only
 * task then reaches a GPU or TPU host only when no plain machine has room),
 * then smallest first by devices, cpu, memory, disk; ties by workerId.
 */
export function compareMachines(a: SchedulerWorker, b: SchedulerWorker): number {
  const x = a.capacity;
  const y = b.capacity;
  return (
    Number(x.deviceType !== "cpu") - Number(y.deviceType !== "cpu") ||
    x.deviceCount - y.deviceCount || x.cpu - y.cpu || x.memory - y.memory || x.disk - y.disk ||
    (a.workerId < b.workerId ? -1 : a.workerId > b.workerId ? 1 : 0)
  );
}


const PRIORITY_RANK = new Map(PRIORITIES.map((p, i) => [p, i]));

export function compareJobs(a: PendingJob, b: PendingJob): number {
  return (
    (PRIORITY_RANK.get(a.priority) ?? 1) - (PRIORITY_RANK.get(b.priority) ?? 1) || a.sequence - b.sequence ||
    (a.jobId < b.jobId ? -1 : a.jobId > b.jobId ? 1 : 0)
  );
}


/**
 * Placement order for one kind of job: workers meeting more preferred
 * constraints first, the base order (plain machines, then smallest first)
 * within each count.
 */
export function rankSlots(slots: readonly Slot[], preferred: readonly WorkerSet[]): Slot[] {
  if (preferred.length === 0) return [...slots];
  // A stable bucket sort: bucket i holds the slots meeting i preferred constraints.
  const buckets: Slot[][] = preferred.map(() => []);
  buckets.push([]);
  for (const slot of slots) {
    let met = 0;
    for (const set of preferred) if (set.has(slot)) met++;
    buckets[met]?.push(slot);
  }
  return buckets.reverse().flat();
}

/** Splits ranked slots by region or zone; groups come in the order of their best-ranked worker. */
export function groupSlots(slots: readonly Slot[], attribute: "region" | "zone"): Slot[][] {
  const groups = new Map<string, Slot[]>();
  for (const slot of slots) {
    const value = slot[attribute];
    const group = groups.get(value);
    if (group) group.push(slot);
    else groups.set(value, [slot]);
  }
  return [...groups.values()];
}

