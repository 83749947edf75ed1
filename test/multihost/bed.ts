// The multi-host test bed: "hosts" that are Linux network namespaces on one
// bridge (addresses in 198.18.0.0/15), each with its own mount namespace in
// which the client's directory is hidden, and a real controller and worker
// daemons on them. Everything a bed makes is named after its creating process,
// so the next bed sweeps what a crashed run left behind.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { accessSync, constants, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { TestContext } from "node:test";
import { Cluster } from "../../src/cluster/client/cluster.js";
import { REPO_ROOT, cleanEnv, collectOutput, isGone, processesWith, type NodeResult } from "../helpers/index.js";

/** Every bed's interfaces and namespaces start with this, then the bed id. */
export const BED_PREFIX = "flb";
/** Names: `flb<id>-br` (bridge), `flb<id>-<n>` (namespace), `flb<id>-<n>a` (veth, root end). ≤ 15 characters. */
const NAME = /^flb([0-9a-z]{2,7})-(br|\d{1,2}a?)$/;
/** Each bed's folder is `<tmpdir>/fluster-bed-<id>`. */
const FOLDER_PREFIX = "fluster-bed-";
const FOLDER = /^fluster-bed-([0-9a-z]{2,7})$/;
/** The environment variable that marks every process a bed starts: `FLB_BED=<id>`. */
const MARK = "FLB_BED";
/** Inside each host the veth end is renamed to this. */
export const HOST_INTERFACE = "eth0";
/** The benchmarking range (RFC 2544), 512 /24 subnets: never private or public space that routes anywhere. */
const SUBNETS = 512;
const FLUSTER_BIN = join(REPO_ROOT, "bin", "fluster.js");
const CONTROLLER_MAIN = join(REPO_ROOT, "dist", "cluster", "controller", "main.js");

/** Options of {@link TestBed.create}. */
export interface BedOptions {
  /** Number of hosts, 1–20. @default 3 */
  hosts?: number;
  /** Directories hidden (a tmpfs over each) in every host, besides {@link TestBed.clientDir}. @default [] */
  hide?: readonly string[];
}

/** One host of a bed: its own network, host name and view of the file system. */
export interface BedHost {
  /** `h1`, `h2`, …: also the host name its processes see (`hostname`, `os.hostname()`). */
  readonly name: string;
  /** The network namespace (`ip netns exec <netns> …`). */
  readonly netns: string;
  /** Its address on the bed's bridge, 198.18.x.y or 198.19.x.y. */
  readonly address: string;
  /** The veth end in the root namespace, on the bridge. */
  readonly rootVeth: string;
}

/** Options of a process started by a bed. */
export interface BedProcessOptions {
  /** Added to a clean environment (no FLUSTER_* of the test's own). @default {} */
  env?: NodeJS.ProcessEnv;
  /** @default the bed's folder */
  cwd?: string;
}

/** Options of {@link TestBed.exec}: a process run to its end. */
export interface BedExecOptions extends BedProcessOptions {
  /** Its process group is SIGKILLed after this long (the result then has code null). @default 30_000 */
  timeoutMs?: number;
}

/** Options of {@link TestBed.startController}. */
export interface BedControllerOptions {
  /** Seconds a worker may fail reconciles before it is lost. @default the controller's (10) */
  workerLostGraceSeconds?: number;
  /** @default the controller's (1) */
  reconcileIntervalSeconds?: number;
}

/** Options of {@link TestBed.startWorker}. */
export interface BedWorkerOptions {
  /** `--label k=v` for each entry. @default { host: <host name> } */
  labels?: Record<string, string>;
  /** `--host`: the address to bind. @default the host's own address */
  bind?: string;
  /** More `fluster worker serve` flags (e.g. `--advertise-host`, `--cpu`). @default [] */
  args?: readonly string[];
}

/** A controller the bed started in the root namespace, bound to the bridge address (auth is on). */
export interface BedController {
  readonly url: string;
  /** The bearer token it generated into its state directory. */
  readonly token: string;
  readonly stateDir: string;
  readonly process: ChildProcess;
}

