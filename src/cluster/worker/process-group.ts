// Process groups on Linux: signalling a whole group, finding its members in
// /proc, waiting for it to vanish, killing the groups a previous daemon left
// behind, and what a group uses (CPU, memory). The process runtime builds on these.
import { existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { readFile, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { pollUntil } from "../../core/backoff.js";
import { parseProcStat, parseProcUsage, procUnits, type ProcessStat } from "../../core/proc-stat.js";
import { recordedContainer, removeRecordedContainersSync } from "./container.js";

/** The daemon records a running attempt's process group in this file of its log directory. */
export const PGID_FILE_NAME = "pgid";
/** How long the end of an attempt waits for its group to vanish. */
export const EXIT_SETTLE_MS = 2000;
const SETPRIV = "/usr/bin/setpriv";

/** An attempt a previous daemon left running, killed by {@link reapOrphans}. */
export interface ReapedAttempt {
  attemptId: string;
  /** The process group that was killed. */
  pgid: number;
  logDir: string;
}

/**
 * Kills the process groups that a previous incarnation of the daemon left
 * running. Looks at `<rootDir>/<attempt>/pgid` files (attempt log
 * directories must be direct children of `rootDir`); a group is killed
 * (SIGKILL) only if one of its live processes carries
 * `FLUSTER_ATTEMPT_ID=<that attempt>` in its environment, so a reused
 * group id is never hit, and only if its leader is not still the child of
 * the daemon that started it. Stale pgid files are removed. Call it before
 * starting attempts. Needs /proc (Linux); elsewhere it kills nothing.
 */
export async function reapOrphans(rootDir: string): Promise<ReapedAttempt[]> {
  let names: string[];
  try {
    names = await readdir(rootDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  const reaped: ReapedAttempt[] = [];
  for (const name of names) {
    const logDir = join(rootDir, name);
    const file = join(logDir, PGID_FILE_NAME);
    let text: string;
    try {
      text = await readFile(file, "utf8");
    } catch {
      continue;
    }
    const [pgidText = "", attemptId = "", daemonPidText = ""] = text.split("\n");
    const pgid = Number(pgidText);
    const daemonPid = Number(daemonPidText);
    if (Number.isSafeInteger(pgid) && pgid > 1 && attemptId !== "") {
      const members = await groupMembers(pgid);
      const leader = members.find((m) => m.pid === pgid && m.state !== "Z");
      // The daemon that started it is alive and still its parent: not an orphan.
      if (leader && leader.ppid === daemonPid) continue;
      if (await carriesAttemptId(members, attemptId)) {
        signalGroup(pgid, "SIGKILL");
        await waitGroupGone(pgid, EXIT_SETTLE_MS);
        reaped.push({ attemptId, pgid, logDir });
      }
    }
    await rm(file, { force: true });
  }
  return reaped;
}

/** A file the lease supervisor writes into an attempt's log directory before it kills the attempt: the daemon reads the reason from it. */
export const FENCED_FILE_NAME = "fenced";

/**
 * Kills (SIGKILL) the process group of every attempt that daemon `daemonPid`
 * recorded under `rootDir` (`<rootDir>/<attempt>/pgid`), writing `reason`
 * into `<attempt>/fenced` first, so that the daemon reports the attempt as
 * fenced rather than failed. As in {@link reapOrphans}, a group is hit only
 * if one of its live processes carries `FLUSTER_ATTEMPT_ID=<that attempt>`,
 * so a reused group id is never hit. Synchronous on purpose: the lease
 * supervisor calls it at its deadline and nothing else must run meanwhile.
 * Attempts in `skip` (killed by an earlier call) are left alone. The
 * containers recorded (`<attempt>/container`) by that daemon's attempts are
 * removed too, whether their `docker run` still lives or not. Returns the
 * attempt ids whose groups it killed.
 */
export function fenceRecordedGroups(rootDir: string, daemonPid: number, reason: string, skip: ReadonlySet<string> = new Set()): string[] {
  let names: string[];
  try {
    names = readdirSync(rootDir);
  } catch {
    return [];
  }
  const killed: string[] = [];
  const containerDirs: string[] = [];
  for (const name of names) {
    const logDir = join(rootDir, name);
    let text: string;
    try {
      text = readFileSync(join(logDir, PGID_FILE_NAME), "utf8");
    } catch {
      continue;
    }
    const [pgidText = "", attemptId = "", daemonPidText = ""] = text.split("\n");
    const pgid = Number(pgidText);
    if (!Number.isSafeInteger(pgid) || pgid <= 1 || attemptId === "" || skip.has(attemptId) || Number(daemonPidText) !== daemonPid) continue;
    // A container outlives its `docker run` (which dies with the daemon): it goes whether that process is still there or not.
    if (recordedContainer(logDir) !== undefined) containerDirs.push(logDir);
    if (!groupCarriesAttemptIdSync(pgid, attemptId)) continue;
    try {
      writeFileSync(join(logDir, FENCED_FILE_NAME), reason);
    } catch {
      // The kill matters more than the note.
    }
    signalGroup(pgid, "SIGKILL");
    killed.push(attemptId);
  }
  removeRecordedContainersSync(containerDirs);
  return killed;
}

/** {@link carriesAttemptId} for a group found in /proc now, synchronously; true where there is no /proc to check (the pgid file is all there is). */
function groupCarriesAttemptIdSync(pgid: number, attemptId: string): boolean {
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return true;
  }
  const marker = `FLUSTER_ATTEMPT_ID=${attemptId}`;
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = parseProcStat(readFileSync(`/proc/${entry}/stat`, "utf8"));
      if (!stat || stat.pgid !== pgid || stat.state === "Z") continue;
      if (readFileSync(`/proc/${entry}/environ`, "utf8").split("\0").includes(marker)) return true;
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
  return false;
}

let setprivWorks: boolean | undefined;

/** Whether `setpriv --pdeathsig` works on this host; probed once per process. */
function pdeathsigAvailable(): boolean {
  setprivWorks ??=
    process.platform === "linux" &&
    existsSync(SETPRIV) &&
    spawnSync(SETPRIV, ["--pdeathsig", "KILL", "--", SETPRIV, "--version"], { stdio: "ignore", timeout: 5000 }).status === 0;
  return setprivWorks;
}

/** The `setpriv --pdeathsig KILL --` prefix that ties a task to the daemon's life, where it works. */
export function pdeathsigPrefix(): string[] {
  return pdeathsigAvailable() ? [SETPRIV, "--pdeathsig", "KILL", "--"] : [];
}

/**
 * Signals every process of a group. Never throws: a group that is already
 * gone (ESRCH) is the goal, and a kill must not take the daemon down.
 */
export function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // ESRCH: already gone; EPERM: not ours (the group id was reused).
  }
}

/** The text of every process's /proc/<pid>/stat; empty where there is no /proc. */
async function readProcStats(): Promise<string[]> {
  let entries: string[];
  try {
    entries = await readdir("/proc");
  } catch {
    return [];
  }
  const texts = await Promise.all(
    entries.filter((e) => /^\d+$/.test(e)).map(async (pid) => {
      try {
        return await readFile(`/proc/${pid}/stat`, "utf8");
      } catch {
        return undefined; // exited meanwhile
      }
    }),
  );
  return texts.filter((t): t is string => t !== undefined);
}

/** The processes of a group, from /proc; empty where there is no /proc. */
async function groupMembers(pgid: number): Promise<ProcessStat[]> {
  const stats = (await readProcStats()).map(parseProcStat);
  return stats.filter((s): s is ProcessStat => s !== undefined && s.pgid === pgid);
}

/** What the live processes of a process group use now. */
export interface GroupUsage {
  /** User and system CPU time of its live processes (what exited children used is not counted). */
  cpuSeconds: number;
  /** Resident memory of its live processes. */
  residentBytes: number;
}

/**
 * What each group of `pgids` uses now, from one pass over /proc; a group
 * without a live process is absent (as is every group where there is no /proc).
 */
export async function groupsUsage(pgids: ReadonlySet<number>): Promise<Map<number, GroupUsage>> {
  const usage = new Map<number, GroupUsage>();
  if (pgids.size === 0) return usage;
  const { ticksPerSecond, pageBytes } = procUnits();
  for (const text of await readProcStats()) {
    const stat = parseProcStat(text);
    const used = parseProcUsage(text);
    if (!stat || !used || !pgids.has(stat.pgid) || stat.state === "Z") continue;
    const group = usage.get(stat.pgid) ?? { cpuSeconds: 0, residentBytes: 0 };
    group.cpuSeconds += used.cpuTicks / ticksPerSecond;
    group.residentBytes += used.residentPages * pageBytes;
    usage.set(stat.pgid, group);
  }
  return usage;
}

/**
 * Whether any process of the group is alive. kill(2) also reaches zombies,
 * which are dead but wait for a parent to reap them (and some container inits
 * never do), so on Linux only non-zombie members count.
 */
async function groupAlive(pgid: number): Promise<boolean> {
  try {
    process.kill(-pgid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
  if (process.platform !== "linux") return true;
  return (await groupMembers(pgid)).some((m) => m.state !== "Z");
}

/**
 * Waits (up to `limitMs`) for a SIGKILLed group to vanish. There is no event
 * for the death of processes that are not our children, so this polls, briefly.
 */
export function waitGroupGone(pgid: number, limitMs: number): Promise<boolean> {
  return pollUntil(async () => !(await groupAlive(pgid)), { initialMs: 5, maxMs: 100, jitter: 0, timeoutMs: limitMs });
}

async function carriesAttemptId(members: ProcessStat[], attemptId: string): Promise<boolean> {
  const marker = `FLUSTER_ATTEMPT_ID=${attemptId}`;
  for (const member of members) {
    if (member.state === "Z") continue;
    try {
      const environ = await readFile(`/proc/${member.pid}/environ`, "utf8");
      if (environ.split("\0").includes(marker)) return true;
    } catch {
      // Gone, or not ours to read.
    }
  }
  return false;
}

