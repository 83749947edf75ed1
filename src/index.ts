// Fluster's public API: everything a user program imports from "fluster".
// Modules not re-exported here are internal and may change without notice.

export { FlusterError, ValidationError, type FlusterErrorCode } from "./core/errors.js";
export {
  JOB_STATUSES,
  TASK_STATES,
  isFinished,
  isTaskFinished,
  rollUpJobStatus,
  type JobStatus,
  type TaskState,
} from "./core/status.js";
export { parseByteSize, formatByteSize, type ByteSize } from "./core/quantity.js";
export {
  createLogger,
  LOG_LEVELS,
  LOG_FORMATS,
  type Logger,
  type LoggerOptions,
  type LogFields,
  type LogLevel,
  type LogFormat,
  type LogComponent,
  type LogDestination,
} from "./core/logger.js";
export { TPU_TOPOLOGIES, tpuTopology, type TpuTopologyInfo, type TpuGeneration } from "./core/tpu.js";
export {
  ResourceConfig,
  type ResourceConfigInit,
  type CpuConfig,
  type GpuConfig,
  type TpuConfig,
  type DeviceConfig,
  type DeviceType,
} from "./core/resources.js";
export { validateEnvironment, type EnvironmentConfig } from "./core/environment.js";
export { Entrypoint, type CommandEntrypoint, type FunctionEntrypoint } from "./core/entrypoint.js";
export {
  validateJobName,
  validateJobRequest,
  isGang,
  PRIORITIES,
  CONSTRAINT_OPS,
  type JobRequest,
  type ValidatedJobRequest,
  type JobInfo,
  type TaskInfo,
  type JobId,
  type TaskId,
  type AttemptId,
  type WorkerId,
  type Namespace,
  type Priority,
  type Constraint,
  type ConstraintOp,
} from "./core/job.js";
export {
  validateJobGroupConfig,
  validateReservationConfig,
  type JobGroupConfig,
  type ReservationConfig,
  type ReservationInfo,
  type ReservationId,
  type ReservationState,
  type JobGroupInfo,
} from "./core/reservation.js";
export {
  remote,
  remoteRef,
  resolveRemote,
  isRemoteFunction,
  isRemoteClass,
  isMain,
  RemoteResolutionError,
  ProgramOnImportError,
  type RemoteFunction,
  type RemoteClass,
  type RemoteRef,
} from "./core/remote.js";
export { encodeValue, decodeValue, DecodeError, EncodeError } from "./rpc/codec.js";
export {
  Cluster,
  JobFailedError,
  type ClusterOptions,
  type WaitOptions,
  type MonitorOptions,
  type LogsOptions,
  type LogLine,
  type EndpointInfo,
  type WorkerInfo,
  type VmInfo,
  type ScaleGroupInfo,
  type LaunchOptions,
} from "./cluster/client/cluster.js";
export type { ResultsOptions } from "./cluster/client/results.js";
export { LocalCluster, type LocalClusterOptions, type LocalWorker } from "./cluster/client/local-cluster.js";
export { LocalClusterProcess } from "./cluster/client/local-cluster-process.js";
export { currentCluster } from "./cluster/client/current.js";
export { startController, type ControllerServer, type ControllerServerOptions } from "./cluster/controller/server.js";
export { WorkerDaemon, type WorkerDaemonOptions, type WorkerDaemonState } from "./cluster/worker/daemon.js";
export { ActorServer, type ActorServerOptions, type RegisterActorOptions, type ActorId, type ActorServerState } from "./actor/server.js";
export {
  ActorPool,
  type ActorEndpoint,
  type ActorProxy,
  type BroadcastProxy,
  type BroadcastResult,
  type CallOptions,
  type ActorMethodName,
} from "./actor/pool.js";
export { ClusterResolver, FixedResolver, type ListedActor, type Resolver } from "./actor/resolver.js";
export { actorContext, type ActorContext } from "./actor/context.js";
export { ActorError, CallInterruptedError, CallNotDeliveredError } from "./actor/errors.js";
export { WorkerPool, type WorkerPoolOptions, type WorkerPoolState, type SubmitOptions, type WorkerPoolWithOptions } from "./pool/worker-pool.js";
export type { TaskExecutorStats } from "./pool/executor.js";
export { taskSignal } from "./core/task-signal.js";
export {
  createJobContext,
  getJobContext,
  withJobContext,
  TaskFuture,
  ObjectRef,
  type JobContext,
  type JobContextKind,
  type JobContextOptions,
  type JobContextWithOptions,
  type TaskOptions,
  type ActorHandle,
  type CreateActorOptions,
  type JobWaitOptions,
  type JobGetOptions,
} from "./job/index.js";
export {
  Dataset,
  dataset,
  execute,
  ChunkWriter,
  StorageManager,
  RetryableError,
  isRetryableError,
  type ShardAttempt,
  type ShardRetry,
  configureStorage,
  type StorageConfig,
  type DatasetDefinition,
  type Backend as ZephyrBackend,
  type ExecuteOptions,
  type ShardProgress,
  type ChunkRef,
  type InlineRef,
  type StorageRef,
  type Key as DatasetKey,
  type SortKey as DatasetSortKey,
  ParquetFileWriter,
  readParquet,
  type ParquetColumnType,
  type ParquetSchema,
  type ParquetWriteOptions,
} from "./zephyr/index.js";
