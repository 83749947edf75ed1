// ActorPool: the client side of an actor name. Typed proxies send calls
// round-robin (call) or to every endpoint (broadcast); calls that could not
// reach an endpoint are re-resolved and sent elsewhere.
import { backoffDelay } from "../core/backoff.js";
import { FlusterError, type FlusterErrorCode } from "../core/errors.js";
import { checkNonNegative } from "../core/validate.js";
import { decodeValue, encodeValue } from "../rpc/codec.js";
import { ActorService, type CallResponse } from "../rpc/gen/fluster/actor/v1/actor_pb.js";
import { startCallSpan } from "../rpc/tracing.js";
import { bearerHeader } from "../rpc/transport.js";
import { actorConnections, callTarget, defaultAuthorization, type CallTarget, type StreamCallOptions } from "./connections.js";
import { SharedEndpointWatch } from "./endpoint-watch.js";
import { ActorError, CallNotDeliveredError } from "./errors.js";

/** One endpoint serving an actor name. */
export interface ActorEndpoint {
  address: string;
  endpointId: string;
  metadata: Record<string, string>;
}

/** Per-call options. */
export interface CallOptions {
  /** Aborts the call. */
  signal?: AbortSignal;
  /** Fails the call with `deadline_exceeded` after this many seconds. @default none */
  timeoutSeconds?: number;
  /**
   * How long a call waits for a live endpoint when none serves its name, or
   * every one it tried refused it (a replacement coming up, say): it follows
   * the registry's changes and tries refusing endpoints again with backoff.
   * Waiting is safe because such a call has reached no actor; a call that may
   * have reached one is never sent again. When the wait ends the call fails
   * with a CallNotDeliveredError, `unavailable`, or `deadline_exceeded` when
   * `timeoutSeconds` ran out first (the wait never outlasts it). 0 fails at
   * once. @default timeoutSeconds when set, else 60
   */
  waitForEndpointSeconds?: number;
}

/** Where a pool's endpoints come from: a resolver's view of one actor name. */
export interface EndpointSource {
  /** The endpoints serving the name now. */
  resolve(): Promise<ActorEndpoint[]>;
  /** The endpoints now and after every change, until `signal` aborts (which ends the iteration). */
  watch(signal: AbortSignal): AsyncIterable<ActorEndpoint[]>;
  /**
   * The bearer token the endpoints' servers accept (a namespace credential
   * when the cluster runs with auth), asked again every minute; without
   * it, calls carry FLUSTER_TOKEN.
   */
  credential?(): Promise<string | undefined>;
}

type AnyFunction = (...args: never[]) => unknown;

/** The method names of `T`. */
export type ActorMethodName<T> = { [K in keyof T]: T[K] extends AnyFunction ? K : never }[keyof T] & string;

/** `T`'s methods, each returning a promise of its (awaited) result. */
export type ActorProxy<T> = {
  [K in ActorMethodName<T>]: T[K] extends (...args: infer A) => infer R ? (...args: A) => Promise<Awaited<R>> : never;
};

/** The outcome of one endpoint's call in a broadcast. */
export type BroadcastResult<R> =
  | { status: "fulfilled"; value: R; endpoint: ActorEndpoint }
  | { status: "rejected"; reason: unknown; endpoint: ActorEndpoint };

/** `T`'s methods, each returning one settled result per endpoint. */
export type BroadcastProxy<T> = {
  [K in ActorMethodName<T>]: T[K] extends (...args: infer A) => infer R ? (...args: A) => Promise<BroadcastResult<Awaited<R>>[]> : never;
};

/** A pool asks its source for the credential again after this long (the source renews it before it expires). */
const CREDENTIAL_REFRESH_MS = 60_000;

/** How long a call waits for a live endpoint when it has neither `waitForEndpointSeconds` nor `timeoutSeconds`. */
const DEFAULT_WAIT_FOR_ENDPOINT_SECONDS = 60;
/** Endpoints that refused a call are tried again after a delay growing from this (re-resolving first)... */
const RETRY_REFUSED_INITIAL_MS = 50;
/** ...up to this: a replacement at a refusing address is found within it. */
const RETRY_REFUSED_MAX_MS = 1_000;
/** A pool re-asks its resolver at most this often when nothing failed. */
const REFRESH_MS = 2_000;

