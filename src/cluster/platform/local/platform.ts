// The local platform: each VM is a worker daemon process on this machine.
// Two ways to hold them: tied to this process (LocalCluster: they die with it,
// even when it is SIGKILLed) or detached (a controller's scale groups: they
// outlive a controller restart, and the new controller adopts them from the
// pid files the platform keeps).
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { FlusterError } from "../../../core/errors.js";
import type { LogFormat, LogLevel } from "../../../core/logger.js";
import { nodeEntryArgs } from "../../../core/node-entry.js";
import type { WorkerDaemonOptions } from "../../worker/options.js";
import { AllocationError, type Platform, type PlatformContext, type Vm, type VmRequest } from "../types.js";
import type { LocalSettings } from "./settings.js";

const WORKER_ARGS = nodeEntryArgs(import.meta.url, "../../worker/main");
/** The line a worker process prints once it is registered (worker/main.ts). */
const READY_LINE = /^fluster-worker-ready (.*)$/m;

/** Options of {@link LocalPlatform}. */
export interface LocalPlatformOptions {
  /** Holds one directory per VM: the worker's work dir, its output, and (detached) its pid file. */
  workDir: string;
  /**
   * Worker processes die with this process (they watch their stdin), and
   * their stdout lines other than the ready line are passed on to this
   * process's stdout. Otherwise they are detached: they outlive it, write
   * to files in their directory, and are found again by `listVms`. @default false
   */
  tied?: boolean;
  /** Level and format of the workers' lines on stderr. @default the worker's defaults */
  logLevel?: LogLevel;
  logFormat?: LogFormat;
  /** More daemon options for every worker (kill grace, fault injection). @default none */
  workerOptions?: Partial<Omit<WorkerDaemonOptions, "logger">>;
}

/** What a detached worker's pid file holds. */
interface PidFile {
  vmId: string;
  group: string;
  pid: number;
}

/** A worker process this platform started, while this process knows it. */
interface LocalVm {
  vm: Vm;
  child?: ChildProcess;
  pid: number;
  /** Settles when the worker has registered (or rejects when it exited first). */
  ready: Promise<{ workerId: string; address: string }>;
  /** The worker's address, once ready. */
  address?: string;
}

/** Builds the local platform of a controller's config: detached workers under the state dir. */
export async function createLocalPlatform(settings: LocalSettings, context: PlatformContext): Promise<LocalPlatform> {
  return new LocalPlatform({ workDir: settings.workDir ?? join(context.stateDir, "workers") });
}

export class LocalPlatform implements Platform {
  readonly name = "local";
  private readonly options: LocalPlatformOptions;
  private readonly vms = new Map<string, LocalVm>();

  constructor(options: LocalPlatformOptions) {
    this.options = options;
    mkdirSync(options.workDir, { recursive: true });
  }

  /** The address its worker serves at, once it is ready (from its ready line). */
  workerAddress(vmId: string): string | undefined {
    return this.vms.get(vmId)?.address;
  }

  /** The worker process of a VM this process started, if it still runs. */
  processOf(vmId: string): ChildProcess | undefined {
    return this.vms.get(vmId)?.child;
  }

