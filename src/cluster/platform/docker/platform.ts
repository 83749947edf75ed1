// The docker platform: each VM is a container on this machine's Docker engine
// running a fluster worker daemon, on the host network (never Docker's bridge),
// with the shape's CPU and memory as its limits. Containers carry the cluster,
// vm and group as labels, so a restarted controller finds them by listing.
import { execFile } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { FlusterError } from "../../../core/errors.js";
import { AllocationError, type Platform, type PlatformContext, type Vm, type VmRequest } from "../types.js";
import { IMAGE_PACKAGE_DIR, ensureWorkerImage } from "./image.js";
import type { DockerSettings } from "./settings.js";

/** Container labels naming the cluster, the VM and its scale group. */
export const CLUSTER_LABEL = "fluster.cluster";
export const VM_ID_LABEL = "fluster.vm";
export const GROUP_LABEL = "fluster.group";

/** Where a container's worker keeps its work dir (inside the container: it goes with it). */
const CONTAINER_WORK_DIR = "/work";
/**
 * The worker daemon's own entry (what `fluster worker serve` runs, given its
 * options as JSON): it loads the daemon alone, not every command of the CLI,
 * which starts a VM's worker about 0.3 s sooner (bench/docker-vm.bench.ts).
 * The image holds the same fluster build as this process, so the two agree.
 */
const WORKER_MAIN = `${IMAGE_PACKAGE_DIR}/dist/cluster/worker/main.js`;
/** Where the controller's CA is written in a container, when it serves TLS with a private CA. */
const CONTAINER_CA_FILE = "/tmp/fluster-controller-ca.pem";

/** Options of {@link DockerPlatform}. */
export interface DockerPlatformOptions extends DockerSettings {
  /** Labels every container with it; `listVms` reports only its containers. Container names are `<clusterName>-<vmId>`. */
  clusterName: string;
  /** Seconds a released container's worker gets to stop after SIGTERM before it is killed. @default 10 */
  stopGraceSeconds?: number;
  /** How often `waitReady` looks at the container. @default 100 */
  pollIntervalMs?: number;
}

/** What `docker inspect` says of a container, in the fields read here. */
interface ContainerInfo {
  Id: string;
  Name: string;
  Config: { Labels: Record<string, string> | null };
  State: { Status: string; ExitCode: number; OOMKilled: boolean; Error: string; StartedAt: string };
}

/** Builds the docker platform of a controller's config. */
export async function createDockerPlatform(settings: DockerSettings, context: PlatformContext): Promise<DockerPlatform> {
  // Nothing to log of its own: the controller logs each VM's allocation and release.
  return new DockerPlatform({ ...settings, clusterName: context.clusterName });
}

export class DockerPlatform implements Platform {
  readonly name = "docker";
  private readonly options: DockerPlatformOptions;
  private readonly docker: string;
  /** The worker image, built once on first need when no image is configured. */
  private image: Promise<string> | undefined;
  /** Allocations in flight by vm id, so two calls for one VM create one container. */
  private readonly allocating = new Map<string, Promise<Vm>>();

  constructor(options: DockerPlatformOptions) {
    this.options = options;
    this.docker = options.docker ?? "docker";
    if (options.image) this.image = Promise.resolve(options.image);
  }

  /** The container name of a VM: unique per cluster and vm id on this engine. */
  containerName(vmId: string): string {
    return `${this.options.clusterName}-${vmId}`.replace(/[^A-Za-z0-9_.-]/g, "-").replace(/^[^A-Za-z0-9]+/, "");
  }

  /** The image the containers run (building the worker image the first time when none is configured). */
  imageTag(): Promise<string> {
    if (!this.image) {
      const building = ensureWorkerImage({ docker: this.docker });
      this.image = building;
      building.catch(() => {
        if (this.image === building) this.image = undefined; // try again next time
      });
    }
    return this.image;
  }