export class ActorPool<T extends object> {
  readonly name: string;
  readonly namespace: string;
  private endpoints: ActorEndpoint[] = [];
  private resolvedAt = 0;
  private next = 0;
  private refreshing: Promise<ActorEndpoint[]> | undefined;
  private defaultCallProxy: ActorProxy<T> | undefined;
  /** The watch calls waiting for an endpoint share; made by the first call that waits. */
  private endpointWatch: SharedEndpointWatch | undefined;
  /** The `Authorization` header calls carry (undefined: FLUSTER_TOKEN's), and when to ask the source again. */
  private auth: { authorization: string | undefined; askedAt: number } | undefined;
  private authPending: Promise<void> | undefined;
  private readonly connectionGroup: object | undefined;
  /** Each method's encoded call header, made at its first call. */
  private readonly targets = new Map<string, CallTarget>();
  /** The `Authorization` header of FLUSTER_TOKEN, for a pool whose source has no credential of its own. */
  private envAuthorization: { value: string | undefined } | undefined;

  constructor(
    name: string,
    private readonly source: EndpointSource,
    options: {
      namespace?: string;
      /** Closing this lets go of the pool's connections too (the cluster client a ClusterResolver's pool came through). */
      connectionGroup?: object;
    } = {},
  ) {
    this.name = name;
    this.namespace = options.namespace ?? "default";
    this.connectionGroup = options.connectionGroup;
  }

  /** Endpoints known at the last resolution. */
  get size(): number {
    return this.endpoints.length;
  }

  /** Asks the resolver again (one request at a time, shared by concurrent callers). */
  async refresh(): Promise<ActorEndpoint[]> {
    this.refreshing ??= this.source.resolve().then(
      (found) => {
        this.endpoints = found;
        this.resolvedAt = Date.now();
        this.refreshing = undefined;
        return found;
      },
      (err: unknown) => {
        this.refreshing = undefined;
        throw err;
      },
    );
    return this.refreshing;
  }

  /**
   * Waits until at least `count` endpoints serve this name, following the
   * registry's changes as they happen (no polling).
   */
  async waitForSize(count: number, options: { timeoutSeconds?: number; signal?: AbortSignal } = {}): Promise<ActorEndpoint[]> {
    const stop = new AbortController();
    // A timer of our own, not AbortSignal.timeout: that one does not keep the process alive while it waits.
    const timer = options.timeoutSeconds !== undefined ? setTimeout(() => stop.abort(), options.timeoutSeconds * 1000) : undefined;
    let found: ActorEndpoint[] = [];
    try {
      for await (found of this.watch(options.signal ? AbortSignal.any([stop.signal, options.signal]) : stop.signal)) if (found.length >= count) return found;
    } finally {
      clearTimeout(timer);
      stop.abort();
    }
    if (options.signal?.aborted) throw FlusterError.from(options.signal.reason);
    throw new FlusterError(
      `actor ${JSON.stringify(this.name)} has ${found.length} of ${count} endpoint(s) in namespace ${this.namespace} after ${options.timeoutSeconds}s`,
      "deadline_exceeded",
    );
  }

  /**
   * The endpoints now and after every change, until `signal` aborts (which
   * ends the iteration); the pool's own list follows along.
   */
  async *watch(signal: AbortSignal): AsyncGenerator<ActorEndpoint[]> {
    for await (const endpoints of this.source.watch(signal)) {
      this.endpoints = endpoints;
      this.resolvedAt = Date.now();
      yield endpoints;
    }
  }

  /** A proxy whose method calls go to one endpoint, round-robin. */
  call(options?: CallOptions): ActorProxy<T> {
    // `pool.call().add(1, 2)` runs once per call: building a Proxy, its
    // handler and a method closure each time showed up in profiles
    // (bench/actor.bench.ts), so the option-less proxy is built once per pool.
    if (options === undefined) return (this.defaultCallProxy ??= this.callProxy({}));
    return this.callProxy(options);
  }

