// ActorServer: hosts objects' methods behind ActorService on its own port and
// registers each under a name in the cluster's endpoint registry.
import { create } from "@bufbuild/protobuf";
import type { Cluster } from "../cluster/client/cluster.js";
import { isLoopbackHost, isWildcardHost } from "../cluster/worker/advertise-host.js";
import type * as http2 from "node:http2";
import { sleep } from "../core/backoff.js";
import { FlusterError, ValidationError } from "../core/errors.js";
import { checkNonNegative, checkPort, checkPositive, checkString } from "../core/validate.js";
import { decodeValue, encodeValue } from "../rpc/codec.js";
import {
  ActorFailureSchema,
  ActorService,
  CallResponseSchema,
  type CallRequest,
  type CallResponse,
} from "../rpc/gen/fluster/actor/v1/actor_pb.js";
import { refuseStream, startRpcServer, type Authenticator, type RpcServer } from "../rpc/transport.js";
import { inCallSpan } from "../rpc/tracing.js";
import { CredentialVerifier, looksLikeCredential, type CredentialClaims } from "../rpc/credentials.js";
import { Code, ConnectError, createContextKey } from "@connectrpc/connect";
import { timingSafeEqual } from "node:crypto";
import { runInActorContext, type ActorContext } from "./context.js";
import { ClusterResolver, FixedResolver, type Resolver } from "./resolver.js";
import { CALL_STREAM_PATH, CallStreamHandler, widenFlowControl, type CallDispatch } from "./stream-server.js";

/** Options of {@link ActorServer}. */
export interface ActorServerOptions {
  /**
   * Address to bind. @default inside a job (FLUSTER_ADVERTISE_HOST set):
   * every interface ("0.0.0.0"; "::" for an IPv6 advertised host), or the
   * advertised host itself when it is a loopback address; outside a job "127.0.0.1"
   */
  host?: string;
  /** Port to bind. @default FLUSTER_PORT_ACTOR when the job asked for it, else a free port */
  port?: number;
  /**
   * Host clients on other machines use; the registered address is on it.
   * @default the bind host; for a wildcard bind the worker's advertised host
   * (FLUSTER_ADVERTISE_HOST) inside a job, else 127.0.0.1
   */
  advertiseHost?: string;
  /**
   * A bearer token callers may present (besides the credentials below).
   * @default FLUSTER_TOKEN when it is a plain (operator) token, not a job's credential
   */
  token?: string;
  /**
   * The controller's public key (JSON Web Key): when known, callers holding
   * a credential of this server's namespace (another job's of the namespace,
   * or a namespace credential an operator's client got) are accepted,
   * verified offline. @default FLUSTER_CLUSTER_KEY inside a job, else asked
   * of the cluster (none without auth)
   */
  clusterKey?: string;
  /** Seconds shutdown waits for calls in flight. @default 10 */
  drainTimeoutSeconds?: number;
  /** Bytes of one call's request (its encoded arguments and more); a larger one gets `resource_exhausted`. @default 64 MiB */
  maxRequestBytes?: number;
}

/** ActorServer options checked, with their defaults filled in. */
interface CompiledActorServerOptions {
  host: string;
  port: number;
  /** The port is the job's FLUSTER_PORT_ACTOR (not one the caller chose): another free port will do if it is taken. */
  portFromJob: boolean;
  advertiseHost: string;
  token: string | undefined;
  clusterKey: string | undefined;
  drainTimeoutSeconds: number;
  maxRequestBytes: number;
}

/** Actor calls carry user values, so they may be larger than cluster RPCs. */
const DEFAULT_ACTOR_MAX_REQUEST_BYTES = 64 * 1024 * 1024;

