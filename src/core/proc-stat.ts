// A process as Linux's /proc/<pid>/stat describes it: what the worker needs to
// find a process group's members and the controller to tell its lock's holder
// from a process that reused its pid; and what it uses (CPU time, memory).
import { spawnSync } from "node:child_process";

/** The fields of /proc/<pid>/stat that Fluster reads. */
export interface ProcessStat {
  pid: number;
  ppid: number;
  pgid: number;
  /** One-letter state; `Z` is a zombie: dead, waiting for its parent to reap it. */
  state: string;
  /** When the process started, in clock ticks since boot: with the pid, it names one process. */
  startTime: string;
}

/** Parses the text of /proc/<pid>/stat; undefined when it is not one. */
export function parseProcStat(text: string): ProcessStat | undefined {
  const fields = statFields(text);
  if (!fields) return undefined;
  const [state, ppid, pgid] = fields;
  const startTime = fields[19];
  if (state === undefined || startTime === undefined) return undefined;
  return { pid: Number.parseInt(text, 10), ppid: Number(ppid), pgid: Number(pgid), state, startTime };
}

/** What a process has used, from /proc/<pid>/stat, in the kernel's units. */
export interface ProcessUsage {
  /** User and system CPU time, in clock ticks (see {@link procUnits}). */
  cpuTicks: number;
  /** Resident set size, in pages (see {@link procUnits}). */
  residentPages: number;
}

/** Parses the CPU time and resident memory of /proc/<pid>/stat; undefined when it is not one. */
export function parseProcUsage(text: string): ProcessUsage | undefined {
  const fields = statFields(text);
  // Fields 14, 15 (utime, stime) and 24 (rss) of proc(5), counted from the state (field 3).
  const utime = Number(fields?.[11]);
  const stime = Number(fields?.[12]);
  const rss = Number(fields?.[21]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime) || !Number.isFinite(rss)) return undefined;
  return { cpuTicks: utime + stime, residentPages: rss };
}

/** The fields of a /proc/<pid>/stat line from the state on; undefined when it is not one. */
function statFields(text: string): string[] | undefined {
  // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses, so fields are counted after its last ")".
  const close = text.lastIndexOf(")");
  return close === -1 ? undefined : text.slice(close + 2).split(" ");
}

/** The units of {@link ProcessUsage}: clock ticks per second and bytes per page. */
export interface ProcUnits {
  ticksPerSecond: number;
  pageBytes: number;
}

let units: ProcUnits | undefined;

/** This machine's clock ticks per second and page size, asked of `getconf` once (100 and 4096, Linux's usual, where it cannot answer). */
export function procUnits(): ProcUnits {
  units ??= { ticksPerSecond: getconf("CLK_TCK") ?? 100, pageBytes: getconf("PAGESIZE") ?? 4096 };
  return units;
}

function getconf(name: string): number | undefined {
  const run = spawnSync("getconf", [name], { encoding: "utf8", timeout: 5000 });
  const value = run.status === 0 ? Number(run.stdout.trim()) : Number.NaN;
  return Number.isInteger(value) && value > 0 ? value : undefined;
}
