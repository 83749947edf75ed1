// The Platform protocol: what the controller's autoscaler asks of a VM
// backend (local processes, Docker containers, SSH hosts, GCP VMs and TPU
// slices). A platform creates machines that each run a worker daemon which
// registers with the controller under a worker id the controller chose, so
// the controller ties a registered worker to the VM it asked for without
// asking the platform.
import { ERROR_BRAND, FlusterError, type FlusterErrorCode } from "../../core/errors.js";
import type { Logger } from "../../core/logger.js";
import type { MachineShape, ScaleGroup } from "../autoscaler/types.js";

/** How a VM's worker daemon joins the cluster: everything `fluster worker serve` is told. */
export interface WorkerBootstrap {
  /** The controller's URL as the VM reaches it. */
  controllerUrl: string;
  /** Bearer token the worker registers with (FLUSTER_TOKEN on the VM). @default none: auth off */
  token?: string;
  /** PEM text of CA certificates an https:// controller chains to, besides the system's. @default none */
  tlsCa?: string;
  /**
   * Attributes its worker registers (`--label`): the shape's region, zone,
   * `preemptible` and labels, plus `fluster-vm` (the vm id) and
   * `fluster-scale-group`. {@link workerLabels} builds them.
   */
  labels: Readonly<Record<string, string>>;
}

/** What a platform is asked for: one VM of a group. */
export interface VmRequest {
  /**
   * Chosen by the controller and stored before the platform is asked, so a
   * controller that restarted mid-allocation finds the VM by listing. Unique
   * in the cluster, DNS-safe (`[a-z][a-z0-9-]{0,62}`): the platform names the
   * machine by it, and `allocate` is idempotent on it.
   */
  vmId: string;
  group: ScaleGroup;
  worker: WorkerBootstrap;
}

/** The platform's view of a VM's life. */
export type PlatformVmState =
  /** Being created or booting: its worker cannot have registered yet, or is about to. */
  | "provisioning"
  /** Up: its worker daemon was started (it registers on its own). */
  | "running"
  /** Gone: released, deleted or taken back by the platform (preempted); `reason` says which. */
  | "terminated"
  /** Creation or boot failed; `reason` says why. The platform released what it could. */
  | "failed";

/** One host of a VM; a TPU slice has several, every other VM one. */
export interface VmHost {
  /** The worker id its daemon registers with: the vm id for a one-host VM, `<vmId>-<index>` for a slice's hosts. */
  workerId: string;
  /** Its address as other hosts reach it (IP or name), once known. */
  address?: string;
}

/** A VM as the platform reports it. */
export interface Vm {
  vmId: string;
  /** The scale group it was allocated for. */
  group: string;
  state: PlatformVmState;
  /** In host order (`TPU_WORKER_ID` order for a slice). */
  hosts: readonly VmHost[];
  /** Why it is `failed` or `terminated`, e.g. "preempted by Compute Engine". */
  reason?: string;
  /** The platform's own name for it, when it differs from the vm id, for `fluster vm list` (a container id, a zone/instance path). */
  platformId?: string;
}

/**
 * A VM backend. Every method may be called again after a controller restart
 * for VMs an earlier controller asked for: platforms keep no state the
 * controller needs beyond what `listVms` reports.
 */
export interface Platform {
  /** The name scale groups give in `platform:` (`"local"`, `"docker"`, `"ssh"`, `"gcp"`). */
  readonly name: string;
  /**
   * Asks for a VM; resolves once the platform has accepted it (it may still
   * be `provisioning`). Asking again for a vm id that exists returns it and
   * creates nothing. Rejects with an {@link AllocationError} when the
   * platform says no (quota, no capacity, a bad shape).
   */
  allocate(request: VmRequest, signal?: AbortSignal): Promise<Vm>;
  /** Gives the VM back, stopping its worker. Releasing a VM that is gone or unknown resolves. */
  release(vmId: string, signal?: AbortSignal): Promise<void>;
  /** The VM now, or undefined when the platform has no such VM (never created, or deleted). */
  getStatus(vmId: string, signal?: AbortSignal): Promise<Vm | undefined>;
  /** Every VM this cluster holds on the platform (released ones may be left out), to adopt them after a restart and find leaks. */
  listVms(signal?: AbortSignal): Promise<Vm[]>;
  /** Resolves when the VM is `running`; rejects when it ends `failed`/`terminated`, or with `deadline_exceeded` after `timeoutMs`. */
  waitReady(vmId: string, timeoutMs: number, signal?: AbortSignal): Promise<Vm>;
  /** Lets go of connections and timers; leaves the VMs as they are. */
  close(): Promise<void>;
}