/** Checks ActorServer options up front; throws a ValidationError naming the field. */
function compileActorServerOptions(options: ActorServerOptions): CompiledActorServerOptions {
  // Inside a job on a worker: the address the worker advertises to the controller.
  const jobHost = process.env.FLUSTER_ADVERTISE_HOST || undefined;
  const host = options.host === undefined ? (jobHost === undefined ? "127.0.0.1" : bindHostFor(jobHost)) : checkString(options.host, "host", { nonEmpty: true });
  const envPort = Number(process.env.FLUSTER_PORT_ACTOR);
  const port = options.port === undefined ? (Number.isInteger(envPort) && envPort > 0 ? envPort : 0) : checkPort(options.port);
  const advertiseHost =
    options.advertiseHost === undefined ? (isWildcardHost(host) ? (jobHost ?? "127.0.0.1") : host) : checkString(options.advertiseHost, "advertiseHost", { nonEmpty: true });
  // Inside a job FLUSTER_TOKEN is the job's own credential: callers never hold that one; they are checked against the cluster key.
  const envToken = process.env.FLUSTER_TOKEN || undefined;
  const token = options.token ?? (envToken !== undefined && !looksLikeCredential(envToken) ? envToken : undefined);
  const clusterKey = options.clusterKey ?? (process.env.FLUSTER_CLUSTER_KEY || undefined);
  const maxRequestBytes = checkPositive(options.maxRequestBytes ?? DEFAULT_ACTOR_MAX_REQUEST_BYTES, "maxRequestBytes");
  return {
    host,
    port,
    portFromJob: options.port === undefined && port !== 0,
    advertiseHost,
    token,
    clusterKey,
    drainTimeoutSeconds: checkNonNegative(options.drainTimeoutSeconds ?? 10, "drainTimeoutSeconds"),
    maxRequestBytes,
  };
}

/**
 * Where a server in a job listens so that it is reachable at the worker's
 * advertised host: every interface, except that a loopback advertised host
 * (a worker only its own machine reaches, such as a LocalCluster's) is bound
 * as it is, which keeps the port off the network.
 */
function bindHostFor(advertised: string): string {
  if (isLoopbackHost(advertised)) return advertised;
  return advertised.includes(":") ? "::" : "0.0.0.0";
}

/** Options of {@link ActorServer.register}. */
export interface RegisterActorOptions {
  /** Stored with the endpoint; visible to lookups. @default {} */
  metadata?: Record<string, string>;
  /**
   * Calls this actor runs at once. The default runs calls one at a time in
   * arrival order, so an actor's state needs no locking. @default 1
   */
  maxConcurrency?: number;
}

/** Who called an actor: the server's own token, or a credential of its namespace. */
export type ActorCaller = { kind: "token" } | Exclude<CredentialClaims, { kind: "worker" }>;

/** Where an actor call's caller is kept in the call's context values. */
const ACTOR_CALLER = createContextKey<ActorCaller | undefined>(undefined, { description: "actor caller" });

/** Id of a registered actor (its endpoint id). */
export type ActorId = string;

/**
 * Lifecycle:
 * - `created`: nothing bound.
 * - `serving`: the port is open; registered actors answer calls.
 * - `stopping`: endpoints unregistered; calls in flight finish, new ones are refused.
 * - `stopped`: port closed.
 */
export type ActorServerState = "created" | "serving" | "stopping" | "stopped";

interface HostedActor {
  name: string;
  instance: object;
  endpointId?: string;
  limiter: Limiter;
  context: ActorContext;
  /** Its calls running or queued now: {@link ActorServer.unregister} waits for them. */
  inFlight: number;
  /** Set while unregister waits for the last call in flight. */
  drained?: () => void;
}

export class ActorServer {
  private stateValue: ActorServerState = "created";
  private readonly cluster: Cluster | undefined;
  private readonly options: CompiledActorServerOptions;
  private readonly actors = new Map<string, HostedActor>();
  private server: RpcServer | undefined;
  private starting: Promise<void> | undefined;
  private inFlight = 0;
  /** CallStreams open now; shutdown ends them once their calls have answered. */
  private readonly streams = new Set<CallStreamHandler>();
  private readonly dispatchCall: CallDispatch = (req, queued) => this.dispatch(req, queued);
  private drained: (() => void) | undefined;
  private stopped: Promise<void> | undefined;
  private resolveStopped: (() => void) | undefined;

  /** `cluster` registers actors by name; without one, clients reach them through a FixedResolver. */
  constructor(cluster: Cluster | undefined, options: ActorServerOptions = {}) {
    this.cluster = cluster;
    this.options = compileActorServerOptions(options);
  }

