// The worker daemon's side of its lease supervisor (lease-supervisor-main.ts):
// starts the supervisor process and stops it; the daemon renews the deadline
// it enforces through the lease file (lease-file.ts). The supervisor is what keeps "at most one running attempt" when the
// daemon itself cannot act: stopped (SIGSTOP), hung, or starved of CPU.
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { nodeEntryArgs } from "../../core/node-entry.js";
import { FlusterError } from "../../core/errors.js";
import type { Logger } from "../../core/logger.js";

const SUPERVISOR_ARGS = nodeEntryArgs(import.meta.url, "./lease-supervisor-main");
/** The supervisor's checks are at most this late. */
export const SUPERVISOR_CHECK_MS = 100;
const READY_TIMEOUT_MS = 30_000;
const EXIT_TIMEOUT_MS = 5_000;

/** Options of {@link LeaseSupervisor.start}. */
export interface LeaseSupervisorOptions {
  /** The daemon's attempt log directories (`<dir>/<attempt>/pgid` name the groups to kill). */
  attemptsDir: string;
  /** The lease file the daemon renews (lease-file.ts). */
  leaseFile: string;
  /** Where the supervisor's reports (what it fenced) are logged, as `lease_supervisor_fenced`. */
  logger: Logger;
}

/**
 * Lifecycle: `start()` resolves once the supervisor runs; `close()` ends it (after the daemon killed its attempts, so
 * it finds none). If the daemon dies instead, the supervisor kills every
 * recorded attempt at once and exits.
 */
export class LeaseSupervisor {
  private constructor(private readonly child: ChildProcess) {}

  static async start(options: LeaseSupervisorOptions): Promise<LeaseSupervisor> {
    const settings = { leaseFile: options.leaseFile, attemptsDir: options.attemptsDir, daemonPid: process.pid, checkEveryMs: SUPERVISOR_CHECK_MS };
    // detached: its own process group, so a stop or interrupt aimed at the daemon's group does not reach it.
    const child = spawn(process.execPath, [...SUPERVISOR_ARGS, JSON.stringify(settings)], { detached: true, stdio: ["pipe", "pipe", "inherit"] });
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new FlusterError(`the lease supervisor did not start within ${READY_TIMEOUT_MS / 1000}s`, "internal")), READY_TIMEOUT_MS);
        child.once("exit", (code, signal) => {
          clearTimeout(timer);
          reject(new FlusterError(`the lease supervisor exited before it was ready (${signal ?? `code ${code}`})`, "internal"));
        });
        child.once("error", (err) => {
          clearTimeout(timer);
          reject(new FlusterError(`cannot start the lease supervisor: ${err.message}`, "internal"));
        });
        lines.on("line", (line) => {
          if (line === "fluster-lease-supervisor-ready") {
            clearTimeout(timer);
            resolve();
          } else {
            options.logger.warn({ event: "lease_supervisor_fenced", report: line }, `lease supervisor: ${line}`);
          }
        });
      });
    } catch (err) {
      child.kill("SIGKILL");
      throw err;
    }
    child.removeAllListeners("exit");
    // The daemon may exit without closing it: the pipe's end is what tells the supervisor.
    child.unref();
    (child.stdin as unknown as { unref?: () => void }).unref?.();
    (child.stdout as unknown as { unref?: () => void }).unref?.();
    return new LeaseSupervisor(child);
  }

  /** Pid of the supervisor process. */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Ends the supervisor: closes its pipe (it fences what is still recorded, normally nothing) and waits for it to exit. */
  async close(): Promise<void> {
    const child = this.child;
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      child.stdin?.end();
      const timer = setTimeout(() => child.kill("SIGKILL"), EXIT_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    }
  }
}
