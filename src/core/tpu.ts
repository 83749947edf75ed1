// The TPU topology table: every v4, v5litepod (v5e), v5p and v6e slice shape.
// v4 and v5p names count TensorCores (two per chip); v5litepod and v6e names count chips.
import { ValidationError, describeValue } from "./errors.js";

/** One TPU slice shape. */
export interface TpuTopologyInfo {
  /** Accelerator type as cloud APIs name it, e.g. `"v5litepod-16"`. */
  readonly variant: string;
  /** TPU generation: `"v4"`, `"v5litepod"`, `"v5p"` or `"v6e"`. */
  readonly generation: TpuGeneration;
  /** Chips in one slice. */
  readonly chipCount: number;
  /** Host VMs in one slice. */
  readonly hostCount: number;
  /** Chips attached to each host VM. */
  readonly chipsPerHost: number;
  /** Physical chip topology, e.g. `"4x4"` or `"2x2x4"`. */
  readonly topology: string;
}

export type TpuGeneration = "v4" | "v5litepod" | "v5p" | "v6e";

// v4/v5p: 3-D torus, 4 chips per host; names count cores (2 per chip).
const CUBE_SHAPES: ReadonlyArray<readonly [chips: number, topology: string]> = [
  [4, "2x2x1"], [8, "2x2x2"], [16, "2x2x4"], [32, "2x4x4"], [64, "4x4x4"],
  [128, "4x4x8"], [256, "4x8x8"], [512, "8x8x8"], [768, "8x8x12"], [1024, "8x8x16"],
  [2048, "8x16x16"],
];
const V5P_EXTRA_SHAPES: ReadonlyArray<readonly [number, string]> = [
  [3072, "16x16x12"], [4096, "16x16x16"], [6144, "16x16x24"],
];
// v5litepod/v6e: 2-D torus; slices up to 8 chips sit on one host, larger
// slices use hosts with 4 chips each.
const PLANE_SHAPES: ReadonlyArray<readonly [number, string]> = [
  [1, "1x1"], [4, "2x2"], [8, "2x4"], [16, "4x4"], [32, "4x8"], [64, "8x8"], [128, "8x16"], [256, "16x16"],
];

function cube(generation: "v4" | "v5p", chips: number, topology: string): TpuTopologyInfo {
  return { variant: `${generation}-${chips * 2}`, generation, chipCount: chips, hostCount: Math.max(1, chips / 4), chipsPerHost: Math.min(4, chips), topology };
}

function plane(generation: "v5litepod" | "v6e", chips: number, topology: string): TpuTopologyInfo {
  const singleHost = chips <= 8;
  return { variant: `${generation}-${chips}`, generation, chipCount: chips, hostCount: singleHost ? 1 : chips / 4, chipsPerHost: singleHost ? chips : 4, topology };
}

/** Every known TPU slice shape, in generation then size order. */
export const TPU_TOPOLOGIES: readonly TpuTopologyInfo[] = Object.freeze([
  ...CUBE_SHAPES.map(([chips, topo]) => cube("v4", chips, topo)),
  ...PLANE_SHAPES.map(([chips, topo]) => plane("v5litepod", chips, topo)),
  ...[...CUBE_SHAPES, ...V5P_EXTRA_SHAPES].map(([chips, topo]) => cube("v5p", chips, topo)),
  ...PLANE_SHAPES.map(([chips, topo]) => plane("v6e", chips, topo)),
]);

const BY_VARIANT = new Map(TPU_TOPOLOGIES.map((t) => [t.variant, t]));

/** Looks up a TPU variant such as `"v5litepod-16"`; throws a ValidationError listing valid ones. */
export function tpuTopology(variant: string, field = "tpu variant"): TpuTopologyInfo {
  const info = BY_VARIANT.get(variant);
  if (!info) {
    const prefix = /^(v\d+[a-z]*)/.exec(typeof variant === "string" ? variant : "")?.[1];
    const same = TPU_TOPOLOGIES.filter((t) => prefix && t.generation === prefix).map((t) => t.variant);
    const hint = same.length > 0 ? `; ${prefix} variants are ${same.join(", ")}` : `; known generations are v4, v5litepod, v5p, v6e`;
    throw new ValidationError(field, `is not a known TPU variant: ${describeValue(variant)}${hint}`);
  }
  return info;
}
