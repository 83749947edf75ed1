// The ssh platform: each VM is one listed host, where the system `ssh` client
// installs the fluster package (once per build), starts a detached
// `fluster worker serve`, and stops it. What runs where is kept on the hosts
// (`vm.json` beside each worker), so a restarted controller finds its VMs by
// asking every host.
import { spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { ERROR_BRAND, FlusterError } from "../../../core/errors.js";
import { FLUSTER_PACKAGE_DIR, packageEntries, packageHash } from "../package-files.js";
import { AllocationError, workerServeArgs, type Platform, type PlatformContext, type Vm, type VmRequest } from "../types.js";
import type { SshHost, SshSettings } from "./settings.js";

/** Options of {@link SshPlatform} besides its settings. */
export interface SshPlatformOptions {
  /** The ssh client. @default "ssh" */
  sshCommand?: string;
  /** Seconds ssh waits for a host to answer (its `ConnectTimeout`). @default 10 */
  connectTimeoutSeconds?: number;
  /** Seconds a stopped worker has to exit after SIGTERM before it is SIGKILLed. @default 10 */
  stopGraceSeconds?: number;
  /** Milliseconds between looks at a booting worker in `waitReady`. @default 300 */
  pollIntervalMs?: number;
}

/** What `vm.json` beside a worker on its host holds. */
interface VmFile {
  vmId: string;
  group: string;
  /** The host entry it runs on ({@link hostKey}): hosts that share a disk tell their VMs apart by it. */
  host: string;
  pid: number;
}

/** A VM this process knows, and the host it is on. */
interface SshVm {
  vm: Vm;
  host: SshHost;
  /** Its host is chosen and it is being installed and started: it has no `vm.json` yet. */
  settingUp?: boolean;
}

/** One host's answer to a listing: its VMs of this cluster, or why it did not answer. */
type HostListing = { host: SshHost; vms: Vm[] } | { host: SshHost; error: Error };

/** The line `fluster worker serve` prints once registered (cli/commands.ts). */
const READY_PATTERN = "^fluster worker .* serving at ";
/** The marker of a complete install in an install folder. */
const INSTALLED_MARKER = ".fluster-installed";
const MIN_NODE_MAJOR = 20;

/** Builds the ssh platform of a controller's config. */
export async function createSshPlatform(settings: SshSettings, context: PlatformContext): Promise<SshPlatform> {
  return new SshPlatform(settings, context);
}

export class SshPlatform implements Platform {
  readonly name = "ssh";
  private readonly settings: SshSettings;
  private readonly context: PlatformContext;
  private readonly options: Required<SshPlatformOptions>;
  private readonly knownHostsFile: string;
  private readonly vms = new Map<string, SshVm>();
  /** Host choices are made one at a time, so two allocations never take the same host. */
  private choosing: Promise<unknown> = Promise.resolve();
  private hashValue: string | undefined;

  constructor(settings: SshSettings, context: PlatformContext, options: SshPlatformOptions = {}) {
    this.settings = settings;
    this.context = context;
    this.options = { sshCommand: "ssh", connectTimeoutSeconds: 10, stopGraceSeconds: 10, pollIntervalMs: 300, ...options };
    mkdirSync(context.stateDir, { recursive: true });
    this.knownHostsFile = settings.knownHostsFile ?? join(context.stateDir, "known_hosts");
  }

  async allocate(request: VmRequest, signal?: AbortSignal): Promise<Vm> {
    const { vmId } = request;
    const chosen = await this.oneAtATime(async (): Promise<{ existing: Vm } | { host: SshHost }> => {
      const known = this.vms.get(vmId);
      if (known && isUp(known.vm)) return { existing: known.vm };
      const listings = await this.listHosts(signal);
      const found = this.vms.get(vmId);
      if (found && isUp(found.vm)) return { existing: found.vm };
      // A VM of this id whose worker is gone is started again where it was.
      const host = found?.host ?? this.freeHost(listings);
      const vm: Vm = { vmId, group: request.group.name, state: "provisioning", hosts: [{ workerId: vmId, address: advertised(host) }], platformId: hostLabel(host) };
      this.vms.set(vmId, { vm, host, settingUp: true }); // holds the host while it is set up
      return { host };
    });
    if ("existing" in chosen) return chosen.existing;
    const { host } = chosen;
    try {
      const installDir = await this.install(host, signal);
      const pid = await this.start(host, installDir, request, signal);
      const vm: Vm = { vmId, group: request.group.name, state: "provisioning", hosts: [{ workerId: vmId, address: advertised(host) }], platformId: `${hostLabel(host)} pid ${pid}` };
      this.vms.set(vmId, { vm, host });
      this.context.logger.info({ event: "ssh_vm_started", vmId, host: hostLabel(host), pid }, `started worker ${vmId} on ${hostLabel(host)}`);
      return vm;
    } catch (err) {
      this.vms.delete(vmId);
      // Whatever got that far (a folder, a worker that did start) goes.
      await this.run(host, this.stopScript(vmId), { timeoutMs: (this.options.stopGraceSeconds + 30) * 1000 }).catch(() => undefined);
      if (err instanceof AllocationError) throw err;
      throw new AllocationError(`cannot start a worker for ${vmId} on ${hostLabel(host)}: ${(err as Error).message}`, "error", { cause: err });
    }
  }

  async release(vmId: string, signal?: AbortSignal): Promise<void> {
    let known = this.vms.get(vmId);
    if (!known) {
      await this.listHosts(signal);
      known = this.vms.get(vmId);
    }
    if (!known) return;
    await this.run(known.host, this.stopScript(vmId), { timeoutMs: (this.options.stopGraceSeconds + 30) * 1000, ...(signal ? { signal } : {}) });
    this.vms.delete(vmId);
    this.context.logger.info({ event: "ssh_vm_released", vmId, host: hostLabel(known.host) }, `stopped worker ${vmId} on ${hostLabel(known.host)}`);
  }

  async getStatus(vmId: string, signal?: AbortSignal): Promise<Vm | undefined> {
    const known = this.vms.get(vmId);
    if (!known) {
      await this.listHosts(signal);
      return this.vms.get(vmId)?.vm;
    }
    const vms = await this.listHost(known.host, vmId, signal);
    const vm = vms.find((v) => v.vmId === vmId);
    if (!vm) {
      // Its folder is gone (released by another controller), unless it is still being set up.
      if (!known.settingUp) this.vms.delete(vmId);
      return this.vms.get(vmId)?.vm;
    }
    this.vms.set(vmId, { vm, host: known.host });
    return vm;
  }

  async listVms(signal?: AbortSignal): Promise<Vm[]> {
    await this.listHosts(signal);
    return [...this.vms.values()].map((known) => known.vm);
  }

  async waitReady(vmId: string, timeoutMs: number, signal?: AbortSignal): Promise<Vm> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (signal?.aborted) throw FlusterError.from(signal.reason, "cancelled");
      let vm: Vm | undefined;
      try {
        vm = await this.getStatus(vmId, signal);
      } catch (err) {
        // A host that does not answer now may answer before the deadline.
        if (Date.now() >= deadline) throw err;
      }
      if (vm?.state === "running") return vm;
      if (vm && (vm.state === "failed" || vm.state === "terminated")) throw new FlusterError(`ssh VM ${vmId} on ${vm.platformId ?? "its host"} ${vm.reason ?? vm.state}`, "unavailable");
      if (!vm && !this.vms.has(vmId)) throw new FlusterError(`no ssh VM ${vmId}`, "not_found");
      if (Date.now() >= deadline) throw new FlusterError(`ssh VM ${vmId} was not ready within ${timeoutMs} ms`, "deadline_exceeded");
      await sleep(Math.min(this.options.pollIntervalMs, Math.max(0, deadline - Date.now())), undefined, signal ? { signal } : {}).catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    // Every ssh call is its own connection, ended when it returns; the workers run on.
  }

  // ------------------------------------------------------------------ hosts

  /** Runs `task` after the host choices before it. */
  private oneAtATime<T>(task: () => Promise<T>): Promise<T> {
    const result = this.choosing.then(task, task);
    this.choosing = result.catch(() => undefined);
    return result;
  }

  /** Asks every host for its VMs (in parallel) and updates what this process knows. */
  private async listHosts(signal?: AbortSignal): Promise<HostListing[]> {
    const listings = await Promise.all(
      this.settings.hosts.map(async (host): Promise<HostListing> => {
        try {
          return { host, vms: await this.listHost(host, undefined, signal) };
        } catch (err) {
          this.context.logger.warn({ event: "ssh_host_unreachable", host: hostLabel(host), error: (err as Error).message }, `ssh host ${hostLabel(host)} did not answer`);
          return { host, error: err as Error };
        }
      }),
    );
    for (const listing of listings) {
      if ("error" in listing) continue; // what was known of its VMs stays as it was
      const key = hostKey(listing.host);
      const seen = new Set(listing.vms.map((vm) => vm.vmId));
      for (const [vmId, known] of this.vms) {
        // A VM being set up has no vm.json yet: keep it.
        if (hostKey(known.host) === key && !seen.has(vmId) && !known.settingUp) this.vms.delete(vmId);
      }
      for (const vm of listing.vms) this.vms.set(vm.vmId, { vm, host: listing.host });
    }
    return listings;
  }

  /** A host that answered and holds no running or booting VM of this cluster; else an AllocationError saying why none. */
  private freeHost(listings: readonly HostListing[]): SshHost {
    const busy = new Map<string, string>();
    for (const { vm, host } of this.vms.values()) if (isUp(vm)) busy.set(hostKey(host), vm.vmId);
    const free = listings.find((listing) => !("error" in listing) && !busy.has(hostKey(listing.host)));
    if (free) return free.host;
    const why = listings.map((listing) =>
      "error" in listing ? `${hostLabel(listing.host)} unreachable: ${listing.error.message}` : `${hostLabel(listing.host)} runs ${busy.get(hostKey(listing.host))}`,
    );
    const unreachable = listings.filter((listing) => "error" in listing).length;
    const total = listings.length;
    const summary = unreachable === 0 ? `all ${total} ssh hosts are in use` : unreachable === total ? `none of the ${total} ssh hosts answered` : `all ${total} ssh hosts are in use or unreachable`;
    throw new AllocationError(`${summary} (${why.join("; ")})`, unreachable === total ? "error" : "stockout");
  }

  /** The VMs of this cluster on `host` (only `vmId`'s when given). */
  private async listHost(host: SshHost, vmId: string | undefined, signal?: AbortSignal): Promise<Vm[]> {
    const { stdout } = await this.run(host, this.statusScript(vmId), { timeoutMs: 60_000, ...(signal ? { signal } : {}) });
    const vms: Vm[] = [];
    const key = hostKey(host);
    let last: Vm | undefined;
    for (const line of stdout.split("\n")) {
      const vmLine = /^VM ([01]) ([01]) (\{.*\})$/.exec(line);
      if (vmLine) {
        last = undefined;
        let file: VmFile;
        try {
          file = JSON.parse(vmLine[3] as string) as VmFile;
        } catch {
          continue; // a half-written file of an allocation under way
        }
        if (file.host !== key) continue; // another host's VM, on a disk they share
        const [alive, ready] = [vmLine[1] === "1", vmLine[2] === "1"];
        const state = alive ? (ready ? "running" : "provisioning") : ready ? "terminated" : "failed";
        last = {
          vmId: file.vmId,
          group: file.group,
          state,
          hosts: [{ workerId: file.vmId, address: advertised(host) }],
          platformId: `${hostLabel(host)} pid ${file.pid}`,
          ...(alive ? {} : { reason: ready ? "worker process exited" : "worker process exited before it registered" }),
        };
        vms.push(last);
        continue;
      }
      const logLine = /^LOG (.*)$/.exec(line);
      if (logLine && last?.reason && logLine[1]) {
        const index = vms.indexOf(last);
        last = { ...last, reason: `${last.reason} (its last log line: ${logLine[1]})` };
        vms[index] = last;
      }
    }
    return vms;
  }

  // ------------------------------------------------------------------ install and start

  /** Puts this build of the fluster package on `host` unless it is there; returns its folder there (a shell word). */
  private async install(host: SshHost, signal?: AbortSignal): Promise<string> {
    this.hashValue ??= packageHash(FLUSTER_PACKAGE_DIR);
    const dir = `${remotePath(this.settings.installDir)}/${this.hashValue}`;
    const check = [`${shellQuote(this.settings.node)} -e 'process.stdout.write(process.versions.node + "\\n")' || exit 90`, `if test -f ${dir}/${INSTALLED_MARKER}; then echo installed; fi`].join("\n");
    const probe = await this.run(host, check, { timeoutMs: 60_000, ...(signal ? { signal } : {}) }).catch((err: unknown) => {
      if (err instanceof SshError && err.exitCode === 90) throw new AllocationError(`${hostLabel(host)} cannot run node (\`${this.settings.node}\`, set platforms.ssh.node): ${err.stderr || "no output"}`, "error");
      throw err;
    });
    const [version = "", state] = probe.stdout.split("\n");
    const major = Number(version.split(".")[0]);
    if (!(major >= MIN_NODE_MAJOR)) throw new AllocationError(`${hostLabel(host)} has node ${version || "(unknown)"}; fluster needs node ≥ ${MIN_NODE_MAJOR} (platforms.ssh.node names it)`, "error");
    if (state === "installed") return dir;
    const started = Date.now();
    // Unpacked beside the final folder, then renamed into place: a host never sees half an install, and of two concurrent installs one wins.
    const temp = `${dir}.partial-$$`;
    const unpack = [
      `set -e`,
      `mkdir -p ${temp}`,
      `tar -x -f - -C ${temp}`,
      `touch ${temp}/${INSTALLED_MARKER}`,
      `mv -T ${temp} ${dir} 2>/dev/null || rm -rf ${temp}`,
      `test -f ${dir}/${INSTALLED_MARKER}`,
    ].join("\n");
    const tar = spawn("tar", ["-c", "-h", "-f", "-", "-C", FLUSTER_PACKAGE_DIR, ...packageEntries(FLUSTER_PACKAGE_DIR)], { stdio: ["ignore", "pipe", "pipe"] });
    let tarErrors = "";
    tar.stderr.setEncoding("utf8").on("data", (chunk: string) => (tarErrors = (tarErrors + chunk).slice(-2000)));
    const tarDone = new Promise<number | null>((resolve) => {
      tar.once("error", (err) => {
        tarErrors += err.message;
        resolve(-1);
      });
      tar.once("close", resolve);
    });
    try {
      await this.run(host, unpack, { input: tar.stdout, timeoutMs: 600_000, ...(signal ? { signal } : {}) });
    } finally {
      if (tar.exitCode === null) tar.kill("SIGKILL");
    }
    const tarCode = await tarDone;
    if (tarCode !== 0) throw new FlusterError(`packing the fluster package at ${FLUSTER_PACKAGE_DIR} failed (tar exit ${tarCode}): ${tarErrors.trim()}`, "internal");
    this.context.logger.info({ event: "ssh_installed", host: hostLabel(host), hash: this.hashValue, ms: Date.now() - started }, `installed fluster on ${hostLabel(host)}`);
    return dir;
  }

  /** Starts the worker of `request` detached on `host`; returns its pid. The token travels on ssh's stdin, never in an argv. */
  private async start(host: SshHost, installDir: string, request: VmRequest, signal?: AbortSignal): Promise<number> {
    const { vmId } = request;
    const args = [
      this.settings.node,
      `${installDir}/bin/fluster.js`,
      ...workerServeArgs(request, vmId),
      "--host",
      "0.0.0.0",
      "--advertise-host",
      advertised(host),
      "--work-dir",
    ];
    // installDir and the work dir are shell words already ("$HOME"/… expands there).
    const command = args.map((arg, i) => (i === 1 ? arg : shellQuote(arg))).join(" ") + ` "$dir/work"`;
    const meta = JSON.stringify({ vmId, group: request.group.name, host: hostKey(host) }).slice(0, -1);
    const inner = `echo $$ > worker.pid; exec "$@"`;
    const script = [
      `set -e`,
      `dir=${this.vmDir(vmId)}`,
      `mkdir -p "$dir/work"`,
      `cd "$dir"`,
      `rm -f worker.pid vm.json`,
      ...(request.worker.tlsCa ? [`printf '%s' ${shellQuote(request.worker.tlsCa)} > controller-ca.pem`, `FLUSTER_TLS_CA="$dir/controller-ca.pem"; export FLUSTER_TLS_CA`] : []),
      ...(request.worker.token ? [`FLUSTER_TOKEN=${shellQuote(request.worker.token)}; export FLUSTER_TOKEN`] : [`unset FLUSTER_TOKEN`]),
      `detach=nohup; if command -v setsid >/dev/null 2>&1; then detach="setsid nohup"; fi`,
      `$detach sh -c ${shellQuote(inner)} sh ${command} </dev/null >worker.out 2>>worker.log &`,
      `i=0; while [ ! -s worker.pid ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done`,
      `pid=$(cat worker.pid)`,
      `printf '%s,"pid":%s}\\n' ${shellQuote(meta)} "$pid" > vm.json.tmp`,
      `mv vm.json.tmp vm.json`,
      `echo "pid $pid"`,
    ].join("\n");
    const { stdout } = await this.run(host, script, { timeoutMs: 60_000, ...(signal ? { signal } : {}) });
    const pid = Number(/^pid (\d+)$/m.exec(stdout)?.[1]);
    if (!(pid > 0)) throw new FlusterError(`the worker did not start (no pid): ${stdout.trim()}`, "internal");
    return pid;
  }

  // ------------------------------------------------------------------ remote scripts

  /** The folder of this cluster's VMs on a host (a shell word). */
  private clusterDir(): string {
    return `${remotePath(this.settings.workDir)}/${shellQuote(this.context.clusterName.replace(/[^A-Za-z0-9._-]/g, "_"))}`;
  }

  private vmDir(vmId: string): string {
    return `${this.clusterDir()}/${shellQuote(vmId)}`;
  }

  /** Prints `VM <alive 0|1> <registered 0|1> <vm.json>` per VM folder (and `LOG <last line>` for a dead worker). */
  private statusScript(vmId: string | undefined): string {
    return [
      ALIVE_FUNCTION,
      `for d in ${this.clusterDir()}/${vmId === undefined ? "*" : shellQuote(vmId)}; do`,
      `  [ -f "$d/vm.json" ] || continue`,
      `  pid=$(cat "$d/worker.pid" 2>/dev/null || echo 0)`,
      `  alive=0; if alive "$pid" "$(basename "$d")"; then alive=1; fi`,
      `  ready=0; if grep -q ${shellQuote(READY_PATTERN)} "$d/worker.out" 2>/dev/null; then ready=1; fi`,
      `  printf 'VM %s %s %s\\n' "$alive" "$ready" "$(head -n 1 "$d/vm.json")"`,
      `  if [ $alive = 0 ]; then printf 'LOG %s\\n' "$(tail -n 1 "$d/worker.log" 2>/dev/null | tr -d '\\r' | cut -c 1-300)"; fi`,
      `done`,
    ].join("\n");
  }

  /** SIGTERM to the worker, SIGKILL to its process group after the grace; then its folder goes. */
  private stopScript(vmId: string): string {
    const polls = Math.max(1, Math.round(this.options.stopGraceSeconds * 10));
    return [
      ALIVE_FUNCTION,
      `d=${this.vmDir(vmId)}`,
      `pid=$(cat "$d/worker.pid" 2>/dev/null || echo 0)`,
      `if alive "$pid" ${shellQuote(vmId)}; then`,
      `  kill -TERM "$pid" 2>/dev/null || true`,
      `  i=0; while alive "$pid" ${shellQuote(vmId)} && [ $i -lt ${polls} ]; do sleep 0.1; i=$((i+1)); done`,
      `  if alive "$pid" ${shellQuote(vmId)}; then kill -KILL -"$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true; fi`,
      `fi`,
      `rm -rf "$d"`,
    ].join("\n");
  }

  // ------------------------------------------------------------------ ssh

  /** The ssh options for `host`: no prompts, a timeout, this platform's known_hosts, the identity. */
  private sshArgs(host: SshHost): string[] {
    const identity = host.identityFile ?? this.settings.identityFile;
    return [
      "-T",
      "-o", "BatchMode=yes",
      "-o", `ConnectTimeout=${this.options.connectTimeoutSeconds}`,
      "-o", `UserKnownHostsFile=${this.knownHostsFile}`,
      "-o", `StrictHostKeyChecking=${this.settings.strictHostKeyChecking}`,
      "-o", "LogLevel=ERROR",
      "-o", "ServerAliveInterval=15",
      ...(identity !== undefined ? ["-i", identity, "-o", "IdentitiesOnly=yes"] : []),
      ...(host.user !== undefined ? ["-l", host.user] : []),
      ...(host.port !== undefined ? ["-p", String(host.port)] : []),
    ];
  }

  /**
   * Runs `script` with `sh` on `host`. The script travels on ssh's stdin
   * (so nothing in it shows in an argv on either side), unless `input` is
   * given: then the script is the remote command and `input` its stdin.
   */
  private run(host: SshHost, script: string, options: { input?: NodeJS.ReadableStream; timeoutMs: number; signal?: AbortSignal }): Promise<{ stdout: string; stderr: string }> {
    const remote = options.input ? `sh -c ${shellQuote(script)}` : "sh -s";
    const child = spawn(this.options.sshCommand, [...this.sshArgs(host), "--", host.host, remote], { stdio: ["pipe", "pipe", "pipe"] });
    return new Promise((resolve, reject) => {
      let stdout = "";
      let stderr = "";
      let why: string | undefined;
      const stop = (reason: string) => {
        why = reason;
        child.kill("SIGKILL");
      };
      const timer = setTimeout(() => stop(`timed out after ${options.timeoutMs} ms`), options.timeoutMs);
      const onAbort = () => stop("cancelled");
      options.signal?.addEventListener("abort", onAbort, { once: true });
      child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
      child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr = (stderr + chunk).slice(-4000)));
      child.stdin.on("error", () => undefined); // ssh gone early: its exit says why
      if (options.input) options.input.pipe(child.stdin);
      else child.stdin.end(script);
      const finish = (err: Error | undefined) => {
        clearTimeout(timer);
        options.signal?.removeEventListener("abort", onAbort);
        if (err) reject(err);
        else resolve({ stdout, stderr });
      };
      child.once("error", (err) => finish(new SshError(host, `cannot run ${this.options.sshCommand}: ${err.message}`, null, "")));
      child.once("close", (code, signal) => {
        if (code === 0) return finish(undefined);
        const trimmed = stderr.trim();
        if (why === "cancelled") return finish(FlusterError.from(options.signal?.reason, "cancelled"));
        const what = why ?? (code === 255 ? "ssh failed" : `the remote command exited with ${signal ?? `code ${code}`}`);
        finish(new SshError(host, `${what}${trimmed ? `: ${trimmed}` : ""}`, code, trimmed));
      });
    });
  }
}

