// ControllerService handlers: validate each request, call the controller, and
// answer in wire terms. Nothing a client sends can crash the controller: bad
// input becomes an InvalidArgument/NotFound/FailedPrecondition error.
import { clone, create } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import { EventEmitter, on, setMaxListeners } from "node:events";
import { FlusterError, ValidationError } from "../../core/errors.js";
import { isFinished, JOB_STATUSES } from "../../core/status.js";
import { deviceFromProto, deviceToProto, jobStateFromProto, jobStateToProto, reservationStateToProto, taskStateFromProto, taskStateToProto, toTimestamp } from "../../rpc/convert.js";
import {
  ControllerService,
  JobGroupSchema,
  ReservationSchema,
  WorkerSchema,
  VmSchema,
  ScaleGroupStatusSchema,
  type JobGroup,
  type ListJobsRequest,
  type Reservation,
} from "../../rpc/gen/fluster/cluster/v1/controller_pb.js";
import {
  AttemptSchema,
  EndpointSchema,
  JobSchema,
  LogEntrySchema,
  LogStream,
  ResourceSpecSchema,
  TaskSchema,
  WorkerResourcesSchema,
  type Attempt,
  type Endpoint,
  type Job,
  type LogEntry,
} from "../../rpc/gen/fluster/cluster/v1/types_pb.js";
import type { BundleStore } from "../bundle/blob-store.js";
import { bundleHandlers } from "../bundle/handlers.js";
import { BUNDLE_MISSING } from "../bundle/manifest.js";
import type { Controller, ObservedAttempt } from "./controller.js";
import { isActiveAttempt } from "./task-state.js";
import type { AttemptRecord, EndpointRecord, JobGroupRecord, JobRecord, ReservationRecord, WorkerCapacityRecord } from "./model.js";
import { CALLER, CONTROLLER_ACCESS, guardService, type AccessScope } from "./access.js";
import { DEFAULT_NAMESPACE } from "./endpoints.js";
import { NAMESPACE_CREDENTIAL_TTL_SECONDS, type ControllerIdentity } from "./identity.js";
import { namespaceFor } from "./jobs.js";

/** Reads one attempt's log from the worker that ran it. */
export type AttemptLogReader = (address: string, attemptId: string, follow: boolean, signal: AbortSignal) => AsyncIterable<LogEntry[]>;

/**
 * The ControllerService handlers, each guarded by its access rule
 * (access.ts). `identity` (auth on) issues worker and namespace credentials.
 */
