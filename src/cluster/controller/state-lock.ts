// One controller per state directory: a lock file taken atomically at start
// (created with O_EXCL) that names its holder, released at shutdown. A lock
// left by a controller that is no longer running is taken over.
import { randomUUID } from "node:crypto";
import { closeSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeFileSync, writeSync } from "node:fs";
import { hostname } from "node:os";
import { join, resolve } from "node:path";
import { FlusterError } from "../../core/errors.js";
import type { Logger } from "../../core/logger.js";
import { parseProcStat, type ProcessStat } from "../../core/proc-stat.js";

/** The lock's name inside the state directory. */
export const STATE_LOCK_FILE = "controller.lock";

/** What a lock file says about the controller holding it. */
export interface StateLockHolder {
  pid: number;
  host: string;
  /** The controller's URL, once it serves. */
  url?: string;
  /** When the controller started (ISO 8601). */
  startedAt: string;
  /** The process's start time as the kernel counts it (Linux), so a reused pid is not taken for the holder. */
  processStart?: string;
  /** Tells this holder's lock from a later one at the same path. */
  nonce: string;
}

/** A held lock. */
export interface StateLock {
  readonly path: string;
  /** Records the URL the controller serves at, for the message a second controller prints. */
  setUrl(url: string): void;
  /** Removes the lock file if it is still this holder's. */
  release(): void;
}

/**
 * Takes the lock of `stateDir`, or throws a `failed_precondition` error
 * naming the controller that holds it. A lock whose process is gone (or
 * whose pid now belongs to another process) is taken over, with a
 * `state_lock_taken_over` line to `logger`.
 */
export function acquireStateLock(stateDir: string, logger: Logger): StateLock {
  mkdirSync(stateDir, { recursive: true });
  const path = join(stateDir, STATE_LOCK_FILE);
  const me: StateLockHolder = { pid: process.pid, host: hostname(), startedAt: new Date().toISOString(), nonce: randomUUID() };
  const processStart = processStartOf(process.pid);
  if (processStart) me.processStart = processStart;
  for (let tries = 0; tries < 3; tries++) {
    try {
      const fd = openSync(path, "wx", 0o644);
      try {
        writeSync(fd, `${JSON.stringify(me)}\n`);
      } finally {
        closeSync(fd);
      }
      return heldLock(path, me);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    const holder = readHolder(path);
    if (holder && isRunning(holder)) {
      const elsewhere = holder.host !== me.host;
      throw new FlusterError(
        `state directory ${resolve(stateDir)} is in use by controller pid ${holder.pid}${elsewhere ? ` on ${holder.host}` : ""}` +
          `${holder.url ? ` (${holder.url})` : ""}, started ${holder.startedAt}; stop it first or use another --state-dir` +
          (elsewhere ? ` (if it is not running, remove ${resolve(path)})` : ""),
        "failed_precondition",
      );
    }
    logger.warn(
      { event: "state_lock_taken_over", path: resolve(path), ...(holder ? { pid: holder.pid, host: holder.host } : {}) },
      holder
        ? `taking over ${resolve(path)} from controller pid ${holder.pid} (started ${holder.startedAt}), which is no longer running`
        : `taking over ${resolve(path)}, which names no controller`,
    );
    try {
      unlinkSync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
  }
  throw new FlusterError(`cannot take ${resolve(path)}: other controllers keep starting on ${resolve(stateDir)}`, "failed_precondition");
}

function heldLock(path: string, me: StateLockHolder): StateLock {
  const stillMine = () => readHolder(path)?.nonce === me.nonce;
  return {
    path,
    setUrl(url) {
      if (!stillMine()) return;
      // Written aside and renamed over: the lock file is never seen half written.
      const next = `${path}.${me.nonce}`;
      writeFileSync(next, `${JSON.stringify({ ...me, url })}\n`, { mode: 0o644 });
      renameSync(next, path);
    },
    release() {
      try {
        if (stillMine()) unlinkSync(path);
      } catch {
        // Gone already: nothing to release.
      }
    },
  };
}

function readHolder(path: string): StateLockHolder | undefined {
  try {
    const parsed = JSON.parse(readFileSync(path, "utf8")) as Partial<StateLockHolder>;
    if (typeof parsed.pid !== "number" || typeof parsed.host !== "string") return undefined;
    return { startedAt: "at an unknown time", nonce: "", ...parsed } as StateLockHolder;
  } catch {
    return undefined;
  }
}

/** Whether the holder still runs: another host's is assumed to; here, its pid must be alive and the same process. */
function isRunning(holder: StateLockHolder): boolean {
  if (holder.host !== hostname()) return true;
  try {
    process.kill(holder.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  const stat = procStat(holder.pid);
  if (stat?.state === "Z") return false; // killed, not yet reaped by its parent
  return !(holder.processStart && stat && stat.startTime !== holder.processStart);
}

function processStartOf(pid: number): string | undefined {
  return procStat(pid)?.startTime;
}

/** A process from /proc (Linux); undefined elsewhere, or when it is gone. */
function procStat(pid: number): ProcessStat | undefined {
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return undefined;
  }
}
