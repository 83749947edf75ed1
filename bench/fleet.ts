// The simulated fleet shared by the scheduler and autoscaler benchmarks: the
// regions and machine shapes their random clusters and scale groups draw from.

/** An item of `items` chosen by `random` (a seeded source from stats.ts). */
export function pick<T>(random: () => number, items: readonly T[]): T {
  const item = items[Math.floor(random() * items.length)];
  if (item === undefined) throw new Error("pick from an empty list");
  return item;
}

export const REGIONS = ["us-east1", "us-west1", "europe-west4", "asia-east1"];
/** [cpu, memory GiB] */
export const CPU_SHAPES = [[4, 16], [8, 32], [16, 64], [32, 128], [64, 256]] as const;
/** [variant, gpus, cpu, memory GiB] */
export const GPU_SHAPES = [["H100", 8, 96, 1024], ["A100", 8, 64, 512], ["A100", 4, 32, 256], ["L4", 1, 8, 32], ["L4", 4, 48, 192]] as const;
/** [variant, chips per host] */
export const TPU_SHAPES = [["v5litepod-16", 4], ["v6e-8", 8], ["v5p-8", 4]] as const;
