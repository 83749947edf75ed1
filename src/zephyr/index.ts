// Zephyr: storage-first dataset pipelines (SPEC §3).

export { Dataset, dataset, type DatasetDefinition, type DatasetOrigin, type FromListOptions, type ShuffleOptions, type SortOptions, type Key, type SortKey } from "./dataset.js";
export { execute, type Backend, type ExecuteOptions, type ShardProgress } from "./execute.js";
export { ChunkWriter, StorageManager, readChunk, defaultStoragePath, type ChunkRef, type InlineRef, type StorageRef } from "./storage.js";