  async allocate(request: VmRequest, _signal?: AbortSignal, overrides: Partial<Omit<WorkerDaemonOptions, "logger">> = {}): Promise<Vm> {
    const existing = this.vms.get(request.vmId) ?? this.adopt(request.vmId);
    if (existing && isAlive(existing.pid)) return existing.vm;
    const { vmId } = request;
    const dir = join(this.options.workDir, vmId);
    mkdirSync(dir, { recursive: true });
    const { resources } = request.group.shape;
    const daemonOptions = {
      controllerUrl: request.worker.controllerUrl,
      workerId: vmId,
      workDir: join(dir, "work"),
      cpu: resources.cpu,
      memory: resources.memory,
      labels: { ...request.worker.labels },
      ...this.options.workerOptions,
      ...overrides,
      ...(this.options.logLevel !== undefined ? { logLevel: this.options.logLevel } : {}),
      ...(this.options.logFormat !== undefined ? { logFormat: this.options.logFormat } : {}),
    };
    // The token goes in the environment, not in argv where `ps` shows it. A
    // detached worker must not watch a parent it is meant to outlive.
    const { FLUSTER_PARENT_WATCH: _parentWatch, ...inherited } = process.env;
    const env = { ...inherited, ...(request.worker.token ? { FLUSTER_TOKEN: request.worker.token } : {}) };
    const args = [...WORKER_ARGS, JSON.stringify(daemonOptions)];
    let child: ChildProcess;
    let ready: Promise<{ workerId: string; address: string }>;
    try {
      if (this.options.tied) {
        child = spawn(process.execPath, args, { stdio: ["pipe", "pipe", "inherit"], env: { ...env, FLUSTER_PARENT_WATCH: "stdin" } });
        ready = readyFromStdout(child, vmId);
      } else {
        const out = openSync(join(dir, "worker.out"), "w");
        const err = openSync(join(dir, "worker.log"), "a");
        try {
          child = spawn(process.execPath, args, { stdio: ["ignore", out, err], env, detached: true });
        } finally {
          closeSync(out);
          closeSync(err);
        }
        child.unref();
        ready = this.readyFromFile(vmId, child);
      }
    } catch (err) {
      throw new AllocationError(`cannot start a worker process for ${vmId}: ${(err as Error).message}`, "error", { cause: err });
    }
    const pid = child.pid;
    if (pid === undefined) {
      const failure = await new Promise<Error>((resolve) => child.once("error", resolve));
      throw new AllocationError(`cannot start a worker process for ${vmId}: ${failure.message}`, "error", { cause: failure });
    }
    ready.catch(() => {}); // waitReady reports it
    const vm: Vm = { vmId, group: request.group.name, state: "provisioning", hosts: [{ workerId: vmId, address: "127.0.0.1" }], platformId: `pid ${pid}` };
    const local: LocalVm = { vm, child, pid, ready };
    this.vms.set(vmId, local);
    if (!this.options.tied) writeFileSync(join(dir, "vm.json"), JSON.stringify({ vmId, group: request.group.name, pid } satisfies PidFile));
    ready.then(
      (info) => {
        local.address = info.address;
        if (local.vm.state === "provisioning") local.vm = { ...local.vm, state: "running" };
      },
      (err: unknown) => {
        local.vm = { ...local.vm, state: "failed", reason: (err as Error).message };
      },
    );
    child.once("exit", (code, signal) => {
      if (local.vm.state === "running" || local.vm.state === "provisioning") local.vm = { ...local.vm, state: "terminated", reason: `worker process exited (${signal ?? `code ${code}`})` };
    });
    return vm;
  }

  async release(vmId: string): Promise<void> {
    const local = this.vms.get(vmId) ?? this.adopt(vmId);
    if (local) {
      await stopPid(local.pid, local.child);
      local.vm = { ...local.vm, state: "terminated", reason: "released" };
    }
    this.vms.delete(vmId);
    rmSync(join(this.options.workDir, vmId), { recursive: true, force: true });
  }

  async getStatus(vmId: string): Promise<Vm | undefined> {
    const local = this.vms.get(vmId) ?? this.adopt(vmId);
    if (!local) return undefined;
    if (!isAlive(local.pid) && (local.vm.state === "running" || local.vm.state === "provisioning")) {
      local.vm = { ...local.vm, state: "terminated", reason: "worker process exited" };
    }
    return local.vm;
  }

  async listVms(): Promise<Vm[]> {
    if (!this.options.tied) for (const vmId of safeReaddir(this.options.workDir)) if (!this.vms.has(vmId)) this.adopt(vmId);
    const out: Vm[] = [];
    for (const vmId of this.vms.keys()) {
      const vm = await this.getStatus(vmId);
      if (vm) out.push(vm);
    }
    return out;
  }

