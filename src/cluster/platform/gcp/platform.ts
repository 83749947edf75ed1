// The gcp platform: a VM of a CPU or GPU group is a Compute Engine instance,
// a VM of a TPU group is a Cloud TPU node (a slice, one host per network
// endpoint), each booting a worker from its startup script. Instances and
// nodes carry the cluster's name as a label, so listing finds this
// cluster's VMs again after a controller restart.
import { sleep } from "../../../core/backoff.js";
import { FlusterError } from "../../../core/errors.js";
import { tpuTopology } from "../../../core/tpu.js";
import { AllocationError, type Platform, type PlatformContext, type PlatformVmState, type Vm, type VmHost, type VmRequest } from "../types.js";
import { GcpApiError, GcpApi, allocationFailure, isNotFound, type ComputeOperation, type TpuOperation } from "./rest.js";
import type { GcpSettings } from "./settings.js";
import { METADATA_GROUP, METADATA_TLS_CA, METADATA_TOKEN, defaultTpuRuntime, hostWorkerId, renderStartupScript } from "./startup.js";

/** The label naming the cluster a VM belongs to. */
export const CLUSTER_LABEL = "fluster-cluster";

/** A Compute Engine instance (the fields the platform reads). */
interface Instance {
  name: string;
  zone: string;
  status: string;
  labels?: Record<string, string>;
  metadata?: { items?: Array<{ key: string; value?: string }> };
  networkInterfaces?: Array<{ networkIP?: string }>;
  scheduling?: { preemptible?: boolean; provisioningModel?: string };
}

/** A Cloud TPU node (the fields the platform reads). */
interface TpuNode {
  name: string;
  acceleratorType?: string;
  state?: string;
  labels?: Record<string, string>;
  metadata?: Record<string, string>;
  networkEndpoints?: Array<{ ipAddress?: string }>;
  schedulingConfig?: { preemptible?: boolean; spot?: boolean };
}

/** Where a VM is: which API, and its zone. */
interface Place {
  kind: "instance" | "tpu";
  zone: string;
  /** Its scale group. */
  group: string;
}

/** Builds the gcp platform of a controller's config. */
export async function createGcpPlatform(settings: GcpSettings, context: PlatformContext): Promise<GcpPlatform> {
  return new GcpPlatform(settings, context);
}

export class GcpPlatform implements Platform {
  readonly name = "gcp";
  private readonly settings: GcpSettings;
  private readonly context: PlatformContext;
  private readonly api: GcpApi;
  private readonly clusterLabel: string;
  /** VMs this process allocated or saw, and where they are. */
  private readonly places = new Map<string, Place>();
  /** VMs this process allocated and has not released: one gone from the API was taken back. */
  private readonly held = new Set<string>();
  /** Zones TPU nodes are listed in: the default zone and every zone a TPU VM was asked for. */
  private readonly tpuZones = new Set<string>();

  constructor(settings: GcpSettings, context: PlatformContext) {
    this.settings = settings;
    this.context = context;
    this.api = new GcpApi(settings);
    this.clusterLabel = labelValue(context.clusterName);
    this.tpuZones.add(settings.zone);
  }

  async allocate(request: VmRequest, signal?: AbortSignal): Promise<Vm> {
    const { vmId } = request;
    const zone = request.group.shape.zone ?? this.settings.zone;
    const tpu = request.group.shape.resources.deviceType === "tpu";
    const place: Place = { kind: tpu ? "tpu" : "instance", zone, group: request.group.name };
    if (tpu) this.tpuZones.add(zone);
    this.places.set(vmId, place);
    const existing = await this.getStatus(vmId, signal);
    if (existing) return existing;
    const log = { event: "gcp_vm_creating", vmId, group: request.group.name, zone, platform: "gcp" };
    this.context.logger.info(log, `creating ${tpu ? `TPU node ${request.group.shape.resources.deviceVariant}` : "instance"} ${vmId} in ${zone}`);
    try {
      if (tpu) await this.createNode(request, zone, signal);
      else await this.createInstance(request, zone, signal);
    } catch (err) {
      if (err instanceof GcpApiError && err.httpStatus === 409) {
        // Asked again for a VM that exists: it is the same one.
        const vm = await this.getStatus(vmId, signal);
        if (vm) return vm;
      }
      if (err instanceof AllocationError) throw err;
      if (signal?.aborted) throw err;
      const failure = allocationFailure(err);
      this.context.logger.warn({ ...log, failure, error: (err as Error).message }, `cannot create ${vmId}: ${(err as Error).message}`);
      // A failed creation may leave a broken node behind: it is deleted, as far as that goes.
      await this.release(vmId).catch(() => {});
      throw new AllocationError(`gcp could not create ${vmId} in ${zone}: ${(err as Error).message}`, failure, { cause: err });
    }
    this.held.add(vmId);
    const vm = await this.getStatus(vmId, signal);
    if (!vm) throw new AllocationError(`gcp created ${vmId}, but it is gone`, "error");
    return vm;
  }