  private callProxy(options: CallOptions): ActorProxy<T> {
    if (options.waitForEndpointSeconds !== undefined) checkNonNegative(options.waitForEndpointSeconds, "waitForEndpointSeconds");
    // Each method's function is made once per proxy, not once per access.
    const methods = new Map<string, (...args: unknown[]) => Promise<unknown>>();
    return new Proxy({} as ActorProxy<T>, {
      // Not thenable: a proxy must be safe to return from an async function.
      get: (_target, method) => {
        if (typeof method !== "string" || method === "then") return undefined;
        let fn = methods.get(method);
        if (fn === undefined) {
          fn = (...args: unknown[]) => this.invoke(method, args, options);
          methods.set(method, fn);
        }
        return fn;
      },
    });
  }

  /** A proxy whose method calls go to every endpoint; resolves to one settled result per endpoint. */
  broadcast(options: CallOptions = {}): BroadcastProxy<T> {
    return new Proxy({} as BroadcastProxy<T>, {
      // Not thenable: a proxy must be safe to return from an async function.
      get: (_target, method) =>
        typeof method === "string" && method !== "then"
          ? async (...args: unknown[]) => {
              const endpoints = await this.refresh();
              const encoded = encodeValue(args);
              return Promise.all(
                endpoints.map((endpoint) =>
                  this.send(endpoint, method, encoded, options).then(
                    (value): BroadcastResult<unknown> => ({ status: "fulfilled", value, endpoint }),
                    (reason: unknown): BroadcastResult<unknown> => ({ status: "rejected", reason, endpoint }),
                  ),
                ),
              );
            }
          : undefined,
    });
  }

  /**
   * Calls `method` on one endpoint. A call that reached no actor (no endpoint
   * serves the name, or the endpoint refused it) goes to another endpoint, or
   * waits for one up to `waitForEndpointSeconds`; a call that may have run
   * (CallInterruptedError) or that the actor failed (ActorError) is never sent again.
   */
  async invoke(method: string, args: readonly unknown[], options: CallOptions = {}): Promise<unknown> {
    const encoded = encodeValue(args);
    const startedAt = Date.now();
    if (this.endpoints.length === 0 || startedAt - this.resolvedAt > REFRESH_MS) await this.refresh();
    // The hot path is one pick and one send; waiting and redirecting live in
    // invokeWaiting, so a call that succeeds at once pays nothing for them.
    const endpoint = this.pick();
    if (endpoint === undefined) return this.invokeWaiting(method, encoded, options, startedAt, undefined);
    try {
      return await this.send(endpoint, method, encoded, options);
    } catch (err) {
      // Safe to resend only when the request never reached an actor.
      if (!(err instanceof CallNotDeliveredError)) throw err;
      return this.invokeWaiting(method, encoded, options, startedAt, { address: endpoint.address, error: err });
    }
  }