  get state(): ActorServerState {
    return this.stateValue;
  }

  /** URL clients use to reach this server. */
  get address(): string {
    if (!this.server) throw new FlusterError("actor server is not serving yet", "failed_precondition");
    const host = this.options.advertiseHost;
    return `http://${host.includes(":") ? `[${host}]` : host}:${this.server.port}`;
  }

  /** Opens the port (if not yet) and returns once it is serving. */
  async serveBackground(): Promise<void> {
    if (this.stateValue === "stopping" || this.stateValue === "stopped") {
      throw new FlusterError(`actor server is ${this.stateValue}`, "failed_precondition");
    }
    this.starting ??= this.start();
    await this.starting;
  }

  /** Serves until {@link shutdown} is called. */
  async serve(): Promise<void> {
    await this.serveBackground();
    await this.stopped;
  }

  private async start(): Promise<void> {
    const { host, port, portFromJob, maxRequestBytes } = this.options;
    const authenticator = await this.authenticator();
    const listen = (onPort: number) => startRpcServer({
      host,
      port: onPort,
      limits: { maxRequestBytes },
      // ActorPool's path: one long-lived stream per caller connection, served without connect-node's per-message work.
      streamRoutes: [{ path: CALL_STREAM_PATH, handle: (req, res) => this.openStream(req, res) }],
      ...(authenticator ? { authenticator, tokenHint: `callers need a credential of namespace ${this.namespace} (a job's FLUSTER_TOKEN, or Cluster.namespaceCredential())` } : {}),
      routes: (router) =>
        router.service(ActorService, {
          // Unary calls (buf curl, other languages) take the same dispatch as the stream's.
          call: async (req) => this.dispatch(req),
          healthCheck: () => ({ healthy: this.stateValue === "serving", actors: [...this.actors.keys()] }),
        }),
    });
    try {
      this.server = await listen(port);
    } catch (err) {
      // The job's FLUSTER_PORT_ACTOR was taken between the worker choosing it
      // and this bind: any free port serves as well, since callers find the
      // server through the address it registers, not the port it was offered.
      if (!portFromJob || (err as { code?: unknown }).code !== "EADDRINUSE") throw err;
      this.server = await listen(0);
    }
    this.stopped = new Promise((resolve) => (this.resolveStopped = resolve));
    this.stateValue = "serving";
  }

  /** The namespace whose callers this server accepts (its cluster client's, else the job's). */
  private get namespace(): string {
    return this.cluster?.namespace ?? (process.env.FLUSTER_NAMESPACE || "default");
  }

  /**
   * Who may call: holders of the server's `token`, and (when the cluster
   * key is known) of a credential of this namespace, verified offline and
   * cached. Undefined: the cluster runs without auth and anyone may.
   */
  private async authenticator(): Promise<Authenticator<ActorCaller> | undefined> {
    const { token } = this.options;
    const clusterKey = this.options.clusterKey ?? (await this.cluster?.clusterKey());
    if (token === undefined && clusterKey === undefined) return undefined;
    const verifier = clusterKey !== undefined ? new CredentialVerifier(clusterKey) : undefined;
    const expected = token !== undefined ? Buffer.from(token) : undefined;
    const namespace = this.namespace;
    return {
      key: ACTOR_CALLER,
      async authenticate(given) {
        const buffer = Buffer.from(given);
        if (expected && buffer.length === expected.length && timingSafeEqual(buffer, expected)) return { kind: "token" };
        const claims = verifier ? await verifier.verify(given) : undefined;
        if (!claims || claims.kind === "worker") return undefined;
        if (claims.namespace !== namespace) {
          throw new FlusterError(`a credential of namespace ${claims.namespace} may not call actors of namespace ${namespace}`, "permission_denied");
        }
        return claims;
      },
    };
  }

