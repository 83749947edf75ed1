// A job request (what to run, on what, how to retry) and the job's observed
// state. `validateJobRequest` is the one place a request is checked.
import { validateEntrypoint, type Entrypoint } from "./entrypoint.js";
import { validateEnvironment, type EnvironmentConfig } from "./environment.js";
import { ValidationError, describeValue } from "./errors.js";
import { ResourceConfig, type ResourceConfigInit } from "./resources.js";
import type { JobStatus, TaskState } from "./status.js";
import { checkBoolean, checkInteger, checkOneOf, checkPositive, checkString } from "./validate.js";

export type JobId = string;
export type TaskId = string;
export type AttemptId = string;
export type WorkerId = string;
export type Namespace = string;

/** Scheduling bands: every pending production task is placed before any interactive one, and so on. */
export type Priority = "production" | "interactive" | "batch";
export const PRIORITIES: readonly Priority[] = ["production", "interactive", "batch"];

/** Comparison applied to a worker attribute. */
export type ConstraintOp = "eq" | "ne" | "exists" | "not_exists" | "in" | "gt" | "ge" | "lt" | "le";
export const CONSTRAINT_OPS: readonly ConstraintOp[] = ["eq", "ne", "exists", "not_exists", "in", "gt", "ge", "lt", "le"];

/**
 * A condition on a worker attribute (`region`, `zone`, `device-type`,
 * `device-variant`, `preemptible`, or a user label).
 */
export interface Constraint {
  /** Attribute name. */
  key: string;
  op: ConstraintOp;
  /** Operand of eq/ne/gt/ge/lt/le; numbers compare numerically. */
  value?: string | number;
  /** Operands of `in`. */
  values?: readonly string[];
  /** A preferred constraint ranks workers; a required one filters them. @default false */
  preferred?: boolean;
}

/** What to run and what it needs. */
export interface JobRequest {
  /** Letters, digits, `-`, `_`, `.`, in `/`-separated segments; at most 255 characters. */
  name: string;
  resources: ResourceConfig | ResourceConfigInit;
  entrypoint: Entrypoint;
  environment?: EnvironmentConfig;
  /** Named ports to allocate per task, exposed as `FLUSTER_PORT_<NAME>`. @default [] */
  ports?: readonly string[];
  /** Retries after a failed attempt (non-zero exit, throw, timeout). @default 0 */
  maxRetriesFailure?: number;
  /** Retries after the worker died or was preempted. @default 100 */
  maxRetriesPreemption?: number;
  /** Kill and fail an attempt that runs longer than this. @default no limit */
  timeoutSeconds?: number;
  /** Mark the job unschedulable if it is not placed within this time. @default no limit */
  schedulingTimeoutSeconds?: number;
  /** @default "interactive" */
  priority?: Priority;
  /** @default [] */
  constraints?: readonly Constraint[];
  /**
   * A gang (see {@link isGang}): its pending tasks are placed all at once or
   * not at all, and when one task's attempt ends badly (it failed, its
   * worker was lost or preempted it, or the worker killed it on its own)
   * while that task still has retries left, the controller stops every other
   * unfinished task (their attempts end `killed`, "gang restart: task 2
   * failed: ...") and the whole gang is placed again together.
   *
   * One retry is charged per gang restart, in the budget of the cause
   * (`maxRetriesFailure` for a failed attempt, `maxRetriesPreemption` for a
   * lost or preempted one): every unfinished task's `failureCount` (or
   * `preemptionCount`) grows by one, so all tasks carry the same counts and
   * the limit is checked once, on the task that caused the restart. When
   * that task is out of retries it fails, and so does the job: the other
   * tasks are killed and the job's error names the failed task. An attempt
   * its worker turned down before starting it costs nothing and restarts
   * nothing (only that task is placed again). Tasks that already succeeded
   * stay succeeded: a restart places the unfinished tasks only.
   *
   * Multi-host TPU jobs are gangs whatever this says. @default false
   */
  coscheduled?: boolean;
}

/** A JobRequest after validation, with every default filled in. */
export interface ValidatedJobRequest {
  readonly name: string;
  readonly resources: ResourceConfig;
  readonly entrypoint: Entrypoint;
  readonly environment: EnvironmentConfig;
  readonly ports: readonly string[];
  readonly maxRetriesFailure: number;
  readonly maxRetriesPreemption: number;
  readonly timeoutSeconds?: number;
  readonly schedulingTimeoutSeconds?: number;
  readonly priority: Priority;
  readonly constraints: readonly Constraint[];
  readonly coscheduled: boolean;
}

/** One task of a job (one replica) as last observed. */
export interface TaskInfo {
  taskIndex: number;
  state: TaskState;
  /** Id of the current or last attempt. */
  attemptId?: AttemptId;
  workerId?: WorkerId;
  /** Attempts that ended `failed` so far (in a gang: failure restarts of the gang). */
  failureCount: number;
  /** Attempts that ended `worker_failed` or `preempted` so far (in a gang: such restarts of the gang). */
  preemptionCount: number;
  exitCode?: number;
  errorMessage?: string;
  startedAt?: Date;
  finishedAt?: Date;
}

/** A job as last observed. */
export interface JobInfo {
  jobId: JobId;
  name: string;
  status: JobStatus;
  tasks: TaskInfo[];
  namespace?: Namespace;
  parentJobId?: JobId;
  /** Why a pending job is not placed yet, e.g. "insufficient cpu: wants 64, largest worker has 2". */
  pendingReason?: string;
  errorMessage?: string;
  exitCode?: number;
  submittedAt: Date;
  startedAt?: Date;
  finishedAt?: Date;
  /** The job group it was launched in. */
  groupId?: string;
  /** The reservation it was launched into. */
  reservationId?: string;
}

