// The Cluster client: launch, observe and stop jobs, and use the endpoint
// registry, over ControllerService. Waiting is event-driven (WatchJob), never
// a polling loop.
import { randomBytes, randomUUID } from "node:crypto";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { ERROR_BRAND, FlusterError, ValidationError } from "../../core/errors.js";
import { isFinished, type JobStatus } from "../../core/status.js";
import { validateJobRequest, type JobId, type JobInfo, type JobRequest, type Namespace } from "../../core/job.js";
import type { JobGroupConfig, ReservationConfig, ReservationId, ReservationInfo } from "../../core/reservation.js";
import { jobInfoFromProto, jobSpecToProto, jobStateToProto } from "../../rpc/convert.js";
import { fromConnectError, isTransportFailure } from "../../rpc/errors.js";
import { retryStream } from "../../core/backoff.js";
import { ControllerService } from "../../rpc/gen/fluster/cluster/v1/controller_pb.js";
import { LogStream, type Endpoint } from "../../rpc/gen/fluster/cluster/v1/types_pb.js";
import { createRpcChannel, normalizeBaseUrl, type RpcChannel } from "../../rpc/transport.js";

/** Options of {@link Cluster.connect}. */
export interface ClusterOptions {
  /** Namespace for launched jobs and endpoint lookups. @default FLUSTER_NAMESPACE, else "default" */
  namespace?: Namespace;
  /** Bearer token. @default FLUSTER_TOKEN */
  token?: string;
}

/** One chunk of a job's output. */
export interface LogLine {
  time: Date;
  stream: "stdout" | "stderr";
  data: string;
  taskIndex: number;
  attemptId: string;
}

/** A registered endpoint. */
export interface EndpointInfo {
  endpointId: string;
  name: string;
  address: string;
  namespace: Namespace;
  jobId?: JobId;
  metadata: Record<string, string>;
  registeredAt: Date;
  expiresAt?: Date;
}

/** A worker as the controller sees it. */
export interface WorkerInfo {
  workerId: string;
  address: string;
  /** `healthy`, `unreachable`, `unhealthy` (it refuses the controller; see `healthReason`) or `lost`. */
  health: string;
  /** Why the worker is unhealthy. */
  healthReason?: string;
  cpu: number;
  memory: number;
  disk: number;
  device: string;
  deviceCount: number;
  usedCpu: number;
  usedMemory: number;
  runningAttempts: number;
  attributes: Record<string, string>;
  lastSeen?: Date;
}

export interface WaitOptions {
  /** Give up after this long with a `deadline_exceeded` error. @default no limit */
  timeoutSeconds?: number;
  /** Throw a {@link JobFailedError} when a job ends other than `succeeded`. @default false */
  raiseOnFailure?: boolean;
}

/** A job ended `failed`, `killed` or `unschedulable` and the caller asked to raise on failure. */
export class JobFailedError extends FlusterError {
  static override readonly [ERROR_BRAND]: string = "fluster.JobFailedError";
  override name = "JobFailedError";
  readonly job: JobInfo;

  constructor(job: JobInfo) {
    super(`job ${job.jobId} (${job.name}) ${job.status}${job.errorMessage ? `: ${job.errorMessage}` : ""}`, "failed_precondition");
    this.job = job;
  }
}

export class Cluster {
  readonly address: string;
  readonly namespace: Namespace;
  /** The job this client runs inside, if any: jobs it launches are its children. */
  readonly parentJobId: JobId | undefined;
  protected readonly channel: RpcChannel;
  private readonly explicitNamespace: boolean;

  protected constructor(address: string, options: ClusterOptions = {}) {
    this.address = normalizeBaseUrl(address);
    this.explicitNamespace = options.namespace !== undefined;
    this.namespace = options.namespace ?? process.env.FLUSTER_NAMESPACE ?? "default";
    if (this.namespace === "") throw new ValidationError("namespace", "must not be empty");
    this.parentJobId = process.env.FLUSTER_JOB_ID || undefined;
    this.channel = createRpcChannel(this.address, options.token !== undefined ? { token: options.token } : {});
  }

  /** A client of the controller at `address`. Nothing connects until the first call. */
  static connect(address: string, options: ClusterOptions = {}): Cluster {
    return new Cluster(address, options);
  }