  async release(vmId: string, signal?: AbortSignal): Promise<void> {
    const place = this.places.get(vmId) ?? (await this.locate(vmId, signal));
    this.held.delete(vmId);
    if (!place) return;
    try {
      if (place.kind === "tpu") {
        const op = await this.api.request<TpuOperation>("DELETE", this.nodeUrl(place.zone, vmId), undefined, signal);
        await this.api.waitTpu(op, signal);
      } else {
        const op = await this.api.request<ComputeOperation>("DELETE", this.instanceUrl(place.zone, vmId), undefined, signal);
        await this.api.waitCompute(place.zone, op, signal);
      }
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    this.context.logger.info({ event: "gcp_vm_deleted", vmId, platform: "gcp" }, `deleted ${vmId}`);
  }

  async getStatus(vmId: string, signal?: AbortSignal): Promise<Vm | undefined> {
    const place = this.places.get(vmId) ?? (await this.locate(vmId, signal));
    if (!place) return undefined;
    try {
      if (place.kind === "tpu") return this.nodeVm(await this.api.request<TpuNode>("GET", this.nodeUrl(place.zone, vmId), undefined, signal));
      return this.instanceVm(await this.api.request<Instance>("GET", this.instanceUrl(place.zone, vmId), undefined, signal));
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    if (!this.held.has(vmId)) return undefined;
    // Allocated here, never released, and gone: the platform took it back.
    return goneVm(vmId, place.group);
  }

  async listVms(signal?: AbortSignal): Promise<Vm[]> {
    const out: Vm[] = [];
    const filter = encodeURIComponent(`labels.${CLUSTER_LABEL} = "${this.clusterLabel}"`);
    let pageToken: string | undefined;
    do {
      const page = await this.api.request<{ items?: Record<string, { instances?: Instance[] }>; nextPageToken?: string }>(
        "GET",
        `${this.settings.computeEndpoint}/projects/${this.settings.project}/aggregated/instances?filter=${filter}${pageToken ? `&pageToken=${encodeURIComponent(pageToken)}` : ""}`,
        undefined,
        signal,
      );
      for (const scoped of Object.values(page.items ?? {})) {
        for (const instance of scoped.instances ?? []) {
          if (instance.labels?.[CLUSTER_LABEL] !== this.clusterLabel) continue;
          const vm = this.instanceVm(instance);
          this.places.set(vm.vmId, { kind: "instance", zone: lastPart(instance.zone), group: vm.group });
          out.push(vm);
        }
      }
      pageToken = page.nextPageToken;
    } while (pageToken);
    for (const zone of this.tpuZones) {
      let token: string | undefined;
      do {
        const page = await this.api.request<{ nodes?: TpuNode[]; nextPageToken?: string }>(
          "GET",
          `${this.settings.tpuEndpoint}/projects/${this.settings.project}/locations/${zone}/nodes${token ? `?pageToken=${encodeURIComponent(token)}` : ""}`,
          undefined,
          signal,
        );
        for (const node of page.nodes ?? []) {
          if (node.labels?.[CLUSTER_LABEL] !== this.clusterLabel) continue;
          const vm = this.nodeVm(node);
          this.places.set(vm.vmId, { kind: "tpu", zone, group: vm.group });
          out.push(vm);
        }
        token = page.nextPageToken;
      } while (token);
    }
    // Held VMs the listing no longer has were taken back.
    const listed = new Set(out.map((vm) => vm.vmId));
    for (const vmId of this.held) if (!listed.has(vmId)) out.push(goneVm(vmId, this.places.get(vmId)?.group ?? ""));
    return out;
  }

  async waitReady(vmId: string, timeoutMs: number, signal?: AbortSignal): Promise<Vm> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const vm = await this.getStatus(vmId, signal);
      if (!vm) throw new FlusterError(`no gcp VM ${vmId}`, "not_found");
      if (vm.state === "running") return vm;
      if (vm.state === "failed" || vm.state === "terminated") throw new FlusterError(`gcp VM ${vmId} is ${vm.state}: ${vm.reason ?? ""}`, "unavailable");
      if (Date.now() >= deadline) throw new FlusterError(`gcp VM ${vmId} was not ready within ${timeoutMs} ms`, "deadline_exceeded");
      await sleep(Math.min(this.settings.pollIntervalSeconds * 1000, Math.max(1, deadline - Date.now())), signal);
    }
  }

