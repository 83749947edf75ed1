// The Cluster client: launch, observe and stop jobs, and use the endpoint
// registry, over ControllerService. Waiting is event-driven (WatchJob), never
// a polling loop.
import { create } from "@bufbuild/protobuf";
import { randomBytes, randomUUID } from "node:crypto";
import { setMaxListeners } from "node:events";
import { resolve } from "node:path";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { ERROR_BRAND, FlusterError, ValidationError } from "../../core/errors.js";
import { isFinished, type JobStatus } from "../../core/status.js";
import { validateJobRequest, type JobId, type JobInfo, type JobRequest, type Namespace } from "../../core/job.js";
import {
  validateJobGroupConfig,
  validateReservationConfig,
  type JobGroupConfig,
  type JobGroupInfo,
  type ReservationConfig,
  type ReservationId,
  type ReservationInfo,
} from "../../core/reservation.js";
import { groupInfoFromProto, jobInfoFromProto, jobSpecToProto, jobStateToProto, reservationInfoFromProto, reservationSpecToProto } from "../../rpc/convert.js";
import { fromConnectError, isTransportFailure } from "../../rpc/errors.js";
import { backoffDelay, retryStream } from "../../core/backoff.js";
import { checkPositive } from "../../core/validate.js";
import { checkSignal } from "../../core/abort.js";
import { ControllerService } from "../../rpc/gen/fluster/cluster/v1/controller_pb.js";
import { WorkerService } from "../../rpc/gen/fluster/worker/v1/worker_pb.js";
import { EnvironmentSpecSchema, LogStream, type Endpoint, type Job } from "../../rpc/gen/fluster/cluster/v1/types_pb.js";
import { DEFAULT_MAX_BUNDLE_BYTES, packWorkspace } from "../bundle/pack.js";
import { uploadBundle } from "../bundle/upload.js";
import { BUNDLE_MISSING } from "../bundle/manifest.js";
import { defaultWorkspace } from "../bundle/workspace.js";
import { createRpcChannel, normalizeBaseUrl, type RpcChannel } from "../../rpc/transport.js";
import { commandJobError, decodeJobResults, isCommandJob, noResultsMessage, type ResultsOptions } from "./results.js";
import { classifyControllerFailure, controllerError, speaksTls, type ControllerContext } from "./errors.js";

/** Options of {@link Cluster.connect}. */
export interface ClusterOptions {
  /** Namespace for launched jobs and endpoint lookups. @default FLUSTER_NAMESPACE, else "default" */
  namespace?: Namespace;
  /** Bearer token. @default FLUSTER_TOKEN */
  token?: string;
  /**
   * PEM file of CA certificates an https:// controller's certificate may
   * chain to, besides the system's (a self-signed or private CA).
   * @default FLUSTER_TLS_CA
   */
  tlsCaFile?: string;
  /**
   * Seconds the first call waits for the controller to answer before failing
   * with "no answer from …" (a wrong port, a server that never speaks).
   * Later calls are not limited. @default 10
   */
  connectTimeoutSeconds?: number;
  /**
   * TTL of endpoints this client registers outside a job (no `jobId`, not
   * running in a job) without a `ttlSeconds` of their own. The client renews
   * them while it lives, so those of a program that dies (even SIGKILLed)
   * disappear within this time; endpoints of a job go with the job instead.
   * @default 30
   */
  endpointTtlSeconds?: number;
  /**
   * Largest workspace, in bytes, that `launch` packs into a bundle; a bigger
   * one is refused with its largest files and folders named.
   * @default 104857600 (100 MiB)
   */
  maxBundleBytes?: number;
}

