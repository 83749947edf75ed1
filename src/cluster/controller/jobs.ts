// The controller's table of jobs: new job records with their tasks, lookups by
// id, request id and parent, and the filtered listing behind ListJobs.
import { FlusterError, ValidationError } from "../../core/errors.js";
import { validateJobName, type ValidatedJobRequest } from "../../core/job.js";
import type { JobStatus } from "../../core/status.js";
import type { JobSpec } from "../../rpc/gen/fluster/cluster/v1/types_pb.js";
import { DEFAULT_NAMESPACE } from "./endpoints.js";
import type { JobRecord } from "./model.js";

const NAMESPACE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export interface LaunchOptions {
  namespace?: string;
  parentJobId?: string;
  /** A retried launch with the same request id gets the first one's job back. */
  requestId?: string;
  /** The active reservation (of the same namespace) to run in. */
  reservationId?: string;
}

export interface JobFilter {
  namespace?: string;
  allNamespaces?: boolean;
  prefix?: string;
  states?: readonly JobStatus[];
  limit?: number;
}

export class JobTable {
  private readonly jobs = new Map<string, JobRecord>();
  private readonly byRequestId = new Map<string, JobRecord>();
  private readonly children = new Map<string, Set<string>>();

  add(job: JobRecord): void {
    this.jobs.set(job.jobId, job);
    if (job.requestId) this.byRequestId.set(job.requestId, job);
    if (job.parentJobId) {
      let set = this.children.get(job.parentJobId);
      if (!set) this.children.set(job.parentJobId, (set = new Set()));
      set.add(job.jobId);
    }
  }

  /** The job, or a `not_found` error naming it. */
  get(jobId: string): JobRecord {
    if (typeof jobId !== "string" || jobId === "") throw new ValidationError("jobId", "must not be empty");
    const job = this.jobs.get(jobId);
    if (!job) throw new FlusterError(`job ${jobId} not found`, "not_found");
    return job;
  }

  find(jobId: string): JobRecord | undefined {
    return this.jobs.get(jobId);
  }

  byRequest(requestId: string): JobRecord | undefined {
    return this.byRequestId.get(requestId);
  }

  childrenOf(jobId: string): JobRecord[] {
    return [...(this.children.get(jobId) ?? [])].map((id) => this.jobs.get(id)).filter((j): j is JobRecord => j !== undefined);
  }

  values(): IterableIterator<JobRecord> {
    return this.jobs.values();
  }

  /** Jobs matching `filter`, newest first. */
  list(filter: JobFilter = {}): JobRecord[] {
    const namespace = filter.namespace || DEFAULT_NAMESPACE;
    const states = filter.states && filter.states.length > 0 ? new Set(filter.states) : undefined;
    const out: JobRecord[] = [];
    for (const job of this.jobs.values()) {
      if (!filter.allNamespaces && job.namespace !== namespace) continue;
      if (filter.prefix && !job.name.startsWith(filter.prefix)) continue;
      if (states && !states.has(job.state)) continue;
      out.push(job);
    }
    out.sort((a, b) => b.seq - a.seq);
    return filter.limit && filter.limit > 0 ? out.slice(0, filter.limit) : out;
  }
}

/** The namespace a new job runs in: the one asked for, else its parent's, else the default. */
export function namespaceFor(requested: string | undefined, parent: JobRecord | undefined): string {
  const namespace = requested || parent?.namespace || DEFAULT_NAMESPACE;
  if (!NAMESPACE_PATTERN.test(namespace)) {
    throw new ValidationError("namespace", `must be letters, digits, ".", "_" or "-" (at most 128), got ${JSON.stringify(namespace)}`);
  }
  return namespace;
}

/** A new pending job with one pending task per replica. */
export function newJobRecord(
  spec: JobSpec,
  request: ValidatedJobRequest,
  fields: { jobId: string; namespace: string; seq: number; submittedAt: number; parentJobId?: string; requestId?: string; groupId?: string; reservationId?: string },
): JobRecord {
  const { jobId } = fields;
  const job: JobRecord = {
    jobId,
    name: request.name,
    namespace: fields.namespace,
    spec,
    request,
    state: "pending",
    submittedAt: fields.submittedAt,
    seq: fields.seq,
    revision: 0,
    tasks: Array.from({ length: request.resources.replicas }, (_, taskIndex) => ({
      jobId,
      taskIndex,
      state: "pending" as const,
      failureCount: 0,
      preemptionCount: 0,
      attempts: [],
    })),
  };
  if (fields.parentJobId) job.parentJobId = fields.parentJobId;
  if (fields.requestId) job.requestId = fields.requestId;
  if (fields.groupId) job.groupId = fields.groupId;
  if (fields.reservationId) job.reservationId = fields.reservationId;
  return job;
}

/** A job id prefix from its name: readable in listings, safe in paths. */
export function jobIdPrefix(name: string): string {
  validateJobName(name);
  const tail = name.split("/").pop() ?? "job";
  return tail.replace(/[^A-Za-z0-9-]/g, "-").replace(/-+/g, "-").replace(/^-|-$/g, "").slice(0, 40).toLowerCase() || "job";
}
