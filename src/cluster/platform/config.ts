// The cluster config file: the scale groups the autoscaler sizes, read from
// YAML (the `yaml` package) and checked whole before anything starts. Every
// error names the key where it is (`scaleGroups[1].shape.memory`), so a typo
// is found at `controller serve --config`, not when a VM is first wanted.
import { readFileSync } from "node:fs";
import { resolve as resolvePath } from "node:path";
import { LineCounter, parseDocument } from "yaml";
import { FlusterError, ValidationError, describeValue } from "../../core/errors.js";
import { parseByteSize } from "../../core/quantity.js";
import { tpuTopology } from "../../core/tpu.js";
import { checkBoolean, checkInteger, checkNonNegative, checkPlainObject, checkPositive, checkString } from "../../core/validate.js";
import type { MachineShape, ScaleGroup } from "../autoscaler/types.js";

import { PLATFORMS, PLATFORM_MODULES, type PlatformName, type PlatformSettings } from "./registry.js";
export { PLATFORMS, type PlatformName, type PlatformSettings } from "./registry.js";

/** A cluster config file, checked, with its defaults filled in. */
export interface ClusterConfig {
  /** The scale groups, in the file's order (the autoscaler tries them in it: list the cheapest first). */
  scaleGroups: ScaleGroup[];
  /**
   * Each platform's own settings (`platforms.docker.image`, `platforms.ssh.hosts`,
   * `platforms.gcp.project`), checked by the platform's `checkSettings` (registry.ts) when the
   * file is read. A platform that scale groups use and that has no section
   * gets `{}`.
   */
  platforms: Partial<Record<PlatformName, PlatformSettings>>;
}


/** A ready VM that ran nothing for this long is released, when a group does not say. */
export const DEFAULT_IDLE_TIMEOUT_SECONDS = 300;

const TOP_KEYS = ["scaleGroups", "platforms"] as const;
const GROUP_KEYS = ["name", "platform", "shape", "minVms", "maxVms", "idleTimeoutSeconds"] as const;
const SHAPE_KEYS = ["cpu", "memory", "disk", "gpu", "tpu", "region", "zone", "preemptible", "labels"] as const;
const GPU_KEYS = ["variant", "count"] as const;
const TPU_KEYS = ["variant"] as const;
/** Worker attributes a shape sets from its own fields; labels may not set them too. */
const RESERVED_LABELS = ["region", "zone", "preemptible", "device-type", "device-variant"];

/** Reads and checks the cluster config file at `path`. */
export function loadClusterConfig(path: string): ClusterConfig {
  const file = resolvePath(path);
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new FlusterError(`cannot read the cluster config ${file}: ${(err as Error).message}`, "invalid_argument", { cause: err });
  }
  return parseClusterConfig(text, file);
}

/** Parses and checks a cluster config's YAML `text`; `source` names it in errors. */
export function parseClusterConfig(text: string, source = "cluster config"): ClusterConfig {
  const lines = new LineCounter();
  const document = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const [syntax] = document.errors;
  if (syntax) {
    const at = syntax.pos[0] !== undefined ? lines.linePos(syntax.pos[0]) : undefined;
    throw new FlusterError(`${source}${at ? `:${at.line}:${at.col}` : ""}: ${syntax.message.split("\n")[0]}`, "invalid_argument");
  }
  try {
    return checkConfig(document.toJS({ maxAliasCount: 100 }) as unknown);
  } catch (err) {
    if (err instanceof ValidationError) throw new ValidationError(err.field, `${err.message.slice(err.field.length + 1).trimStart()} (in ${source})`);
    throw err;
  }
}

function checkConfig(value: unknown): ClusterConfig {
  // An empty file is a cluster without scale groups: workers are started by hand.
  if (value === null || value === undefined) return { scaleGroups: [], platforms: {} };
  const top = checkKeys(value, "the cluster config", TOP_KEYS);
  const list = top.scaleGroups ?? [];
  if (!Array.isArray(list)) throw new ValidationError("scaleGroups", `must be a list of scale groups, got ${describeValue(list)}`);
  const scaleGroups = list.map((group, i) => checkGroup(group, `scaleGroups[${i}]`));
  const seen = new Map<string, number>();
  scaleGroups.forEach((group, i) => {
    const first = seen.get(group.name);
    if (first !== undefined) throw new ValidationError(`scaleGroups[${i}].name`, `repeats the name ${JSON.stringify(group.name)} of scaleGroups[${first}]: group names are unique`);
    seen.set(group.name, i);
  });
  const sections = top.platforms === undefined ? {} : checkKeys(top.platforms, "platforms", PLATFORMS);
  const platforms: ClusterConfig["platforms"] = {};
  for (const name of PLATFORMS) {
    const section = sections[name];
    if (section === undefined && !scaleGroups.some((g) => g.platform === name)) continue;
    platforms[name] = PLATFORM_MODULES[name].checkSettings(section === undefined || section === null ? {} : checkPlainObject(section, `platforms.${name}`), `platforms.${name}`);
  }
  return { scaleGroups, platforms };
}