/** An endpoint this client keeps alive by renewing it. */
interface EndpointLease {
  /** The id the controller knows now (a new one after a re-registration). */
  currentId: string;
  name: string;
  address: string;
  metadata: Record<string, string>;
  ttlSeconds: number;
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
  /** The job that owns it: it goes when the job finishes. */
  jobId?: JobId;
  /** The attempt that owns it: it goes when that attempt ends (also when its task is retried). */
  attemptId?: string;
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

/** A VM the autoscaler asked a platform for (`fluster vm list`). */
export interface VmInfo {
  vmId: string;
  /** Its scale group. */
  group: string;
  platform: string;
  /** `requested`, `booting`, `ready`, `draining`, `released` or `failed`. */
  state: string;
  /** When it entered its state. */
  since: Date;
  createdAt: Date;
  /** The worker ids its hosts register with. */
  workerIds: string[];
  /** The platform's own name for it, when it has one. */
  platformId?: string;
  /** Why it failed or was released. */
  reason?: string;
}

/** A scale group and what the autoscaler last decided for it. */
export interface ScaleGroupInfo {
  name: string;
  platform: string;
  minVms: number;
  maxVms: number;
  /** Its VMs per live state. */
  vms: { requested: number; booting: number; ready: number; draining: number };
  /** Pending tasks it could serve that got no VM (at maxVms, or backing off). */
  waitingTasks: number;
  /** One sentence, e.g. "at maxVms (4): 12 tasks wait". */
  reason: string;
}

export interface WaitOptions {
  /** Give up after this long with a `deadline_exceeded` error. @default no limit */
  timeoutSeconds?: number;
  /** Throw a {@link JobFailedError} when a job ends other than `succeeded`. @default false */
  raiseOnFailure?: boolean;
  /**
   * Stops waiting when it aborts: the watch streams end and the promise
   * rejects with `signal.reason` (at once for an already-aborted signal).
   * The jobs are not touched (waiting started no remote work; use
   * `terminate` to stop a job). @default none
   */
  signal?: AbortSignal;
}

/** Options of {@link Cluster.monitor}. */
export interface MonitorOptions {
  /** Where the job's stdout goes. @default process.stdout */
  out?: NodeJS.WritableStream;
  /** Where the job's stderr goes. @default process.stderr */
  err?: NodeJS.WritableStream;
  /**
   * Stops streaming and waiting when it aborts: the log stream ends and the
   * promise rejects with `signal.reason`; the job runs on. @default none
   */
  signal?: AbortSignal;
}

/** Options of {@link Cluster.logs}. */
export interface LogsOptions {
  /** Keep streaming new output until the job finishes. @default false */
  follow?: boolean;
  /** Only this task's output. @default every task's */
  taskIndex?: number;
  /** Only output written at or after this time. @default all of it */
  since?: Date;
  /**
   * Ends the stream when it aborts: the RPC stream is closed and the
   * iteration throws `signal.reason` on its next step (at once for an
   * already-aborted signal). @default none
   */
  signal?: AbortSignal;
}

/** A job ended `failed`, `killed` or `unschedulable` and the caller asked to raise on failure. */
export class JobFailedError extends FlusterError {
  static override readonly [ERROR_BRAND]: string = "fluster.JobFailedError";
  override name = "JobFailedError";
  readonly job: JobInfo;

  /** `message` replaces the default one ("job X (name) failed: …") when the caller can say more. */
  constructor(job: JobInfo, message?: string) {
    super(message ?? `job ${job.jobId} (${job.name}) ${job.status}${job.errorMessage ? `: ${job.errorMessage}` : ""}`, "failed_precondition");
    this.job = job;
  }
}

/** Options of {@link Cluster.launch}. */
export interface LaunchOptions {
  /** An active reservation of this namespace to run in: its held room is used first. @default none */
  reservationId?: ReservationId;
}

function checkReservationId(id: unknown): string {
  if (id === undefined) return "";
  if (typeof id !== "string" || id === "") throw new ValidationError("reservationId", `must be a non-empty string, got ${JSON.stringify(id)}`);
  return id;
}

export class Cluster {
  readonly address: string;
  readonly namespace: Namespace;
  /** The job this client runs inside, if any: jobs it launches are its children. */
  readonly parentJobId: JobId | undefined;
  protected readonly channel: RpcChannel;
  private readonly explicitNamespace: boolean;
  private readonly failureContext: ControllerContext;
  private readonly endpointTtlSeconds: number;
  /** Endpoints renewed by this client, by the id registerEndpoint returned. */
  private readonly leases = new Map<string, EndpointLease>();
  private renewTimer: NodeJS.Timeout | undefined;
  private renewFailures = 0;
  private closed = false;
  private readonly closeHooks = new Set<() => void>();
  private readonly maxBundleBytes: number;
  /** Packs and uploads in progress by workspace, so that launches made together share one. */
  private readonly bundling = new Map<string, Promise<{ root: string; bundleId: string }>>();
  /** Bundles this client has registered with the controller. */
  private readonly registeredBundles = new Set<string>();
  /** Blobs the controller held at an earlier upload: a re-launch asks only about the others. */
  private readonly knownBlobs = new Set<string>();
  /** Whether this client sends a bearer token at all (without one, no controller it can use has auth on). */
  private readonly hasToken: boolean;
  /** This namespace's credential and the cluster key, as last issued; renewed halfway through its life. */
  private namespaceAuth: NamespaceAuth | undefined;
  private namespaceAuthPending: Promise<NamespaceAuth> | undefined;

