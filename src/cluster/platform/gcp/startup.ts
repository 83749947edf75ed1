// The startup script of a gcp VM (metadata `startup-script`): it reads its
// address, its TPU host index and the cluster token from the metadata server,
// sets the TPU variables a TPU VM's worker detects its chips from, and execs
// `fluster worker serve` with the worker id and labels the controller chose.
import { tpuTopology } from "../../../core/tpu.js";
import { TPU_HOST_LABEL, TPU_SLICE_LABEL, workerServeArgs, type VmRequest } from "../types.js";
import type { GcpSettings } from "./settings.js";

/** Metadata keys the platform sets besides `startup-script`. */
export const METADATA_TOKEN = "fluster-token";
export const METADATA_TLS_CA = "fluster-tls-ca";
export const METADATA_GROUP = "fluster-scale-group";

/**
 * Where the script reads metadata: Google's metadata server, unless the
 * VM's environment names another base URL in `FLUSTER_METADATA_URL` (the
 * test fake of the APIs does: its "VMs" are processes on one machine).
 */
export const METADATA_URL_VARIABLE = "FLUSTER_METADATA_URL";

/** Stands for the host index in an argument until the script is rendered. */
const HOST_INDEX = "\u0000host\u0000";

/** The hosts of a VM of this request's shape: a TPU slice's host count, else 1. */
export function hostCountOf(request: VmRequest): number {
  const { resources } = request.group.shape;
  return resources.deviceType === "tpu" ? tpuTopology(resources.deviceVariant).hostCount : 1;
}

/** The worker id of host `index` of a VM with `hostCount` hosts. */
export function hostWorkerId(vmId: string, hostCount: number, index: number): string {
  return hostCount > 1 ? `${vmId}-${index}` : vmId;
}

/** The bash startup script of a VM (every host of a TPU slice runs the same one). */
export function renderStartupScript(request: VmRequest, settings: GcpSettings): string {
  const { resources } = request.group.shape;
  const tpu = resources.deviceType === "tpu" ? tpuTopology(resources.deviceVariant) : undefined;
  const hosts = hostCountOf(request);
  const labels: Record<string, string> = { ...request.worker.labels };
  if (hosts > 1) {
    labels[TPU_SLICE_LABEL] = request.vmId;
    labels[TPU_HOST_LABEL] = HOST_INDEX;
  }
  const args = [
    ...settings.flusterCommand.split(/\s+/).filter((w) => w !== ""),
    ...workerServeArgs({ ...request, worker: { ...request.worker, labels } }, hosts > 1 ? `${request.vmId}-${HOST_INDEX}` : request.vmId),
    "--host",
    "0.0.0.0",
  ];
  const lines = [
    "#!/bin/bash",
    `# The fluster worker of VM ${request.vmId} (scale group ${request.group.name}), written by the gcp platform.`,
    `METADATA="\${${METADATA_URL_VARIABLE}:-http://metadata.google.internal/computeMetadata/v1}"`,
    `metadata() { curl -sSf -H 'Metadata-Flavor: Google' "$METADATA/$1"; }`,
  ];
  if (settings.startupScript !== undefined) lines.push("# platforms.gcp.startupScript:", settings.startupScript, "# end of platforms.gcp.startupScript");
  lines.push(
    'ADDRESS="$(metadata instance/network-interfaces/0/ip)" || { echo "fluster: no address in the metadata" >&2; exit 1; }',
    // A TPU VM's metadata numbers its hosts (the TPU_WORKER_ID order).
    tpu ? 'HOST_INDEX="$(metadata instance/attributes/agent-worker-number)" || { echo "fluster: no agent-worker-number in the metadata" >&2; exit 1; }' : "HOST_INDEX=0",
  );
  if (request.worker.token !== undefined) lines.push(`FLUSTER_TOKEN="$(metadata instance/attributes/${METADATA_TOKEN})" || exit 1`, "export FLUSTER_TOKEN");
  if (request.worker.tlsCa !== undefined) {
    lines.push('CA_FILE="$(mktemp)"', `metadata instance/attributes/${METADATA_TLS_CA} > "$CA_FILE" || exit 1`, 'export FLUSTER_TLS_CA="$CA_FILE"');
  }
  if (tpu) {
    const bounds = chipBounds(tpu.topology, tpu.chipsPerHost, tpu.chipCount);
    lines.push(
      `export TPU_ACCELERATOR_TYPE=${quote(tpu.variant)}`,
      'export TPU_WORKER_ID="$HOST_INDEX"',
      `export TPU_CHIPS_PER_HOST_BOUNDS=${quote(bounds.chips)}`,
      `export TPU_HOST_BOUNDS=${quote(bounds.hosts)}`,
    );
  }
  lines.push(`exec ${args.map(quote).join(" ")} --advertise-host "$ADDRESS"`, "");
  return lines.join("\n");
}

/** The default TPU runtime version of a TPU generation. */
export function defaultTpuRuntime(variant: string): string {
  const generation = tpuTopology(variant).generation;
  return { v4: "tpu-ubuntu2204-base", v5litepod: "v2-alpha-tpuv5-lite", v5p: "v2-alpha-tpuv5", v6e: "v2-alpha-tpuv6e" }[generation];
}

/**
 * `TPU_CHIPS_PER_HOST_BOUNDS` and `TPU_HOST_BOUNDS` of a slice: a host's
 * chips as a box ("2,2,1") and how many such boxes tile the topology.
 */
function chipBounds(topology: string, chipsPerHost: number, chipCount: number): { chips: string; hosts: string } {
  const dims = topology.split("x").map(Number);
  while (dims.length < 3) dims.push(1);
  const host = chipsPerHost === chipCount ? dims : chipsPerHost === 4 ? [2, 2, 1] : [chipsPerHost, 1, 1];
  return { chips: host.join(","), hosts: dims.map((d, i) => Math.max(1, Math.round(d / (host[i] ?? 1)))).join(",") };
}

/** One shell word: single-quoted, with the host index placeholder left to the shell. */
function quote(word: string): string {
  const quoted = `'${word.replace(/'/g, "'\\''")}'`;
  return quoted.split(HOST_INDEX).join(`'"$HOST_INDEX"'`);
}