export function controllerRoutes(
  controller: Controller,
  readAttemptLog: AttemptLogReader,
  bundles: BundleStore,
  identity?: ControllerIdentity,
  /** Told of each call refused by its access rule (a job reaching out of its namespace, a forged heartbeat). */
  onDenied?: (error: FlusterError) => void,
): (router: ConnectRouter) => void {
  const scope: AccessScope = {
    job: (jobId) => controller.findJob(jobId),
    endpoint: (endpointId) => controller.endpoints.find(endpointId),
    attemptJob: (attemptId) => controller.findAttempt(attemptId)?.jobId,
    requestedJob: (requestId) => controller.findJobByRequest(requestId)?.jobId,
    group: (groupId) => controller.findGroup(groupId),
    requestedGroup: (requestId) => controller.findGroupByRequest(requestId),
    reservation: (reservationId) => controller.findReservation(reservationId),
    requestedReservation: (requestId) => controller.findReservationByRequest(requestId),
  };
  return (router) =>
    router.service(ControllerService, guardService({
      ...bundleHandlers(bundles),
      async launchJob(req) {
        const bundleId = req.job?.environment?.bundleId;
        // A client that registered this bundle before launches by its id alone; a bundle swept since must travel again.
        if (bundleId && !bundles.touchBundle(bundleId)) {
          throw new FlusterError(`${BUNDLE_MISSING} ${bundleId} (it was never uploaded, or was swept as unused): upload it again`, "failed_precondition");
        }
        const job = await controller.launchJob(req.job, {
          namespace: req.namespace,
          ...(req.parentJobId ? { parentJobId: req.parentJobId } : {}),
          ...(req.requestId ? { requestId: req.requestId } : {}),
          ...(req.reservationId ? { reservationId: req.reservationId } : {}),
        });
        return { jobId: job.jobId, namespace: job.namespace };
      },
      async launchJobGroup(req) {
        req.jobs.forEach((spec, i) => {
          const bundleId = spec.environment?.bundleId;
          if (bundleId && !bundles.touchBundle(bundleId)) {
            throw new FlusterError(`jobs[${i}]: ${BUNDLE_MISSING} ${bundleId} (it was never uploaded, or was swept as unused): upload it again`, "failed_precondition");
          }
        });
        const group = await controller.launchGroup(req.jobs, req.group, {
          namespace: req.namespace,
          ...(req.parentJobId ? { parentJobId: req.parentJobId } : {}),
          ...(req.requestId ? { requestId: req.requestId } : {}),
          ...(req.reservationId ? { reservationId: req.reservationId } : {}),
        });
        return { jobIds: [...group.jobIds], groupId: group.groupId, namespace: group.namespace };
      },
      getJobGroup(req) {
        return { group: groupToProto(controller, controller.getGroup(req.groupId)) };
      },
      listJobGroups(req) {
        return { groups: controller.listGroups({ namespace: req.namespace, allNamespaces: req.allNamespaces, prefix: req.prefix }).map((g) => groupToProto(controller, g)) };
      },
      terminateJobGroup(req) {
        return { group: groupToProto(controller, controller.terminateGroup(req.groupId, req.reason || undefined)) };
      },
      getJobStatus(req) {
        return { job: jobToProto(controller.getJob(req.jobId)) };
      },
      async *watchCluster(req, ctx) {
        const options = req.minIntervalMs > 0 ? { minIntervalMs: req.minIntervalMs } : {};
        for await (const change of controller.watchRevisions(ctx.signal, options)) {
          yield { revision: BigInt(change.revision), time: toTimestamp(new Date(change.time)) };
        }
      },
      async *watchJob(req, ctx) {
        for await (const job of controller.watchJob(req.jobId, ctx.signal)) yield { job: jobToProto(job) };
      },
      terminateJob(req) {
        return { job: jobToProto(controller.terminateJob(req.jobId, req.reason || undefined)) };
      },
      listJobs(req) {
        return { jobs: controller.listJobs(jobFilter(req)).map(jobToProto) };
      },
      async *streamJobLogs(req, ctx) {
        const job = controller.getJob(req.jobId);
        if (req.taskIndex !== undefined && req.taskIndex >= 0 && req.taskIndex >= job.tasks.length) {
          throw new ValidationError("taskIndex", `must be below the job's ${job.tasks.length} task(s), got ${req.taskIndex}`);
        }
        const since = req.since ? Number(req.since.seconds) * 1000 + Math.floor(req.since.nanos / 1e6) : 0;
        for await (const entries of jobLogs(controller, job, req.taskIndex ?? -1, req.follow, readAttemptLog, ctx.signal)) {
          const kept = since ? entries.filter((e) => !e.time || Number(e.time.seconds) * 1000 + e.time.nanos / 1e6 >= since) : entries;
          if (kept.length > 0) yield { entries: kept };
        }
      },
      async registerWorker(req) {
        const resources = req.resources;
        if (!resources) throw new ValidationError("resources", "is required");
        const device = deviceFromProto(resources.device);
        const capacity: WorkerCapacityRecord = {
          cpu: resources.cpu,
          memory: Number(resources.memoryBytes),
          disk: Number(resources.diskBytes),
          deviceType: device.kind,
          deviceVariant: device.kind === "cpu" ? "" : device.variant,
          deviceCount: resources.deviceCount,
        };
        const record = await controller.admitWorker({ workerId: req.workerId, address: req.address, capacity, attributes: { ...req.attributes } });
        return {
          workerId: record.workerId,
          reconcileIntervalMs: Math.round(controller.reconcileIntervalMs),
          workerLostGraceMs: Math.round(controller.workerLostGraceMs),
          workerCredential: identity ? await identity.workerCredential(record.workerId) : "",
        };
      },
      async issueNamespaceCredential(req, ctx) {
        const caller = ctx.values.get(CALLER);
        const namespace = namespaceFor(req.namespace || (caller?.kind === "job" ? caller.namespace : DEFAULT_NAMESPACE), undefined);
        if (!identity) return { credential: "", namespace, clusterKey: "" };
        return {
          credential: await identity.namespaceCredential(namespace),
          namespace,
          expiresAt: toTimestamp(new Date(Date.now() + NAMESPACE_CREDENTIAL_TTL_SECONDS * 1000)),
          clusterKey: identity.publicKey,
        };
      },
      heartbeat(req) {
        if (!req.workerId) throw new ValidationError("workerId", "must not be empty");
        return { known: controller.heartbeat(req.workerId, req.attempts.map(observedFromProto)) };
      },
      listWorkers() {
        return {
          workers: controller.listWorkers().map(({ record, used, runningAttempts }) =>
            create(WorkerSchema, {
              workerId: record.workerId,
              address: record.address,
              resources: capacityToProto(record.capacity),
              attributes: record.attributes,
              health: record.health,
              healthReason: record.healthReason ?? "",
              lastSeen: toTimestamp(new Date(record.lastSeen)),
              used: capacityToProto(used),
              runningAttempts,
              registeredAt: toTimestamp(new Date(record.registeredAt)),
            }),
          ),
        };
      },
      listVms() {
        return {
          vms: controller.listVms().map((vm) =>
            create(VmSchema, {
              vmId: vm.vmId,
              scaleGroup: vm.group,
              platform: vm.platform,
              state: vm.state,
              since: toTimestamp(new Date(vm.since)),
              createdAt: toTimestamp(new Date(vm.createdAt)),
              workerIds: vm.workerIds,
              platformId: vm.platformId ?? "",
              reason: vm.reason ?? "",
            }),
          ),
          groups: controller.scaleGroupStatuses().map(({ group, status }) =>
            create(ScaleGroupStatusSchema, {
              name: group.name,
              platform: group.platform,
              minVms: group.minVms,
              maxVms: group.maxVms,
              ...status.vms,
              waitingTasks: status.waitingTasks,
              reason: status.reason,
            }),
          ),
        };
      },
      registerEndpoint(req) {
        const endpoint = controller.registerEndpoint({
          name: req.name,
          address: req.address,
          namespace: req.namespace,
          metadata: { ...req.metadata },
          ...(req.jobId ? { jobId: req.jobId } : {}),
          ...(req.attemptId ? { attemptId: req.attemptId } : {}),
          ...(req.ttlSeconds ? { ttlSeconds: req.ttlSeconds } : {}),
        });
        return { endpoint: endpointToProto(endpoint) };
      },
      renewEndpoints(req) {
        return { missing: controller.renewEndpoints(req.endpointIds) };
      },
      unregisterEndpoint(req) {
        controller.unregisterEndpoint(req.endpointId);
        return {};
      },
      lookupEndpoints(req) {
        return { endpoints: controller.endpoints.lookup(req.name, req.namespace).map(endpointToProto) };
      },
      async *watchEndpoints(req, ctx) {
        for await (const endpoints of controller.endpoints.watch(req.name, req.namespace, ctx.signal)) yield { endpoints: endpoints.map(endpointToProto) };
      },
      listEndpoints(req) {
        return { endpoints: controller.endpoints.list(req.prefix, req.namespace, req.allNamespaces).map(endpointToProto) };
      },
      async createReservation(req) {
        const record = await controller.createReservation(req.reservation, { namespace: req.namespace, ...(req.requestId ? { requestId: req.requestId } : {}) });
        return { reservationId: record.reservationId };
      },
      getReservation(req) {
        return { reservation: reservationToProto(controller, controller.getReservation(req.reservationId)) };
      },
      releaseReservation(req) {
        controller.releaseReservation(req.reservationId, req.reason);
        return {};
      },
      listReservations(req) {
        const records = controller.listReservations({ namespace: req.namespace, allNamespaces: req.allNamespaces, includeEnded: req.includeEnded });
        return { reservations: records.map((r) => reservationToProto(controller, r)) };
      },
    }, CONTROLLER_ACCESS, scope, onDenied));
}