/** An ssh call that failed: names the host, carries ssh's (or the remote command's) stderr. */
export class SshError extends FlusterError {
  static override readonly [ERROR_BRAND]: string = "fluster.SshError";
  override name = "SshError";
  readonly exitCode: number | null;
  readonly stderr: string;

  constructor(host: SshHost, message: string, exitCode: number | null, stderr: string) {
    super(`ssh ${hostLabel(host)}: ${message}`, "unavailable");
    this.exitCode = exitCode;
    this.stderr = stderr;
  }
}

/** `alive PID VMID`: the process runs and is that VM's worker (not a zombie, not a later process that got its pid). */
const ALIVE_FUNCTION = `alive() { [ "$1" -gt 0 ] 2>/dev/null && kill -0 "$1" 2>/dev/null && tr '\\0' ' ' < "/proc/$1/cmdline" 2>/dev/null | grep -q -e "--worker-id $2 "; }`;

function isUp(vm: Vm): boolean {
  return vm.state === "provisioning" || vm.state === "running";
}

/** `user@host:port` as configured: what a VM's `vm.json` names its host by. */
function hostKey(host: SshHost): string {
  return `${host.user ?? ""}@${host.host}:${host.port ?? ""}`;
}

/** The host as people write it: `user@host` or `host`, with `:port` when set. */
function hostLabel(host: SshHost): string {
  return `${host.user !== undefined ? `${host.user}@` : ""}${host.host}${host.port !== undefined ? `:${host.port}` : ""}`;
}

function advertised(host: SshHost): string {
  return host.advertiseHost ?? host.host;
}

/** `value` as one sh word. */
export function shellQuote(value: string): string {
  return /^[A-Za-z0-9_./:=@%+,-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}

/** A remote path as a sh word, with a leading `~` meaning the login user's home. */
function remotePath(path: string): string {
  if (path === "~") return `"$HOME"`;
  if (path.startsWith("~/")) return `"$HOME"/${shellQuote(path.slice(2))}`;
  return shellQuote(path);
}
