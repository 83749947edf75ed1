// The worker daemon's process runtime: runs each task attempt as a child process
// in its own process group (or, for `environment.image`, as a container that an
// attached `docker run` stands for), pipes its output into the attempt's log,
// enforces its timeout and kills its whole process tree.
import { spawn, type ChildProcess } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { Readable } from "node:stream";
import { StringDecoder } from "node:string_decoder";
import { FlusterError } from "../../core/errors.js";
import { MAX_TIMER_MS, checkGrace, findExecutable, isDirectory, taskEnv, validateSpec, type AttemptSpec } from "./attempt-spec.js";
import {
  CONTAINER_ENV_FILE_NAME,
  CONTAINER_FILE_NAME,
  containerName,
  dockerClientEnv,
  dockerRunArgs,
  findDocker,
  forgetContainer,
  inspectEndedContainer,
  killContainer,
  removeContainers,
  splitContainerEnv,
  type ContainerEnd,
} from "./container.js";
import { AttemptLog, type OutputStream } from "./log-store.js";
import { EXIT_SETTLE_MS, PGID_FILE_NAME, pdeathsigPrefix, signalGroup, waitGroupGone } from "./process-group.js";

export type { AttemptSpec } from "./attempt-spec.js";

/**
 * State of an attempt:
 * - `running`: started (or being started) and not yet seen to end.
 * - `succeeded`: the process exited with code 0.
 * - `failed`: a non-zero exit, a signal the runtime did not send, the timeout, or it could not start.
 * - `killed`: it ended after `kill()` (or `shutdown()`) asked it to.
 */
export type AttemptState = "running" | "succeeded" | "failed" | "killed";

/** How an attempt ended. */
export interface AttemptOutcome {
  state: Exclude<AttemptState, "running">;
  /** Exit code of the process, when it exited rather than died by a signal. */
  exitCode?: number;
  /** Signal that ended the process, e.g. `"SIGKILL"`. */
  signal?: string;
  /** Why it did not succeed: the kill reason, "execution timeout exceeded", "exited with code 3" and the end of stderr, ... */
  errorMessage?: string;
  /** When the process was seen to end. */
  finishedAt: Date;
}

/** Options of {@link RunningAttempt.kill}. */
export interface KillOptions {
  /** SIGKILL the group now instead of SIGTERM first. @default false */
  force?: boolean;
}

/** One attempt the runtime started. */
export interface RunningAttempt {
  readonly attemptId: string;
  /** Pid of the task's process, which is also its process group id; undefined when it could not start. */
  readonly pid: number | undefined;
  readonly startedAt: Date;
  readonly state: AttemptState;
  /** Set once the attempt has ended. */
  readonly outcome: AttemptOutcome | undefined;
  /** Resolves (never rejects) once the attempt has ended, its process group is gone and its log is closed. */
  readonly exited: Promise<AttemptOutcome>;
  /** The attempt's log; followers end when the attempt ends. */
  readonly log: AttemptLog;
  /**
   * Kills the attempt's process group: SIGTERM, then SIGKILL after the grace
   * period if the task is still running. The attempt ends `killed` with
   * `reason` (the first reason given wins). Idempotent; `force` escalates to
   * SIGKILL at once, also after an earlier gentle kill.
   */
  kill(reason: string, opts?: KillOptions): void;
}

/** Called when an attempt changes state (today: when it ends). */
export type AttemptListener = (attempt: RunningAttempt) => void;

/** Options of {@link ProcessRuntime}. */
export interface ProcessRuntimeOptions {
  /** Grace between SIGTERM and SIGKILL for specs that set none. @default 5000 */
  killGraceMs?: number;
  /**
   * Start tasks under `setpriv --pdeathsig KILL` (Linux, util-linux) so the
   * task dies with the daemon even if the daemon is SIGKILLed. Ignored where
   * setpriv is missing or lacks the option. The kernel ties the signal to
   * the thread that spawned the task, so start attempts from the daemon's
   * main thread, not from a worker thread that may end first. @default true
   */
  pdeathsig?: boolean;
}

/**
 * Lifecycle of a {@link ProcessRuntime}:
 * - `running`: starts attempts.
 * - `stopping`: `shutdown()` is killing every attempt; `start` refuses.
 * - `stopped`: every attempt has ended and its process group is gone.
 */
export type ProcessRuntimeState = "running" | "stopping" | "stopped";

