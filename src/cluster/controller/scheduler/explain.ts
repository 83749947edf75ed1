// Pending reasons: what is short for a job a pass could not place, and whether
// it could ever fit on the registered workers.
import { formatByteSize } from "../../../core/quantity.js";
import { RESOURCES, type Need, type Resource } from "./amounts.js";
import type { Outcome } from "./pass.js";
import type { TaskDemand } from "./types.js";

/** How reasons name a resource: "cpu", "memory", "disk", "gpu" or "tpu chips". */
export function resourceName(r: Resource, demand: TaskDemand): string {
  if (r !== "devices") return r;
  return demand.deviceType === "tpu" ? "tpu chips" : "gpu";
}

/** An amount as reasons print it: cores for cpu, sizes like "8g" for memory and disk. */
export function formatAmount(r: Resource, amount: number): string {
  if (r === "cpu") return String(amount / 1000);
  if (r === "memory" || r === "disk") return formatByteSize(amount);
  return String(amount);
}

/** "cpu 4, memory 8g": the non-zero parts of a demand. */
export function describeNeed(need: Need, demand: TaskDemand): string {
  return RESOURCES.filter((r) => need[r] > 0).map((r) => `${resourceName(r, demand)} ${formatAmount(r, need[r])}`).join(", ");
}

/** Names what is short for an unplaced job, and whether it could never fit on the registered workers. */
export function explain({ job, plan, need, gangFitted, slices }: Outcome): { reason: string; never: boolean } {
  if (plan.blocked) return { reason: plan.blocked, never: true };
  const { noun, eligible } = plan;
  const demand = job.demand;
  const count = job.taskIndexes.length;

  const largest = eligible.largestCapacity();
  for (const r of RESOURCES) {
    if (need[r] > largest[r]) {
      return { reason: `insufficient ${resourceName(r, demand)}: wants ${formatAmount(r, need[r])}, largest ${noun} has ${formatAmount(r, largest[r])}`, never: true };
    }
  }
  if (eligible.fitsWhenIdle(need) === 0) {
    return { reason: `no ${noun} has ${describeNeed(need, demand)} together`, never: true };
  }
  if (slices) return slices;
  if (gangFitted !== undefined) {
    const where = plan.groupedBy ? ` in one ${plan.groupedBy}` : "";
    const idle = Math.max(...plan.groups.map((g) => g.fitsWhenIdle(need)));
    if (idle < count) {
      return { reason: `gang of ${count} tasks: at most ${idle} fit${where} even when every worker is idle`, never: true };
    }
    if (gangFitted > 0) return { reason: `gang of ${count} tasks: only ${gangFitted} fit now${where}`, never: false };
  }

  const free = eligible.mostFree();
  for (const r of RESOURCES) {
    if (need[r] > free[r]) {
      return { reason: `insufficient ${resourceName(r, demand)}: wants ${formatAmount(r, need[r])}, most free on any ${noun} is ${formatAmount(r, Math.max(0, free[r]))}`, never: false };
    }
  }
  return { reason: `no ${noun} has ${describeNeed(need, demand)} free at once`, never: false };
}