  /**
   * The rest of a call that found no endpoint, or whose endpoint refused it,
   * until its deadline: it tries the known endpoints that have not refused it;
   * when none is left it waits for the endpoint set to change (the source's
   * watch, shared by the pool's waiting calls), and tries refusing endpoints
   * again, re-resolved, after a backoff delay (a stale registration may be
   * replaced at the same address). Only calls that reached no actor come here.
   */
  private async invokeWaiting(
    method: string,
    encoded: Uint8Array,
    options: CallOptions,
    startedAt: number,
    refusal: { address: string; error: CallNotDeliveredError } | undefined,
  ): Promise<unknown> {
    const { signal, timeoutSeconds } = options;
    const waitSeconds =
      options.waitForEndpointSeconds === undefined
        ? (timeoutSeconds ?? DEFAULT_WAIT_FOR_ENDPOINT_SECONDS)
        : Math.min(checkNonNegative(options.waitForEndpointSeconds, "waitForEndpointSeconds"), timeoutSeconds ?? Infinity);
    const deadline = startedAt + waitSeconds * 1000;
    const code: FlusterErrorCode = timeoutSeconds !== undefined && waitSeconds >= timeoutSeconds ? "deadline_exceeded" : "unavailable";
    // Addresses that refused this call since the last retry; skipped until then.
    const refused = new Set<string>();
    let lastRefusal: CallNotDeliveredError | undefined;
    let retryAt: number | undefined;
    let retries = 0;
    const noteRefusal = async (address: string, error: CallNotDeliveredError) => {
      refused.add(address);
      lastRefusal = error;
      // The pool's other calls skip it too, until the registry's view brings it back.
      this.endpoints = this.endpoints.filter((e) => e.address !== address);
      await this.refresh().catch(() => undefined);
      this.endpoints = this.endpoints.filter((e) => e.address !== address);
    };
    if (refusal) await noteRefusal(refusal.address, refusal.error);
    const watch = (this.endpointWatch ??= new SharedEndpointWatch((stop) => this.watch(stop)));
    // Joined at the first wait: a call that fails at once (waitForEndpointSeconds 0) opens no stream.
    let leave: (() => void) | undefined;
    try {
      // Bounded: each pass sends to an endpoint not yet refused, or waits (for a change, a retry, or the deadline).
      for (;;) {
        if (signal?.aborted) throw signal.reason;
        const endpoint = this.pickExcept(refused);
        if (endpoint !== undefined) {
          try {
            return await this.send(endpoint, method, encoded, this.remainingOptions(options, startedAt, code));
          } catch (err) {
            if (!(err instanceof CallNotDeliveredError)) throw err;
            await noteRefusal(endpoint.address, err);
            continue;
          }
        }
        const now = Date.now();
        if (now >= deadline) throw this.notDelivered(waitSeconds, code, lastRefusal);
        // With endpoints to retry, or no watch to follow, re-resolve on a timer; else wait for the watch alone.
        const retrying = refused.size > 0 || watch.failed;
        if (retrying) retryAt ??= now + backoffDelay(retries++, { initialMs: RETRY_REFUSED_INITIAL_MS, maxMs: RETRY_REFUSED_MAX_MS });
        leave ??= watch.join();
        await watch.next(Math.min(deadline, retrying && retryAt !== undefined ? retryAt : Infinity) - now, signal);
        if (retryAt !== undefined && Date.now() >= retryAt) {
          retryAt = undefined;
          refused.clear();
          await this.refresh().catch(() => undefined);
        }
      }
    } finally {
      leave?.();
    }
  }

  /** The call's options for a send after waiting: its own timeout, less the time spent so far. */
  private remainingOptions(options: CallOptions, startedAt: number, code: FlusterErrorCode): CallOptions {
    if (options.timeoutSeconds === undefined) return options;
    const leftMs = startedAt + options.timeoutSeconds * 1000 - Date.now();
    if (leftMs <= 0) throw this.notDelivered(options.timeoutSeconds, code, undefined);
    return { ...options, timeoutSeconds: leftMs / 1000 };
  }

  /** Why a call that reached no actor gave up: nothing served the name, or every endpoint refused it. */
  private notDelivered(waitedSeconds: number, code: FlusterErrorCode, lastRefusal: CallNotDeliveredError | undefined): CallNotDeliveredError {
    const actor = `actor ${JSON.stringify(this.name)} in namespace ${this.namespace}`;
    const waited = `waited ${waitedSeconds}s for one`;
    return lastRefusal
      ? new CallNotDeliveredError(`no live endpoint of ${actor} took the call (${waited}; the last refused: ${lastRefusal.message})`, code, { cause: lastRefusal })
      : new CallNotDeliveredError(`no endpoint serves ${actor} (${waited})`, code);
  }

  /**
   * Calls `method` on one chosen endpoint, without redirection: for callers
   * that place calls themselves (WorkerPool). A call that never reached the
   * actor rejects with a CallNotDeliveredError.
   */
  async invokeOn(endpoint: ActorEndpoint, method: string, args: readonly unknown[], options: CallOptions = {}): Promise<unknown> {
    return this.send(endpoint, method, encodeValue(args), options);
  }

  private pick(): ActorEndpoint | undefined {
    if (this.endpoints.length === 0) return undefined;
    const endpoint = this.endpoints[this.next % this.endpoints.length];
    this.next = (this.next + 1) % Number.MAX_SAFE_INTEGER;
    return endpoint;
  }

  /** The next endpoint round-robin whose address is not in `skip`. */
  private pickExcept(skip: ReadonlySet<string>): ActorEndpoint | undefined {
    for (let i = 0; i < this.endpoints.length; i++) {
      const endpoint = this.pick();
      if (endpoint !== undefined && !skip.has(endpoint.address)) return endpoint;
    }
    return undefined;
  }