export const DEFAULT_KILL_GRACE_MS = 5000;
const STDERR_TAIL_CHARS = 2048;
const STDERR_TAIL_LINES = 20;

/**
 * Runs attempts as child processes, one per worker daemon. Each attempt runs
 * in its own process group with no shell; killing an attempt signals the whole
 * group, so the task's children die with it.
 *
 * Orphans: when the daemon is SIGKILLed it cannot kill anything. Tasks are
 * started under `setpriv --pdeathsig KILL`, so the kernel kills the task's
 * process when the daemon dies; what the task started itself survives that,
 * so each running attempt's group id is also recorded in `<logDir>/pgid`, and
 * a restarting daemon calls {@link reapOrphans} on its attempts directory.
 */
export class ProcessRuntime {
  private stateValue: ProcessRuntimeState = "running";
  private readonly attempts = new Map<string, Attempt>();
  private readonly listeners = new Set<AttemptListener>();
  private readonly killGraceMs: number;
  private readonly pdeathsig: boolean;
  private stopping: Promise<void> | undefined;

  constructor(options: ProcessRuntimeOptions = {}) {
    this.killGraceMs = options.killGraceMs ?? DEFAULT_KILL_GRACE_MS;
    checkGrace("killGraceMs", this.killGraceMs);
    this.pdeathsig = options.pdeathsig ?? true;
  }

  get state(): ProcessRuntimeState {
    return this.stateValue;
  }

  /**
   * Starts an attempt. Throws only for a malformed spec, a duplicate running
   * attempt id, or a runtime that is shutting down; a program that cannot be
   * started yields an attempt that fails at once ("cannot start x: not found").
   */
  start(spec: AttemptSpec): RunningAttempt {
    validateSpec(spec);
    if (this.stateValue !== "running") {
      throw new FlusterError(`cannot start attempt ${spec.attemptId}: the runtime is ${this.stateValue}`, "failed_precondition");
    }
    if (this.attempts.has(spec.attemptId)) {
      throw new FlusterError(`attempt ${spec.attemptId} is already running`, "already_exists");
    }
    const attempt = new Attempt(spec, spec.killGraceMs ?? this.killGraceMs, (ended) => this.ended(ended));
    this.attempts.set(spec.attemptId, attempt);
    attempt.launch(spec, this.pdeathsig ? pdeathsigPrefix() : []);
    return attempt;
  }

  /** A running attempt by id; ended attempts are forgotten (their logs stay on disk). */
  get(attemptId: string): RunningAttempt | undefined {
    return this.attempts.get(attemptId);
  }

  /** The running attempts. */
  list(): RunningAttempt[] {
    return [...this.attempts.values()];
  }

  /** The live log of a running attempt; for an ended one open `new AttemptLog(logDir)`. */
  logOf(attemptId: string): AttemptLog | undefined {
    return this.attempts.get(attemptId)?.log;
  }