/** Why a platform refused an allocation: the autoscaler backs the group off and shows the reason. */
export type AllocationFailure =
  /** The project's quota for the resource is spent. */
  | "quota"
  /** The zone has no capacity of this shape now (GCE's ZONE_RESOURCE_POOL_EXHAUSTED). */
  | "stockout"
  /** The platform cannot make this shape at all (an unknown machine or TPU type): backing off will not help. */
  | "invalid"
  /** Anything else (the platform unreachable, an engine error). */
  | "error";

/** A platform's refusal to allocate, with its kind. */
export class AllocationError extends FlusterError {
  static override readonly [ERROR_BRAND]: string = "fluster.AllocationError";
  override name = "AllocationError";
  readonly failure: AllocationFailure;

  constructor(message: string, failure: AllocationFailure, options?: ErrorOptions) {
    super(message, ALLOCATION_CODES[failure], options);
    this.failure = failure;
  }
}

const ALLOCATION_CODES: Record<AllocationFailure, FlusterErrorCode> = {
  quota: "resource_exhausted",
  stockout: "resource_exhausted",
  invalid: "invalid_argument",
  error: "unavailable",
};

/** What every platform is built with. */
export interface PlatformContext {
  /**
   * Names this cluster on shared platforms: VMs carry it (a container label,
   * an instance label, a process-table file), and `listVms` reports only
   * this cluster's.
   */
  clusterName: string;
  /** A directory the platform may keep files in (the controller's state dir + `platforms/<name>`). */
  stateDir: string;
  logger: Logger;
}

/** The label naming a worker's VM. */
export const VM_LABEL = "fluster-vm";
/** The label naming a worker's scale group. */
export const SCALE_GROUP_LABEL = "fluster-scale-group";

/**
 * The label naming the TPU slice a worker is a host of (a slice's vm id),
 * on every host of a multi-host slice: a TPU job's tasks are placed on the
 * hosts of one slice.
 */
export const TPU_SLICE_LABEL = "fluster-tpu-slice";
/** The label giving a slice host's index (`"0"`…`"N-1"`, its `TPU_WORKER_ID`). */
export const TPU_HOST_LABEL = "fluster-tpu-host";

/** The attributes a VM's worker registers: its shape's, plus which VM and group it is. */
export function workerLabels(vmId: string, group: ScaleGroup): Record<string, string> {
  const shape: MachineShape = group.shape;
  return {
    ...shape.labels,
    ...(shape.region !== undefined ? { region: shape.region } : {}),
    ...(shape.zone !== undefined ? { zone: shape.zone } : {}),
    preemptible: String(shape.preemptible),
    [VM_LABEL]: vmId,
    [SCALE_GROUP_LABEL]: group.name,
  };
}

/**
 * The `fluster worker serve` arguments of a VM's worker (host `index` of
 * `vm`): its id, the shape's CPU and memory, and its labels. Platforms add
 * the host, port and work dir they need; device overrides come from the
 * machine itself (nvidia-smi, the TPU VM's environment).
 */
export function workerServeArgs(request: VmRequest, workerId: string): string[] {
  const { resources } = request.group.shape;
  const args = ["worker", "serve", "--controller", request.worker.controllerUrl, "--worker-id", workerId, "--cpu", String(Math.max(1, Math.floor(resources.cpu))), "--memory", String(resources.memory)];
  for (const [key, value] of Object.entries(request.worker.labels)) args.push("--label", `${key}=${value}`);
  return args;
}
