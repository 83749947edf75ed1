// Zephyr: storage-first dataset pipelines (SPEC §3).

export { Dataset, dataset, type DatasetDefinition, type DatasetOrigin, type FromListOptions, type ShuffleOptions, type SortOptions, type Key, type SortKey } from "./dataset.js";
export { execute, type Backend, type ExecuteOptions, type ShardProgress } from "./execute.js";
export { RetryableError, isRetryableError, type ShardAttempt, type ShardRetry } from "./retries.js";
export { configureStorage, globPaths, type GcsStoreOptions, type S3StoreOptions, type StorageConfig } from "./fs/index.js";
export { ChunkWriter, StorageManager, readChunk, defaultStoragePath, type ChunkRef, type InlineRef, type StorageRef } from "./storage.js";
export { ParquetFileWriter, readParquet, type ParquetColumnType, type ParquetSchema, type ParquetWriteOptions } from "./parquet.js";
