// Translation between the core types users hold and the protobuf messages on
// the wire. Decoding validates: a message from the network is untrusted input.
import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Entrypoint as CoreEntrypoint, type Entrypoint as CoreEntrypointValue } from "../core/entrypoint.js";
import { ValidationError } from "../core/errors.js";
import { validateJobRequest, type Constraint as CoreConstraint, type ConstraintOp as CoreConstraintOp, type JobInfo, type Priority as CorePriority, type TaskInfo, type ValidatedJobRequest } from "../core/job.js";
import { ResourceConfig, type DeviceConfig } from "../core/resources.js";
import { slotResources, type JobGroupInfo, type ReservationInfo, type ValidatedReservationConfig } from "../core/reservation.js";
import { ReservationSpecSchema, ReservationState, type JobGroup, type Reservation, type ReservationSpec } from "./gen/fluster/cluster/v1/controller_pb.js";
import type { JobStatus, TaskState as CoreTaskState } from "../core/status.js";
import { encodeValue } from "./codec.js";
import {
  ConstraintOp,
  ConstraintSchema,
  DeviceSpecSchema,
  EntrypointSchema,
  EnvironmentSpecSchema,
  JobSpecSchema,
  JobState,
  Priority,
  ResourceSpecSchema,
  TaskState,
  type DeviceSpec,
  type Job,
  type JobSpec,
  type ResourceSpec,
  type Task,
} from "./gen/fluster/cluster/v1/types_pb.js";

function bimap<A extends string, B extends number>(pairs: ReadonlyArray<readonly [A, B]>) {
  const to = new Map<A, B>(pairs);
  const from = new Map<B, A>(pairs.map(([a, b]) => [b, a]));
  return { to, from };
}

const JOB_STATES = bimap<JobStatus, JobState>([
  ["pending", JobState.PENDING], ["building", JobState.BUILDING], ["running", JobState.RUNNING],
  ["succeeded", JobState.SUCCEEDED], ["failed", JobState.FAILED], ["killed", JobState.KILLED],
  ["unschedulable", JobState.UNSCHEDULABLE],
]);
const TASK_STATES = bimap<CoreTaskState, TaskState>([
  ["pending", TaskState.PENDING], ["assigned", TaskState.ASSIGNED], ["building", TaskState.BUILDING],
  ["running", TaskState.RUNNING], ["succeeded", TaskState.SUCCEEDED], ["failed", TaskState.FAILED],
  ["killed", TaskState.KILLED], ["worker_failed", TaskState.WORKER_FAILED], ["preempted", TaskState.PREEMPTED],
  ["unschedulable", TaskState.UNSCHEDULABLE],
]);
const PRIORITY_MAP = bimap<CorePriority, Priority>([
  ["production", Priority.PRODUCTION], ["interactive", Priority.INTERACTIVE], ["batch", Priority.BATCH],
]);
const OPS = bimap<CoreConstraintOp, ConstraintOp>([
  ["eq", ConstraintOp.EQ], ["ne", ConstraintOp.NE], ["exists", ConstraintOp.EXISTS], ["not_exists", ConstraintOp.NOT_EXISTS],
  ["in", ConstraintOp.IN], ["gt", ConstraintOp.GT], ["ge", ConstraintOp.GE], ["lt", ConstraintOp.LT], ["le", ConstraintOp.LE],
]);

export const jobStateToProto = (s: JobStatus): JobState => JOB_STATES.to.get(s) ?? JobState.UNSPECIFIED;
export function jobStateFromProto(s: JobState, field = "state"): JobStatus {
  const v = JOB_STATES.from.get(s);
  if (!v) throw new ValidationError(field, `is not a job state: ${s}`);
  return v;
}
export const taskStateToProto = (s: CoreTaskState): TaskState => TASK_STATES.to.get(s) ?? TaskState.UNSPECIFIED;
export function taskStateFromProto(s: TaskState, field = "state"): CoreTaskState {
  const v = TASK_STATES.from.get(s);
  if (!v) throw new ValidationError(field, `is not a task state: ${s}`);
  return v;
}

export const toTimestamp = (d: Date | undefined): Timestamp | undefined => (d ? timestampFromDate(d) : undefined);
export const fromTimestamp = (t: Timestamp | undefined): Date | undefined => (t ? timestampDate(t) : undefined);

