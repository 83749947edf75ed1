// TPU slice affinity: a job on multi-host TPU slices takes whole slices (the
// workers labelled as one slice's hosts), task i on host i mod hosts, all or none.
import { TPU_HOST_LABEL, TPU_SLICE_LABEL } from "../../platform/types.js";
import { fits, take, type Need, type Slot } from "./amounts.js";
import type { PendingJob, SchedulerWorker, SliceDemand } from "./types.js";

/** One complete slice: a slot for every host index. */
export interface Slice {
  readonly id: string;
  /** `hosts[i]` is the worker labelled host `i`. */
  readonly hosts: readonly Slot[];
}

/** A slice host's index from its labels, when it is one of a slice of `hosts` hosts. */
export function hostIndexOf(worker: SchedulerWorker, hosts: number): number | undefined {
  if (worker.attributes[TPU_SLICE_LABEL] === undefined) return undefined;
  const text = worker.attributes[TPU_HOST_LABEL];
  const index = text !== undefined && /^\d+$/.test(text) ? Number(text) : NaN;
  return Number.isInteger(index) && index < hosts ? index : undefined;
}

/**
 * The complete slices among the slots, in the order of each slice's best
 * ranked host: those with exactly one slot for every host index. A slice
 * with a host missing (not registered, or not eligible) cannot be used.
 */
export function completeSlices(slots: readonly Slot[], hosts: number): Slice[] {
  const byId = new Map<string, Array<Slot | undefined>>();
  const broken = new Set<string>();
  for (const slot of slots) {
    const id = slot.worker.attributes[TPU_SLICE_LABEL];
    const index = hostIndexOf(slot.worker, hosts);
    if (id === undefined || index === undefined) continue;
    let list = byId.get(id);
    if (!list) byId.set(id, (list = new Array<Slot | undefined>(hosts).fill(undefined)));
    // Two workers claiming one host index: the labels are wrong, and which is right cannot be told.
    if (list[index]) broken.add(id);
    list[index] = slot;
  }
  const out: Slice[] = [];
  for (const [id, list] of byId) {
    if (broken.has(id) || list.some((slot) => slot === undefined)) continue;
    out.push({ id, hosts: list as Slot[] });
  }
  return out;
}

/** What placing a slice job did: the tasks placed, or why none was. */
export type SlicePlacement =
  | { placed: Array<{ taskIndex: number; slot: Slot }> }
  | { placed?: undefined; reason: string; never: boolean };

/**
 * Places every pending task of a slice job, or none: the tasks of each slice
 * number go to the slice their running siblings hold, else to the first
 * complete slice whose hosts all have room and that no other slice number
 * of the job uses. Takes the room on the slots; {@link undoSlices} gives it back.
 */
export function placeOnSlices(job: Pick<PendingJob, "taskIndexes" | "demand">, slice: SliceDemand, slices: readonly Slice[], need: Need): SlicePlacement {
  const { hosts } = slice;
  const held = slice.held ?? {};
  const byNumber = new Map<number, number[]>();
  for (const taskIndex of job.taskIndexes) {
    const n = Math.floor(taskIndex / hosts);
    byNumber.set(n, [...(byNumber.get(n) ?? []), taskIndex]);
  }
  const heldIds = new Set(Object.values(held));
  const inUse = new Set(heldIds);
  const placed: Array<{ taskIndex: number; slot: Slot }> = [];
  const takeAll = (target: Slice, tasks: readonly number[]): boolean => {
    if (!tasks.every((t) => fits(target.hosts[t % hosts] as Slot, need))) return false;
    for (const t of tasks) {
      const slot = target.hosts[t % hosts] as Slot;
      take(slot, need, 1);
      placed.push({ taskIndex: t, slot });
    }
    return true;
  };
  const fail = (reason: string, never: boolean): SlicePlacement => {
    undoSlices(placed, need);
    return { reason, never };
  };
  const wanted = [...byNumber.keys()].filter((n) => held[n] === undefined).length;
  const name = job.demand.deviceVariant;
  for (const [n, tasks] of [...byNumber].sort((a, b) => a[0] - b[0])) {
    const heldId = held[n];
    if (heldId !== undefined) {
      const target = slices.find((s) => s.id === heldId);
      if (!target) return fail(`needs slice ${heldId}, where its other tasks run, and it is no longer complete`, false);
      if (!takeAll(target, tasks)) return fail(`needs hosts ${tasks.map((t) => t % hosts).join(", ")} of slice ${heldId}, where its other tasks run: not free`, false);
      continue;
    }
    const target = slices.find((s) => !inUse.has(s.id) && takeAll(s, tasks));
    if (target) {
      inUse.add(target.id);
      continue;
    }
    // Why: how many whole slices it wants, and how many there are, free or at all (counted with its own room given back).
    undoSlices(placed, need);
    placed.length = 0;
    const usable = slices.filter((s) => !heldIds.has(s.id));
    const free = usable.filter((s) => s.hosts.every((slot) => fits(slot, need))).length;
    const what = wanted === 1 ? `a whole ${name} slice (${hosts} hosts)` : `${wanted} whole ${name} slices (${hosts} hosts each)`;
    if (usable.length < wanted) {
      return fail(`needs ${what}: ${usable.length === 0 ? "no complete slice is registered" : `only ${usable.length} complete ${usable.length === 1 ? "slice is" : "slices are"} registered`}`, true);
    }
    return fail(`needs ${what}: ${free === 0 ? "none" : `only ${free}`} free`, false);
  }
  return { placed };
}

/** Gives back the room {@link placeOnSlices} took. */
export function undoSlices(placed: ReadonlyArray<{ slot: Slot }>, need: Need): void {
  for (const { slot } of placed) take(slot, need, -1);
}
