// The controller's records: jobs with their tasks and attempts, workers and
// endpoints. The controller holds them in memory and writes every change
// through to the state store.
import type { JobStatus, TaskState } from "../../core/status.js";
import type { ValidatedJobRequest } from "../../core/job.js";
import type { JobSpec } from "../../rpc/gen/fluster/cluster/v1/types_pb.js";

export interface AttemptRecord {
  attemptId: string;
  jobId: string;
  taskIndex: number;
  workerId: string;
  state: TaskState;
  exitCode?: number;
  errorMessage?: string;
  createdAt: number;
  startedAt?: number;
  finishedAt?: number;
  /** Codec-encoded return value of a function entrypoint. */
  result?: Uint8Array;
}

export interface TaskRecord {
  jobId: string;
  taskIndex: number;
  state: TaskState;
  workerId?: string;
  failureCount: number;
  preemptionCount: number;
  exitCode?: number;
  errorMessage?: string;
  startedAt?: number;
  finishedAt?: number;
  /** Every attempt, oldest first; the last one is current. */
  attempts: AttemptRecord[];
}

export interface JobRecord {
  jobId: string;
  name: string;
  namespace: string;
  parentJobId?: string;
  /** As submitted; function arguments stay encoded. */
  spec: JobSpec;
  request: ValidatedJobRequest;
  state: JobStatus;
  pendingReason?: string;
  errorMessage?: string;
  exitCode?: number;
  submittedAt: number;
  startedAt?: number;
  finishedAt?: number;
  /** Submission order, for FIFO scheduling within a priority band. */
  seq: number;
  requestId?: string;
  /** Counts changes, in memory only: a watcher skips a snapshot that a later change already superseded. */
  revision: number;
  tasks: TaskRecord[];
}

export interface WorkerCapacityRecord {
  cpu: number;
  memory: number;
  disk: number;
  deviceType: "cpu" | "gpu" | "tpu";
  deviceVariant: string;
  deviceCount: number;
}

export type WorkerHealth = "healthy" | "unreachable" | "lost";

export interface WorkerRecord {
  workerId: string;
  address: string;
  capacity: WorkerCapacityRecord;
  attributes: Record<string, string>;
  registeredAt: number;
  lastSeen: number;
  health: WorkerHealth;
}

export interface EndpointRecord {
  endpointId: string;
  name: string;
  address: string;
  namespace: string;
  jobId?: string;
  metadata: Record<string, string>;
  registeredAt: number;
  /** Seconds between renewals before the endpoint expires; absent: never. */
  ttlSeconds?: number;
  expiresAt?: number;
}