  /**
   * Hosts `instance` under `name` and registers it with the cluster (owned
   * by the current job, in the cluster client's namespace). Outside a job
   * the endpoint has the client's `endpointTtlSeconds` and is renewed until
   * {@link shutdown} (or the client's `close()`), so a killed program's
   * actors leave the registry within that time.
   */
  async register(name: string, instance: object, options: RegisterActorOptions = {}): Promise<ActorId> {
    if (typeof name !== "string" || name.trim() === "") throw new ValidationError("name", "must be a non-empty actor name");
    if (instance === null || (typeof instance !== "object" && typeof instance !== "function")) {
      throw new ValidationError("instance", "must be an object whose methods the actor serves");
    }
    if (this.actors.has(name)) throw new FlusterError(`an actor named ${JSON.stringify(name)} is already hosted here`, "already_exists");
    const maxConcurrency = options.maxConcurrency ?? 1;
    if (!Number.isInteger(maxConcurrency) || maxConcurrency < 1) {
      throw new ValidationError("maxConcurrency", `must be a whole number ≥ 1, got ${String(maxConcurrency)}`);
    }
    await this.serveBackground();
    const resolver: Resolver = this.cluster ? new ClusterResolver(this.cluster) : new FixedResolver({});
    const actor: HostedActor = {
      name,
      instance,
      limiter: new Limiter(maxConcurrency),
      inFlight: 0,
      context: {
        cluster: this.cluster,
        resolver,
        jobId: process.env.FLUSTER_JOB_ID || undefined,
        namespace: this.cluster?.namespace ?? process.env.FLUSTER_NAMESPACE ?? "default",
        actorName: name,
      },
    };
    this.actors.set(name, actor);
    if (this.cluster) {
      try {
        actor.endpointId = await this.cluster.registerEndpoint(name, this.address, { metadata: options.metadata ?? {} });
      } catch (err) {
        this.actors.delete(name);
        throw err;
      }
    }
    return actor.endpointId ?? `${this.address}/${name}`;
  }

  /**
   * Stops hosting the actor `name` while the server goes on serving its
   * other actors. At once, new calls for it get "no actor … here"
   * (`not_found`), which clients take as not delivered and send to another
   * endpoint of the name, or wait for one; its endpoint leaves the cluster's
   * registry; then this waits for its calls in flight to finish (up to
   * `drainTimeoutSeconds`). Throws a `not_found` FlusterError when no actor
   * of that name is hosted here. While the server is stopping, shutdown
   * unregisters and drains every actor: this only forgets the name.
   */
  async unregister(name: string): Promise<void> {
    const actor = this.actors.get(name);
    if (!actor) {
      throw new FlusterError(`no actor ${JSON.stringify(name)} to unregister here (hosting: ${[...this.actors.keys()].join(", ") || "none"})`, "not_found");
    }
    // Gone from the map first, so that no new call starts and a second unregister finds nothing.
    this.actors.delete(name);
    if (this.stateValue !== "serving") return;
    // Caught at once (and reported after the drain), so a failure is never an unhandled rejection meanwhile.
    const leaving: Promise<{ err: unknown } | undefined> =
      actor.endpointId && this.cluster ? this.cluster.unregisterEndpoint(actor.endpointId).then(() => undefined, (err: unknown) => ({ err })) : Promise.resolve(undefined);
    if (actor.inFlight > 0) {
      const drained = new Promise<void>((resolve) => (actor.drained = resolve));
      const timeout = new AbortController();
      await Promise.race([drained, sleep(this.options.drainTimeoutSeconds * 1000, timeout.signal).catch(() => undefined)]);
      timeout.abort();
      actor.drained = undefined;
    }
    const failed = await leaving;
    if (failed) {
      const error = FlusterError.from(failed.err);
      throw new FlusterError(`actor ${JSON.stringify(name)} is no longer hosted here, but its endpoint ${actor.endpointId} could not be removed from the registry: ${error.message}`, error.code, { cause: failed.err });
    }
  }