/**
 * Whether a job runs as a gang: it asks to (`coscheduled`), or it is a
 * multi-host TPU job, whose hosts run one program over one slice
 * interconnect and cannot go on without each other.
 */
export function isGang(request: Pick<ValidatedJobRequest, "coscheduled" | "resources">): boolean {
  return request.coscheduled || (request.resources.device.kind === "tpu" && request.resources.replicas > 1);
}

const NAME_SEGMENT = /^[A-Za-z0-9._-]+$/;
const PORT_NAME = /^[A-Za-z][A-Za-z0-9_]*$/;

/** Checks a job name: non-empty, ≤ 255 characters, `/`-separated segments of letters, digits, `-`, `_`, `.`. */
export function validateJobName(name: unknown, field = "name"): string {
  const text = checkString(name, field, { nonEmpty: true });
  if (text.length > 255) {
    throw new ValidationError(field, `must be at most 255 characters, got ${text.length}`);
  }
  for (const segment of text.split("/")) {
    if (segment === "" || segment === "." || segment === ".." || !NAME_SEGMENT.test(segment)) {
      throw new ValidationError(
        field,
        `must be letters, digits, "-", "_" and "." in "/"-separated non-empty segments, got ${describeValue(text)}`,
      );
    }
  }
  return text;
}

/** Validates a request once, up front, and fills in defaults. */
export function validateJobRequest(request: unknown): ValidatedJobRequest {
  if (request === null || typeof request !== "object") {
    throw new ValidationError("request", `must be a JobRequest object, got ${describeValue(request)}`);
  }
  const r = request as Record<string, unknown>;
  const name = validateJobName(r.name);
  const resources = r.resources instanceof ResourceConfig ? r.resources : new ResourceConfig((r.resources ?? {}) as ResourceConfigInit);
  const ports = r.ports === undefined ? [] : validatePorts(r.ports);
  const out: ValidatedJobRequest = {
    name,
    resources,
    entrypoint: validateEntrypoint(r.entrypoint),
    environment: validateEnvironment(r.environment ?? {}),
    ports,
    maxRetriesFailure: checkInteger(r.maxRetriesFailure ?? 0, "maxRetriesFailure", 0),
    maxRetriesPreemption: checkInteger(r.maxRetriesPreemption ?? 100, "maxRetriesPreemption", 0),
    ...(r.timeoutSeconds !== undefined ? { timeoutSeconds: checkPositive(r.timeoutSeconds, "timeoutSeconds") } : {}),
    ...(r.schedulingTimeoutSeconds !== undefined
      ? { schedulingTimeoutSeconds: checkPositive(r.schedulingTimeoutSeconds, "schedulingTimeoutSeconds") }
      : {}),
    priority: checkOneOf(r.priority ?? "interactive", "priority", PRIORITIES),
    constraints: r.constraints === undefined ? [] : validateConstraints(r.constraints),
    coscheduled: checkBoolean(r.coscheduled ?? false, "coscheduled"),
  };
  return Object.freeze(out);
}

function validatePorts(ports: unknown): string[] {
  if (!Array.isArray(ports)) throw new ValidationError("ports", `must be an array of port names, got ${describeValue(ports)}`);
  const seen = new Set<string>();
  return ports.map((port, i) => {
    const name = checkString(port, `ports[${i}]`, { nonEmpty: true });
    if (!PORT_NAME.test(name)) {
      throw new ValidationError(`ports[${i}]`, `must be a name of letters, digits and _ starting with a letter, got ${describeValue(name)}`);
    }
    if (seen.has(name.toUpperCase())) throw new ValidationError(`ports[${i}]`, `repeats port ${describeValue(name)}`);
    seen.add(name.toUpperCase());
    return name;
  });
}

/** Checks scheduling constraints: a key, a known operator, and the operand that operator needs. */
export function validateConstraints(constraints: unknown, field = "constraints"): Constraint[] {
  if (!Array.isArray(constraints)) throw new ValidationError(field, `must be an array, got ${describeValue(constraints)}`);
  return constraints.map((c: unknown, i) => {
    const f = `${field}[${i}]`;
    if (c === null || typeof c !== "object") throw new ValidationError(f, `must be a constraint object, got ${describeValue(c)}`);
    const raw = c as Record<string, unknown>;
    const key = checkString(raw.key, `${f}.key`, { nonEmpty: true });
    const op = checkOneOf(raw.op, `${f}.op`, CONSTRAINT_OPS);
    const preferred = checkBoolean(raw.preferred ?? false, `${f}.preferred`);
    const out: Constraint = { key, op, preferred };
    if (op === "in") {
      if (!Array.isArray(raw.values) || raw.values.length === 0) {
        throw new ValidationError(`${f}.values`, `must be a non-empty array for op "in", got ${describeValue(raw.values)}`);
      }
      out.values = raw.values.map((v, j) => checkString(v, `${f}.values[${j}]`));
    } else if (op === "gt" || op === "ge" || op === "lt" || op === "le") {
      if (typeof raw.value !== "number" || !Number.isFinite(raw.value)) {
        throw new ValidationError(`${f}.value`, `must be a finite number for op "${op}", got ${describeValue(raw.value)}`);
      }
      out.value = raw.value;
    } else if (op === "eq" || op === "ne") {
      if (typeof raw.value !== "string" && typeof raw.value !== "number") {
        throw new ValidationError(`${f}.value`, `must be a string or number for op "${op}", got ${describeValue(raw.value)}`);
      }
      out.value = raw.value;
    }
    return Object.freeze(out);
  });
}
