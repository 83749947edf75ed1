// Child processes in tests: running node to the end, waiting for a line,
// stopping a child, and finding the processes a run left behind.
import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { REPO_ROOT } from "./paths.js";

/** How a child process ended, with all it wrote. */
export interface NodeResult {
  /** The exit code; null when a signal ended it. */
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Options of {@link runNode}. */
export interface RunNodeOptions {
  /** @default the repository root */
  cwd?: string;
  /** The child's whole environment. @default process.env */
  env?: NodeJS.ProcessEnv;
  /** Written to stdin, which is then closed. @default "" */
  input?: string;
  /**
   * A child still running after this long gets `timeoutSignal`, and SIGKILL
   * 15 s later, so that a hang fails its test instead of the whole suite.
   * @default 60_000
   */
  timeoutMs?: number;
  /** @default "SIGTERM" */
  timeoutSignal?: NodeJS.Signals;
  /** Sends SIGINT, as Ctrl-C would, once stdout matches this. */
  interruptOn?: RegExp;
}

/** Runs `node ...args` as a real child process to its end. */
export function runNode(args: string[], options: RunNodeOptions = {}): Promise<NodeResult> {
  const child = spawn(process.execPath, args, { cwd: options.cwd ?? REPO_ROOT, env: options.env ?? process.env, stdio: ["pipe", "pipe", "pipe"] });
  child.stdin.end(options.input ?? "");
  return collectOutput(child, {
    timeoutMs: options.timeoutMs ?? 60_000,
    onTimeout: () => {
      child.kill(options.timeoutSignal ?? "SIGTERM");
      setTimeout(() => child.kill("SIGKILL"), 15_000).unref();
    },
    onStdout: (stdout) => {
      if (options.interruptOn?.test(stdout) && !child.killed) child.kill("SIGINT");
    },
  });
}

/**
 * Everything `child` writes to stdout and stderr until it closes, and how it
 * ended. Past `timeoutMs`, `onTimeout` runs (it stops the child); `onStdout`
 * sees the stdout so far after each chunk.
 */
export function collectOutput(
  child: ChildProcess,
  options: { timeoutMs: number; onTimeout: () => void; onStdout?: (stdout: string) => void },
): Promise<NodeResult> {
  let stdout = "";
  let stderr = "";
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
    stdout += chunk;
    options.onStdout?.(stdout);
  });
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const timer = setTimeout(options.onTimeout, options.timeoutMs);
  return new Promise((resolve, reject) => {
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * This process's environment as a fresh machine has it, plus `extra`: no
 * FLUSTER_* variable (e.g. of a job running these tests), no loader flags
 * (NODE_OPTIONS: a program must register tsx itself) and no test-runner context.
 */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith("FLUSTER_") && key !== "NODE_OPTIONS" && key !== "NODE_TEST_CONTEXT") env[key] = value;
  }
  return { ...env, ...extra };
}

/**
 * Resolves with the first line of the child's stdout that matches `pattern`;
 * rejects if the child exits first. The rest of stdout is read and dropped,
 * so that a chatty child never blocks on a full pipe.
 */
export function waitForLine(child: ChildProcess, pattern: RegExp): Promise<RegExpExecArray> {
  const stdout = child.stdout;
  if (!stdout) return Promise.reject(new Error("waitForLine needs a child whose stdout is a pipe"));
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null, signal: NodeJS.Signals | null) =>
      reject(new Error(`the child exited (${signal ?? `code ${code}`}) before printing a line matching ${pattern}`));
    child.once("exit", onExit);
    const lines = createInterface({ input: stdout });
    const onLine = (line: string) => {
      const match = pattern.exec(line);
      if (!match) return;
      child.off("exit", onExit);
      lines.off("line", onLine);
      resolve(match);
    };
    lines.on("line", onLine);
  });
}

/** Sends `signal` and resolves once the child has exited (at once if it already has). */
export function stopProcess(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once("exit", () => resolve());
    child.kill(signal);
  });
}

/**
 * Whether a process has exited. A zombie has exited too: it only waits for
 * its parent to collect it, and in this sandbox PID 1 never collects orphans,
 * so `kill(pid, 0)` keeps succeeding on those.
 */
export function isGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ESRCH") return true;
    throw err;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return true;
  }
}

/** Pids of live processes whose environment holds one of `needles` (`NAME=value`); none where there is no /proc. */
export function processesWith(needles: readonly string[]): number[] {
  let pids: string[];
  try {
    pids = readdirSync("/proc").filter((name) => /^\d+$/.test(name));
  } catch {
    return []; // no /proc: nothing to check here
  }
  return pids.map(Number).filter((pid) => {
    try {
      const environ = readFileSync(`/proc/${pid}/environ`, "latin1").split("\0");
      return needles.some((needle) => environ.includes(needle));
    } catch {
      return false; // gone, or not ours
    }
  });
}

/** {@link processesWith}, given 3 s to drop to none: the pids still there after that grace. */
export async function survivors(needles: readonly string[]): Promise<number[]> {
  let found: number[] = [];
  for (let i = 0; i < 30; i++) {
    found = processesWith(needles);
    if (found.length === 0) break;
    await sleep(100);
  }
  return found;
}

/** SIGKILLs each pid (a negative one: that process group) still there; cleanup after a test that failed half-way. */
export function killAll(pids: Iterable<number>): void {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
}
