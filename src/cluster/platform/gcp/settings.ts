// The `platforms.gcp` section of a cluster config: the Google Cloud project
// and zone VMs and TPU slices are made in, how they boot a worker, and where
// the Compute Engine and Cloud TPU APIs and the credentials are.
import { ValidationError, describeValue } from "../../../core/errors.js";
import { checkPlainObject, checkPositive, checkString } from "../../../core/validate.js";

/** Compute Engine's REST API, v1. */
export const DEFAULT_COMPUTE_ENDPOINT = "https://compute.googleapis.com/compute/v1";
/** Cloud TPU's REST API, v2. */
export const DEFAULT_TPU_ENDPOINT = "https://tpu.googleapis.com/v2";
/** Debian 12: has no node or fluster, so a `startupScript` must install them. */
export const DEFAULT_SOURCE_IMAGE = "projects/debian-cloud/global/images/family/debian-12";

/** Settings of the gcp platform. */
export interface GcpSettings {
  /** The project VMs are created in (its id, e.g. `my-project-123`). */
  project: string;
  /** The zone of VMs whose group's shape names none (`us-central2-b`); a shape's `zone` wins. */
  zone: string;
  /** VPC network of the VMs (a name or a `projects/…/global/networks/…` path). @default the project's `default` network */
  network?: string;
  /** Subnetwork of the VMs (a name or a `projects/…/regions/…/subnetworks/…` path). @default the network's subnetwork in the zone's region */
  subnetwork?: string;
  /** Service account email the VMs run as (with the cloud-platform scope). @default the project's Compute Engine default service account */
  serviceAccount?: string;
  /**
   * Boot image of Compute Engine VMs. It must have node ≥ 20 and the fluster
   * package installed (so `flusterCommand` runs), unless `startupScript`
   * installs them. TPU VMs boot Google's TPU runtime image instead
   * (`tpuRuntimeVersion`): their `startupScript` must install node and fluster.
   * @default {@link DEFAULT_SOURCE_IMAGE}
   */
  sourceImage: string;
  /** Bash run as root at boot before the worker starts, e.g. to install node and fluster. @default none */
  startupScript?: string;
  /** The command that runs fluster on a VM, split on spaces (`node /opt/fluster/bin/fluster.js`). @default "fluster" */
  flusterCommand: string;
  /** TPU runtime (software) version of TPU slices, e.g. `v2-alpha-tpuv5-lite`. @default by generation: v4 `tpu-ubuntu2204-base`, v5litepod `v2-alpha-tpuv5-lite`, v5p `v2-alpha-tpuv5`, v6e `v2-alpha-tpuv6e` */
  tpuRuntimeVersion?: string;
  /**
   * Machine type per scale group name (`{ h100: a3-highgpu-8g }`). A CPU
   * group without one gets the custom type `custom-<cpus>-<MiB>` of its
   * shape; a GPU group must name one (an `n1-*` type gets the shape's GPUs
   * attached as guest accelerators; `a2`/`a3`/`g2` types come with theirs).
   * @default none
   */
  machineTypes: Readonly<Record<string, string>>;
  /** Base URL of the Compute Engine v1 API. @default {@link DEFAULT_COMPUTE_ENDPOINT} */
  computeEndpoint: string;
  /** Base URL of the Cloud TPU v2 API. @default {@link DEFAULT_TPU_ENDPOINT} */
  tpuEndpoint: string;
  /** A service account key (or other credentials) JSON file. @default Application Default Credentials */
  credentialsFile?: string;
  /** A fixed OAuth access token sent instead of credentials (for a fake of the APIs, or a token minted elsewhere). @default none */
  accessToken?: string;
  /** How often long-running operations and booting VMs are polled. @default 2 */
  pollIntervalSeconds: number;
}

const KEYS = [
  "project",
  "zone",
  "network",
  "subnetwork",
  "serviceAccount",
  "sourceImage",
  "startupScript",
  "flusterCommand",
  "tpuRuntimeVersion",
  "machineTypes",
  "computeEndpoint",
  "tpuEndpoint",
  "credentialsFile",
  "accessToken",
  "pollIntervalSeconds",
];

/** Checks `platforms.gcp`; throws a ValidationError naming the key. */
export function checkGcpSettings(section: Readonly<Record<string, unknown>>, field: string): GcpSettings {
  for (const key of Object.keys(section)) if (!KEYS.includes(key)) throw new ValidationError(`${field}.${key}`, `is not a known key (known: ${KEYS.join(", ")})`);
  if (section.project === undefined) throw new ValidationError(`${field}.project`, "is required: the Google Cloud project VMs are created in");
  if (section.zone === undefined) throw new ValidationError(`${field}.zone`, "is required: the zone of VMs whose shape names none, e.g. us-central1-a");
  const project = checkString(section.project, `${field}.project`, { nonEmpty: true });
  if (!/^[a-z][a-z0-9.:-]{3,}$/.test(project)) throw new ValidationError(`${field}.project`, `must be a project id (lowercase letters, digits and hyphens), got ${describeValue(project)}`);
  const optional = (key: string): string | undefined => (section[key] === undefined ? undefined : checkString(section[key], `${field}.${key}`, { nonEmpty: true }));
  const settings: GcpSettings = {
    project,
    zone: checkString(section.zone, `${field}.zone`, { nonEmpty: true }),
    sourceImage: optional("sourceImage") ?? DEFAULT_SOURCE_IMAGE,
    flusterCommand: optional("flusterCommand") ?? "fluster",
    machineTypes: checkMachineTypes(section.machineTypes, `${field}.machineTypes`),
    computeEndpoint: checkEndpoint(section.computeEndpoint, `${field}.computeEndpoint`) ?? DEFAULT_COMPUTE_ENDPOINT,
    tpuEndpoint: checkEndpoint(section.tpuEndpoint, `${field}.tpuEndpoint`) ?? DEFAULT_TPU_ENDPOINT,
    pollIntervalSeconds: section.pollIntervalSeconds === undefined ? 2 : checkPositive(section.pollIntervalSeconds, `${field}.pollIntervalSeconds`),
  };
  for (const key of ["network", "subnetwork", "serviceAccount", "startupScript", "tpuRuntimeVersion", "credentialsFile", "accessToken"] as const) {
    const value = optional(key);
    if (value !== undefined) settings[key] = value;
  }
  if (settings.credentialsFile !== undefined && settings.accessToken !== undefined) {
    throw new ValidationError(`${field}.accessToken`, "and credentialsFile may not both be set: give one way to authenticate");
  }
  return settings;
}

function checkEndpoint(value: unknown, field: string): string | undefined {
  if (value === undefined) return undefined;
  const text = checkString(value, field, { nonEmpty: true });
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ValidationError(field, `must be an http(s) URL, got ${describeValue(text)}`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") throw new ValidationError(field, `must be an http(s) URL, got ${describeValue(text)}`);
  return text.replace(/\/+$/, "");
}

function checkMachineTypes(value: unknown, field: string): Record<string, string> {
  if (value === undefined) return {};
  const out: Record<string, string> = {};
  for (const [group, type] of Object.entries(checkPlainObject(value, field))) out[group] = checkString(type, `${field}.${group}`, { nonEmpty: true });
  return out;
}