/** The wire form of a group, with its status rolled up from its jobs. */
export function groupToProto(controller: Controller, group: JobGroupRecord): JobGroup {
  const status = controller.groupStatus(group);
  return create(JobGroupSchema, {
    groupId: group.groupId,
    spec: { name: group.name, sameRegion: group.sameRegion, sameZone: group.sameZone },
    namespace: group.namespace,
    reservationId: group.reservationId ?? "",
    jobIds: [...group.jobIds],
    state: jobStateToProto(status.state),
    pendingReason: status.pendingReason ?? "",
    errorMessage: status.errorMessage ?? "",
    createdAt: toTimestamp(new Date(group.createdAt)),
    finishedAt: group.finishedAt !== undefined ? toTimestamp(new Date(group.finishedAt)) : undefined,
  });
}

/** The wire form of a reservation: in slots of its minimum's per-task shape. */
export function reservationToProto(controller: Controller, record: ReservationRecord): Reservation {
  const figures = controller.reservationFigures(record.reservationId);
  const slots = (replicas: number) => (record.spec.minResources ? { ...clone(ResourceSpecSchema, record.spec.minResources), replicas } : undefined);
  return create(ReservationSchema, {
    reservationId: record.reservationId,
    spec: record.spec,
    allocatedResources: slots(figures.used + figures.held),
    pendingResources: slots(figures.pending),
    jobIds: [...figures.jobIds],
    expiresAt: toTimestamp(new Date(record.expiresAt)),
    namespace: record.namespace,
    state: reservationStateToProto(record.state),
    message: figures.message ?? "",
    createdAt: toTimestamp(new Date(record.createdAt)),
    usedReplicas: figures.used,
    heldReplicas: figures.held,
    heldWorkerIds: [...figures.workerIds],
  });
}

