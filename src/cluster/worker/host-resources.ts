// What a worker daemon advertises to the controller: CPU cores, memory, free
// disk, GPUs (found with nvidia-smi) and a TPU (from the environment TPU VMs set).
import { execFile } from "node:child_process";
import { statfs } from "node:fs/promises";
import { availableParallelism, totalmem } from "node:os";
import { dirname, resolve } from "node:path";
import { ValidationError, describeValue } from "../../core/errors.js";
import { tpuTopology } from "../../core/tpu.js";

/** GPUs of one model attached to this host. */
export interface GpuInfo {
  /** Short model name, e.g. `"H100"`; see {@link gpuVariantFromName}. */
  variant: string;
  count: number;
}

/** The TPU chips attached to this host. */
export interface TpuInfo {
  /** Slice type as `TPU_ACCELERATOR_TYPE` names it, e.g. `"v5litepod-16"`. */
  variant: string;
  /** Chips attached to this host (not to the whole slice). */
  chips: number;
}

/** Resources of this host. */
export interface HostResources {
  /** CPU cores the daemon may use. */
  cpu: number;
  /** Memory, in bytes. */
  memory: number;
  /** Free disk on the work directory's filesystem, in bytes. */
  disk: number;
  gpus: GpuInfo | undefined;
  tpu: TpuInfo | undefined;
}

/** Options of {@link detectHostResources}. */
export interface DetectHostResourcesOptions {
  /** Directory whose filesystem's free space is reported; it need not exist yet. @default process.cwd() */
  workDir?: string;
  /** CPU cores to advertise instead of the detected count (`--cpu`). */
  cpu?: number;
  /** Memory in bytes to advertise instead of the detected total (`--memory`). */
  memory?: number;
  /** GPUs to report instead of asking nvidia-smi (which is then not run). @default detected */
  gpus?: GpuInfo;
  /** TPU to report instead of reading the environment; a host has GPUs or a TPU, so `gpus` wins. @default detected */
  tpu?: TpuInfo;
  /** Environment to look in for `PATH` (to find nvidia-smi) and the TPU variables. @default process.env */
  env?: Readonly<Record<string, string | undefined>>;
  /** How long nvidia-smi may take before the host counts as having no GPU. @default 3000 */
  gpuProbeTimeoutMs?: number;
}

/**
 * Detects this host's resources. Never throws for a missing or failing probe
 * (no nvidia-smi means no GPU); throws a ValidationError for a bad override.
 */
export async function detectHostResources(opts: DetectHostResourcesOptions = {}): Promise<HostResources> {
  if (opts.cpu !== undefined && !(Number.isFinite(opts.cpu) && opts.cpu > 0)) {
    throw new ValidationError("cpu", `must be a positive number, got ${describeValue(opts.cpu)}`);
  }
  if (opts.memory !== undefined && !(Number.isSafeInteger(opts.memory) && opts.memory > 0)) {
    throw new ValidationError("memory", `must be a positive number of bytes, got ${describeValue(opts.memory)}`);
  }
  const env = opts.env ?? process.env;
  // An override of either device stands for the machine's accelerators: nothing is probed.
  const overridden = opts.gpus !== undefined || opts.tpu !== undefined;
  const [disk, gpus] = await Promise.all([
    freeDiskBytes(resolve(opts.workDir ?? process.cwd())),
    overridden ? opts.gpus : detectGpus(env, opts.gpuProbeTimeoutMs ?? 3000),
  ]);
  return {
    cpu: opts.cpu ?? availableParallelism(),
    memory: opts.memory ?? totalmem(),
    disk,
    gpus,
    tpu: overridden ? (gpus ? undefined : opts.tpu) : detectTpu(env),
  };
}

// Words that name a vendor or product line rather than the model.
const GPU_BRAND_WORDS = new Set(["NVIDIA", "TESLA", "GEFORCE", "QUADRO"]);
// Product-line prefixes whose model number is the next word ("RTX 4090").
const GPU_LINE_WORDS = new Set(["RTX", "GTX", "TITAN"]);

