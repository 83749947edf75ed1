// The controller's records: jobs with their tasks and attempts, workers and
// endpoints. The controller holds them in memory and writes every change
// through to the state store.
import type { JobStatus, TaskState } from "../../core/status.js";
import type { ValidatedJobRequest } from "../../core/job.js";
import type { ReservationSpec } from "../../rpc/gen/fluster/cluster/v1/controller_pb.js";
import type { JobSpec } from "../../rpc/gen/fluster/cluster/v1/types_pb.js";
import type { VmRecord } from "../autoscaler/types.js";

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
  /**
   * Its worker has shown it has the attempt (answered its RunTask, or
   * reported it in a reconcile or heartbeat). Until then a worker that says
   * it does not have it was never given it: the task goes back to pending at
   * no cost, instead of the attempt counting as lost.
   */
  delivered: boolean;
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
  /** The job group it was launched in (groups.ts). */
  groupId?: string;
  /** The reservation it was launched into (reservations.ts). */
  reservationId?: string;
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

/**
 * - `healthy`: answers reconciles; gets new attempts.
 * - `unreachable`: stopped answering (a transient failure); lost after the grace period.
 * - `unhealthy`: answers, but refuses the controller for good (wrong token, not a
 *   Fluster worker); gets nothing new and is lost after the grace period.
 * - `lost`: forgotten; its attempts were retried elsewhere.
 */
export type WorkerHealth = "healthy" | "unreachable" | "unhealthy" | "lost";

export interface WorkerRecord {
  workerId: string;
  address: string;
  capacity: WorkerCapacityRecord;
  attributes: Record<string, string>;
  registeredAt: number;
  lastSeen: number;
  health: WorkerHealth;
  /** Why the worker is unhealthy; in memory only (the next failed call says it again after a restart). */
  healthReason?: string;
}

export interface EndpointRecord {
  endpointId: string;
  name: string;
  address: string;
  namespace: string;
  /** The job that owns it: it goes when the job finishes. */
  jobId?: string;
  /** The attempt (of `jobId`) that owns it: it goes when that attempt ends, also when its task is retried. */
  attemptId?: string;
  metadata: Record<string, string>;
  registeredAt: number;
  /** Seconds between renewals before the endpoint expires; absent: never. */
  ttlSeconds?: number;
  expiresAt?: number;
}

/** A job group: jobs launched together and placed all together or none (groups.ts). */
export interface JobGroupRecord {
  groupId: string;
  name: string;
  namespace: string;
  sameRegion: boolean;
  sameZone: boolean;
  reservationId?: string;
  parentJobId?: string;
  /** Its jobs in launch order. */
  jobIds: string[];
  createdAt: number;
  /** When its last job finished. */
  finishedAt?: number;
  requestId?: string;
}

/**
 * - `active`: holds capacity (or waits for it) for its jobs.
 * - `expired`: its TTL passed; holds nothing.
 * - `released`: released by request; holds nothing.
 */
export type ReservationState = "active" | "expired" | "released";

/** A reservation (reservations.ts); `spec` is the ReservationSpec as validated, stored as its wire form. */
export interface ReservationRecord {
  reservationId: string;
  namespace: string;
  spec: ReservationSpec;
  state: ReservationState;
  /** Why it ended. */
  message?: string;
  createdAt: number;
  expiresAt: number;
  endedAt?: number;
  /** Creation order, for ties between equal priorities. */
  seq: number;
  requestId?: string;
}

/**
 * A VM the autoscaler asked a platform for, as the controller stores it:
 * the decision's {@link VmRecord} plus what ties it to its platform and
 * workers. Written before the platform is asked (`requested`), so a
 * controller that restarts finds every VM it may have caused.
 */
export interface ManagedVmRecord extends VmRecord {
  /** The platform of its scale group when it was asked for. */
  platform: string;
  /** When it was first requested (epoch ms). */
  createdAt: number;
  /** The worker ids its hosts register with (the vm id for a one-host VM); set from the platform's answer. */
  workerIds: string[];
  /** The platform's own name for it (a container id, a zone/instance path). */
  platformId?: string;
  /** Why it failed or was released, or the last platform error. */
  reason?: string;
}