function checkGroup(value: unknown, field: string): ScaleGroup {
  const group = checkKeys(value, field, GROUP_KEYS);
  const name = checkString(group.name, `${field}.name`, { nonEmpty: true });
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) throw new ValidationError(`${field}.name`, `must be letters, digits, ".", "_" or "-", starting with a letter or digit, got ${describeValue(name)}`);
  const platform = checkString(group.platform, `${field}.platform`, { nonEmpty: true });
  if (!(PLATFORMS as readonly string[]).includes(platform)) throw new ValidationError(`${field}.platform`, `must be one of ${PLATFORMS.join(", ")}, got ${describeValue(platform)}`);
  const minVms = group.minVms === undefined ? 0 : checkInteger(group.minVms, `${field}.minVms`, 0);
  if (group.maxVms === undefined) throw new ValidationError(`${field}.maxVms`, "is required: the most VMs the group may hold");
  const maxVms = checkInteger(group.maxVms, `${field}.maxVms`, 1);
  if (minVms > maxVms) throw new ValidationError(`${field}.minVms`, `must not exceed maxVms (${maxVms}), got ${minVms}`);
  const idleTimeoutSeconds = group.idleTimeoutSeconds === undefined ? DEFAULT_IDLE_TIMEOUT_SECONDS : checkNonNegative(group.idleTimeoutSeconds, `${field}.idleTimeoutSeconds`);
  if (group.shape === undefined) throw new ValidationError(`${field}.shape`, "is required: what one VM of the group offers (cpu, memory, ...)");
  return { name, platform, shape: checkShape(group.shape, `${field}.shape`), minVms, maxVms, idleTimeoutSeconds };
}

function checkShape(value: unknown, field: string): MachineShape {
  const shape = checkKeys(value, field, SHAPE_KEYS);
  if (shape.cpu === undefined) throw new ValidationError(`${field}.cpu`, "is required: the CPU cores of one VM");
  if (shape.memory === undefined) throw new ValidationError(`${field}.memory`, 'is required: the memory of one VM, e.g. "32g"');
  if (shape.gpu !== undefined && shape.tpu !== undefined) throw new ValidationError(`${field}.gpu`, "and tpu may not both be set: a VM has one kind of accelerator");
  const device = shape.gpu !== undefined ? checkGpu(shape.gpu, `${field}.gpu`) : shape.tpu !== undefined ? checkTpu(shape.tpu, `${field}.tpu`) : { deviceType: "cpu" as const, deviceVariant: "", deviceCount: 0 };
  const labels = shape.labels === undefined ? undefined : checkLabels(shape.labels, `${field}.labels`);
  return {
    resources: {
      cpu: checkPositive(shape.cpu, `${field}.cpu`),
      memory: parseByteSize(shape.memory, `${field}.memory`),
      disk: shape.disk === undefined ? 0 : parseByteSize(shape.disk, `${field}.disk`),
      ...device,
    },
    preemptible: shape.preemptible === undefined ? false : checkBoolean(shape.preemptible, `${field}.preemptible`),
    ...(shape.region !== undefined ? { region: checkString(shape.region, `${field}.region`, { nonEmpty: true }) } : {}),
    ...(shape.zone !== undefined ? { zone: checkString(shape.zone, `${field}.zone`, { nonEmpty: true }) } : {}),
    ...(labels ? { labels } : {}),
  };
}

function checkGpu(value: unknown, field: string): Pick<MachineShape["resources"], "deviceType" | "deviceVariant" | "deviceCount"> {
  const gpu = checkKeys(value, field, GPU_KEYS);
  const variant = checkString(gpu.variant, `${field}.variant`, { nonEmpty: true });
  // A machine has a model: "auto" is what a job asks for, not what a VM is.
  if (variant.toLowerCase() === "auto") throw new ValidationError(`${field}.variant`, 'must name the GPU model of the machine, e.g. "H100", not "auto"');
  return { deviceType: "gpu", deviceVariant: variant, deviceCount: checkInteger(gpu.count ?? 1, `${field}.count`, 1) };
}

function checkTpu(value: unknown, field: string): Pick<MachineShape["resources"], "deviceType" | "deviceVariant" | "deviceCount"> {
  const tpu = checkKeys(value, field, TPU_KEYS);
  const info = tpuTopology(checkString(tpu.variant, `${field}.variant`, { nonEmpty: true }), `${field}.variant`);
  // One VM is one host of the slice: it has that host's chips.
  return { deviceType: "tpu", deviceVariant: info.variant, deviceCount: info.chipsPerHost };
}

function checkLabels(value: unknown, field: string): Record<string, string> {
  const labels = checkPlainObject(value, field);
  const out: Record<string, string> = {};
  for (const [key, label] of Object.entries(labels)) {
    if (RESERVED_LABELS.includes(key)) throw new ValidationError(`${field}.${key}`, `is set by the shape itself (${RESERVED_LABELS.join(", ")} are): use the shape's own field`);
    if (typeof label !== "string" && typeof label !== "number" && typeof label !== "boolean") throw new ValidationError(`${field}.${key}`, `must be a string, got ${describeValue(label)}`);
    out[key] = String(label);
  }
  return out;
}

/** `value` as a mapping whose keys are all in `known`; an unknown key is an error naming it and the known ones. */
function checkKeys<K extends string>(value: unknown, field: string, known: readonly K[]): Partial<Record<K, unknown>> {
  const object = checkPlainObject(value, field);
  for (const key of Object.keys(object)) {
    if (!(known as readonly string[]).includes(key)) {
      const where = field === "the cluster config" ? key : `${field}.${key}`;
      throw new ValidationError(where, `is not a known key (known: ${known.join(", ")})`);
    }
  }
  return object as Partial<Record<K, unknown>>;
}