  /** Calls `listener` whenever an attempt changes state; returns a function that unsubscribes. */
  onChange(listener: AttemptListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Moves to `stopping`, kills every attempt (SIGTERM to each group, SIGKILL
   * after its grace period), and resolves in `stopped` once all have ended
   * and their groups are gone. Idempotent.
   */
  shutdown(reason = "the worker is shutting down"): Promise<void> {
    this.stopping ??= (async () => {
      this.stateValue = "stopping";
      const running = [...this.attempts.values()];
      for (const attempt of running) attempt.kill(reason);
      await Promise.all(running.map((attempt) => attempt.exited));
      this.stateValue = "stopped";
    })();
    return this.stopping;
  }

  private ended(attempt: Attempt): void {
    if (this.attempts.get(attempt.attemptId) === attempt) this.attempts.delete(attempt.attemptId);
    for (const listener of [...this.listeners]) {
      try {
        listener(attempt);
      } catch (err) {
        // A faulty listener must not stop the others or the runtime.
        process.emitWarning(`attempt listener threw: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }
}

type StopCause = { kind: "kill"; reason: string } | { kind: "timeout" };

class Attempt implements RunningAttempt {
  readonly attemptId: string;
  readonly startedAt = new Date();
  readonly log: AttemptLog;
  readonly exited: Promise<AttemptOutcome>;
  pid: number | undefined;
  private stateValue: AttemptState = "running";
  private outcomeValue: AttemptOutcome | undefined;
  private resolveExited: (outcome: AttemptOutcome) => void = () => undefined;
  private child: ChildProcess | undefined;
  private stopCause: StopCause | undefined;
  private termSent = false;
  private killSent = false;
  /** The leader has exited; the attempt is settling (pipes, group, log). */
  private ending = false;
  private graceTimer: NodeJS.Timeout | undefined;
  private timeoutTimer: NodeJS.Timeout | undefined;
  private pgidFile: string | undefined;
  private stderrTail = "";
  private readonly stderrDecoder = new StringDecoder("utf8");
  /** Set when the attempt runs in a container: the `docker` command, the container and its image and memory limit. */
  private container: { docker: string; name: string; image: string; memoryBytes: number; logDir: string } | undefined;

  constructor(
    spec: AttemptSpec,
    private readonly graceMs: number,
    private readonly onEnd: (attempt: Attempt) => void,
  ) {
    this.attemptId = spec.attemptId;
    this.log = AttemptLog.create(spec.logDir);
    this.exited = new Promise((resolveExited) => (this.resolveExited = resolveExited));
  }

  get state(): AttemptState {
    return this.stateValue;
  }

  get outcome(): AttemptOutcome | undefined {
    return this.outcomeValue;
  }

  /** Starts the process; `prefix` wraps it (`setpriv --pdeathsig KILL --`, or nothing). */
  launch(spec: AttemptSpec, prefix: readonly string[]): void {
    const command = spec.argv[0]!;
    const cwd = resolve(spec.cwd);
    if (!isDirectory(cwd)) return this.cannotStart(command, `working directory ${cwd} does not exist`);
    let program: { file: string; args: string[]; env: Record<string, string>; cwd: string };
    if (spec.container) {
      const prepared = this.prepareContainer(spec, cwd);
      if ("problem" in prepared) return this.cannotStart(`${command} in image ${spec.container.image}`, prepared.problem);
      program = prepared;
    } else {
      const env = taskEnv(spec);
      const found = findExecutable(command, env.PATH ?? "", cwd);
      if ("problem" in found) return this.cannotStart(command, found.problem);
      program = { file: found.path, args: spec.argv.slice(1), env, cwd };
    }
    const [file = program.file, ...args] = [...prefix, program.file, ...program.args];
    let child: ChildProcess;
    try {
      // detached: the task (or its `docker run`) leads a new session and process group (pgid = pid).
      child = spawn(file, args, { cwd: program.cwd, env: program.env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    } catch (err) {
      return this.cannotStart(command, err instanceof Error ? err.message : String(err));
    }
    this.child = child;
    child.once("error", (err: NodeJS.ErrnoException) => {
      // Only a failed spawn leaves no pid; later errors (none expected, the
      // runtime signals with process.kill) do not change the outcome.
      if (this.pid === undefined) this.cannotStart(command, err.code === "ENOENT" ? "not found" : err.message);
    });
    if (child.pid === undefined) return;
    this.pid = child.pid;
    this.recordPgid(spec.logDir, child.pid);
    this.pipe(child.stdout!, "stdout");
    this.pipe(child.stderr!, "stderr");
    child.once("exit", (code, signal) => void this.leaderExited(code, signal));
    if (spec.timeoutSeconds !== undefined) this.armTimeout(Date.now() + spec.timeoutSeconds * 1000);
  }

  /**
   * The `docker run` that stands for a containerized attempt: the task's
   * variables go into an env file (readable by the worker's user alone),
   * never onto the command line; the container's name is recorded for the
   * reaping after a daemon restart.
   */
  private prepareContainer(spec: AttemptSpec, cwd: string): { file: string; args: string[]; env: Record<string, string>; cwd: string } | { problem: string } {
    const container = spec.container!;
    const docker = findDocker();
    if (!docker) return { problem: "docker is not installed on this worker (no `docker` on its PATH)" };
    const name = containerName(spec.attemptId);
    const { fileText, byName } = splitContainerEnv({ ...spec.env, FLUSTER_ATTEMPT_ID: spec.attemptId });
    const envFile = join(spec.logDir, CONTAINER_ENV_FILE_NAME);
    try {
      writeFileSync(envFile, fileText, { mode: 0o600 });
      writeFileSync(join(spec.logDir, CONTAINER_FILE_NAME), `${name}\n`);
    } catch (err) {
      return { problem: `cannot write ${envFile}: ${err instanceof Error ? err.message : String(err)}` };
    }
    this.container = { docker, name, image: container.image, memoryBytes: container.memoryBytes ?? 0, logDir: spec.logDir };
    const args = dockerRunArgs({ attemptId: spec.attemptId, argv: spec.argv, cwd, container, envFile, envNames: Object.keys(byName) });
    return { file: docker, args, env: dockerClientEnv(spec.attemptId, byName), cwd: spec.logDir };
  }

  kill(reason: string, opts: KillOptions = {}): void {
    if (this.stateValue !== "running" || this.ending) return;
    this.stopCause ??= { kind: "kill", reason };
    this.signalGroup(opts.force === true);
  }

  /** SIGTERM with a SIGKILL after the grace period, or SIGKILL now. */
  private signalGroup(force: boolean): void {
    const pgid = this.pid;
    if (pgid === undefined || this.killSent) return;
    if (force) {
      this.killSent = true;
      clearTimeout(this.graceTimer);
      if (this.container) void this.killContainer(pgid, "SIGKILL");
      else signalGroup(pgid, "SIGKILL");
      return;
    }
    if (this.termSent) return;
    this.termSent = true;
    if (this.container) void this.killContainer(pgid, "SIGTERM");
    else signalGroup(pgid, "SIGTERM");
    // Only needed while the leader lives: once it exits, leaderExited kills the rest of the group.
    this.graceTimer = setTimeout(() => this.signalGroup(true), this.graceMs);
  }

  /**
   * Signals the container (its init passes the signal on to the task). A
   * SIGKILL also kills the `docker run` if it is still there afterwards (the
   * container was not created yet, or the engine does not answer): the
   * attempt then ends, and its end removes whatever container there is.
   */
  private async killContainer(pgid: number, signal: NodeJS.Signals): Promise<void> {
    const { docker, name } = this.container!;
    const signalled = await killContainer(docker, name, signal);
    if (signal !== "SIGKILL" || this.ending) return;
    // Signalled: `docker run` ends by itself once the container has; give it a moment to say how.
    if (signalled) await new Promise((settled) => setTimeout(settled, EXIT_SETTLE_MS).unref());
    if (!this.ending) signalGroup(pgid, "SIGKILL");
  }

  private armTimeout(deadline: number): void {
    this.timeoutTimer = setTimeout(() => {
      if (Date.now() < deadline) return this.armTimeout(deadline);
      if (this.stateValue !== "running" || this.ending) return;
      this.stopCause ??= { kind: "timeout" };
      this.signalGroup(false);
    }, Math.min(Math.max(0, deadline - Date.now()), MAX_TIMER_MS));
  }

  private pipe(readable: Readable, stream: OutputStream): void {
    readable.on("data", (chunk: Buffer) => {
      if (stream === "stderr") this.keepStderrTail(chunk);
      // Back-pressure: a task printing faster than the disk takes it waits on its pipe.
      if (!this.log.append(stream, chunk)) {
        readable.pause();
        void this.log.drained().then(() => readable.resume());
      }
    });
  }

  private keepStderrTail(chunk: Buffer): void {
    this.stderrTail = (this.stderrTail + this.stderrDecoder.write(chunk)).slice(-4 * STDERR_TAIL_CHARS);
  }

  /** The last lines of stderr, at most about 2 KB, for the error message. */
  private stderrSummary(): string {
    let text = (this.stderrTail + this.stderrDecoder.end()).trimEnd();
    if (text.length > STDERR_TAIL_CHARS) {
      text = text.slice(-STDERR_TAIL_CHARS);
      const firstBreak = text.indexOf("\n");
      if (firstBreak !== -1) text = text.slice(firstBreak + 1); // drop the cut line
    }
    return text.split("\n").slice(-STDERR_TAIL_LINES).join("\n").trim();
  }

  private async leaderExited(code: number | null, signal: NodeJS.Signals | null): Promise<void> {
    this.ending = true;
    const finishedAt = new Date();
    clearTimeout(this.graceTimer);
    clearTimeout(this.timeoutTimer);
    const pgid = this.pid!;
    // The attempt is over when its leader exits; whatever it left in its
    // group would hold resources the controller now thinks are free.
    signalGroup(pgid, "SIGKILL");
    // So is its container: asked how it ended (killed for memory?), then removed, always.
    const containerEnd = this.container ? this.removeContainer() : Promise.resolve(undefined);
    const [, , ended] = await Promise.all([this.stdioClosed(), waitGroupGone(pgid, EXIT_SETTLE_MS), containerEnd]);
    await this.end(this.outcomeFor(code, signal, finishedAt, ended));
  }

  private async removeContainer(): Promise<ContainerEnd | undefined> {
    const { docker, name } = this.container!;
    const ended = await inspectEndedContainer(docker, name);
    if (!(await removeContainers(docker, [name]))) {
      // Left for the reaping at the next start of the daemon, which finds it by its label.
      process.emitWarning(`could not remove container ${name} of attempt ${this.attemptId}`);
    }
    return ended;
  }

  /** Waits for both pipes to close; a process that left the group (setsid) may hold them, so give up after a while. */
  private async stdioClosed(): Promise<void> {
    const child = this.child!;
    const streams = [child.stdout, child.stderr].filter((s): s is Readable => s !== null && !s.closed);
    if (streams.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const closed = Promise.all(streams.map((s) => new Promise((done) => s.once("close", done))));
    const gaveUp = await Promise.race([
      closed.then(() => false),
      new Promise<boolean>((done) => (timer = setTimeout(() => done(true), EXIT_SETTLE_MS))),
    ]);
    clearTimeout(timer);
    if (gaveUp) for (const s of streams) s.destroy();
  }

  private outcomeFor(code: number | null, signal: NodeJS.Signals | null, finishedAt: Date, container?: ContainerEnd): AttemptOutcome {
    const how = { finishedAt, ...(code !== null ? { exitCode: code } : {}), ...(signal !== null ? { signal } : {}) };
    const cause = this.stopCause;
    if (cause?.kind === "timeout") return { ...how, state: "failed", errorMessage: "execution timeout exceeded" };
    if (cause?.kind === "kill") return { ...how, state: "killed", errorMessage: cause.reason };
    if (code === 0) return { ...how, state: "succeeded" };
    const tail = this.stderrSummary();
    if (this.container) {
      const { image, memoryBytes } = this.container;
      if (container?.oomKilled) {
        const limit = memoryBytes > 0 ? ` (limit ${formatMiB(memoryBytes)})` : "";
        return { ...how, state: "failed", errorMessage: `killed: out of memory${limit}` };
      }
      // 125: docker itself failed (no such image, the engine is down); a container that never started could not run its program.
      if (code === 125 || (container !== undefined && !container.started)) {
        const why = `cannot run image ${image}: ${tail || `docker run exited with code ${code ?? signal ?? "unknown"}`}`;
        return { ...how, state: "failed", errorMessage: why };
      }
    }
    const why = code !== null ? `exited with code ${code}` : `killed by signal ${signal ?? "unknown"}`;
    return { ...how, state: "failed", errorMessage: tail ? `${why}\n${tail}` : why };
  }

  private cannotStart(command: string, problem: string): void {
    const message = `cannot start ${command}: ${problem}`;
    // Users read logs first; put the reason there too.
    this.log.append("stderr", `${message}\n`);
    void this.end({ state: "failed", errorMessage: message, finishedAt: new Date() });
  }

  private async end(outcome: AttemptOutcome): Promise<void> {
    if (this.outcomeValue) return;
    clearTimeout(this.graceTimer);
    clearTimeout(this.timeoutTimer);
    await this.log.close();
    if (this.pgidFile) await rm(this.pgidFile, { force: true }).catch(() => undefined);
    if (this.container) forgetContainer(this.container.logDir);
    this.outcomeValue = outcome;
    this.stateValue = outcome.state;
    this.onEnd(this);
    this.resolveExited(outcome);
  }

  /** Best effort: without the file only pdeathsig protects against orphans. */
  private recordPgid(logDir: string, pgid: number): void {
    const file = join(logDir, PGID_FILE_NAME);
    try {
      writeFileSync(file, `${pgid}\n${this.attemptId}\n${process.pid}\n`);
      this.pgidFile = file;
    } catch {
      rmSync(file, { force: true });
    }
  }
}

/** Bytes as MiB for messages: "256 MiB", "1.5 MiB". */
function formatMiB(bytes: number): string {
  const mib = bytes / 2 ** 20;
  return `${Number.isInteger(mib) ? mib : mib.toFixed(1)} MiB`;
}