function jobFilter(req: ListJobsRequest) {
  return {
    namespace: req.namespace,
    allNamespaces: req.allNamespaces,
    prefix: req.prefix,
    states: req.states.map((s, i) => {
      const state = jobStateFromProto(s, `states[${i}]`);
      if (!JOB_STATUSES.includes(state)) throw new ValidationError(`states[${i}]`, `is not a job state: ${s}`);
      return state;
    }),
    limit: req.limit,
  };
}

/**
 * Streams a job's logs: each selected task's attempts in order, read from the
 * workers that ran them, the tasks side by side. With `follow`, waits for new
 * attempts until the job ends.
 */
export async function* jobLogs(
  controller: Controller,
  job: JobRecord,
  taskIndex: number,
  follow: boolean,
  readAttemptLog: AttemptLogReader,
  signal: AbortSignal,
): AsyncGenerator<LogEntry[]> {
  const tasks = taskIndex >= 0 ? [taskIndex] : job.tasks.map((t) => t.taskIndex);
  if (tasks.length === 0) return;
  // Every task's reader and watch listen for the end of this stream, two at a
  // time per task: on a signal of the stream's own, which the caller's aborts
  // through one listener, and which ends them when the stream ends first.
  const done = new AbortController();
  setMaxListeners(0, done.signal);
  const stop = () => done.abort(signal.reason);
  if (signal.aborted) return;
  signal.addEventListener("abort", stop, { once: true });
  try {
    yield* mergedTaskLogs(controller, job, tasks, follow, readAttemptLog, done.signal);
  } finally {
    signal.removeEventListener("abort", stop);
    done.abort();
  }
}

async function* mergedTaskLogs(
  controller: Controller,
  job: JobRecord,
  tasks: readonly number[],
  follow: boolean,
  readAttemptLog: AttemptLogReader,
  signal: AbortSignal,
): AsyncGenerator<LogEntry[]> {
  // The tasks' readers emit here; the stream yields in arrival order.
  const output = new EventEmitter();
  const merged = on(output, "entries", { signal, close: ["end"] });
  const note = (attempt: AttemptRecord, data: string) =>
    output.emit("entries", [create(LogEntrySchema, { data: `[fluster] ${data}\n`, stream: LogStream.STDERR, attemptId: attempt.attemptId, taskIndex: attempt.taskIndex })]);
  const streamTask = async (index: number) => {
    const task = job.tasks[index];
    if (!task) return;
    // A task that keeps failing may have many attempts without logs (each
    // died before it wrote any, or its worker is gone): the first one is
    // reported, the rest are counted and reported once at the end.
    let unavailable = 0;
    let lastUnavailable: AttemptRecord | undefined;
    await followAttempts(task, (attempt, err) => {
      if (unavailable++ === 0) note(attempt, `logs of attempt ${attempt.attemptId} are unavailable: ${err instanceof Error ? err.message : String(err)}`);
      lastUnavailable = attempt;
    });
    if (unavailable > 1 && lastUnavailable && !signal.aborted) {
      note(lastUnavailable, `logs of ${unavailable - 1} more attempt(s) of task ${index} are unavailable`);
    }
  };
  const followAttempts = async (task: JobRecord["tasks"][number], onUnavailable: (attempt: AttemptRecord, err: unknown) => void) => {
    let next = 0;
    for (;;) {
      while (next < task.attempts.length) {
        const attempt = task.attempts[next++] as AttemptRecord;
        const address = controller.workerAddressOf(attempt);
        if (!address) {
          onUnavailable(attempt, new FlusterError(`its worker ${attempt.workerId} is gone (lost, and forgotten after the controller's lostWorkerRetentionSeconds)`, "not_found"));
          continue;
        }
        const attemptFollow = follow && !isFinished(job.state) && isActiveAttempt(attempt.state);
        try {
          for await (const entries of readAttemptLog(address, attempt.attemptId, attemptFollow, signal)) output.emit("entries", entries);
        } catch (err) {
          if (signal.aborted) return;
          onUnavailable(attempt, err);
        }
      }
      if (!follow || isFinished(job.state) || signal.aborted) return;
      // Wait for the task's next attempt, or the end of the job.
      for await (const current of controller.watchJob(job.jobId, signal)) if (task.attempts.length > next || isFinished(current.state)) break;
    }
  };
  let running = tasks.length;
  for (const index of tasks) {
    streamTask(index).then(
      () => {
        if (--running === 0) output.emit("end");
      },
      (err: unknown) => output.emit("error", err),
    );
  }
  try {
    for await (const [entries] of merged) yield entries as LogEntry[];
  } catch (err) {
    if (!signal.aborted) throw err;
  }
}

