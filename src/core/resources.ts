// What a job asks for: CPU, memory, disk, an optional accelerator, replicas.
// A ResourceConfig is immutable and validated once, when it is built.
import { ValidationError, describeValue } from "./errors.js";
import { formatByteSize, parseByteSize, type ByteSize } from "./quantity.js";
import { tpuTopology } from "./tpu.js";
import { checkBoolean, checkInteger, checkNonNegative, checkOneOf, checkString, checkStringArray } from "./validate.js";

/** No accelerator. */
export interface CpuConfig {
  readonly kind: "cpu";
}

/** `count` GPUs of one variant on each task's machine. */
export interface GpuConfig {
  readonly kind: "gpu";
  /** GPU model such as `"H100"` or `"A100"`; `"auto"` accepts any model. */
  readonly variant: string;
  /** GPUs per task. */
  readonly count: number;
}

/** One or more TPU slices of one variant; each task runs on one host of a slice. */
export interface TpuConfig {
  readonly kind: "tpu";
  /** TPU variant from the topology table, e.g. `"v5litepod-16"`. */
  readonly variant: string;
  /** Physical topology of one slice, e.g. `"4x4"` (from the table). */
  readonly topology: string;
  /** Number of slices. @default 1 */
  readonly sliceCount: number;
}

export type DeviceConfig = CpuConfig | GpuConfig | TpuConfig;
export type DeviceType = DeviceConfig["kind"];

/** Fields accepted when building a ResourceConfig; every field is optional. */
export interface ResourceConfigInit {
  /** CPU cores per task (fractions allowed). @default 1 */
  cpu?: number;
  /** Memory per task: bytes or `"512m"`, `"8g"`, `"2GB"`. @default "1g" */
  memory?: ByteSize;
  /** Scratch disk per task. @default 0 */
  disk?: ByteSize;
  /** Accelerator. @default { kind: "cpu" } */
  device?: DeviceConfig;
  /** Number of tasks (all placed together). @default 1, or hosts × slices for TPUs */
  replicas?: number;
  /** Whether the job accepts preemptible machines. @default false */
  preemptible?: boolean;
  /** Regions the job may run in; any when absent. */
  regions?: readonly string[];
  /** Zone the job must run in; any when absent. */
  zone?: string;
}

const CPU_DEVICE: CpuConfig = Object.freeze({ kind: "cpu" });
const DEFAULT_MEMORY = 1024 ** 3;

/** Resources of one job: per-task CPU, memory, disk and device, and the number of tasks. */
export class ResourceConfig {
  /** CPU cores per task. */
  readonly cpu: number;
  /** Memory per task, in bytes. */
  readonly memory: number;
  /** Disk per task, in bytes. */
  readonly disk: number;
  readonly device: DeviceConfig;
  /** Number of tasks. */
  readonly replicas: number;
  readonly preemptible: boolean;
  readonly regions?: readonly string[];
  readonly zone?: string;

  constructor(init: ResourceConfigInit = {}, field = "resources") {
    if (init === null || typeof init !== "object") {
      throw new ValidationError(field, `must be an object, got ${describeValue(init)}`);
    }
    this.cpu = checkNonNegative(init.cpu ?? 1, `${field}.cpu`);
    this.memory = parseByteSize(init.memory ?? DEFAULT_MEMORY, `${field}.memory`);
    this.disk = parseByteSize(init.disk ?? 0, `${field}.disk`);
    this.device = normalizeDevice(init.device ?? CPU_DEVICE, `${field}.device`);
    const defaultReplicas = this.device.kind === "tpu" ? tpuTopology(this.device.variant).hostCount * this.device.sliceCount : 1;
    this.replicas = checkInteger(init.replicas ?? defaultReplicas, `${field}.replicas`, 1);
    this.preemptible = checkBoolean(init.preemptible ?? false, `${field}.preemptible`);
    if (init.regions !== undefined) this.regions = Object.freeze(checkStringArray(init.regions, `${field}.regions`));
    if (init.zone !== undefined) this.zone = checkString(init.zone, `${field}.zone`, { nonEmpty: true });
    if (this.device.kind === "tpu") {
      const hosts = tpuTopology(this.device.variant).hostCount;
      if (this.replicas !== hosts * this.device.sliceCount) {
        throw new ValidationError(`${field}.replicas`, `must equal ${hosts * this.device.sliceCount} (${this.device.variant} has ${hosts} host(s) per slice × ${this.device.sliceCount} slice(s)), got ${this.replicas}`);
      }
    }
    Object.freeze(this);
  }

  /** CPU-only resources. */
  static withCpu(opts: { cpu?: number; memory?: ByteSize; disk?: ByteSize } & Omit<ResourceConfigInit, "device"> = {}): ResourceConfig {
    return new ResourceConfig({ ...opts, device: CPU_DEVICE });
  }

