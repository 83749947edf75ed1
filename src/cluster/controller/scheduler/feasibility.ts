// Feasibility: whether a worker can take a kind of job at all — the device it
// has, the attributes that required constraints, regions and zones ask for —
// each check with the reason to give when no worker passes it.
import type { Constraint } from "../../../core/job.js";
import type { PendingJob, SchedulerWorker, TaskDemand } from "./types.js";

/** The parts of a job its feasibility depends on. */
export type FeasibilityInput = Pick<PendingJob, "preemptible" | "regions" | "zone" | "constraints">;

/** True when a worker satisfies one constraint (required or preferred alike). */
export function matchesConstraint(worker: SchedulerWorker, constraint: Constraint): boolean {
  const actual = attributeOf(worker, constraint.key);
  switch (constraint.op) {
    case "exists":
      return actual !== undefined;
    case "not_exists":
      return actual === undefined;
    case "in":
      return actual !== undefined && (constraint.values ?? []).includes(actual);
    case "eq":
      return actual !== undefined && constraint.value !== undefined && equalsOperand(actual, constraint.value);
    case "ne":
      // A worker without the attribute is "not equal" to any value.
      return !(actual !== undefined && constraint.value !== undefined && equalsOperand(actual, constraint.value));
    case "gt":
      return compareNumbers(actual, constraint.value, (a, b) => a > b);
    case "ge":
      return compareNumbers(actual, constraint.value, (a, b) => a >= b);
    case "lt":
      return compareNumbers(actual, constraint.value, (a, b) => a < b);
    case "le":
      return compareNumbers(actual, constraint.value, (a, b) => a <= b);
  }
}

function attributeOf(worker: SchedulerWorker, key: string): string | undefined {
  if (key === "device-type") return worker.capacity.deviceType;
  if (key === "device-variant") return worker.capacity.deviceType === "cpu" ? undefined : worker.capacity.deviceVariant || undefined;
  return worker.attributes[key];
}

function parseNumber(text: string | number | undefined): number | undefined {
  if (typeof text === "number") return text;
  if (text === undefined || text.trim() === "") return undefined;
  const n = Number(text);
  return Number.isFinite(n) ? n : undefined;
}

function equalsOperand(actual: string, operand: string | number): boolean {
  const n = typeof operand === "number" ? parseNumber(actual) : undefined;
  return n !== undefined ? n === operand : actual === String(operand);
}

function compareNumbers(actual: string | undefined, operand: string | number | undefined, test: (a: number, b: number) => boolean): boolean {
  const a = parseNumber(actual);
  const b = parseNumber(operand);
  return a !== undefined && b !== undefined && test(a, b);
}

function formatConstraint(c: Constraint): string {
  if (c.op === "exists" || c.op === "not_exists") return `${c.key} ${c.op}`;
  if (c.op === "in") return `${c.key} in [${(c.values ?? []).join(", ")}]`;
  return `${c.key} ${c.op} ${String(c.value)}`;
}

/** Whether a worker has the accelerator a task asks for (every worker serves CPU-only tasks). */
function servesDevice(worker: SchedulerWorker, demand: TaskDemand): boolean {
  const cap = worker.capacity;
  switch (demand.deviceType) {
    case "cpu":
      return true;
    case "gpu":
      return cap.deviceType === "gpu" && (demand.deviceVariant.toLowerCase() === "auto" || cap.deviceVariant.toLowerCase() === demand.deviceVariant.toLowerCase());
    case "tpu":
      return cap.deviceType === "tpu" && cap.deviceVariant === demand.deviceVariant;
  }
}

export function deviceKey(d: TaskDemand): string {
  if (d.deviceType === "gpu") return d.deviceVariant.toLowerCase() === "auto" ? "gpu" : `gpu:${d.deviceVariant.toLowerCase()}`;
  if (d.deviceType === "tpu") return `tpu:${d.deviceVariant}`;
  return "cpu";
}

/** "", "gpu ", "gpu H100 ", "tpu v5litepod-16 ": prefixes "worker" in reasons. */
export function deviceWords(d: TaskDemand): string {
  if (d.deviceType === "cpu") return "";
  if (d.deviceType === "gpu" && d.deviceVariant.toLowerCase() === "auto") return "gpu ";
  return `${d.deviceType} ${d.deviceVariant} `;
}

export function constraintKey(c: Constraint): string {
  return JSON.stringify([c.key, c.op, c.value ?? null, c.values ?? null]);
}


/**
 * One feasibility check: a filter on workers, with a key naming it (checks
 * with equal keys pass the same workers, so a pass evaluates each once) and
 * the reason to give when no worker passes it.
 */
export interface FeasibilityCheck {
  readonly key: string;
  readonly test: (worker: SchedulerWorker) => boolean;
  readonly reason: string;
}

/** The device check every job has: workers with the accelerator it asks for. */
export function deviceCheck(demand: TaskDemand): Omit<FeasibilityCheck, "reason"> {
  return { key: `device ${deviceKey(demand)}`, test: (w) => servesDevice(w, demand) };
}

/** Why no worker passes the device check. */
export function missingDeviceReason(workers: readonly SchedulerWorker[], demand: TaskDemand): string {
  if (workers.length === 0) return "no workers are registered";
  const have = new Set<string>();
  for (const worker of workers) {
    if (worker.capacity.deviceType === demand.deviceType) have.add(worker.capacity.deviceVariant);
  }
  if (have.size === 0) return `no worker has a ${demand.deviceType}`;
  return `no worker has ${demand.deviceType} variant ${demand.deviceVariant} (registered: ${[...have].sort().join(", ")})`;
}

/**
 * The checks after the device one, in the order their reasons are reported:
 * preemptible workers, regions, zone, then each required constraint.
 * `noun` names the workers that have the device ("worker", "gpu H100 worker").
 */
export function feasibilityChecks(job: FeasibilityInput, noun: string): FeasibilityCheck[] {
  const checks: FeasibilityCheck[] = [];
  if (!job.preemptible) {
    checks.push({ key: "non-preemptible", test: (w) => w.attributes.preemptible !== "true", reason: `every ${noun} is preemptible and the job does not accept preemptible workers` });
  }
  const regions = job.regions ?? [];
  if (regions.length > 0) {
    const where = `${regions.length === 1 ? "region" : "regions"} ${regions.join(", ")}`;
    checks.push({ key: where, test: (w) => regions.includes(w.attributes.region ?? ""), reason: `no ${noun} in ${where}` });
  }
  const zone = job.zone;
  if (zone !== undefined) checks.push({ key: `zone ${zone}`, test: (w) => w.attributes.zone === zone, reason: `no ${noun} in zone ${zone}` });
  for (const c of job.constraints) {
    if (!c.preferred) checks.push({ key: constraintKey(c), test: (w) => matchesConstraint(w, c), reason: `no ${noun} matches constraint ${formatConstraint(c)}` });
  }
  return checks;
}

/** The preferred constraints, as checks that rank workers rather than filter them. */
export function preferenceChecks(job: FeasibilityInput): Array<Omit<FeasibilityCheck, "reason">> {
  return job.constraints.filter((c) => c.preferred).map((c) => ({ key: constraintKey(c), test: (w: SchedulerWorker) => matchesConstraint(w, c) }));
}