  async close(): Promise<void> {
    // Nothing held open: every call is a fetch of its own.
  }

  private async createInstance(request: VmRequest, zone: string, signal?: AbortSignal): Promise<void> {
    const { shape } = request.group;
    const machineType = this.machineTypeOf(request);
    const gpu = shape.resources.deviceType === "gpu" && machineType.startsWith("n1-");
    const body = {
      name: request.vmId,
      machineType: `zones/${zone}/machineTypes/${machineType}`,
      labels: this.labels(request),
      metadata: { items: Object.entries(this.metadata(request)).map(([key, value]) => ({ key, value })) },
      disks: [{ boot: true, autoDelete: true, initializeParams: { sourceImage: this.settings.sourceImage, diskSizeGb: String(Math.max(10, Math.ceil(shape.resources.disk / 1024 ** 3) || 50)) } }],
      networkInterfaces: [{ ...(this.settings.network ? { network: this.settings.network } : {}), ...(this.settings.subnetwork ? { subnetwork: this.settings.subnetwork } : {}) }],
      ...(this.settings.serviceAccount ? { serviceAccounts: [{ email: this.settings.serviceAccount, scopes: ["https://www.googleapis.com/auth/cloud-platform"] }] } : {}),
      ...(gpu ? { guestAccelerators: [{ acceleratorType: `zones/${zone}/acceleratorTypes/nvidia-tesla-${shape.resources.deviceVariant.toLowerCase()}`, acceleratorCount: shape.resources.deviceCount }] } : {}),
      scheduling: shape.preemptible
        ? { provisioningModel: "SPOT", preemptible: true, automaticRestart: false, onHostMaintenance: "TERMINATE", instanceTerminationAction: "STOP" }
        : { automaticRestart: true, onHostMaintenance: shape.resources.deviceType === "gpu" ? "TERMINATE" : "MIGRATE" },
    };
    const op = await this.api.request<ComputeOperation>("POST", `${this.settings.computeEndpoint}/projects/${this.settings.project}/zones/${zone}/instances`, body, signal);
    await this.api.waitCompute(zone, op, signal);
  }

  private async createNode(request: VmRequest, zone: string, signal?: AbortSignal): Promise<void> {
    const { shape } = request.group;
    const variant = shape.resources.deviceVariant;
    const body = {
      acceleratorType: variant,
      runtimeVersion: this.settings.tpuRuntimeVersion ?? defaultTpuRuntime(variant),
      labels: this.labels(request),
      metadata: this.metadata(request),
      networkConfig: { ...(this.settings.network ? { network: this.settings.network } : {}), ...(this.settings.subnetwork ? { subnetwork: this.settings.subnetwork } : {}), enableExternalIps: false },
      ...(this.settings.serviceAccount ? { serviceAccount: { email: this.settings.serviceAccount, scope: ["https://www.googleapis.com/auth/cloud-platform"] } } : {}),
      ...(shape.preemptible ? { schedulingConfig: { spot: true } } : {}),
    };
    const url = `${this.settings.tpuEndpoint}/projects/${this.settings.project}/locations/${zone}/nodes?nodeId=${encodeURIComponent(request.vmId)}`;
    const op = await this.api.request<TpuOperation>("POST", url, body, signal);
    await this.api.waitTpu(op, signal);
  }

  /** The machine type of a CPU or GPU group: named in the settings, else a custom type of the shape's size. */
  private machineTypeOf(request: VmRequest): string {
    const named = this.settings.machineTypes[request.group.name];
    if (named) return named;
    const { resources } = request.group.shape;
    if (resources.deviceType === "gpu") {
      throw new AllocationError(`scale group ${request.group.name} has ${resources.deviceVariant} GPUs: name its machine type in platforms.gcp.machineTypes.${request.group.name} (e.g. a3-highgpu-8g)`, "invalid");
    }
    // Custom types: 1 or an even number of vCPUs, memory a multiple of 256 MiB.
    const cpus = Math.max(1, Math.ceil(resources.cpu));
    const vcpus = cpus === 1 ? 1 : cpus + (cpus % 2);
    const mib = Math.max(256, Math.ceil(resources.memory / 1024 ** 2 / 256) * 256);
    return `custom-${vcpus}-${mib}`;
  }

  private labels(request: VmRequest): Record<string, string> {
    return { [CLUSTER_LABEL]: this.clusterLabel, "fluster-vm": labelValue(request.vmId), "fluster-scale-group": labelValue(request.group.name) };
  }