export function deviceToProto(device: DeviceConfig): DeviceSpec {
  switch (device.kind) {
    case "cpu":
      return create(DeviceSpecSchema, { device: { case: "cpu", value: {} } });
    case "gpu":
      return create(DeviceSpecSchema, { device: { case: "gpu", value: { variant: device.variant, count: device.count } } });
    case "tpu":
      return create(DeviceSpecSchema, {
        device: { case: "tpu", value: { variant: device.variant, topology: device.topology, sliceCount: device.sliceCount } },
      });
  }
}

export function deviceFromProto(spec: DeviceSpec | undefined): DeviceConfig {
  const d = spec?.device;
  if (!d || d.case === undefined || d.case === "cpu") return { kind: "cpu" };
  if (d.case === "gpu") return { kind: "gpu", variant: d.value.variant || "auto", count: d.value.count };
  // JSON may leave the topology out: ResourceConfig then takes the variant's, as the library does.
  const { variant, topology, sliceCount } = d.value;
  return { kind: "tpu", variant, sliceCount: sliceCount || 1, ...(topology ? { topology } : {}) } as DeviceConfig;
}

export function resourcesToProto(r: ResourceConfig): ResourceSpec {
  return create(ResourceSpecSchema, {
    cpu: r.cpu,
    memoryBytes: BigInt(r.memory),
    diskBytes: BigInt(r.disk),
    device: deviceToProto(r.device),
    replicas: r.replicas,
    preemptible: r.preemptible,
    regions: [...(r.regions ?? [])],
    zone: r.zone ?? "",
  });
}

/** Decodes and validates resources; errors name `field.…`. */
export function resourcesFromProto(spec: ResourceSpec | undefined, field = "resources"): ResourceConfig {
  if (!spec) throw new ValidationError(field, "is required");
  return new ResourceConfig(
    {
      cpu: spec.cpu,
      memory: bigintToNumber(spec.memoryBytes, `${field}.memory`),
      disk: bigintToNumber(spec.diskBytes, `${field}.disk`),
      device: deviceFromProto(spec.device),
      replicas: spec.replicas,
      preemptible: spec.preemptible,
      ...(spec.regions.length > 0 ? { regions: spec.regions } : {}),
      ...(spec.zone ? { zone: spec.zone } : {}),
    },
    field,
  );
}

function bigintToNumber(value: bigint, field: string): number {
  if (value < 0n || value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new ValidationError(field, `must be between 0 and ${Number.MAX_SAFE_INTEGER} bytes, got ${value}`);
  }
  return Number(value);
}

function constraintToProto(c: CoreConstraint) {
  return create(ConstraintSchema, {
    key: c.key,
    op: OPS.to.get(c.op) ?? ConstraintOp.UNSPECIFIED,
    operand:
      typeof c.value === "number"
        ? { case: "numberValue", value: c.value }
        : typeof c.value === "string"
          ? { case: "stringValue", value: c.value }
          : { case: undefined },
    values: [...(c.values ?? [])],
    preferred: c.preferred ?? false,
  });
}

/** Builds the wire form of a validated request; function arguments are encoded with the value codec. */
export function jobSpecToProto(request: ValidatedJobRequest): JobSpec {
  const e = request.entrypoint;
  const entrypoint =
    e.kind === "command"
      ? create(EntrypointSchema, { kind: { case: "command", value: { argv: [...e.argv] } } })
      : create(EntrypointSchema, {
          kind: { case: "function", value: { module: e.ref.module, name: e.ref.name, args: encodeValue([...e.args]) } },
        });
  return create(JobSpecSchema, {
    name: request.name,
    resources: resourcesToProto(request.resources),
    entrypoint,
    environment: create(EnvironmentSpecSchema, {
      workspace: request.environment.workspace ?? "",
      packages: [...(request.environment.packages ?? [])],
      envVars: { ...(request.environment.envVars ?? {}) },
      extras: [...(request.environment.extras ?? [])],
      image: request.environment.image ?? "",
    }),
    ports: [...request.ports],
    maxRetriesFailure: request.maxRetriesFailure,
    maxRetriesPreemption: request.maxRetriesPreemption,
    timeoutSeconds: request.timeoutSeconds ?? 0,
    schedulingTimeoutSeconds: request.schedulingTimeoutSeconds ?? 0,
    priority: PRIORITY_MAP.to.get(request.priority) ?? Priority.UNSPECIFIED,
    constraints: request.constraints.map(constraintToProto),
    coscheduled: request.coscheduled,
  });
}