  /** A fresh namespace name, for a driver that wants its own isolated world. */
  static freshNamespace(prefix = "ns"): Namespace {
    return `${prefix}-${randomBytes(6).toString("hex")}`;
  }

  protected get rpc() {
    return this.channel.client(ControllerService);
  }

  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw fromConnectError(err, what);
    }
  }

  /** Validates and submits a job; resolves to its id once the controller has stored it. */
  async launch(request: JobRequest): Promise<JobId> {
    const spec = jobSpecToProto(validateJobRequest(request));
    const requestId = randomUUID();
    const res = await this.call(`launch ${request.name}`, () =>
      this.rpc.launchJob({
        job: spec,
        namespace: this.explicitNamespace || !this.parentJobId ? this.namespace : "",
        parentJobId: this.parentJobId ?? "",
        requestId,
      }),
    );
    return res.jobId;
  }

  /** The job's current state, without waiting. */
  async poll(jobId: JobId): Promise<JobInfo> {
    const res = await this.call(`poll ${jobId}`, () => this.rpc.getJobStatus({ jobId }));
    if (!res.job) throw new FlusterError(`controller returned no job for ${jobId}`, "internal");
    return jobInfoFromProto(res.job);
  }

  /** Waits until the job (or every job) is finished. */
  wait(jobId: JobId, options?: WaitOptions): Promise<JobInfo>;
  wait(jobIds: readonly JobId[], options?: WaitOptions): Promise<JobInfo[]>;
  async wait(jobIds: JobId | readonly JobId[], options: WaitOptions = {}): Promise<JobInfo | JobInfo[]> {
    const many = Array.isArray(jobIds);
    const ids: readonly JobId[] = many ? jobIds : [jobIds as JobId];
    const signal = options.timeoutSeconds !== undefined ? AbortSignal.timeout(options.timeoutSeconds * 1000) : undefined;
    const infos = await Promise.all(ids.map((id) => this.waitOne(id, signal, options.timeoutSeconds)));
    if (options.raiseOnFailure) {
      const failed = infos.find((info) => info.status !== "succeeded");
      if (failed) throw new JobFailedError(failed);
    }
    return many ? infos : (infos[0] as JobInfo);
  }

  private async waitOne(jobId: JobId, signal: AbortSignal | undefined, timeoutSeconds: number | undefined): Promise<JobInfo> {
    let last: JobInfo | undefined;
    try {
      for await (const info of this.watch(jobId, signal ? { signal } : {})) last = info;
    } catch (err) {
      if (!signal?.aborted) throw err;
    }
    if (last && isFinished(last.status)) return last;
    throw new FlusterError(`job ${jobId} did not finish within ${timeoutSeconds}s (last status: ${last?.status ?? "unknown"})`, "deadline_exceeded");
  }

  /**
   * The job now and after every change, until it is finished (or `signal`
   * aborts, which ends the iteration). A dropped connection re-subscribes.
   */
  async *watch(jobId: JobId, options: { signal?: AbortSignal } = {}): AsyncGenerator<JobInfo> {
    const { signal } = options;
    let finished = false;
    const open = async function* (this: Cluster): AsyncGenerator<JobInfo> {
      for await (const res of this.rpc.watchJob({ jobId }, signal ? { signal } : {})) {
        if (!res.job) continue;
        const info = jobInfoFromProto(res.job);
        finished = isFinished(info.status);
        yield info;
      }
      // The controller ends the stream only once the job is finished; anything else is a dropped connection.
      if (!finished) throw new FlusterError(`the watch of ${jobId} ended early`, "unavailable");
    };
    yield* this.resubscribing(`watch ${jobId}`, () => open.call(this), signal);
  }

  /**
   * The endpoints registered under `name` in this namespace, now and after
   * every change, until `signal` aborts (which ends the iteration). A
   * dropped connection re-subscribes.
   */
  async *watchEndpoints(name: string, options: { signal?: AbortSignal } = {}): AsyncGenerator<EndpointInfo[]> {
    const { signal } = options;
    const open = async function* (this: Cluster): AsyncGenerator<EndpointInfo[]> {
      for await (const res of this.rpc.watchEndpoints({ name, namespace: this.namespace }, signal ? { signal } : {})) yield res.endpoints.map(endpointInfo);
      if (!signal?.aborted) throw new FlusterError(`the watch of endpoints ${name} ended early`, "unavailable");
    };
    yield* this.resubscribing(`watch endpoints ${name}`, () => open.call(this), signal);
  }

  /** Reads a server stream, opening it again after transport failures; an abort of `signal` ends it quietly. */
  private async *resubscribing<T>(what: string, open: () => AsyncIterable<T>, signal: AbortSignal | undefined): AsyncGenerator<T> {
    try {
      yield* retryStream(
        async function* () {
          try {
            yield* open();
          } catch (err) {
            throw fromConnectError(err, what);
          }
        },
        { initialMs: 200, maxMs: 2_000, attempts: 30, ...(signal ? { signal } : {}), retryIf: (err) => isTransportFailure(err) || (err instanceof FlusterError && err.code === "internal") },
      );
    } catch (err) {
      if (!signal?.aborted) throw err;
    }
  }

  /** Streams the job's logs to stdout/stderr until it finishes; resolves to its final state. */
  async monitor(jobId: JobId, options: { out?: NodeJS.WritableStream; err?: NodeJS.WritableStream } = {}): Promise<JobInfo> {
    const out = options.out ?? process.stdout;
    const err = options.err ?? process.stderr;
    const info = await this.poll(jobId);
    const prefix = info.tasks.length > 1;
    for await (const line of this.logs(jobId, { follow: true })) {
      const text = prefix ? line.data.replace(/^(?=.)/gm, `[${line.taskIndex}] `) : line.data;
      (line.stream === "stderr" ? err : out).write(text);
    }
    return this.wait(jobId);
  }

  /** The job's output, chunk by chunk; with `follow`, until the job finishes. */
  async *logs(jobId: JobId, options: { follow?: boolean; taskIndex?: number; since?: Date } = {}): AsyncGenerator<LogLine> {
    try {
      const stream = this.rpc.streamJobLogs({
        jobId,
        follow: options.follow ?? false,
        ...(options.taskIndex !== undefined ? { taskIndex: options.taskIndex } : {}),
      });
      for await (const res of stream) {
        for (const e of res.entries) {
          const time = e.time ? timestampDate(e.time) : new Date();
          if (options.since && time < options.since) continue;
          yield { time, stream: e.stream === LogStream.STDERR ? "stderr" : "stdout", data: e.data, taskIndex: e.taskIndex, attemptId: e.attemptId };
        }
      }
    } catch (err) {
      throw fromConnectError(err, `logs of ${jobId}`);
    }
  }

  /** Stops the job and its children; resolves to its state after the kill. */
  async terminate(jobId: JobId, reason?: string): Promise<JobInfo> {
    const res = await this.call(`terminate ${jobId}`, () => this.rpc.terminateJob({ jobId, reason: reason ?? "" }));
    if (!res.job) throw new FlusterError(`controller returned no job for ${jobId}`, "internal");
    return jobInfoFromProto(res.job);
  }

  /** Jobs in this client's namespace, newest first. */
  async listJobs(options: { prefix?: string; allNamespaces?: boolean; states?: readonly JobStatus[]; limit?: number } = {}): Promise<JobInfo[]> {
    const res = await this.call("list jobs", () =>
      this.rpc.listJobs({
        namespace: this.namespace,
        prefix: options.prefix ?? "",
        allNamespaces: options.allNamespaces ?? false,
        states: (options.states ?? []).map(jobStateToProto),
        limit: options.limit ?? 0,
      }),
    );
    return res.jobs.map(jobInfoFromProto);
  }

  /** Launches co-located jobs all-or-nothing. Not available yet: arrives with job groups. */
  async launchGroup(_requests: readonly JobRequest[], _group: JobGroupConfig, _reservationId?: ReservationId): Promise<JobId[]> {
    throw new FlusterError("launchGroup is not implemented yet: launch the jobs one by one with launch()", "unimplemented");
  }

  async createReservation(_config: ReservationConfig): Promise<ReservationId> {
    throw new FlusterError("reservations are not implemented yet", "unimplemented");
  }

  async getReservation(_id: ReservationId): Promise<ReservationInfo> {
    throw new FlusterError("reservations are not implemented yet", "unimplemented");
  }

  async releaseReservation(_id: ReservationId): Promise<void> {
    throw new FlusterError("reservations are not implemented yet", "unimplemented");
  }

  /**
   * Registers `address` under `name` in this namespace. The endpoint belongs
   * to `jobId` (default: the job this process runs in) and goes when it ends.
   */
  async registerEndpoint(
    name: string,
    address: string,
    options: { jobId?: JobId; metadata?: Record<string, string>; ttlSeconds?: number } = {},
  ): Promise<string> {
    const jobId = options.jobId ?? process.env.FLUSTER_JOB_ID ?? "";
    const res = await this.call(`register endpoint ${name}`, () =>
      this.rpc.registerEndpoint({
        name,
        address,
        jobId,
        namespace: this.namespace,
        metadata: options.metadata ?? {},
        ttlSeconds: options.ttlSeconds ?? 0,
      }),
    );
    if (!res.endpoint) throw new FlusterError("controller returned no endpoint", "internal");
    return res.endpoint.endpointId;
  }

  /** Renews TTL endpoints; resolves to the ids that no longer exist. */
  async renewEndpoints(endpointIds: readonly string[]): Promise<string[]> {
    const res = await this.call("renew endpoints", () => this.rpc.renewEndpoints({ endpointIds: [...endpointIds] }));
    return res.missing;
  }

  async unregisterEndpoint(endpointId: string): Promise<void> {
    await this.call(`unregister endpoint ${endpointId}`, () => this.rpc.unregisterEndpoint({ endpointId }));
  }

  /** Endpoints registered under exactly `name` in this namespace, oldest first. */
  async lookupEndpoints(name: string): Promise<EndpointInfo[]> {
    const res = await this.call(`lookup ${name}`, () => this.rpc.lookupEndpoints({ name, namespace: this.namespace }));
    return res.endpoints.map(endpointInfo);
  }

  /** Endpoints whose name starts with `prefix` in this namespace (or every namespace). */
  async listEndpoints(prefix = "", options: { allNamespaces?: boolean } = {}): Promise<EndpointInfo[]> {
    const res = await this.call("list endpoints", () =>
      this.rpc.listEndpoints({ prefix, namespace: this.namespace, allNamespaces: options.allNamespaces ?? false }),
    );
    return res.endpoints.map(endpointInfo);
  }

  async listWorkers(): Promise<WorkerInfo[]> {
    const res = await this.call("list workers", () => this.rpc.listWorkers({}));
    return res.workers.map((w) => {
      const device = w.resources?.device?.device;
      return {
        workerId: w.workerId,
        address: w.address,
        health: w.health,
        ...(w.healthReason ? { healthReason: w.healthReason } : {}),
        cpu: w.resources?.cpu ?? 0,
        memory: Number(w.resources?.memoryBytes ?? 0n),
        disk: Number(w.resources?.diskBytes ?? 0n),
        device: device?.case === "gpu" || device?.case === "tpu" ? `${device.case}:${device.value.variant}` : "cpu",
        deviceCount: w.resources?.deviceCount ?? 0,
        usedCpu: w.used?.cpu ?? 0,
        usedMemory: Number(w.used?.memoryBytes ?? 0n),
        runningAttempts: w.runningAttempts,
        attributes: { ...w.attributes },
        ...(w.lastSeen ? { lastSeen: timestampDate(w.lastSeen) } : {}),
      };
    });
  }

  /** Closes the connection. */
  async close(): Promise<void> {
    this.channel.close();
  }
}

function endpointInfo(e: Endpoint): EndpointInfo {
  return {
    endpointId: e.endpointId,
    name: e.name,
    address: e.address,
    namespace: e.namespace,
    ...(e.jobId ? { jobId: e.jobId } : {}),
    metadata: { ...e.metadata },
    registeredAt: e.registeredAt ? timestampDate(e.registeredAt) : new Date(0),
    ...(e.expiresAt ? { expiresAt: timestampDate(e.expiresAt) } : {}),
  };
}