  async waitReady(vmId: string, timeoutMs: number, signal?: AbortSignal): Promise<Vm> {
    const local = this.vms.get(vmId) ?? this.adopt(vmId);
    if (!local) throw new FlusterError(`no local VM ${vmId}`, "not_found");
    const timeout = AbortSignal.timeout(timeoutMs);
    const both = signal ? AbortSignal.any([signal, timeout]) : timeout;
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => reject(timeout.aborted ? new FlusterError(`local VM ${vmId} was not ready within ${timeoutMs} ms`, "deadline_exceeded") : FlusterError.from(both.reason, "cancelled"));
      if (both.aborted) return onAbort();
      both.addEventListener("abort", onAbort, { once: true });
      local.ready.then(
        () => {
          both.removeEventListener("abort", onAbort);
          resolve();
        },
        (err: unknown) => {
          both.removeEventListener("abort", onAbort);
          reject(err);
        },
      );
    });
    return local.vm;
  }

  async close(): Promise<void> {
    // Detached workers outlive the platform; tied ones end with this process.
  }

  /** A detached worker an earlier controller started, from its pid file; undefined when there is none or its process is gone. */
  private adopt(vmId: string): LocalVm | undefined {
    if (this.options.tied) return undefined;
    let file: PidFile;
    try {
      file = JSON.parse(readFileSync(join(this.options.workDir, vmId, "vm.json"), "utf8")) as PidFile;
    } catch {
      return undefined;
    }
    const alive = isAlive(file.pid) && commandLineOf(file.pid).includes(vmId);
    const vm: Vm = {
      vmId,
      group: file.group,
      state: alive ? "running" : "terminated",
      hosts: [{ workerId: vmId, address: "127.0.0.1" }],
      platformId: `pid ${file.pid}`,
      ...(alive ? {} : { reason: "worker process exited" }),
    };
    const local: LocalVm = { vm, pid: alive ? file.pid : -1, ready: alive ? this.readyFromFile(vmId) : Promise.reject(new FlusterError(vm.reason ?? "", "unavailable")) };
    local.ready.catch(() => {});
    this.vms.set(vmId, local);
    return local;
  }

  /** Waits for a detached worker's ready line in its output file; rejects when its process is gone first. */
  private async readyFromFile(vmId: string, child?: ChildProcess): Promise<{ workerId: string; address: string }> {
    const file = join(this.options.workDir, vmId, "worker.out");
    let exited: string | undefined;
    child?.once("exit", (code, signal) => (exited = signal ?? `code ${code}`));
    for (;;) {
      let text = "";
      try {
        text = readFileSync(file, "utf8");
      } catch {
        // not written yet
      }
      const match = READY_LINE.exec(text);
      if (match?.[1]) return JSON.parse(match[1]) as { workerId: string; address: string };
      const pid = child?.pid ?? this.vms.get(vmId)?.pid ?? -1;
      if (exited !== undefined || !isAlive(pid)) {
        throw new FlusterError(`worker ${vmId} exited before it was ready (${exited ?? "gone"}); see ${join(this.options.workDir, vmId, "worker.log")}`, "unavailable");
      }
      await sleep(100);
    }
  }
}

/** The ready line of a tied worker on its stdout; its other lines go to this process's stdout. */
function readyFromStdout(child: ChildProcess, vmId: string): Promise<{ workerId: string; address: string }> {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    const onExit = (code: number | null, signal: string | null) =>
      reject(new FlusterError(`worker ${vmId} exited before it was ready (code ${code}, signal ${signal})`, "unavailable"));
    child.once("exit", onExit);
    child.once("error", (err) => reject(new FlusterError(`cannot start worker ${vmId}: ${err.message}`, "unavailable", { cause: err })));
    lines.on("line", (line) => {
      const match = READY_LINE.exec(line);
      if (match?.[1]) {
        child.off("exit", onExit);
        resolve(JSON.parse(match[1]) as { workerId: string; address: string });
      } else {
        process.stdout.write(`${line}\n`);
      }
    });
  });
}

function isAlive(pid: number): boolean {
  if (pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The process's command line, to tell our worker from a process that got its pid later ("" when it cannot be read). */
function commandLineOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8");
  } catch {
    return "";
  }
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** SIGTERMs the process and waits for it to go; SIGKILL after 10 s. */
async function stopPid(pid: number, child?: ChildProcess): Promise<void> {
  if (!isAlive(pid)) return;
  if (child && (child.exitCode !== null || child.signalCode !== null)) return;
  const gone = child ? new Promise<void>((resolve) => child.once("exit", () => resolve())) : undefined;
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    return;
  }
  const deadline = Date.now() + 10_000;
  while (isAlive(pid) && Date.now() < deadline) {
    if (gone) await Promise.race([gone, sleep(50)]);
    else await sleep(50);
    if (child && (child.exitCode !== null || child.signalCode !== null)) return;
  }
  if (isAlive(pid)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone meanwhile
    }
    if (gone) await gone;
  }
}
