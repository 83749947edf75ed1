// Pure formatting for the pages: state names, durations, ages, byte sizes,
// resources and timestamps, so that every page says them the same way.
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import type { DeviceSpec, ResourceSpec, WorkerResources } from "../rpc/gen/fluster/cluster/v1/types_pb.js";

/** An enum value's name in lower case ("RUNNING" → "running"; 0 → "unspecified"). */
export function enumName(values: Record<number, string>, value: number): string {
  return (values[value] ?? String(value)).toLowerCase().replace(/_/g, " ");
}

/** The Date of a protobuf Timestamp, or undefined when unset. */
export function dateOf(ts: Timestamp | undefined): Date | undefined {
  return ts ? timestampDate(ts) : undefined;
}

/** A span of milliseconds as "850 ms", "12 s", "3 m 04 s", "2 h 05 m" or "3 d 4 h". */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "—";
  if (ms < 1_000) return `${Math.round(ms)} ms`;
  const s = Math.floor(ms / 1_000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} m ${String(s % 60).padStart(2, "0")} s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h} h ${String(m % 60).padStart(2, "0")} m`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

/**
 * How long something ran: from `start` to `end`, or to `now` (the
 * controller's clock) while it has not ended; undefined before it started.
 */
export function elapsedMs(start: Date | undefined, end: Date | undefined, now: Date): number | undefined {
  if (!start) return undefined;
  return Math.max(0, (end ?? now).getTime() - start.getTime());
}

/** "n s ago" of `then` seen from `now` (both the controller's clock). */
export function formatAge(then: Date | undefined, now: Date): string {
  if (!then) return "never";
  const ms = now.getTime() - then.getTime();
  return ms < 1_000 ? "just now" : `${formatDuration(ms)} ago`;
}

/** A timestamp as local "YYYY-MM-DD HH:MM:SS", or "—". */
export function formatTime(date: Date | undefined): string {
  if (!date) return "—";
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

/** Bytes in binary units: "512 B", "64 MiB", "1.5 GiB". */
export function formatBytes(bytes: bigint | number): string {
  let value = Number(bytes);
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  const digits = unit === 0 || Number.isInteger(value) || Math.abs(value) >= 100 ? 0 : 1;
  return `${value.toFixed(digits)} ${units[unit]}`;
}

/** A CPU amount without float noise: 0.5, 2, 1.25. */
export function formatCpu(cpu: number): string {
  return String(Math.round(cpu * 100) / 100);
}

/** An accelerator as "gpu H100 ×2" or "tpu v5litepod-16", or undefined for CPU only. */
export function formatDevice(device: DeviceSpec | undefined, count?: number): string | undefined {
  switch (device?.device.case) {
    case "gpu": {
      const n = count ?? device.device.value.count;
      return `gpu ${device.device.value.variant || "any"} ×${n}`;
    }
    case "tpu": {
      const tpu = device.device.value;
      return `tpu ${tpu.variant}${tpu.topology ? ` (${tpu.topology})` : ""}${count !== undefined ? ` ×${count}` : ""}`;
    }
    default:
      return undefined;
  }
}

/** A job's per-task resources and replicas: "2 × 1 cpu · 64 MiB · gpu H100 ×1". */
export function formatResources(spec: ResourceSpec | undefined): string {
  if (!spec) return "—";
  const parts = [`${formatCpu(spec.cpu)} cpu`];
  if (spec.memoryBytes > 0n) parts.push(formatBytes(spec.memoryBytes));
  if (spec.diskBytes > 0n) parts.push(`${formatBytes(spec.diskBytes)} disk`);
  const device = formatDevice(spec.device);
  if (device) parts.push(device);
  const text = parts.join(" · ");
  return spec.replicas !== undefined && spec.replicas !== 1 ? `${spec.replicas} × ${text}` : text;
}

/** One resource of a worker as "used / total (free left)". */
export interface ResourceUse {
  name: string;
  used: string;
  total: string;
  free: string;
  /** used / total in [0, 1]; 0 when the worker has none. */
  fraction: number;
}

/** A worker's CPU, memory and accelerators: what its attempts hold and what is free. */
export function workerUse(total: WorkerResources | undefined, used: WorkerResources | undefined): ResourceUse[] {
  const fraction = (u: number, t: number) => (t > 0 ? Math.min(1, Math.max(0, u / t)) : 0);
  const cpuTotal = total?.cpu ?? 0;
  const cpuUsed = used?.cpu ?? 0;
  const memTotal = total?.memoryBytes ?? 0n;
  const memUsed = used?.memoryBytes ?? 0n;
  const rows: ResourceUse[] = [
    { name: "cpu", used: formatCpu(cpuUsed), total: formatCpu(cpuTotal), free: formatCpu(Math.max(0, cpuTotal - cpuUsed)), fraction: fraction(cpuUsed, cpuTotal) },
    { name: "memory", used: formatBytes(memUsed), total: formatBytes(memTotal), free: formatBytes(memTotal > memUsed ? memTotal - memUsed : 0n), fraction: fraction(Number(memUsed), Number(memTotal)) },
  ];
  const devices = total?.deviceCount ?? 0;
  if (devices > 0) {
    const kind = total?.device?.device.case === "tpu" ? "tpu" : "gpu";
    const usedDevices = used?.deviceCount ?? 0;
    rows.push({ name: kind, used: String(usedDevices), total: String(devices), free: String(Math.max(0, devices - usedDevices)), fraction: fraction(usedDevices, devices) });
  }
  return rows;
}