  protected constructor(address: string, options: ClusterOptions = {}) {
    this.address = normalizeBaseUrl(address);
    this.explicitNamespace = options.namespace !== undefined;
    this.namespace = options.namespace ?? process.env.FLUSTER_NAMESPACE ?? "default";
    if (this.namespace === "") throw new ValidationError("namespace", "must not be empty");
    this.parentJobId = process.env.FLUSTER_JOB_ID || undefined;
    const connectTimeoutSeconds = checkPositive(options.connectTimeoutSeconds ?? 10, "connectTimeoutSeconds");
    this.endpointTtlSeconds = checkPositive(options.endpointTtlSeconds ?? 30, "endpointTtlSeconds");
    this.maxBundleBytes = checkPositive(options.maxBundleBytes ?? DEFAULT_MAX_BUNDLE_BYTES, "maxBundleBytes");
    const token = options.token ?? process.env.FLUSTER_TOKEN;
    this.hasToken = Boolean(token);
    this.failureContext = {
      address: this.address,
      connectTimeoutSeconds,
      ...(token ? { tokenSource: options.token !== undefined ? ("option" as const) : ("FLUSTER_TOKEN" as const) } : {}),
    };
    this.channel = createRpcChannel(this.address, {
      ...(options.token !== undefined ? { token: options.token } : {}),
      ...(options.tlsCaFile !== undefined ? { tlsCaFile: options.tlsCaFile } : {}),
      firstAnswerTimeoutMs: connectTimeoutSeconds * 1000,
    });
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

  private async call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw await this.explain(err);
    }
  }

  /**
   * A failed call as the error to throw: a connection failure gets the one
   * line of client/errors.ts that says what to do; an answer of the
   * controller keeps its own message.
   */
  private async explain(err: unknown): Promise<FlusterError> {
    let kind = classifyControllerFailure(err, this.failureContext);
    if (kind === "not_a_controller" && (await this.isWorker())) kind = "a_worker";
    if (!kind && !this.channel.answered && this.address.startsWith("http:") && (await speaksTls(this.address))) kind = "plain_to_tls";
    return fromConnectError(controllerError(err, kind, this.failureContext));
  }

