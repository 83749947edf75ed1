// Job groups: jobs launched together, placed all together or none, and
// ended together. `JobGroups`, the controller's collaborator for groups:
// launching one (stored before it is seen), ending one, and the cascade when
// one of its jobs ends badly. The table of groups, the status rule that rolls
// a group up from its jobs, and the validation of a group launch.
import { randomUUID } from "node:crypto";
import { FlusterError, ValidationError } from "../../core/errors.js";
import { validateJobName, type ValidatedJobRequest } from "../../core/job.js";
import { isFinished, type JobStatus } from "../../core/status.js";
import { validateJobSpec } from "../../rpc/convert.js";
import type { JobGroupSpec } from "../../rpc/gen/fluster/cluster/v1/controller_pb.js";
import type { JobSpec } from "../../rpc/gen/fluster/cluster/v1/types_pb.js";
import { DEFAULT_NAMESPACE } from "./endpoints.js";
import { jobIdPrefix, namespaceFor, newJobRecord, type LaunchOptions } from "./jobs.js";
import type { Ledger } from "./ledger.js";
import type { JobGroupRecord, JobRecord } from "./model.js";
import type { Reservations } from "./reservations.js";
import type { StateStore } from "./store.js";

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

/** What {@link JobGroups} needs of the controller. */
export interface JobGroupsDeps {
  store: Pick<StateStore, "defer" | "transaction" | "keep" | "saveGroup" | "saveJob" | "saveTask">;
  ledger: Pick<Ledger, "jobs" | "addJob" | "killJob">;
  /** Checks a launch into a reservation, and files the new jobs under theirs. */
  reservations: Pick<Reservations, "forLaunch" | "addJob">;
  now: () => number;
  /** The next submission sequence number. */
  nextSeq: () => number;
  maxReplicas: number;
  /** Asks for a scheduling pass (see Controller.requestSchedule). */
  requestSchedule: (capacityChanged?: boolean) => void;
  /** Runs a change the controller makes on its own (see Controller.background). */
  background: (change: () => void) => void;
}

/**
 * The controller's job groups: launches, reads, ends, and the cascade when
 * a job of a group finishes. The controller checks it is running before it
 * delegates here.
 */
export class JobGroups {
  /** Job groups (the table above). */
  private readonly groups = new GroupTable();
  /** Group launches with a request id whose commit is under way. */
  private readonly groupLaunching = new Map<string, Promise<JobGroupRecord>>();
  /** Groups whose jobs are being killed together: the kills they cause do not cascade again. */
  private readonly groupsEnding = new Set<string>();

  constructor(private readonly deps: JobGroupsDeps) {}

  /** A stored group, at load. */
  add(group: JobGroupRecord): void {
    this.groups.add(group);
  }

  /**
   * Accepts a group of jobs: every spec is validated first (errors name
   * `jobs[i].…`), then the jobs and the group are stored in one commit, and
   * only then listed and scheduled, all together or none (groups.ts). A
   * retry with the same request id gets the first launch's group.
   */
  async launch(specs: readonly (JobSpec | undefined)[], groupSpec: JobGroupSpec | undefined, options: LaunchOptions = {}): Promise<JobGroupRecord> {
    const { requestId } = options;
    if (!requestId) return this.launchNew(specs, groupSpec, options);
    const existing = this.groups.byRequest(requestId) ?? this.groupLaunching.get(requestId);
    if (existing) return existing;
    const launch = this.launchNew(specs, groupSpec, options);
    this.groupLaunching.set(requestId, launch);
    const forget = () => void this.groupLaunching.delete(requestId);
    launch.then(forget, forget);
    return launch;
  }