  private metadata(request: VmRequest): Record<string, string> {
    return {
      "startup-script": renderStartupScript(request, this.settings),
      [METADATA_GROUP]: request.group.name,
      ...(request.worker.token !== undefined ? { [METADATA_TOKEN]: request.worker.token } : {}),
      ...(request.worker.tlsCa !== undefined ? { [METADATA_TLS_CA]: request.worker.tlsCa } : {}),
    };
  }

  private instanceVm(instance: Instance): Vm {
    const group = instance.metadata?.items?.find((item) => item.key === METADATA_GROUP)?.value ?? instance.labels?.["fluster-scale-group"] ?? "";
    const preemptible = instance.scheduling?.preemptible === true || instance.scheduling?.provisioningModel === "SPOT";
    const [state, reason] = instanceState(instance.status, preemptible);
    const address = instance.networkInterfaces?.[0]?.networkIP;
    return {
      vmId: instance.name,
      group,
      state,
      hosts: [{ workerId: instance.name, ...(address ? { address } : {}) }],
      ...(reason ? { reason } : {}),
      platformId: `${lastPart(instance.zone)}/instances/${instance.name}`,
    };
  }

  private nodeVm(node: TpuNode): Vm {
    const vmId = lastPart(node.name);
    let hostCount = node.networkEndpoints?.length ?? 0;
    if (hostCount === 0 && node.acceleratorType) {
      try {
        hostCount = tpuTopology(node.acceleratorType).hostCount;
      } catch {
        hostCount = 1;
      }
    }
    const hosts: VmHost[] = [];
    for (let i = 0; i < Math.max(1, hostCount); i++) {
      const address = node.networkEndpoints?.[i]?.ipAddress;
      hosts.push({ workerId: hostWorkerId(vmId, hostCount, i), ...(address ? { address } : {}) });
    }
    const preemptible = node.schedulingConfig?.preemptible === true || node.schedulingConfig?.spot === true;
    const [state, reason] = nodeState(node.state ?? "", preemptible);
    const zone = /locations\/([^/]+)/.exec(node.name)?.[1] ?? "";
    return { vmId, group: node.metadata?.[METADATA_GROUP] ?? node.labels?.["fluster-scale-group"] ?? "", state, hosts, ...(reason ? { reason } : {}), platformId: `${zone}/nodes/${vmId}` };
  }

  /** Finds a VM this process has not seen: an instance of this cluster anywhere, or a node in a known TPU zone. */
  private async locate(vmId: string, signal?: AbortSignal): Promise<Place | undefined> {
    await this.listVms(signal);
    return this.places.get(vmId);
  }

  private instanceUrl(zone: string, name: string): string {
    return `${this.settings.computeEndpoint}/projects/${this.settings.project}/zones/${zone}/instances/${name}`;
  }

  private nodeUrl(zone: string, name: string): string {
    return `${this.settings.tpuEndpoint}/projects/${this.settings.project}/locations/${zone}/nodes/${name}`;
  }
}

/** A VM this process allocated that the API no longer has: taken back (a spot VM deleted on preemption). */
function goneVm(vmId: string, group: string): Vm {
  return { vmId, group, state: "terminated", reason: "preempted: the VM is gone", hosts: [] };
}

/** An instance status as a platform state, with the reason of a terminated one. */
function instanceState(status: string, preemptible: boolean): [PlatformVmState, string | undefined] {
  switch (status) {
    case "PROVISIONING":
    case "STAGING":
    case "REPAIRING":
      return ["provisioning", undefined];
    case "RUNNING":
      return ["running", undefined];
    case "STOPPING":
    case "STOPPED":
    case "TERMINATED":
    case "SUSPENDING":
    case "SUSPENDED":
      return ["terminated", preemptible ? `preempted by Compute Engine (instance ${status})` : `instance ${status}`];
    default:
      return ["provisioning", undefined];
  }
}

/** A TPU node state as a platform state, with the reason of a terminated or failed one. */
function nodeState(state: string, preemptible: boolean): [PlatformVmState, string | undefined] {
  switch (state) {
    case "READY":
      return ["running", undefined];
    case "PREEMPTED":
      return ["terminated", "preempted by Cloud TPU (node PREEMPTED)"];
    case "TERMINATED":
    case "STOPPED":
    case "STOPPING":
    case "DELETING":
    case "HIDDEN":
    case "HIDING":
      return ["terminated", preemptible && state !== "DELETING" ? `preempted by Cloud TPU (node ${state})` : `node ${state}`];
    default:
      return ["provisioning", undefined];
  }
}

/** A GCP label value: lowercase letters, digits, `-` and `_`, at most 63. */
function labelValue(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9_-]/g, "-").slice(0, 63);
}

function lastPart(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}