  /** Unregisters every actor, waits for calls in flight (up to the drain timeout), and closes the port. */
  async shutdown(): Promise<void> {
    if (this.stateValue === "stopped" || this.stateValue === "stopping") return;
    if (this.stateValue === "created") {
      this.stateValue = "stopped";
      return;
    }
    this.stateValue = "stopping";
    await Promise.allSettled(
      [...this.actors.values()].map((a) => (a.endpointId && this.cluster ? this.cluster.unregisterEndpoint(a.endpointId) : undefined)),
    );
    if (this.inFlight > 0) {
      const drained = new Promise<void>((resolve) => (this.drained = resolve));
      const timeout = new AbortController();
      await Promise.race([drained, sleep(this.options.drainTimeoutSeconds * 1000, timeout.signal).catch(() => undefined)]);
      timeout.abort();
    }
    // Streams end cleanly (calls not yet answered would otherwise look interrupted to their callers).
    for (const stream of this.streams) stream.end();
    await this.server?.shutdown();
    this.stateValue = "stopped";
    this.resolveStopped?.();
  }

  /**
   * Runs one call, whichever path it came by (a unary Call or a CallStream):
   * its answer at once when the method is synchronous and a slot is free (no
   * promise on that path: bench/actor.bench.ts), else a promise. Throws a
   * FlusterError, without running anything, when this server will not run
   * it; callers may then send it elsewhere. A call that must wait for its
   * actor's slot hands `queued` a function that withdraws it (its caller
   * gave up): it then never runs, and rejects as `cancelled`.
   */
  private dispatch(req: CallRequest, queued?: (withdraw: () => void) => void): CallResponse | Promise<CallResponse> {
    if (this.stateValue !== "serving") throw new FlusterError(`actor server is ${this.stateValue}`, "unavailable");
    const actor = this.actors.get(req.actor);
    if (!actor) {
      throw new FlusterError(`no actor ${JSON.stringify(req.actor)} here (hosting: ${[...this.actors.keys()].join(", ") || "none"})`, "not_found");
    }
    // A traced caller sent its trace context: the call runs in a server span, its child.
    if (hasEntries(req.traceContext)) {
      return inCallSpan(ActorService.typeName, "Call", { "fluster.actor": actor.name, "fluster.actor.method": req.method }, req.traceContext, () => this.run(actor, req, queued), failureOf);
    }
    return this.run(actor, req, queued);
  }

  /** Runs a call of a hosted actor once a slot is free. */
  private run(actor: HostedActor, req: CallRequest, queued: ((withdraw: () => void) => void) | undefined): CallResponse | Promise<CallResponse> {
    this.inFlight += 1;
    actor.inFlight += 1;
    if (actor.limiter.tryAcquire()) {
      const outcome = runInActorContext(actor.context, () => invoke(actor, req));
      if (outcome instanceof Promise) return outcome.finally(() => this.release(actor));
      this.release(actor);
      return outcome;
    }
    const waiting = actor.limiter.acquire();
    queued?.(waiting.withdraw);
    return waiting.granted.then(
      () => {
        const outcome = runInActorContext(actor.context, () => invoke(actor, req));
        if (outcome instanceof Promise) return outcome.finally(() => this.release(actor));
        this.release(actor);
        return outcome;
      },
      (err: unknown) => {
        // Withdrawn before it had a slot: it holds none to give back.
        this.callEnded(actor);
        throw err;
      },
    );
  }

  /** A call of `actor` ended: its slot goes to the next waiting call. */
  private release(actor: HostedActor): void {
    actor.limiter.release();
    this.callEnded(actor);
  }

  private callEnded(actor: HostedActor): void {
    this.inFlight -= 1;
    if (this.inFlight === 0) this.drained?.();
    if (--actor.inFlight === 0) actor.drained?.();
  }

  /** A CallStream from a caller: served until either side ends it (see stream-server.ts). */
  private openStream(req: http2.Http2ServerRequest, res: http2.Http2ServerResponse): void {
    if (this.stateValue !== "serving") return refuseStream(res, new ConnectError(`actor server is ${this.stateValue}`, Code.Unavailable));
    widenFlowControl(req.stream.session);
    this.streams.add(new CallStreamHandler(req, res, this.dispatchCall, this.options.maxRequestBytes, (handler) => this.streams.delete(handler)));
  }
}

/**
 * Decodes the arguments, runs the method and encodes what it returned or
 * threw. A synchronous method's answer is returned as it is, not in a
 * promise: only a thenable result is waited for.
 */
