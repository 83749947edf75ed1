// Job groups: jobs launched together, placed all together or none, and
// ended together. The table of groups, the status rule that rolls a group up
// from its jobs, and what the scheduler is told about a group still waiting.
import { randomUUID } from "node:crypto";
import { FlusterError, ValidationError } from "../../core/errors.js";
import { validateJobName, type ValidatedJobRequest } from "../../core/job.js";
import { isFinished, type JobStatus } from "../../core/status.js";
import { validateJobSpec } from "../../rpc/convert.js";
import type { JobGroupSpec } from "../../rpc/gen/fluster/cluster/v1/controller_pb.js";
import type { JobSpec } from "../../rpc/gen/fluster/cluster/v1/types_pb.js";
import { DEFAULT_NAMESPACE } from "./endpoints.js";
import { jobIdPrefix, newJobRecord } from "./jobs.js";
import type { JobGroupRecord, JobRecord } from "./model.js";

export interface GroupFilter {
  namespace?: string;
  allNamespaces?: boolean;
  /** Group names starting with this. */
  prefix?: string;
}

/** A group's state as rolled up from its jobs. */
export interface GroupStatus {
  state: JobStatus;
  pendingReason?: string;
  errorMessage?: string;
}

export class GroupTable {
  private readonly groups = new Map<string, JobGroupRecord>();
  private readonly byRequestId = new Map<string, JobGroupRecord>();

  add(group: JobGroupRecord): void {
    this.groups.set(group.groupId, group);
    if (group.requestId) this.byRequestId.set(group.requestId, group);
  }

  /** The group, or a `not_found` error naming it. */
  get(groupId: string): JobGroupRecord {
    if (typeof groupId !== "string" || groupId === "") throw new ValidationError("groupId", "must not be empty");
    const group = this.groups.get(groupId);
    if (!group) throw new FlusterError(`job group ${groupId} not found`, "not_found");
    return group;
  }

  find(groupId: string): JobGroupRecord | undefined {
    return this.groups.get(groupId);
  }

  byRequest(requestId: string): JobGroupRecord | undefined {
    return this.byRequestId.get(requestId);
  }

  /** Groups matching `filter`, newest first. */
  list(filter: GroupFilter = {}): JobGroupRecord[] {
    const namespace = filter.namespace || DEFAULT_NAMESPACE;
    const out: JobGroupRecord[] = [];
    for (const group of this.groups.values()) {
      if (!filter.allNamespaces && group.namespace !== namespace) continue;
      if (filter.prefix && !group.name.startsWith(filter.prefix)) continue;
      out.push(group);
    }
    return out.sort((a, b) => b.createdAt - a.createdAt);
  }
}

/**
 * Validates a group launch before anything is stored: the group's name (as
 * a job name), at least one job, and every job's spec, its errors naming
 * the job (`jobs[2].resources.cpu`, not `resources.cpu`).
 */
export function validateGroupLaunch(
  specs: readonly (JobSpec | undefined)[],
  groupSpec: JobGroupSpec | undefined,
  maxReplicas: number,
): { name: string; requests: ValidatedJobRequest[] } {
  if (!groupSpec) throw new ValidationError("group", "is required");
  const name = validateJobName(groupSpec.name, "group.name");
  if (specs.length === 0) throw new ValidationError("jobs", "must hold at least one job");
  const requests = specs.map((spec, i) => {
    try {
      return validateJobSpec(spec, "job", { maxReplicas });
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      const field = err.field === "job" || err.field.startsWith("job.") ? `jobs[${i}]${err.field.slice(3)}` : `jobs[${i}].${err.field}`;
      throw new ValidationError(field, err.message.slice(err.field.length + 1));
    }
  });
  return { name, requests };
}