/**
 * The short model name of a GPU as nvidia-smi names it: vendor and brand
 * words dropped, the model word cut before any `-` suffix.
 * "NVIDIA H100 80GB HBM3" → "H100", "NVIDIA A100-SXM4-40GB" → "A100",
 * "Tesla V100-SXM2-16GB" → "V100", "NVIDIA L4" → "L4",
 * "NVIDIA GeForce RTX 4090" → "RTX4090".
 */
export function gpuVariantFromName(name: string): string {
  const words = name.trim().split(/\s+/).filter((w) => w !== "" && !GPU_BRAND_WORDS.has(w.toUpperCase()));
  const first = words[0];
  if (first === undefined) return name.trim();
  const model = (w: string) => w.split("-")[0] || w;
  const next = words[1];
  if (GPU_LINE_WORDS.has(first.toUpperCase()) && next !== undefined) return `${first}${model(next)}`;
  return model(first);
}

/** Parses `nvidia-smi --query-gpu=name --format=csv,noheader` output; a mixed host reports its most common model. */
export function parseGpuList(output: string): GpuInfo | undefined {
  const counts = new Map<string, number>();
  for (const line of output.split("\n")) {
    if (line.trim() === "") continue;
    const variant = gpuVariantFromName(line);
    counts.set(variant, (counts.get(variant) ?? 0) + 1);
  }
  let best: GpuInfo | undefined;
  for (const [variant, count] of counts) if (!best || count > best.count) best = { variant, count };
  return best;
}

function detectGpus(env: Readonly<Record<string, string | undefined>>, timeoutMs: number): Promise<GpuInfo | undefined> {
  return new Promise((resolveGpus) => {
    // A driver hung in the kernel can make nvidia-smi unkillable, and then its
    // pipes never close: stop waiting shortly after the timeout regardless.
    const giveUp = setTimeout(() => resolveGpus(undefined), timeoutMs + 500);
    // execFile looks the binary up on `env.PATH`; a missing binary is ENOENT.
    execFile(
      "nvidia-smi",
      ["--query-gpu=name", "--format=csv,noheader"],
      { env: { ...env }, timeout: timeoutMs, killSignal: "SIGKILL", windowsHide: true },
      (err, stdout) => {
        clearTimeout(giveUp);
        resolveGpus(err ? undefined : parseGpuList(stdout));
      },
    );
  });
}

/**
 * The TPU from the variables TPU VMs set: `TPU_ACCELERATOR_TYPE` names the
 * slice ("v5litepod-16"); the chips on this host are the product of
 * `TPU_CHIPS_PER_HOST_BOUNDS` ("2,2,1" → 4) when set, else the slice type's
 * chips per host from the topology table. An unknown type without bounds is
 * not reported.
 */
export function detectTpu(env: Readonly<Record<string, string | undefined>>): TpuInfo | undefined {
  const variant = env.TPU_ACCELERATOR_TYPE?.trim();
  if (!variant) return undefined;
  const bounds = env.TPU_CHIPS_PER_HOST_BOUNDS?.split(",").map((part) => Number(part.trim()));
  if (bounds && bounds.length > 0 && bounds.every((n) => Number.isInteger(n) && n > 0)) {
    return { variant, chips: bounds.reduce((a, b) => a * b, 1) };
  }
  try {
    return { variant, chips: tpuTopology(variant).chipsPerHost };
  } catch {
    return undefined;
  }
}

/** Free bytes for unprivileged users on the filesystem holding `dir` or, if it does not exist yet, its nearest ancestor. */
async function freeDiskBytes(dir: string): Promise<number> {
  for (let current = dir; ; current = dirname(current)) {
    try {
      const stats = await statfs(current);
      return stats.bavail * stats.bsize;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if ((code !== "ENOENT" && code !== "ENOTDIR") || dirname(current) === current) return 0;
    }
  }
}
