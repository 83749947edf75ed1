// Resource arithmetic of a pass. CPU is kept in whole millicores so sums stay exact.
import type { SchedulerWorker, TaskDemand } from "./types.js";

export const RESOURCES = ["cpu", "memory", "disk", "devices"] as const;
export type Resource = (typeof RESOURCES)[number];
export type Amounts = Record<Resource, number>;

/** A worker during one pass: its free resources shrink as tasks are placed. */
export interface Slot extends Amounts {
  readonly worker: SchedulerWorker;
  /** Shared by every slot of the same machine shape, so shapes can be counted by identity. */
  readonly capacity: Readonly<Amounts>;
  /** Position in the pass's smallest-machine-first order; also the slot's bit in a WorkerSet. */
  readonly order: number;
  /** The `region` and `zone` attributes, `""` when absent: read once, as same-region jobs group by them. */
  readonly region: string;
  readonly zone: string;
}

/** One task's demand in slot units, with a key naming its shape. */
export interface Need extends Readonly<Amounts> {
  readonly key: string;
}

export function toNeed(demand: TaskDemand): Need {
  const cpu = Math.round(demand.cpu * 1000);
  const devices = demand.deviceType === "cpu" ? 0 : demand.deviceCount;
  return { cpu, memory: demand.memory, disk: demand.disk, devices, key: `${cpu}:${demand.memory}:${demand.disk}:${devices}` };
}

export function toSlot(worker: SchedulerWorker, order: number, shapes: Map<string, Readonly<Amounts>>): Slot {
  const { capacity: cap, used } = worker;
  const amounts = { cpu: Math.round(cap.cpu * 1000), memory: cap.memory, disk: cap.disk, devices: cap.deviceType === "cpu" ? 0 : cap.deviceCount };
  const shapeKey = `${amounts.cpu}:${amounts.memory}:${amounts.disk}:${amounts.devices}`;
  const capacity = shapes.get(shapeKey) ?? amounts;
  shapes.set(shapeKey, capacity);
  return {
    worker,
    capacity,
    order,
    region: worker.attributes.region ?? "",
    zone: worker.attributes.zone ?? "",
    cpu: capacity.cpu - Math.round(used.cpu * 1000),
    memory: capacity.memory - used.memory,
    disk: capacity.disk - used.disk,
    devices: capacity.devices - (cap.deviceType === "cpu" ? 0 : used.deviceCount),
  };
}

export function fits(free: Amounts, need: Amounts): boolean {
  return free.cpu >= need.cpu && free.memory >= need.memory && free.disk >= need.disk && free.devices >= need.devices;
}

export function take(slot: Slot, need: Need, sign: 1 | -1): void {
  slot.cpu -= sign * need.cpu;
  slot.memory -= sign * need.memory;
  slot.disk -= sign * need.disk;
  slot.devices -= sign * need.devices;
}

/** How many tasks of `need` fit in `room` (Infinity for a demand of nothing). */
export function tasksThatFit(room: Amounts, need: Amounts): number {
  return Math.max(0, Math.min(timesIn(room.cpu, need.cpu), timesIn(room.memory, need.memory), timesIn(room.disk, need.disk), timesIn(room.devices, need.devices)));
}

function timesIn(have: number, want: number): number {
  return want > 0 ? Math.floor(have / want) : Infinity;
}


export function maxOver(list: readonly Amounts[]): Amounts {
  const out: Amounts = { cpu: 0, memory: 0, disk: 0, devices: 0 };
  for (const a of list) {
    out.cpu = Math.max(out.cpu, a.cpu);
    out.memory = Math.max(out.memory, a.memory);
    out.disk = Math.max(out.disk, a.disk);
    out.devices = Math.max(out.devices, a.devices);
  }
  return out;
}