/** An attempt reported by a worker, in controller terms. */
export function observedFromProto(a: Attempt): ObservedAttempt {
  const toMs = (t: Attempt["startedAt"]) => (t ? Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6) : undefined);
  const out: ObservedAttempt = { attemptId: a.attemptId, state: taskStateFromProto(a.state, "attempts.state") };
  const startedAt = toMs(a.startedAt);
  const finishedAt = toMs(a.finishedAt);
  if (a.exitCode !== undefined) out.exitCode = a.exitCode;
  if (a.errorMessage) out.errorMessage = a.errorMessage;
  if (startedAt !== undefined) out.startedAt = startedAt;
  if (finishedAt !== undefined) out.finishedAt = finishedAt;
  if (a.result.length > 0) out.result = a.result;
  return out;
}

function attemptToProto(a: AttemptRecord): Attempt {
  return create(AttemptSchema, {
    attemptId: a.attemptId,
    taskIndex: a.taskIndex,
    workerId: a.workerId,
    state: taskStateToProto(a.state),
    ...(a.exitCode !== undefined ? { exitCode: a.exitCode } : {}),
    errorMessage: a.errorMessage ?? "",
    startedAt: a.startedAt !== undefined ? toTimestamp(new Date(a.startedAt)) : undefined,
    finishedAt: a.finishedAt !== undefined ? toTimestamp(new Date(a.finishedAt)) : undefined,
    result: a.result ?? new Uint8Array(0),
  });
}

/** The wire form of a job with its tasks and attempts. */
export function jobToProto(job: JobRecord): Job {
  const ts = (ms: number | undefined) => (ms !== undefined ? toTimestamp(new Date(ms)) : undefined);
  return create(JobSchema, {
    jobId: job.jobId,
    name: job.name,
    namespace: job.namespace,
    parentJobId: job.parentJobId ?? "",
    state: jobStateToProto(job.state),
    tasks: job.tasks.map((t) =>
      create(TaskSchema, {
        taskIndex: t.taskIndex,
        state: taskStateToProto(t.state),
        workerId: t.workerId ?? "",
        failureCount: t.failureCount,
        preemptionCount: t.preemptionCount,
        ...(t.exitCode !== undefined ? { exitCode: t.exitCode } : {}),
        errorMessage: t.errorMessage ?? "",
        startedAt: ts(t.startedAt),
        finishedAt: ts(t.finishedAt),
        attempts: t.attempts.map(attemptToProto),
      }),
    ),
    pendingReason: job.pendingReason ?? "",
    errorMessage: job.errorMessage ?? "",
    ...(job.exitCode !== undefined ? { exitCode: job.exitCode } : {}),
    submittedAt: ts(job.submittedAt),
    startedAt: ts(job.startedAt),
    finishedAt: ts(job.finishedAt),
    spec: job.spec,
    groupId: job.groupId ?? "",
    reservationId: job.reservationId ?? "",
  });
}

export function endpointToProto(e: EndpointRecord): Endpoint {
  return create(EndpointSchema, {
    endpointId: e.endpointId,
    name: e.name,
    address: e.address,
    jobId: e.jobId ?? "",
    attemptId: e.attemptId ?? "",
    namespace: e.namespace,
    metadata: e.metadata,
    registeredAt: toTimestamp(new Date(e.registeredAt)),
    expiresAt: e.expiresAt !== undefined ? toTimestamp(new Date(e.expiresAt)) : undefined,
  });
}

function capacityToProto(c: WorkerCapacityRecord) {
  return create(WorkerResourcesSchema, {
    cpu: c.cpu,
    memoryBytes: BigInt(Math.round(c.memory)),
    diskBytes: BigInt(Math.round(c.disk)),
    device: deviceToProto(c.deviceType === "cpu" ? { kind: "cpu" } : c.deviceType === "gpu" ? { kind: "gpu", variant: c.deviceVariant || "auto", count: Math.max(1, c.deviceCount) } : { kind: "tpu", variant: c.deviceVariant, topology: "", sliceCount: 1 }),
    deviceCount: c.deviceCount,
  });
}