  /** Asks the source for its credential when due (once a minute, shared by concurrent calls). */
  private refreshAuth(): Promise<void> {
    this.authPending ??= (async () => {
      try {
        const credential = await this.source.credential?.();
        this.auth = { authorization: credential ? bearerHeader(credential) : defaultAuthorization(), askedAt: Date.now() };
      } finally {
        this.authPending = undefined;
      }
    })();
    return this.authPending;
  }

  /**
   * Sends one call to `endpoint` over the process's connection to it (one
   * long-lived CallStream: connections.ts). Rejects with
   * CallNotDeliveredError when the call never reached an actor, with
   * CallInterruptedError when it may have, with ActorError when the method threw.
   */
  private send(endpoint: ActorEndpoint, method: string, args: Uint8Array, options: CallOptions): Promise<unknown> {
    // The hot path stays synchronous: the credential is asked for once a minute, not per call.
    if (this.source.credential && (!this.auth || Date.now() - this.auth.askedAt > CREDENTIAL_REFRESH_MS)) {
      return this.refreshAuth().then(
        () => this.sendNow(endpoint, method, args, options),
        (err: unknown) => {
          if (!this.auth) throw FlusterError.from(err);
          return this.sendNow(endpoint, method, args, options);
        },
      );
    }
    return this.sendNow(endpoint, method, args, options);
  }

  private sendNow(endpoint: ActorEndpoint, method: string, args: Uint8Array, options: CallOptions): Promise<unknown> {
    // FLUSTER_TOKEN is read once per pool: process.env is slow to read, and showed in profiles at one read per call.
    const authorization = this.auth ? this.auth.authorization : (this.envAuthorization ??= { value: defaultAuthorization() }).value;
    const connection = actorConnections.get(endpoint.address, authorization, this, this.connectionGroup);
    const decode = (response: CallResponse) => this.decode(response, method, endpoint);
    let target = this.targets.get(method);
    if (target === undefined) {
      target = callTarget(this.name, method);
      this.targets.set(method, target);
    }
    const span = startCallSpan(ACTOR_SERVICE, "Call", { "fluster.actor": this.name, "fluster.actor.method": method, "server.address": endpoint.address });
    if (!span) return connection.call(target, args, NO_TRACE_CONTEXT, streamCallOptions(options), decode);
    return connection.call(target, args, span.carrier, streamCallOptions(options), decode).then(
      (value) => {
        span.end();
        return value;
      },
      (err: unknown) => {
        span.end(err);
        throw err;
      },
    );
  }

  /** A call's answer: its value, or the ActorError of what the method threw. */
  private decode(response: CallResponse, method: string, endpoint: ActorEndpoint): unknown {
    const result = response.result;
    if (result.case === "value") return decodeValue(result.value);
    if (result.case === "failure") {
      const failure = result.value;
      let cause: unknown;
      try {
        cause = decodeValue(failure.error);
      } catch {
        cause = undefined;
      }
      throw new ActorError({
        remoteName: failure.name,
        message: failure.message,
        remoteStack: failure.stack,
        actor: this.name,
        method,
        address: endpoint.address,
        ...(cause !== undefined ? { cause } : {}),
      });
    }
    throw new FlusterError(`actor ${this.name}.${method} at ${endpoint.address} answered with neither a value nor an error`, "internal");
  }

  /**
   * Lets go of this pool's connections: those no other pool uses close once
   * their calls are answered. Calls made later open connections again.
   */
  close(): void {
    actorConnections.release(this);
  }
}

/** The service actor calls are traced as (their spans are named `fluster.actor.v1.ActorService/Call`, as a unary call's). */
const ACTOR_SERVICE = ActorService.typeName;

/** The trace context of every call made while nothing traces. */
const NO_TRACE_CONTEXT: Record<string, string> = Object.freeze({}) as Record<string, string>;

/** Shared by every call without a signal or timeout, so those allocate nothing here. */
const NO_STREAM_OPTIONS: StreamCallOptions = Object.freeze({});

function streamCallOptions(options: CallOptions): StreamCallOptions {
  if (!options.signal && options.timeoutSeconds === undefined) return NO_STREAM_OPTIONS;
  return { signal: options.signal, timeoutMs: options.timeoutSeconds !== undefined ? options.timeoutSeconds * 1000 : undefined };
}