/** Tasks one job may have, unless the controller is configured otherwise. */
export const DEFAULT_MAX_REPLICAS = 10_000;

/** Limits {@link validateJobSpec} enforces beyond the spec's own rules. */
export interface JobSpecLimits {
  /** Most tasks (replicas) one job may have. @default 10_000 */
  maxReplicas?: number;
}

/**
 * Validates a JobSpec received from the network. Function arguments stay
 * encoded: the controller passes them through without decoding user values.
 */
export function validateJobSpec(spec: JobSpec | undefined, field = "job", limits: JobSpecLimits = {}): ValidatedJobRequest {
  if (!spec) throw new ValidationError(field, "is required");
  // Checked before anything is built per replica: a huge count must not allocate.
  const maxReplicas = limits.maxReplicas ?? DEFAULT_MAX_REPLICAS;
  const replicas = spec.resources?.replicas;
  if (replicas !== undefined && replicas > maxReplicas) {
    throw new ValidationError("resources.replicas", `is ${replicas}, above the limit of ${maxReplicas} (maxReplicas)`);
  }
  const kind = spec.entrypoint?.kind;
  let entrypoint: CoreEntrypointValue;
  if (kind?.case === "command") {
    entrypoint = CoreEntrypoint.fromCommand(kind.value.argv);
  } else if (kind?.case === "function") {
    if (!kind.value.module || !kind.value.name) {
      throw new ValidationError(`${field}.entrypoint.function`, "must name a module and a function");
    }
    entrypoint = { kind: "function", ref: { module: kind.value.module, name: kind.value.name }, args: [] };
  } else {
    throw new ValidationError(`${field}.entrypoint`, "is required (a command or a function)");
  }
  const priority = spec.priority === Priority.UNSPECIFIED ? "interactive" : PRIORITY_MAP.from.get(spec.priority);
  if (!priority) throw new ValidationError(`${field}.priority`, `is not a priority: ${spec.priority}`);
  const env = spec.environment;
  const request = validateJobRequest({
    name: spec.name,
    resources: resourcesFromProto(spec.resources, "resources"),
    entrypoint,
    environment: {
      ...(env?.workspace ? { workspace: env.workspace } : {}),
      ...(env?.packages.length ? { packages: env.packages } : {}),
      ...(env && Object.keys(env.envVars).length > 0 ? { envVars: env.envVars } : {}),
      ...(env?.extras.length ? { extras: env.extras } : {}),
      ...(env?.image ? { image: env.image } : {}),
    },
    ports: spec.ports,
    maxRetriesFailure: spec.maxRetriesFailure,
    maxRetriesPreemption: spec.maxRetriesPreemption,
    ...(spec.timeoutSeconds ? { timeoutSeconds: spec.timeoutSeconds } : {}),
    ...(spec.schedulingTimeoutSeconds ? { schedulingTimeoutSeconds: spec.schedulingTimeoutSeconds } : {}),
    priority,
    coscheduled: spec.coscheduled,
    constraints: spec.constraints.map((c, i) => {
      const op = OPS.from.get(c.op);
      if (!op) throw new ValidationError(`constraints[${i}].op`, `is not an operator: ${c.op}`);
      return {
        key: c.key,
        op,
        ...(c.operand.case !== undefined ? { value: c.operand.value } : {}),
        ...(c.values.length > 0 ? { values: c.values } : {}),
        preferred: c.preferred,
      };
    }),
  });
  // A TPU job's replicas default to hosts × slices: checked again once known, still before any task exists.
  if (request.resources.replicas > maxReplicas) {
    throw new ValidationError("resources.replicas", `is ${request.resources.replicas}, above the limit of ${maxReplicas} (maxReplicas)`);
  }
  return request;
}

function taskFromProto(t: Task): TaskInfo {
  const last = t.attempts[t.attempts.length - 1];
  return {
    taskIndex: t.taskIndex,
    state: taskStateFromProto(t.state),
    ...(last ? { attemptId: last.attemptId } : {}),
    ...(t.workerId ? { workerId: t.workerId } : {}),
    failureCount: t.failureCount,
    preemptionCount: t.preemptionCount,
    ...(t.exitCode !== undefined ? { exitCode: t.exitCode } : {}),
    ...(t.errorMessage ? { errorMessage: t.errorMessage } : {}),
    ...(t.startedAt ? { startedAt: timestampDate(t.startedAt) } : {}),
    ...(t.finishedAt ? { finishedAt: timestampDate(t.finishedAt) } : {}),
  };
}