  allocate(request: VmRequest, signal?: AbortSignal): Promise<Vm> {
    let pending = this.allocating.get(request.vmId);
    if (!pending) {
      pending = this.create(request, signal)
        .catch((err: unknown) => {
          throw err instanceof AllocationError ? err : allocationError(err, request.vmId);
        })
        .finally(() => this.allocating.delete(request.vmId));
      this.allocating.set(request.vmId, pending);
    }
    return pending;
  }

  async release(vmId: string, signal?: AbortSignal): Promise<void> {
    const name = this.containerName(vmId);
    const info = await this.inspect(name, signal);
    if (!info) return;
    if (info.Config.Labels?.[CLUSTER_LABEL] !== this.options.clusterName) return; // someone else's container of that name: not ours to remove
    // SIGTERM first: the worker stops its tasks and leaves the controller; then the container goes.
    if (info.State.Status === "running") {
      await this.run(["stop", "--time", String(this.options.stopGraceSeconds ?? 10), name], { signal, allowMissing: true });
    }
    await this.run(["rm", "--force", name], { signal, allowMissing: true });
  }

  async getStatus(vmId: string, signal?: AbortSignal): Promise<Vm | undefined> {
    const info = await this.inspect(this.containerName(vmId), signal);
    return info ? this.vmOf(info) : undefined;
  }

  async listVms(signal?: AbortSignal): Promise<Vm[]> {
    const { stdout } = await this.run(["ps", "--all", "--quiet", "--no-trunc", "--filter", `label=${CLUSTER_LABEL}=${this.options.clusterName}`], { signal });
    const ids = stdout.split("\n").filter((id) => id.trim() !== "");
    if (ids.length === 0) return [];
    // A container removed between the two calls is left out (inspect still prints the others).
    const { stdout: json } = await this.run(["inspect", "--type", "container", ...ids], { signal, allowMissing: true });
    const infos = json.trim() === "" ? [] : (JSON.parse(json) as ContainerInfo[]);
    return infos.map((info) => this.vmOf(info)).filter((vm): vm is Vm => vm !== undefined);
  }