/** A new group and its pending jobs, each job carrying the group (and the reservation), in launch order. */
export function newGroupRecords(
  specs: readonly JobSpec[],
  requests: readonly ValidatedJobRequest[],
  fields: {
    name: string;
    namespace: string;
    sameRegion: boolean;
    sameZone: boolean;
    createdAt: number;
    /** The next submission sequence number (one per job). */
    nextSeq: () => number;
    parentJobId?: string;
    reservationId?: string;
    requestId?: string;
  },
): { group: JobGroupRecord; jobs: JobRecord[] } {
  const { parentJobId, reservationId, requestId } = fields;
  const groupId = `${jobIdPrefix(fields.name)}-group-${randomUUID().slice(0, 12)}`;
  const jobs = requests.map((request, i) =>
    newJobRecord(specs[i] as JobSpec, request, {
      jobId: `${jobIdPrefix(request.name)}-${randomUUID().slice(0, 12)}`,
      namespace: fields.namespace,
      seq: fields.nextSeq(),
      submittedAt: fields.createdAt,
      groupId,
      ...(parentJobId ? { parentJobId } : {}),
      ...(reservationId ? { reservationId } : {}),
    }),
  );
  const group: JobGroupRecord = {
    groupId,
    name: fields.name,
    namespace: fields.namespace,
    sameRegion: fields.sameRegion,
    sameZone: fields.sameZone,
    jobIds: jobs.map((j) => j.jobId),
    createdAt: fields.createdAt,
    ...(reservationId ? { reservationId } : {}),
    ...(parentJobId ? { parentJobId } : {}),
    ...(requestId ? { requestId } : {}),
  };
  return { group, jobs };
}

/**
 * Whether the group's all-or-nothing placement is done: some task of its
 * jobs has had an attempt (attempts are stored, so this survives a
 * restart). From then on a retried task is placed like any other, alone.
 */
export function groupPlaced(jobs: readonly JobRecord[]): boolean {
  return jobs.some((job) => job.tasks.some((task) => task.attempts.length > 0));
}

/**
 * The group's status from its jobs. A group is a unit: the first job that
 * fails (or cannot be scheduled) decides it, and the others are killed (see
 * the controller's cascade). A job stopped on request ends alone: a driver
 * may stop some jobs of its group (rollouts once training is done) and keep
 * the rest; `terminateGroup` stops them all. Once every job has ended, the
 * group succeeded if all did, else it was killed. Until every job has been
 * placed it is pending, with its first waiting job's reason; then running,
 * or building while no task runs yet.
 */
export function groupStatus(group: JobGroupRecord, jobs: readonly JobRecord[]): GroupStatus {
  const name = `group ${group.name}`;
  const describe = (job: JobRecord) => `${name}: job ${job.jobId} ${job.state}${job.errorMessage ? `: ${job.errorMessage}` : ""}`;
  // The cause is the failed job that was not killed by the group's own cascade (whose reason names the cause).
  const cascade = groupKillReason(group, undefined);
  const bad = jobs.filter(endsGroup);
  const cause = bad.find((j) => !j.errorMessage?.startsWith(cascade)) ?? bad[0];
  if (cause) return { state: cause.state, errorMessage: describe(cause) };
  if (jobs.length > 0 && jobs.every((j) => isFinished(j.state))) {
    const killed = jobs.find((j) => j.state !== "succeeded");
    return killed ? { state: killed.state, errorMessage: describe(killed) } : { state: "succeeded" };
  }
  if (!groupPlaced(jobs) || jobs.every((j) => j.state === "pending")) {
    const waiting = jobs.find((j) => j.pendingReason);
    return { state: "pending", ...(waiting?.pendingReason ? { pendingReason: `job ${waiting.jobId}: ${waiting.pendingReason}` } : {}) };
  }
  if (jobs.some((j) => j.state === "running" || j.state === "succeeded")) return { state: "running" };
  return { state: "building" };
}

/** The reason the jobs of a group are killed when one of them ends badly (without a job: the prefix every such reason has). */
export function groupKillReason(group: JobGroupRecord, job: JobRecord | undefined): string {
  const prefix = `group ${group.name} (${group.groupId}):`;
  return job ? `${prefix} job ${job.jobId} ${job.state}` : prefix;
}

/** Whether the job's end takes its group down: it failed or cannot be scheduled (a job stopped on request ends alone). */
export function endsGroup(job: JobRecord): boolean {
  return job.state === "failed" || job.state === "unschedulable";
}