  private async launchNew(specs: readonly (JobSpec | undefined)[], groupSpec: JobGroupSpec | undefined, options: LaunchOptions): Promise<JobGroupRecord> {
    const { store, ledger, reservations } = this.deps;
    const { name, requests } = validateGroupLaunch(specs, groupSpec, this.deps.maxReplicas);
    const parent = options.parentJobId ? ledger.jobs.get(options.parentJobId) : undefined;
    if (parent && isFinished(parent.state)) throw new FlusterError(`parent job ${parent.jobId} is already ${parent.state}`, "failed_precondition");
    const namespace = namespaceFor(options.namespace, parent);
    if (options.reservationId) reservations.forLaunch(options.reservationId, namespace);
    const { group, jobs } = newGroupRecords(specs as readonly JobSpec[], requests, {
      name,
      namespace,
      sameRegion: groupSpec?.sameRegion ?? false,
      sameZone: groupSpec?.sameZone ?? false,
      createdAt: this.deps.now(),
      nextSeq: this.deps.nextSeq,
      ...(parent ? { parentJobId: parent.jobId } : {}),
      ...(options.reservationId ? { reservationId: options.reservationId } : {}),
      ...(options.requestId ? { requestId: options.requestId } : {}),
    });
    await store.defer(() => {
      store.saveGroup(group);
      for (const job of jobs) {
        store.saveJob(job);
        for (const t of job.tasks) store.saveTask(t);
      }
    });
    this.groups.add(group);
    for (const job of jobs) {
      ledger.addJob(job);
      reservations.addJob(job);
    }
    const parentNow = parent ? ledger.jobs.find(parent.jobId) : undefined;
    if (parentNow && isFinished(parentNow.state)) {
      this.deps.background(() => store.transaction(() => this.endGroup(group, `parent job ${parentNow.jobId} ${parentNow.state}`)));
    }
    this.deps.requestSchedule(false);
    return group;
  }

  get(groupId: string): JobGroupRecord {
    return this.groups.get(groupId);
  }

  find(groupId: string): JobGroupRecord | undefined {
    return this.groups.find(groupId);
  }

  /** The group a launch with this request id made, if any. */
  findByRequest(requestId: string): JobGroupRecord | undefined {
    return this.groups.byRequest(requestId);
  }

  list(filter: GroupFilter = {}): JobGroupRecord[] {
    return this.groups.list(filter);
  }

  /** The group's jobs in launch order. */
  jobsOf(group: JobGroupRecord): JobRecord[] {
    return group.jobIds.map((id) => this.deps.ledger.jobs.find(id)).filter((j): j is JobRecord => j !== undefined);
  }

  status(group: JobGroupRecord): GroupStatus {
    return groupStatus(group, this.jobsOf(group));
  }

  /** Kills every unfinished job of the group. */
  terminate(groupId: string, reason: string): JobGroupRecord {
    const group = this.groups.get(groupId);
    this.deps.store.transaction(() => this.endGroup(group, reason));
    this.deps.requestSchedule();
    return group;
  }

  /** Kills the group's unfinished jobs with `reason`, without the cascade naming one of them. Runs inside a transaction. */
  private endGroup(group: JobGroupRecord, reason: string): void {
    this.groupsEnding.add(group.groupId);
    try {
      for (const job of this.jobsOf(group)) if (!isFinished(job.state)) this.deps.ledger.killJob(job, reason);
    } finally {
      this.groupsEnding.delete(group.groupId);
    }
    this.noteGroupFinished(group);
  }

  /**
   * A job of a group finished (inside its transaction). A group is a unit,
   * as a Ray placement group: when one job fails, is killed or cannot be
   * scheduled, the others are killed with "group g (id): job X failed".
   */
  jobFinished(job: JobRecord): void {
    const group = job.groupId ? this.groups.find(job.groupId) : undefined;
    if (!group) return;
    if (endsGroup(job) && !this.groupsEnding.has(group.groupId)) this.endGroup(group, groupKillReason(group, job));
    else this.noteGroupFinished(group);
  }

  private noteGroupFinished(group: JobGroupRecord): void {
    if (group.finishedAt !== undefined || !this.jobsOf(group).every((j) => isFinished(j.state))) return;
    const { store } = this.deps;
    store.keep(group);
    group.finishedAt = this.deps.now();
    store.saveGroup(group);
  }
}