/** A `fluster worker serve` the bed started in one of its hosts. */
export interface BedWorker {
  readonly host: BedHost;
  readonly workerId: string;
  /** The URL it registered with. */
  readonly address: string;
  readonly workDir: string;
  readonly process: ChildProcess;
}

/** Why this machine cannot make beds (not root, a tool missing), or undefined when it can. */
export function bedUnavailableReason(): string | undefined {
  if (process.platform !== "linux") return `network namespaces need Linux, this is ${process.platform}`;
  if (process.getuid?.() !== 0) return `network namespaces need root; this runs as uid ${process.getuid?.()} (CI runs as root)`;
  const missing = ["ip", "unshare", "mount"].filter((tool) => !onPath(tool));
  if (missing.length > 0) return `missing ${missing.join(", ")} (Debian: apt-get install -y iproute2 util-linux mount; .ci/run installs them)`;
  if (!existsSync(CONTROLLER_MAIN)) return `${CONTROLLER_MAIN} is missing: build first (node scripts/build.mjs; npm test does it)`;
  return undefined;
}

function onPath(tool: string): boolean {
  return (process.env.PATH ?? "").split(":").some((dir) => {
    try {
      accessSync(join(dir, tool), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** Runs `ip …` (or another tool) to its end; throws with its stderr. */
function run(argv: readonly string[]): string {
  const [file, ...args] = argv as [string, ...string[]];
  try {
    return execFileSync(file, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 10_000 });
  } catch (err) {
    const stderr = String((err as { stderr?: unknown }).stderr ?? "").trim();
    throw new Error(`test bed: \`${argv.join(" ")}\` failed: ${stderr || (err as Error).message}`);
  }
}

/** Like {@link run}, for cleanup: a failure (already gone) is not an error. */
function tryRun(argv: readonly string[]): void {
  try {
    run(argv);
  } catch {
    // already gone
  }
}

/**
 * Host-to-host traffic crosses the bed's bridge, and where bridged packets
 * go through iptables (br_netfilter, which Docker's engine loads) a FORWARD
 * policy of DROP (which it sets) would cut the hosts off from each other:
 * the bed accepts forwarding within its own bridge, and takes the rule away
 * with the bridge. Nothing to do without iptables.
 */
function allowForwarding(bridge: string): void {
  if (!iptablesPresent()) return;
  run(["iptables", "-I", "FORWARD", "-i", bridge, "-o", bridge, "-j", "ACCEPT"]);
}

function forbidForwarding(bridge: string): void {
  if (!iptablesPresent()) return;
  // As many times as it was added (a bed built twice under one id by a crashed run).
  for (let i = 0; i < 4; i++) {
    try {
      run(["iptables", "-D", "FORWARD", "-i", bridge, "-o", bridge, "-j", "ACCEPT"]);
    } catch {
      return;
    }
  }
}

let hasIptables: boolean | undefined;
function iptablesPresent(): boolean {
  if (hasIptables === undefined) {
    try {
      execFileSync("iptables", ["-S", "FORWARD"], { stdio: "ignore", timeout: 10_000 });
      hasIptables = true;
    } catch {
      hasIptables = false;
    }
  }
  return hasIptables;
}

function bedIdPid(id: string): number {
  return parseInt(id.slice(0, -1), 36);
}

/** SIGKILLs every process in a network namespace (tasks a killed worker left included). */
function killNetnsProcesses(netns: string): void {
  let pids: number[] = [];
  try {
    pids = run(["ip", "netns", "pids", netns]).split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return;
  }
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }
}

/**
 * Removes what beds of dead processes left: their processes, namespaces,
 * links and folders. Beds of live processes (a concurrent run) are left
 * alone. Returns the ids of the beds it removed.
 */
export function sweepStaleBeds(): string[] {
  const stale = new Set<string>();
  const isStale = (id: string) => bedIdPid(id) !== process.pid && isGone(bedIdPid(id));
  const namespaces = run(["ip", "netns", "list"])
    .split("\n")
    .map((line) => line.split(" ")[0] ?? "")
    .filter((name) => NAME.test(name));
  const links = run(["ip", "-o", "link", "show"])
    .split("\n")
    .map((line) => /^\d+: ([^:@]+)/.exec(line)?.[1] ?? "")
    .filter((name) => NAME.test(name));
  const folders = readdirSync(tmpdir()).filter((name) => FOLDER.test(name));
  for (const name of [...namespaces, ...links, ...folders]) {
    const id = (NAME.exec(name) ?? FOLDER.exec(name))?.[1];
    if (id && isStale(id)) stale.add(id);
  }
  for (const id of stale) {
    for (const pid of processesWith([`${MARK}=${id}`])) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
    }
    for (const netns of namespaces.filter((n) => n.startsWith(`${BED_PREFIX}${id}-`))) {
      killNetnsProcesses(netns);
      tryRun(["ip", "netns", "del", netns]);
    }
    for (const link of links.filter((n) => n.startsWith(`${BED_PREFIX}${id}-`))) tryRun(["ip", "link", "del", link]);
    forbidForwarding(`${BED_PREFIX}${id}-br`);
    rmSync(join(tmpdir(), `${FOLDER_PREFIX}${id}`), { recursive: true, force: true });
  }
  return [...stale];
}

/** /24 subnets (0–511) that addresses in the root namespace already use within 198.18.0.0/15. */
function subnetsInUse(): Set<number> {
  const used = new Set<number>();
  for (const match of run(["ip", "-4", "-o", "addr", "show"]).matchAll(/inet 198\.(18|19)\.(\d+)\./g)) {
    used.add((Number(match[1]) - 18) * 256 + Number(match[2]));
  }
  return used;
}

function subnetPrefix(index: number): string {
  return `198.${18 + (index >> 8)}.${index & 255}`;
}

let bedsMade = 0;
const liveBeds = new Set<TestBed>();
let exitHookInstalled = false;

/** A set of hosts on one bridge, and the processes started on them. Make one with {@link TestBed.create} or {@link useBed}. */
export class TestBed {
  /** `<pid in base 36><counter>`: unique among live processes, and tells a later sweep whose bed it was. */
  readonly id: string;
  /** A fresh folder for this bed (state, work dirs, shared results): visible to every host. */
  readonly dir: string;
  /** The client's folder: visible here, hidden (an empty tmpfs) in every host. Holds a file `CLIENT_MARKER`. */
  readonly clientDir: string;
  readonly bridge: string;
  /** The bridge's address (198.18.x.1): where the controller listens. */
  readonly bridgeAddress: string;
  readonly hosts: BedHost[] = [];
  private readonly hidden: string[];
  /** Leaders of the process groups this bed started, killed with their groups at destroy. */
  private readonly groups = new Set<ChildProcess>();
  private readonly clients = new Set<Cluster>();
  private controllerValue: BedController | undefined;
  private destroyed = false;

  private constructor(id: string, subnet: number, options: BedOptions) {
    this.id = id;
    this.dir = join(tmpdir(), `${FOLDER_PREFIX}${id}`);
    this.clientDir = join(this.dir, "client");
    this.bridge = `${BED_PREFIX}${id}-br`;
    const prefix = subnetPrefix(subnet);
    this.bridgeAddress = `${prefix}.1`;
    for (let n = 1; n <= (options.hosts ?? 3); n++) {
      this.hosts.push({ name: `h${n}`, netns: `${BED_PREFIX}${id}-${n}`, address: `${prefix}.${10 + n}`, rootVeth: `${BED_PREFIX}${id}-${n}a` });
    }
    this.hidden = [this.clientDir, ...(options.hide ?? [])];
  }

  /**
   * Sweeps stale beds, then builds a new one: the bridge, and per host a
   * namespace with `lo` and `eth0` up. Throws, saying why, where this machine
   * cannot (see {@link bedUnavailableReason}); a half-built bed is removed.
   */
  static async create(options: BedOptions = {}): Promise<TestBed> {
    const why = bedUnavailableReason();
    if (why) throw new Error(`the multi-host test bed cannot run here: ${why}`);
    const count = options.hosts ?? 3;
    if (!Number.isInteger(count) || count < 1 || count > 20) throw new Error(`hosts must be an integer from 1 to 20, got ${count}`);
    sweepStaleBeds();
    const id = `${process.pid.toString(36)}${(bedsMade++ % 36).toString(36)}`;
    const used = subnetsInUse();
    const start = (process.pid * 7 + bedsMade) % SUBNETS;
    const subnet = Array.from({ length: SUBNETS }, (_, i) => (start + i) % SUBNETS).find((s) => !used.has(s));
    if (subnet === undefined) throw new Error("test bed: every /24 of 198.18.0.0/15 is in use");
    const bed = new TestBed(id, subnet, options);
    liveBeds.add(bed);
    if (!exitHookInstalled) {
      exitHookInstalled = true;
      // A test process that exits without its after() hooks still removes its beds.
      process.on("exit", () => {
        for (const b of liveBeds) b.removeNow();
      });
    }
    try {
      bed.build();
    } catch (err) {
      bed.removeNow();
      throw err;
    }
    return bed;
  }

  private build(): void {
    mkdirSync(this.clientDir, { recursive: true });
    writeFileSync(join(this.clientDir, "CLIENT_MARKER"), `client files of bed ${this.id}\n`);
    run(["ip", "link", "add", this.bridge, "type", "bridge"]);
    run(["ip", "addr", "add", `${this.bridgeAddress}/24`, "dev", this.bridge]);
    run(["ip", "link", "set", this.bridge, "up"]);
    allowForwarding(this.bridge);
    for (const host of this.hosts) {
      const inNs = (...argv: string[]) => run(["ip", "netns", "exec", host.netns, ...argv]);
      run(["ip", "netns", "add", host.netns]);
      run(["ip", "link", "add", host.rootVeth, "type", "veth", "peer", "name", `${host.netns}b`, "netns", host.netns]);
      run(["ip", "link", "set", host.rootVeth, "master", this.bridge]);
      run(["ip", "link", "set", host.rootVeth, "up"]);
      inNs("ip", "link", "set", `${host.netns}b`, "name", HOST_INTERFACE);
      inNs("ip", "addr", "add", `${host.address}/24`, "dev", HOST_INTERFACE);
      inNs("ip", "link", "set", HOST_INTERFACE, "up");
      inNs("ip", "link", "set", "lo", "up");
    }
  }

  /** A host by name (`h1`) or by index (0-based). */
  host(which: string | number): BedHost {
    const host = typeof which === "number" ? this.hosts[which] : this.hosts.find((h) => h.name === which);
    if (!host) throw new Error(`test bed ${this.id} has no host ${which}`);
    return host;
  }

  /** The controller, once {@link startController} ran. */
  get controller(): BedController {
    if (!this.controllerValue) throw new Error("the bed has no controller yet: call startController() first");
    return this.controllerValue;
  }

  /**
   * The argv that runs `argv` inside `host`: its network namespace, and a
   * private mount and UTS namespace where its name is set and the hidden
   * folders are empty tmpfs mounts (gone with the namespace's last process).
   */
  hostArgv(host: BedHost, argv: readonly string[]): string[] {
    const script = [
      'echo "$1" > /proc/sys/kernel/hostname || exit 125; shift',
      'while [ "$1" != -- ]; do mount -t tmpfs -o size=1m,mode=0755 flb-hidden "$1" || exit 125; shift; done; shift',
      'exec "$@"',
    ].join("\n");
    return ["ip", "netns", "exec", host.netns, "unshare", "--mount", "--uts", "--propagation", "private", "sh", "-c", script, "sh", host.name, ...this.hidden, "--", ...argv];
  }

  /**
   * Starts `argv` in `host` (or in the root namespace when `host` is
   * undefined) as the leader of a new process group, killed with its group
   * when the bed is destroyed. stdout and stderr are pipes.
   */
  spawn(host: BedHost | undefined, argv: readonly string[], options: BedProcessOptions = {}): ChildProcess {
    if (this.destroyed) throw new Error(`test bed ${this.id} is destroyed`);
    const [file, ...args] = (host ? this.hostArgv(host, argv) : argv) as [string, ...string[]];
    const child = spawn(file, args, {
      cwd: options.cwd ?? this.dir,
      env: cleanEnv({ ...options.env, [MARK]: this.id }),
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.groups.add(child);
    child.once("exit", () => {
      // The leader is gone; its group may not be: kill what is left of it now.
      killGroup(child, "SIGKILL");
      this.groups.delete(child);
    });
    return child;
  }

  /** Runs `argv` in `host` (root namespace when undefined) to its end, with a time limit. */
  exec(host: BedHost | undefined, argv: readonly string[], options: BedExecOptions = {}): Promise<NodeResult> {
    const child = this.spawn(host, argv, options);
    return collectOutput(child, { timeoutMs: options.timeoutMs ?? 30_000, onTimeout: () => killGroup(child, "SIGKILL") });
  }

  /** Runs the `fluster` CLI (in `host`, or the root namespace) against the bed's controller, with its token. */
  fluster(args: readonly string[], options: BedExecOptions & { host?: BedHost } = {}): Promise<NodeResult> {
    const { url, token } = this.controller;
    return this.exec(options.host, [process.execPath, FLUSTER_BIN, ...args], {
      ...options,
      env: { FLUSTER_CLUSTER_ADDRESS: url, FLUSTER_TOKEN: token, ...options.env },
    });
  }

  /**
   * Starts a controller in the root namespace bound to the bridge address
   * (so auth is on; its token is read from `<stateDir>/token`). It is the
   * process `fluster controller serve` runs, started from dist/ with the
   * options that command does not expose (a short lost-worker grace).
   */
  async startController(options: BedControllerOptions = {}): Promise<BedController> {
    if (this.controllerValue) throw new Error("the bed already has a controller");
    const stateDir = join(this.dir, "controller");
    const config = { stateDir, host: this.bridgeAddress, port: 0, ...options };
    const child = this.spawn(undefined, [process.execPath, CONTROLLER_MAIN, JSON.stringify(config)]);
    const [, json] = await readyLine(child, /^fluster-controller-ready (.*)$/, 20_000, "the controller");
    const { url } = JSON.parse(json ?? "{}") as { url: string };
    const token = readFileSync(join(stateDir, "token"), "utf8").trim();
    this.controllerValue = { url, token, stateDir, process: child };
    return this.controllerValue;
  }

  /** Starts `fluster worker serve` in `host`, registered with the bed's controller; resolves once registered. */
  async startWorker(host: BedHost, options: BedWorkerOptions = {}): Promise<BedWorker> {
    const { url, token } = this.controller;
    const workDir = join(this.dir, "workers", host.name);
    const labels = options.labels ?? { host: host.name };
    const argv = [
      process.execPath,
      FLUSTER_BIN,
      "worker",
      "serve",
      "--controller",
      url,
      "--host",
      options.bind ?? host.address,
      "--work-dir",
      workDir,
      ...Object.entries(labels).flatMap(([k, v]) => ["--label", `${k}=${v}`]),
      ...(options.args ?? []),
    ];
    const child = this.spawn(host, argv, { env: { FLUSTER_TOKEN: token } });
    const [, workerId, address] = await readyLine(child, /^fluster worker (\S+) serving at (\S+), registered/, 30_000, `the worker on ${host.name}`);
    return { host, workerId: workerId ?? "", address: address ?? "", workDir, process: child };
  }

  /** Starts a worker in every host, in parallel. */
  startWorkers(options: BedWorkerOptions = {}): Promise<BedWorker[]> {
    return Promise.all(this.hosts.map((host) => this.startWorker(host, options)));
  }

  /** A client of the bed's controller (closed when the bed is destroyed). */
  client(options: { namespace?: string } = {}): Cluster {
    const { url, token } = this.controller;
    const client = Cluster.connect(url, { token, connectTimeoutSeconds: 10, ...options });
    this.clients.add(client);
    return client;
  }

  /** Cuts `host` off the network: its interface goes down (its processes keep running). */
  partition(host: BedHost): void {
    run(["ip", "netns", "exec", host.netns, "ip", "link", "set", HOST_INTERFACE, "down"]);
  }

  /** Undoes {@link partition}. */
  heal(host: BedHost): void {
    run(["ip", "netns", "exec", host.netns, "ip", "link", "set", HOST_INTERFACE, "up"]);
  }

  /**
   * Stops everything: SIGTERM to every process group it started (3 s to
   * exit), then SIGKILL to what is left, and to every process still in a
   * host; then removes namespaces, links and folders. Safe to call twice.
   */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    await Promise.all([...this.clients].map((c) => c.close().catch(() => undefined)));
    const groups = [...this.groups];
    for (const child of groups) killGroup(child, "SIGTERM");
    for (let i = 0; i < 30 && groups.some((c) => !groupGone(c)); i++) await sleep(100);
    this.removeNow();
  }

  /** The synchronous part of {@link destroy}: SIGKILL, then remove. Also run at process exit. */
  private removeNow(): void {
    this.destroyed = true;
    for (const child of this.groups) killGroup(child, "SIGKILL");
    for (const host of this.hosts) {
      killNetnsProcesses(host.netns);
      tryRun(["ip", "netns", "del", host.netns]);
      tryRun(["ip", "link", "del", host.rootVeth]);
    }
    tryRun(["ip", "link", "del", this.bridge]);
    forbidForwarding(this.bridge);
    rmSync(this.dir, { recursive: true, force: true });
    liveBeds.delete(this);
  }
}

/** A bed for one test, destroyed when the test ends (passed or failed). */
export async function useBed(t: TestContext, options: BedOptions = {}): Promise<TestBed> {
  const bed = await TestBed.create(options);
  t.after(() => bed.destroy());
  return bed;
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // the group is gone
  }
}

function groupGone(child: ChildProcess): boolean {
  if (child.pid === undefined) return true;
  try {
    process.kill(-child.pid, 0);
    return false;
  } catch {
    return true;
  }
}

/** The first stdout line matching `pattern`; fails with the process's stderr if it exits or takes longer than `timeoutMs`. */
function readyLine(child: ChildProcess, pattern: RegExp, timeoutMs: number, what: string): Promise<RegExpExecArray> {
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => (stderr = (stderr + chunk).slice(-4000)));
  let stdout = "";
  return new Promise((resolve, reject) => {
    const fail = (why: string) => {
      clearTimeout(timer);
      reject(new Error(`${what} ${why}; stdout: ${stdout.trim() || "(none)"}; stderr: ${stderr.trim() || "(none)"}`));
    };
    const timer = setTimeout(() => fail(`printed no line matching ${pattern} within ${timeoutMs} ms`), timeoutMs);
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => fail(`exited (${signal ?? `code ${code}`}) before it was ready`);
    child.once("exit", onExit);
    const out = child.stdout;
    if (!out) return fail("has no stdout pipe");
    let ready = false;
    // Read on after the line (and drop it), so that a chatty process never blocks on a full pipe.
    out.setEncoding("utf8").on("data", (chunk: string) => {
      if (ready) return;
      stdout += chunk;
      const match = stdout.split("\n").map((line) => pattern.exec(line)).find((m) => m !== null);
      if (!match) return;
      ready = true;
      clearTimeout(timer);
      child.off("exit", onExit);
      resolve(match);
    });
  });
}