  /** `count` GPUs of `variant` per task (`"auto"`: any model). */
  static withGpu(variant = "auto", count = 1, opts: Omit<ResourceConfigInit, "device"> = {}): ResourceConfig {
    return new ResourceConfig({ ...opts, device: { kind: "gpu", variant, count } });
  }

  /**
   * `sliceCount` slices of a TPU variant. The job gets one task per host, so
   * `replicas` is the slice's host count × `sliceCount`.
   */
  static withTpu(variant: string, opts: { sliceCount?: number } & Omit<ResourceConfigInit, "device" | "replicas"> = {}): ResourceConfig {
    const { sliceCount = 1, ...rest } = opts;
    const topology = tpuTopology(variant, "resources.device.variant");
    return new ResourceConfig({ ...rest, device: { kind: "tpu", variant, topology: topology.topology, sliceCount } });
  }

  /** Accelerator chips each task needs (GPUs or TPU chips on its host; 0 for CPU). */
  chipsPerTask(): number {
    switch (this.device.kind) {
      case "cpu":
        return 0;
      case "gpu":
        return this.device.count;
      case "tpu":
        return tpuTopology(this.device.variant).chipsPerHost;
    }
  }

  /** Accelerator chips across the whole job (every replica, every slice). */
  chipCount(): number {
    return this.chipsPerTask() * this.replicas;
  }

  /** Machines the job occupies: one per task (for TPUs, each host of each slice). */
  vmCount(): number {
    return this.replicas;
  }

  /** A copy with some fields replaced, validated again. */
  with(changes: ResourceConfigInit): ResourceConfig {
    return new ResourceConfig({ ...this.toInit(), ...changes });
  }

  toInit(): ResourceConfigInit {
    return {
      cpu: this.cpu,
      memory: this.memory,
      disk: this.disk,
      device: this.device,
      replicas: this.replicas,
      preemptible: this.preemptible,
      ...(this.regions ? { regions: this.regions } : {}),
      ...(this.zone ? { zone: this.zone } : {}),
    };
  }

  toString(): string {
    const device = this.device.kind === "cpu" ? "" : this.device.kind === "gpu" ? ` gpu=${this.device.variant}×${this.device.count}` : ` tpu=${this.device.variant}×${this.device.sliceCount}`;
    return `cpu=${this.cpu} memory=${formatByteSize(this.memory)} disk=${formatByteSize(this.disk)}${device} replicas=${this.replicas}`;
  }
}

function normalizeDevice(device: unknown, field: string): DeviceConfig {
  if (device === null || typeof device !== "object") {
    throw new ValidationError(field, `must be a device config ({ kind: "cpu" | "gpu" | "tpu", ... }), got ${describeValue(device)}`);
  }
  const d = device as Record<string, unknown>;
  const kind = checkOneOf(d.kind, `${field}.kind`, ["cpu", "gpu", "tpu"] as const);
  switch (kind) {
    case "cpu":
      return CPU_DEVICE;
    case "gpu":
      return Object.freeze({
        kind,
        variant: checkString(d.variant ?? "auto", `${field}.variant`, { nonEmpty: true }),
        count: checkInteger(d.count ?? 1, `${field}.count`, 1),
      });
    case "tpu": {
      const variant = checkString(d.variant, `${field}.variant`, { nonEmpty: true });
      const topology = tpuTopology(variant, `${field}.variant`);
      if (d.topology !== undefined && d.topology !== topology.topology) {
        throw new ValidationError(`${field}.topology`, `must be ${JSON.stringify(topology.topology)} for ${variant}, got ${describeValue(d.topology)}`);
      }
      return Object.freeze({ kind, variant, topology: topology.topology, sliceCount: checkInteger(d.sliceCount ?? 1, `${field}.sliceCount`, 1) });
    }
  }
}

/**
 * Checks that `min` fits within `max` field by field (cpu, memory, disk,
 * chips, replicas). Used by reservations.
 */
export function checkResourceRange(min: ResourceConfig, max: ResourceConfig, minField: string, maxField: string): void {
  const pairs: Array<[string, number, number, (n: number) => string]> = [
    ["cpu", min.cpu, max.cpu, String],
    ["memory", min.memory, max.memory, formatByteSize],
    ["disk", min.disk, max.disk, formatByteSize],
    ["chips", min.chipCount(), max.chipCount(), String],
    ["replicas", min.replicas, max.replicas, String],
  ];
  for (const [name, lo, hi, show] of pairs) {
    if (lo > hi) {
      throw new ValidationError(`${minField}.${name}`, `(${show(lo)}) exceeds ${maxField}.${name} (${show(hi)})`);
    }
  }
}