  async waitReady(vmId: string, timeoutMs: number, signal?: AbortSignal): Promise<Vm> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (signal?.aborted) throw FlusterError.from(signal.reason, "cancelled");
      const vm = await this.getStatus(vmId, signal);
      if (!vm) throw new FlusterError(`docker VM ${vmId} has no container (${this.containerName(vmId)})`, "not_found");
      if (vm.state === "running") return vm;
      if (vm.state === "failed" || vm.state === "terminated") throw new FlusterError(`docker VM ${vmId} is ${vm.state}: ${vm.reason ?? "no reason given"}`, "unavailable");
      const left = deadline - Date.now();
      if (left <= 0) throw new FlusterError(`docker VM ${vmId} was not running within ${timeoutMs} ms (it is ${vm.state})`, "deadline_exceeded");
      await sleep(Math.min(left, this.options.pollIntervalMs ?? 100), undefined, signal ? { signal } : undefined).catch(() => {});
    }
  }

  async close(): Promise<void> {
    // Nothing held: every call is a `docker` command of its own, and containers outlive the platform.
  }

  private async create(request: VmRequest, signal?: AbortSignal): Promise<Vm> {
    const { vmId } = request;
    const name = this.containerName(vmId);
    const existing = await this.inspect(name, signal);
    if (existing) return this.ours(existing, vmId);
    let image: string;
    try {
      image = await this.imageTag();
    } catch (err) {
      const precondition = err instanceof FlusterError && err.code === "failed_precondition";
      throw new AllocationError(`cannot build the docker worker image: ${(err as Error).message}`, precondition ? "invalid" : "error", { cause: err });
    }
    const { resources } = request.group.shape;
    const { token, tlsCa } = request.worker;
    // Secrets go by name (`-e NAME`): docker copies the value from its own
    // environment, so it is in no command line, neither docker's nor the worker's.
    const env: NodeJS.ProcessEnv = { ...process.env };
    const envFlags: string[] = [];
    if (token) {
      env.FLUSTER_TOKEN = token;
      envFlags.push("--env", "FLUSTER_TOKEN");
    }
    const worker = ["node", WORKER_MAIN, JSON.stringify(workerOptions(request, vmId))];
    let command = worker;
    if (tlsCa) {
      // The worker reads the controller's CA from a file (FLUSTER_TLS_CA): a
      // shell writes the PEM text it is given into the container's own /tmp
      // first, so nothing of the host is mounted. Needs `sh` in the image (the
      // worker image has it).
      env.FLUSTER_CONTROLLER_CA_PEM = tlsCa;
      envFlags.push("--env", "FLUSTER_CONTROLLER_CA_PEM", "--env", `FLUSTER_TLS_CA=${CONTAINER_CA_FILE}`);
      command = ["sh", "-c", `printf '%s\\n' "$FLUSTER_CONTROLLER_CA_PEM" > ${CONTAINER_CA_FILE} && exec "$@"`, "sh", ...worker];
    }
    const args = [
      "run",
      "--detach",
      "--pull",
      "never",
      "--name",
      name,
      // The host's network: distinct ports (the worker takes a free one), never Docker's bridge.
      "--network",
      "host",
      // tini as PID 1: forwards SIGTERM to the worker and reaps its tasks' orphans.
      "--init",
      "--label",
      `${CLUSTER_LABEL}=${this.options.clusterName}`,
      "--label",
      `${VM_ID_LABEL}=${vmId}`,
      "--label",
      `${GROUP_LABEL}=${request.group.name}`,
      "--cpus",
      String(resources.cpu),
      // The VM's memory, without swap beyond it: a task past it is OOM-killed as on a machine of that size.
      "--memory",
      String(resources.memory),
      "--memory-swap",
      String(resources.memory),
      ...envFlags,
      ...(this.options.extraRunArgs ?? []),
      image,
      ...command,
    ];
    try {
      await this.run(args, { signal, env });
    } catch (err) {
      // Another controller (or an earlier call of ours) created it meanwhile: that one stands.
      if (err instanceof DockerCommandError && /is already in use/.test(err.stderr)) {
        const raced = await this.inspect(name, signal);
        if (raced) return this.ours(raced, vmId);
      }
      throw allocationError(err, vmId, image);
    }
    const info = await this.inspect(name, signal);
    if (!info) throw new AllocationError(`the container ${name} of docker VM ${vmId} was gone right after it was started`, "error");
    return this.ours(info, vmId);
  }

  /** The VM of a container found under a VM's name; a container of that name from another cluster is refused. */
  private ours(info: ContainerInfo, vmId: string): Vm {
    const vm = this.vmOf(info);
    if (!vm) throw new AllocationError(`a container named ${this.containerName(vmId)} exists but does not belong to cluster ${this.options.clusterName}`, "error");
    return vm;
  }

  /** The VM a container of this cluster is; undefined for a container of another cluster. */
  private vmOf(info: ContainerInfo): Vm | undefined {
    const labels = info.Config.Labels ?? {};
    if (labels[CLUSTER_LABEL] !== this.options.clusterName) return undefined;
    const vmId = labels[VM_ID_LABEL] ?? info.Name.replace(/^\//, "");
    const base = { vmId, group: labels[GROUP_LABEL] ?? "", hosts: [{ workerId: vmId, address: "127.0.0.1" }], platformId: info.Id.slice(0, 12) };
    const { State: state } = info;
    switch (state.Status) {
      case "created":
      case "restarting":
        return { ...base, state: "provisioning" };
      case "running":
      case "paused":
        return { ...base, state: "running" };
      default: {
        // exited, dead, removing. A container that never started failed to boot.
        const neverStarted = state.StartedAt === "" || state.StartedAt.startsWith("0001-");
        if (neverStarted) return { ...base, state: "failed", reason: state.Error || `the container did not start (${state.Status})` };
        const parts = [`worker exited with code ${state.ExitCode}`];
        if (state.OOMKilled) parts.push("killed for using more than the VM's memory (OOMKilled)");
        if (state.Error) parts.push(state.Error);
        if (state.Status !== "exited") parts.push(`container ${state.Status}`);
        return { ...base, state: "terminated", reason: parts.join("; ") };
      }
    }
  }

  /** `docker inspect` of one container; undefined when there is none of that name. */
  private async inspect(name: string, signal?: AbortSignal): Promise<ContainerInfo | undefined> {
    const { stdout } = await this.run(["inspect", "--type", "container", name], { signal, allowMissing: true });
    if (stdout.trim() === "") return undefined;
    const [info] = JSON.parse(stdout) as ContainerInfo[];
    return info;
  }

  /**
   * Runs `docker <args>`. With `allowMissing`, a "No such container" error
   * counts as success (its stdout is what docker printed for the others).
   */
  private run(args: readonly string[], options: { signal?: AbortSignal | undefined; env?: NodeJS.ProcessEnv; allowMissing?: boolean } = {}): Promise<{ stdout: string }> {
    return new Promise((resolve, reject) => {
      execFile(this.docker, args, { encoding: "utf8", maxBuffer: 64 * 1024 * 1024, ...(options.env ? { env: options.env } : {}), ...(options.signal ? { signal: options.signal } : {}) }, (err, stdout, stderr) => {
        if (!err) return resolve({ stdout });
        if (options.allowMissing && /no such (container|object)/i.test(stderr) && !/cannot connect|permission denied/i.test(stderr)) return resolve({ stdout });
        reject(new DockerCommandError(this.docker, args, err, stderr));
      });
    });
  }
}