function invoke(actor: HostedActor, req: CallRequest): CallResponse | Promise<CallResponse> {
  let value: unknown;
  try {
    const args = decodeValue(req.args);
    if (!Array.isArray(args)) throw new ValidationError("args", "must encode an array of arguments");
    const method = methodOf(actor, req.method);
    value = method.apply(actor.instance, args);
  } catch (err) {
    return failureResponse(err);
  }
  if (isThenable(value)) return Promise.resolve(value).then(valueResponse, failureResponse);
  return valueResponse(value);
}

/** Whether `record` has any key (without building the array of them, on every call). */
function hasEntries(record: object): boolean {
  for (const _key in record) return true;
  return false;
}

/** What a call's answer reports as failed, for its span: the method's error, or nothing when it returned. */
function failureOf(response: CallResponse): Error | undefined {
  if (response.result.case !== "failure") return undefined;
  const failure = response.result.value;
  const error = new Error(failure.message);
  error.name = failure.name;
  error.stack = failure.stack;
  return error;
}

/** A method's return value as the wire carries it (or the error of a value the codec cannot carry). */
function valueResponse(value: unknown): CallResponse {
  try {
    // A plain message object: create() walks the schema, which showed in profiles at one call per answer.
    return { $typeName: "fluster.actor.v1.CallResponse", result: { case: "value", value: encodeValue(value) } };
  } catch (err) {
    return failureResponse(err);
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (typeof value === "object" || typeof value === "function") && value !== null && typeof (value as { then?: unknown }).then === "function";
}

function methodOf(actor: HostedActor, name: string): (...args: unknown[]) => unknown {
  const candidate = name === "constructor" || name.startsWith("__") ? undefined : (actor.instance as Record<string, unknown>)[name];
  if (typeof candidate !== "function") {
    throw new TypeError(`actor ${JSON.stringify(actor.name)} has no method ${JSON.stringify(name)}`);
  }
  return candidate as (...args: unknown[]) => unknown;
}

/** An error as the wire carries it: name, message, stack, and the whole error encoded. */
export function failureResponse(err: unknown): CallResponse {
  const error = err instanceof Error ? err : new Error(String(err));
  let encoded: Uint8Array;
  try {
    encoded = encodeValue(error);
  } catch {
    // Fields the codec cannot carry: send what it can.
    const plain = new Error(error.message);
    plain.name = error.name;
    plain.stack = error.stack ?? "";
    encoded = encodeValue(plain);
  }
  return create(CallResponseSchema, {
    result: {
      case: "failure",
      value: create(ActorFailureSchema, { name: String(error.name), message: String(error.message), stack: String(error.stack ?? ""), error: encoded }),
    },
  });
}

/**
 * At most `limit` holders at once, the rest wait in arrival order. Split into
 * tryAcquire/acquire/release so the common case (a free slot) costs no promise.
 */
class Limiter {
  private active = 0;
  private readonly queue: Array<{ grant: () => void; refuse: (err: Error) => void }> = [];

  constructor(private readonly limit: number) {}

  /** Takes a slot if one is free and nobody is waiting for one. */
  tryAcquire(): boolean {
    if (this.active >= this.limit || this.queue.length > 0) return false;
    this.active += 1;
    return true;
  }

  /**
   * Waits for a slot in arrival order (`release()` hands it over).
   * `withdraw()` takes a waiter out of the line: `granted` then rejects as `cancelled`.
   */
  acquire(): { granted: Promise<void>; withdraw: () => void } {
    let waiter: { grant: () => void; refuse: (err: Error) => void } | undefined;
    const granted = new Promise<void>((grant, refuse) => {
      waiter = { grant, refuse };
      this.queue.push(waiter);
    });
    const withdraw = () => {
      const at = waiter ? this.queue.indexOf(waiter) : -1;
      if (at < 0) return;
      this.queue.splice(at, 1);
      waiter?.refuse(new FlusterError("the caller withdrew the call before it started", "cancelled"));
    };
    return { granted, withdraw };
  }

  release(): void {
    const next = this.queue.shift();
    // The slot passes straight to the next waiter, so a newcomer cannot take it first.
    if (next) next.grant();
    else this.active -= 1;
  }
}
