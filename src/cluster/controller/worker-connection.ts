// What the controller needs from a worker, in controller terms: start an
// attempt, stop one, and reconcile the complete desired set. The RPC layer
// implements it (server.ts); unit tests implement it in memory.
import type { TaskState } from "../../core/status.js";
import type { JobSpec } from "../../rpc/gen/fluster/cluster/v1/types_pb.js";

export interface WorkerConnection {
  /** Starts the attempt; resolves to its state on the worker. */
  runTask(assignment: Assignment): Promise<ObservedAttempt>;
  /** Stops an attempt now (the next reconcile would too; this is the fast path). */
  killTask(attemptId: string, reason: string): Promise<void>;
  /** Sends the complete desired set; `signal` bounds the call (one signal serves a whole tick). */
  reconcile(desired: readonly DesiredAttempt[], stopReasons: Readonly<Record<string, string>>, signal: AbortSignal): Promise<ObservedAttempts>;
  /** Asks the worker who it is (a call like any other: it proves the controller can reach it and is let in). */
  healthCheck(signal: AbortSignal): Promise<{ workerId: string }>;
  close(): void;
}

/** One attempt as the controller asks a worker to run it. */
export interface Assignment {
  attemptId: string;
  jobId: string;
  jobName: string;
  namespace: string;
  taskIndex: number;
  numTasks: number;
  spec: JobSpec;
  /** Variables the controller computed for the attempt (rendezvous.ts: where its job's tasks run), over the job's own. @default none */
  env?: Record<string, string>;
}

/** One entry of a reconcile's desired set. */
export interface DesiredAttempt {
  attemptId: string;
  /** The state the controller last saw; the worker reports only differences. */
  knownState: TaskState;
}

/** An attempt as a worker observes it. */
export interface ObservedAttempt {
  attemptId: string;
  state: TaskState;
  exitCode?: number;
  errorMessage?: string;
  startedAt?: number;
  finishedAt?: number;
  result?: Uint8Array;
}

/** A worker's answer to a reconcile. */
export interface ObservedAttempts {
  /** Attempts whose state differs from the one the controller sent. */
  observed: ObservedAttempt[];
  /** Desired attempts the worker does not have. */
  missing: string[];
}
