// A process as Linux's /proc/<pid>/stat describes it: what the worker needs to
// find a process group's members and the controller to tell its lock's holder
// from a process that reused its pid.

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
  // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses, so fields are counted after its last ")".
  const close = text.lastIndexOf(")");
  if (close === -1) return undefined;
  const fields = text.slice(close + 2).split(" ");
  const [state, ppid, pgid] = fields;
  const startTime = fields[19];
  if (state === undefined || startTime === undefined) return undefined;
  return { pid: Number.parseInt(text, 10), ppid: Number(ppid), pgid: Number(pgid), state, startTime };
}