/**
 * The daemon options of a VM's worker, as `workerServeArgs` gives them to
 * `fluster worker serve`: its id, the shape's CPU (whole cores, at least one)
 * and memory, its labels; bound to loopback on the host network, on a free
 * port. The token and the CA file come from the container's environment
 * (FLUSTER_TOKEN, FLUSTER_TLS_CA), never its command line.
 */
function workerOptions(request: VmRequest, vmId: string): Record<string, unknown> {
  const { resources } = request.group.shape;
  return {
    controllerUrl: request.worker.controllerUrl,
    workerId: vmId,
    host: "127.0.0.1",
    port: 0,
    workDir: CONTAINER_WORK_DIR,
    cpu: Math.max(1, Math.floor(resources.cpu)),
    memory: resources.memory,
    labels: { ...request.worker.labels },
  };
}

/** A `docker` command that failed, with what it printed. */
class DockerCommandError extends FlusterError {
  readonly stderr: string;

  constructor(docker: string, args: readonly string[], err: Error & { code?: string | number | null }, stderr: string) {
    const what = `${docker} ${args[0] ?? ""}`;
    const unreachable = err.code === "ENOENT" || /cannot connect to the docker daemon|is the docker daemon running|permission denied.*docker/i.test(stderr);
    const message =
      err.code === "ENOENT"
        ? `the docker command ${JSON.stringify(docker)} was not found (install Docker, or set platforms.docker.docker)`
        : err.name === "AbortError"
          ? `${what} was cancelled`
          : `${what} failed: ${stderr.trim().split("\n")[0] || err.message}`;
    super(message, err.name === "AbortError" ? "cancelled" : unreachable ? "unavailable" : "internal", { cause: err });
    this.stderr = stderr;
  }
}

/** A failed `docker run` as the autoscaler sees it: a shape or image docker can never run is `invalid`, anything else an `error` worth retrying. */
function allocationError(err: unknown, vmId: string, image?: string): AllocationError {
  if (!(err instanceof DockerCommandError)) return new AllocationError(`cannot start docker VM ${vmId}: ${(err as Error).message}`, "error", { cause: err });
  const invalid = /no such image|pull access denied|repository does not exist|invalid reference format|range of cpus|minimum memory limit|invalid argument/i.test(err.stderr);
  const why = image && /no such image/i.test(err.stderr) ? ` (the image ${image} is not on this Docker engine, and the platform never pulls)` : "";
  return new AllocationError(`cannot start docker VM ${vmId}: ${err.message}${why}`, invalid ? "invalid" : "error", { cause: err });
}