  /** Whether the server at this address answers as a worker daemon (asked only after it refused a controller call). */
  private async isWorker(): Promise<boolean> {
    try {
      await this.channel.client(WorkerService).healthCheck({}, { timeoutMs: 2_000 });
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Before a stream, which may rightly stay silent, one unary call proves
   * that a controller answers at this address (only until one has): a
   * wrong address fails at once with its own message instead of a stream
   * that waits or retries.
   */
  private async greet(probe: () => Promise<unknown>): Promise<void> {
    if (!this.channel.answered) await this.call(probe);
  }

  /**
   * Validates and submits a job; resolves to its id once the controller has
   * stored it. The job's workspace (`environment.workspace`, default: the
   * caller's npm project, see {@link defaultWorkspace}) is packed into a
   * bundle and uploaded first; only the files the controller lacks travel.
   */
  async launch(request: JobRequest, options: LaunchOptions = {}): Promise<JobId> {
    const reservationId = checkReservationId(options.reservationId);
    const validated = validateJobRequest(request);
    const spec = jobSpecToProto(validated);
    const requestId = randomUUID();
    return this.withBundlesUploaded(async () => {
      await this.attachBundle(spec, validated);
      const res = await this.call(() =>
        this.rpc.launchJob({
          job: spec,
          namespace: this.launchNamespace(),
          parentJobId: this.parentJobId ?? "",
          requestId,
          reservationId,
        }),
      );
      return res.jobId;
    });
  }

  /** A child launched from inside a job runs in its parent's namespace unless this client was given one. */
  private launchNamespace(): string {
    return this.explicitNamespace || !this.parentJobId ? this.namespace : "";
  }

  /** Packs and uploads the job's workspace (`environment.workspace`, default: the caller's npm project) and names it in `spec`. */
  private async attachBundle(spec: ReturnType<typeof jobSpecToProto>, validated: ReturnType<typeof validateJobRequest>): Promise<void> {
    const entrypoint = validated.entrypoint;
    const workspace = validated.environment.workspace ?? defaultWorkspace(entrypoint.kind === "function" ? entrypoint.ref.module : undefined);
    const { root, bundleId } = await this.bundle(resolve(workspace));
    spec.environment ??= create(EnvironmentSpecSchema);
    spec.environment.workspace = root;
    spec.environment.bundleId = bundleId;
  }

  /** Runs `submit`; when the controller swept (or lost) a bundle this client registered before, uploads again, once. */
  private async withBundlesUploaded<T>(submit: () => Promise<T>): Promise<T> {
    try {
      return await submit();
    } catch (err) {
      if (!(err instanceof FlusterError && err.code === "failed_precondition" && err.message.includes(BUNDLE_MISSING))) throw err;
      this.registeredBundles.clear();
      this.knownBlobs.clear();
      return submit();
    }
  }

  /** Packs `workspace` and uploads what the controller lacks of it. */
  private bundle(workspace: string): Promise<{ root: string; bundleId: string }> {
    let pending = this.bundling.get(workspace);
    if (!pending) {
      pending = (async () => {
        const packed = await packWorkspace(workspace, { maxBytes: this.maxBundleBytes });
        // Registered by this client before: the launch names it by id alone (the controller says if it no longer has it).
        if (this.registeredBundles.has(packed.bundleId)) return { root: packed.root, bundleId: packed.bundleId };
        const bundleId = await this.call(() => uploadBundle(this.rpc, packed, this.knownBlobs));
        this.registeredBundles.add(bundleId);
        return { root: packed.root, bundleId };
      })().finally(() => this.bundling.delete(workspace));
      this.bundling.set(workspace, pending);
    }
    return pending;
  }

  /** The job's current state, without waiting. */
  async poll(jobId: JobId): Promise<JobInfo> {
    const res = await this.call(() => this.rpc.getJobStatus({ jobId }));
    if (!res.job) throw new FlusterError(`controller returned no job for ${jobId}`, "internal");
    return jobInfoFromProto(res.job);
  }

  /**
   * Waits until the job (or every job) is finished. `options.signal`
   * stops the wait: the promise rejects with its reason and the jobs run on.
   */
  wait(jobId: JobId, options?: WaitOptions): Promise<JobInfo>;
  wait(jobIds: readonly JobId[], options?: WaitOptions): Promise<JobInfo[]>;
  async wait(jobIds: JobId | readonly JobId[], options: WaitOptions = {}): Promise<JobInfo | JobInfo[]> {
    const many = Array.isArray(jobIds);
    const ids: readonly JobId[] = many ? jobIds : [jobIds as JobId];
    const given = checkSignal(options.signal, "signal");
    given?.throwIfAborted();
    const timeout = options.timeoutSeconds !== undefined ? AbortSignal.timeout(options.timeoutSeconds * 1000) : undefined;
    // A signal of our own (AbortSignal.any keeps no listener on the caller's), so raising its listener limit touches nothing of the caller's.
    const signal = given ? AbortSignal.any(timeout ? [given, timeout] : [given]) : timeout;
    // One listener per job's watch stream (each released when its stream ends), so not a leak.
    if (signal) setMaxListeners(0, signal);
    const infos = await Promise.all(
      ids.map(async (id) => {
        try {
          return await this.waitOne(id, signal, options.timeoutSeconds);
        } catch (err) {
          // The caller's abort wins over the deadline error a stopped watch leads to.
          if (given?.aborted) throw given.reason;
          throw err;
        }
      }),
    );
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
   * A function job's return value per task, in task order, decoded with the
   * value codec (a function that returns nothing gives `undefined`). Waits
   * for the job to finish as {@link wait} does, up to `timeoutSeconds`
   * (then a `deadline_exceeded` error). A command job is refused at once
   * (`failed_precondition`: it has no values, only logs); a job that ended
   * other than `succeeded` throws a {@link JobFailedError} naming the task at
   * fault ("job X failed: task 2 failed: RangeError: …"); a succeeded task
   * whose value the controller lacks throws `not_found`. `signal` stops the
   * wait as in {@link wait}: the promise rejects with its reason.
   */
  async results<T = unknown>(jobId: JobId, options: ResultsOptions = {}): Promise<T[]> {
    if (options.timeoutSeconds !== undefined) checkPositive(options.timeoutSeconds, "timeoutSeconds");
    const signal = checkSignal(options.signal, "signal");
    signal?.throwIfAborted();
    let job = await this.jobRecord(jobId);
    if (isCommandJob(job)) throw commandJobError(jobId);
    if (!isFinished(jobInfoFromProto(job).status)) {
      await this.wait(jobId, { ...(options.timeoutSeconds !== undefined ? { timeoutSeconds: options.timeoutSeconds } : {}), ...(signal ? { signal } : {}) });
      job = await this.jobRecord(jobId);
    }
    const info = jobInfoFromProto(job);
    if (info.status !== "succeeded") throw new JobFailedError(info, noResultsMessage(job));
    return decodeJobResults(job) as T[];
  }

  /** The job as the controller holds it: with its spec and every attempt's result. */
  private async jobRecord(jobId: JobId): Promise<Job> {
    const res = await this.call(() => this.rpc.getJobStatus({ jobId }));
    if (!res.job) throw new FlusterError(`controller returned no job for ${jobId}`, "internal");
    return res.job;
  }

  /**
   * The job now and after every change, until it is finished (or `signal`
   * aborts, which ends the iteration). A dropped connection re-subscribes.
   */
  async *watch(jobId: JobId, options: { signal?: AbortSignal } = {}): AsyncGenerator<JobInfo> {
    const { signal } = options;
    await this.greet(() => this.rpc.getJobStatus({ jobId }));
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
    yield* this.resubscribing(() => open.call(this), signal);
  }

  /**
   * The endpoints registered under `name` in this namespace, now and after
   * every change, until `signal` aborts (which ends the iteration). A
   * dropped connection re-subscribes.
   */
  async *watchEndpoints(name: string, options: { signal?: AbortSignal } = {}): AsyncGenerator<EndpointInfo[]> {
    const { signal } = options;
    await this.greet(() => this.rpc.lookupEndpoints({ name, namespace: this.namespace }));
    const open = async function* (this: Cluster): AsyncGenerator<EndpointInfo[]> {
      for await (const res of this.rpc.watchEndpoints({ name, namespace: this.namespace }, signal ? { signal } : {})) yield res.endpoints.map(endpointInfo);
      if (!signal?.aborted) throw new FlusterError(`the watch of endpoints ${name} ended early`, "unavailable");
    };
    yield* this.resubscribing(() => open.call(this), signal);
  }

  /** Reads a server stream, opening it again after transport failures; an abort of `signal` ends it quietly. */
  private async *resubscribing<T>(open: () => AsyncIterable<T>, signal: AbortSignal | undefined): AsyncGenerator<T> {
    const explain = (err: unknown) => this.explain(err);
    try {
      yield* retryStream(
        async function* () {
          try {
            yield* open();
          } catch (err) {
            throw await explain(err);
          }
        },
        { initialMs: 200, maxMs: 2_000, attempts: 30, ...(signal ? { signal } : {}), retryIf: (err) => isTransportFailure(err) || (err instanceof FlusterError && err.code === "internal") },
      );
    } catch (err) {
      if (!signal?.aborted) throw err;
    }
  }

  /**
   * Streams the job's logs to stdout/stderr until it finishes; resolves to
   * its final state. `options.signal` stops streaming and waiting (the log
   * stream is closed; the job runs on) and rejects with its reason.
   */
  async monitor(jobId: JobId, options: MonitorOptions = {}): Promise<JobInfo> {
    const signal = checkSignal(options.signal, "signal");
    signal?.throwIfAborted();
    const out = options.out ?? process.stdout;
    const err = options.err ?? process.stderr;
    const info = await this.poll(jobId);
    signal?.throwIfAborted();
    const prefix = info.tasks.length > 1;
    for await (const line of this.logs(jobId, { follow: true, ...(signal ? { signal } : {}) })) {
      const text = prefix ? line.data.replace(/^(?=.)/gm, `[${line.taskIndex}] `) : line.data;
      (line.stream === "stderr" ? err : out).write(text);
    }
    return this.wait(jobId, signal ? { signal } : {});
  }

  /**
   * The job's output, chunk by chunk; with `follow`, until the job
   * finishes. When `options.signal` aborts, the RPC stream is closed and
   * the iteration throws `signal.reason` on its next step.
   */
  async *logs(jobId: JobId, options: LogsOptions = {}): AsyncGenerator<LogLine> {
    const signal = checkSignal(options.signal, "signal");
    signal?.throwIfAborted();
    await this.greet(() => this.rpc.getJobStatus({ jobId }));
    signal?.throwIfAborted();
    try {
      const stream = this.rpc.streamJobLogs(
        {
          jobId,
          follow: options.follow ?? false,
          ...(options.taskIndex !== undefined ? { taskIndex: options.taskIndex } : {}),
        },
        signal ? { signal } : {},
      );
      for await (const res of stream) {
        for (const e of res.entries) {
          const time = e.time ? timestampDate(e.time) : new Date();
          if (options.since && time < options.since) continue;
          // Entries read before the abort are not handed out after it.
          signal?.throwIfAborted();
          yield { time, stream: e.stream === LogStream.STDERR ? "stderr" : "stdout", data: e.data, taskIndex: e.taskIndex, attemptId: e.attemptId };
        }
      }
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      throw await this.explain(err);
    }
  }

  /** Stops the job and its children; resolves to its state after the kill. */
  async terminate(jobId: JobId, reason?: string): Promise<JobInfo> {
    const res = await this.call(() => this.rpc.terminateJob({ jobId, reason: reason ?? "" }));
    if (!res.job) throw new FlusterError(`controller returned no job for ${jobId}`, "internal");
    return jobInfoFromProto(res.job);
  }

  /** Jobs in this client's namespace, newest first. */
  async listJobs(options: { prefix?: string; allNamespaces?: boolean; states?: readonly JobStatus[]; limit?: number } = {}): Promise<JobInfo[]> {
    const res = await this.call(() =>
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

  /**
   * Launches jobs as one group: placed all together or none (in one region
   * by default, one zone with `sameZone`), and ended together (when one
   * fails or is killed, the others are killed). With `reservationId`, they
   * run in that reservation. Resolves to the job ids in request order; the
   * group's id is {@link JobGroupInfo.groupId} of `getGroup` on any job's
   * `groupId`, or use {@link launchGroupWithId}.
   */
  async launchGroup(requests: readonly JobRequest[], group: JobGroupConfig, reservationId?: ReservationId): Promise<JobId[]> {
    return (await this.launchGroupWithId(requests, group, reservationId)).jobIds;
  }

  /** As {@link launchGroup}, resolving to the group's id with its jobs'. */
  async launchGroupWithId(requests: readonly JobRequest[], group: JobGroupConfig, reservationId?: ReservationId): Promise<{ groupId: string; jobIds: JobId[] }> {
    const config = validateJobGroupConfig(group);
    const reservation = checkReservationId(reservationId);
    if (!Array.isArray(requests) || requests.length === 0) throw new ValidationError("requests", "must hold at least one JobRequest");
    const validated = requests.map((request, i) => {
      try {
        return validateJobRequest(request);
      } catch (err) {
        if (err instanceof ValidationError) throw new ValidationError(`requests[${i}].${err.field}`, err.message.slice(err.field.length + 1));
        throw err;
      }
    });
    const specs = validated.map(jobSpecToProto);
    const requestId = randomUUID();
    return this.withBundlesUploaded(async () => {
      for (const [i, spec] of specs.entries()) await this.attachBundle(spec, validated[i] as (typeof validated)[number]);
      const res = await this.call(() =>
        this.rpc.launchJobGroup({
          jobs: specs,
          group: { name: config.name, sameRegion: config.sameRegion, sameZone: config.sameZone },
          reservationId: reservation,
          namespace: config.namespace ?? this.launchNamespace(),
          parentJobId: this.parentJobId ?? "",
          requestId,
        }),
      );
      return { groupId: res.groupId, jobIds: res.jobIds };
    });
  }

  /** The group now: its status rolled up from its jobs. */
  async getGroup(groupId: string): Promise<JobGroupInfo> {
    const res = await this.call(() => this.rpc.getJobGroup({ groupId }));
    if (!res.group) throw new FlusterError(`controller returned no group for ${groupId}`, "internal");
    return groupInfoFromProto(res.group);
  }

  /** Groups in this client's namespace (or every namespace), newest first. */
  async listGroups(options: { prefix?: string; allNamespaces?: boolean } = {}): Promise<JobGroupInfo[]> {
    const res = await this.call(() => this.rpc.listJobGroups({ namespace: this.namespace, prefix: options.prefix ?? "", allNamespaces: options.allNamespaces ?? false }));
    return res.groups.map(groupInfoFromProto);
  }

  /** Kills every unfinished job of the group; resolves to the group after the kill. */
  async terminateGroup(groupId: string, reason?: string): Promise<JobGroupInfo> {
    const res = await this.call(() => this.rpc.terminateJobGroup({ groupId, reason: reason ?? "" }));
    if (!res.group) throw new FlusterError(`controller returned no group for ${groupId}`, "internal");
    return groupInfoFromProto(res.group);
  }

  /**
   * Holds capacity for upcoming jobs in this client's namespace: slots of
   * `minResources`' per-task shape, `minResources.replicas` of them at
   * least, jobs launched into it (`launch(request, { reservationId })`)
   * growing to `maxResources.replicas` tasks, until `ttlSeconds` pass or
   * {@link releaseReservation}.
   */
  async createReservation(config: ReservationConfig): Promise<ReservationId> {
    const validated = validateReservationConfig(config);
    const requestId = randomUUID();
    const res = await this.call(() => this.rpc.createReservation({ reservation: reservationSpecToProto(validated), namespace: this.namespace, requestId }));
    return res.reservationId;
  }

  async getReservation(id: ReservationId): Promise<ReservationInfo> {
    const res = await this.call(() => this.rpc.getReservation({ reservationId: id }));
    if (!res.reservation) throw new FlusterError(`controller returned no reservation for ${id}`, "internal");
    return reservationInfoFromProto(res.reservation);
  }

  /** Active reservations of this namespace, newest first; `includeEnded` adds expired and released ones. */
  async listReservations(options: { includeEnded?: boolean; allNamespaces?: boolean } = {}): Promise<ReservationInfo[]> {
    const res = await this.call(() =>
      this.rpc.listReservations({ namespace: this.namespace, includeEnded: options.includeEnded ?? false, allNamespaces: options.allNamespaces ?? false }),
    );
    return res.reservations.map(reservationInfoFromProto);
  }

  /** Ends the reservation now: it holds nothing more; its jobs run on as ordinary jobs. Releasing an ended one does nothing. */
  async releaseReservation(id: ReservationId, reason?: string): Promise<void> {
    await this.call(() => this.rpc.releaseReservation({ reservationId: id, reason: reason ?? "" }));
  }

  /**
   * Registers `address` under `name` in this namespace. Inside a job the
   * endpoint belongs to the attempt this process runs as (`attemptId`,
   * default `FLUSTER_ATTEMPT_ID`) and goes when that attempt ends, so a
   * retried task leaves no dead address behind; `attemptId: ""` makes it
   * the job's. With a `jobId` (default: the job this process runs in) and no
   * attempt, it belongs to that job and goes when the job finishes.
   * Outside a job, without a `ttlSeconds`, it lives while this client does:
   * it gets the client's `endpointTtlSeconds` and is renewed until
   * {@link unregisterEndpoint} or {@link close}. An explicit `ttlSeconds` is
   * the caller's to renew ({@link renewEndpoints}).
   */
  async registerEndpoint(
    name: string,
    address: string,
    options: { jobId?: JobId; attemptId?: string; metadata?: Record<string, string>; ttlSeconds?: number } = {},
  ): Promise<string> {
    const ownJob = process.env.FLUSTER_JOB_ID ?? "";
    const jobId = options.jobId ?? ownJob;
    // Another job's endpoint is that job's, not this process's attempt's.
    const attemptId = options.attemptId ?? (jobId !== "" && jobId === ownJob ? (process.env.FLUSTER_ATTEMPT_ID ?? "") : "");
    const leased = jobId === "" && attemptId === "" && options.ttlSeconds === undefined;
    const ttlSeconds = leased ? this.endpointTtlSeconds : (options.ttlSeconds ?? 0);
    const metadata = options.metadata ?? {};
    const endpointId = await this.register(name, address, { jobId, attemptId }, metadata, ttlSeconds);
    if (leased) {
      this.leases.set(endpointId, { currentId: endpointId, name, address, metadata, ttlSeconds });
      this.scheduleRenewal();
    }
    return endpointId;
  }

  private async register(
    name: string,
    address: string,
    owner: { jobId: string; attemptId: string },
    metadata: Record<string, string>,
    ttlSeconds: number,
  ): Promise<string> {
    const { jobId, attemptId } = owner;
    const res = await this.call(() => this.rpc.registerEndpoint({ name, address, jobId, attemptId, namespace: this.namespace, metadata, ttlSeconds }));
    if (!res.endpoint) throw new FlusterError("controller returned no endpoint", "internal");
    return res.endpoint.endpointId;
  }

  /** Renews TTL endpoints; resolves to the ids that no longer exist. */
  async renewEndpoints(endpointIds: readonly string[]): Promise<string[]> {
    const res = await this.call(() => this.rpc.renewEndpoints({ endpointIds: [...endpointIds] }));
    return res.missing;
  }

  /** Removes an endpoint (and stops renewing it); an unknown id is not an error. */
  async unregisterEndpoint(endpointId: string): Promise<void> {
    const lease = this.leases.get(endpointId);
    this.leases.delete(endpointId);
    if (this.leases.size === 0) this.stopRenewal();
    await this.call(() => this.rpc.unregisterEndpoint({ endpointId: lease?.currentId ?? endpointId }));
  }

  /**
   * The next renewal of leased endpoints: three times per TTL, sooner
   * (with backoff) after a failed one. The timer never keeps the process alive.
   */
  private scheduleRenewal(): void {
    if (this.closed || this.renewTimer || this.leases.size === 0) return;
    const ttlMs = Math.min(...[...this.leases.values()].map((l) => l.ttlSeconds)) * 1000;
    const intervalMs = ttlMs / 3;
    const delayMs = this.renewFailures === 0 ? intervalMs : Math.min(intervalMs, backoffDelay(this.renewFailures - 1, { initialMs: 250, maxMs: intervalMs }));
    this.renewTimer = setTimeout(() => {
      void this.renewLeases().finally(() => {
        this.renewTimer = undefined;
        this.scheduleRenewal();
      });
    }, delayMs);
    this.renewTimer.unref();
  }

  private stopRenewal(): void {
    clearTimeout(this.renewTimer);
    this.renewTimer = undefined;
  }

  /** Renews every leased endpoint; one the controller lost (expired while this process was stopped, say) is registered again. */
  private async renewLeases(): Promise<void> {
    try {
      const leases = [...this.leases.entries()];
      const missing = new Set(await this.renewEndpoints(leases.map(([, lease]) => lease.currentId)));
      for (const [id, lease] of leases) {
        if (!missing.has(lease.currentId) || this.closed) continue;
        const currentId = await this.register(lease.name, lease.address, { jobId: "", attemptId: "" }, lease.metadata, lease.ttlSeconds);
        // Unregistered meanwhile: the new registration must not outlive the lease.
        if (this.leases.get(id) === lease) lease.currentId = currentId;
        else await this.rpc.unregisterEndpoint({ endpointId: currentId });
      }
      this.renewFailures = 0;
    } catch {
      this.renewFailures += 1; // the controller is unreachable for now: try again soon
    }
  }

  /** Endpoints registered under exactly `name` in this namespace, oldest first. */
  async lookupEndpoints(name: string): Promise<EndpointInfo[]> {
    const res = await this.call(() => this.rpc.lookupEndpoints({ name, namespace: this.namespace }));
    return res.endpoints.map(endpointInfo);
  }

  /** Endpoints whose name starts with `prefix` in this namespace (or every namespace). */
  async listEndpoints(prefix = "", options: { allNamespaces?: boolean } = {}): Promise<EndpointInfo[]> {
    const res = await this.call(() =>
      this.rpc.listEndpoints({ prefix, namespace: this.namespace, allNamespaces: options.allNamespaces ?? false }),
    );
    return res.endpoints.map(endpointInfo);
  }

  /**
   * The bearer token that servers of this client's namespace (actor servers
   * in its jobs) accept from it: a namespace credential the controller signs
   * for whoever may act in the namespace (the operator, a job of it), renewed
   * before it expires. Undefined when the controller runs without auth.
   */
  async namespaceCredential(): Promise<string | undefined> {
    return (await this.currentNamespaceAuth()).credential;
  }

  /**
   * The controller's public key (a JSON Web Key) that verifies the
   * credentials it issues: FLUSTER_CLUSTER_KEY inside a job, else asked of
   * the controller. Undefined when the controller runs without auth.
   */
  async clusterKey(): Promise<string | undefined> {
    const given = process.env.FLUSTER_CLUSTER_KEY;
    if (given) return given;
    return (await this.currentNamespaceAuth()).clusterKey;
  }

  private async currentNamespaceAuth(): Promise<NamespaceAuth> {
    const auth = this.namespaceAuth;
    if (auth && Date.now() < auth.renewAtMs) return auth;
    this.namespaceAuthPending ??= this.fetchNamespaceAuth().finally(() => (this.namespaceAuthPending = undefined));
    try {
      return (this.namespaceAuth = await this.namespaceAuthPending);
    } catch (err) {
      // A credential still valid outlives a controller that does not answer for a while.
      if (auth && auth.expiresAtMs > Date.now()) return auth;
      throw err;
    }
  }

  private async fetchNamespaceAuth(): Promise<NamespaceAuth> {
    if (!this.hasToken) return { renewAtMs: Number.POSITIVE_INFINITY, expiresAtMs: Number.POSITIVE_INFINITY };
    const now = Date.now();
    let res;
    try {
      res = await this.call(() => this.rpc.issueNamespaceCredential({ namespace: this.namespace }));
    } catch (err) {
      // A controller from before credentials: its actor servers take the token as it is.
      if (err instanceof FlusterError && err.code === "unimplemented") return { renewAtMs: Number.POSITIVE_INFINITY, expiresAtMs: Number.POSITIVE_INFINITY };
      throw err;
    }
    const expiresAtMs = res.expiresAt ? timestampDate(res.expiresAt).getTime() : Number.POSITIVE_INFINITY;
    return {
      ...(res.credential ? { credential: res.credential } : {}),
      ...(res.clusterKey ? { clusterKey: res.clusterKey } : {}),
      expiresAtMs,
      renewAtMs: now + (expiresAtMs - now) / 2,
    };
  }

  async listWorkers(): Promise<WorkerInfo[]> {
    const res = await this.call(() => this.rpc.listWorkers({}));
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

  /** The autoscaler's VMs (oldest first; ended ones for a day) and scale groups; both empty without a cluster config. Operator only. */
  async listVms(): Promise<{ vms: VmInfo[]; groups: ScaleGroupInfo[] }> {
    const res = await this.call(() => this.rpc.listVms({}));
    return {
      vms: res.vms.map((vm) => ({
        vmId: vm.vmId,
        group: vm.scaleGroup,
        platform: vm.platform,
        state: vm.state,
        since: vm.since ? timestampDate(vm.since) : new Date(0),
        createdAt: vm.createdAt ? timestampDate(vm.createdAt) : new Date(0),
        workerIds: [...vm.workerIds],
        ...(vm.platformId ? { platformId: vm.platformId } : {}),
        ...(vm.reason ? { reason: vm.reason } : {}),
      })),
      groups: res.groups.map((g) => ({
        name: g.name,
        platform: g.platform,
        minVms: g.minVms,
        maxVms: g.maxVms,
        vms: { requested: g.requested, booting: g.booting, ready: g.ready, draining: g.draining },
        waitingTasks: g.waitingTasks,
        reason: g.reason,
      })),
    };
  }

  /**
   * Runs `hook` when this client is closed, once: layers built on the client
   * (actor pools made through it) let go of what they hold. Returns a
   * function that removes the hook.
   */
  onClose(hook: () => void): () => void {
    this.closeHooks.add(hook);
    return () => this.closeHooks.delete(hook);
  }

  /** Stops renewing endpoints (they expire within their TTL), runs the close hooks and closes the connection. */
  async close(): Promise<void> {
    this.closed = true;
    this.stopRenewal();
    const hooks = [...this.closeHooks];
    this.closeHooks.clear();
    for (const hook of hooks) hook();
    this.channel.close();
  }
}

/** A namespace credential and the key that verifies it (both absent without auth). */
interface NamespaceAuth {
  credential?: string;
  clusterKey?: string;
  expiresAtMs: number;
  renewAtMs: number;
}

function endpointInfo(e: Endpoint): EndpointInfo {
  return {
    endpointId: e.endpointId,
    name: e.name,
    address: e.address,
    namespace: e.namespace,
    ...(e.jobId ? { jobId: e.jobId } : {}),
    ...(e.attemptId ? { attemptId: e.attemptId } : {}),
    metadata: { ...e.metadata },
    registeredAt: e.registeredAt ? timestampDate(e.registeredAt) : new Date(0),
    ...(e.expiresAt ? { expiresAt: timestampDate(e.expiresAt) } : {}),
  };
}