/** The user-facing JobInfo of a wire Job. */
export function jobInfoFromProto(job: Job): JobInfo {
  return {
    jobId: job.jobId,
    name: job.name,
    status: jobStateFromProto(job.state),
    tasks: job.tasks.map(taskFromProto),
    ...(job.namespace ? { namespace: job.namespace } : {}),
    ...(job.parentJobId ? { parentJobId: job.parentJobId } : {}),
    ...(job.pendingReason ? { pendingReason: job.pendingReason } : {}),
    ...(job.errorMessage ? { errorMessage: job.errorMessage } : {}),
    ...(job.exitCode !== undefined ? { exitCode: job.exitCode } : {}),
    submittedAt: job.submittedAt ? timestampDate(job.submittedAt) : new Date(0),
    ...(job.startedAt ? { startedAt: timestampDate(job.startedAt) } : {}),
    ...(job.finishedAt ? { finishedAt: timestampDate(job.finishedAt) } : {}),
    ...(job.groupId ? { groupId: job.groupId } : {}),
    ...(job.reservationId ? { reservationId: job.reservationId } : {}),
  };
}

const RESERVATION_STATES = bimap<ReservationInfo["state"], ReservationState>([
  ["active", ReservationState.ACTIVE], ["expired", ReservationState.EXPIRED], ["released", ReservationState.RELEASED],
]);
export const reservationStateToProto = (s: ReservationInfo["state"]): ReservationState => RESERVATION_STATES.to.get(s) ?? ReservationState.UNSPECIFIED;

export function reservationSpecToProto(config: ValidatedReservationConfig): ReservationSpec {
  return create(ReservationSpecSchema, {
    minResources: resourcesToProto(config.minResources),
    maxResources: resourcesToProto(config.maxResources),
    priority: config.priority,
    ttlSeconds: config.ttlSeconds,
    preemptible: config.preemptible,
  });
}

/** The user-facing ReservationInfo of a wire Reservation. */
export function reservationInfoFromProto(r: Reservation): ReservationInfo {
  const min = r.spec?.minResources;
  const max = r.spec?.maxResources;
  // The slot shape: the minimum's per-task resources (its replicas count slots, not a launch).
  const shape = resourcesFromProto(min ? { ...min, replicas: undefined } : undefined, "reservation.spec.minResources");
  const state = RESERVATION_STATES.from.get(r.state);
  if (!state) throw new ValidationError("reservation.state", `is not a reservation state: ${r.state}`);
  return {
    reservationId: r.reservationId,
    allocatedResources: slotResources(shape, r.allocatedResources?.replicas ?? 0),
    pendingResources: slotResources(shape, r.pendingResources?.replicas ?? 0),
    jobs: [...r.jobIds],
    expiresAt: r.expiresAt ? timestampDate(r.expiresAt) : new Date(0),
    state,
    ...(r.message ? { message: r.message } : {}),
    usedReplicas: r.usedReplicas,
    heldReplicas: r.heldReplicas,
    minReplicas: min?.replicas ?? 1,
    maxReplicas: max?.replicas ?? 1,
    priority: r.spec?.priority ?? 0,
    preemptible: r.spec?.preemptible ?? true,
    createdAt: r.createdAt ? timestampDate(r.createdAt) : new Date(0),
    namespace: r.namespace,
  };
}

/** The user-facing JobGroupInfo of a wire JobGroup. */
export function groupInfoFromProto(g: JobGroup): JobGroupInfo {
  return {
    groupId: g.groupId,
    name: g.spec?.name ?? "",
    namespace: g.namespace,
    status: jobStateFromProto(g.state, "group.state"),
    jobIds: [...g.jobIds],
    ...(g.reservationId ? { reservationId: g.reservationId } : {}),
    sameRegion: g.spec?.sameRegion ?? false,
    sameZone: g.spec?.sameZone ?? false,
    ...(g.pendingReason ? { pendingReason: g.pendingReason } : {}),
    ...(g.errorMessage ? { errorMessage: g.errorMessage } : {}),
    createdAt: g.createdAt ? timestampDate(g.createdAt) : new Date(0),
    ...(g.finishedAt ? { finishedAt: timestampDate(g.finishedAt) } : {}),
  };
}
