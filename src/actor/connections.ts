// The client side of the actor data plane. Each actor server a process calls
// gets one HTTP/2 session carrying one long-lived CallStream (per credential):
// calls made in the same turn leave in one write, answers come back matched by
// call id. The process keeps one registry of these connections; idle ones
// close themselves, and closing a pool or a cluster client closes the ones it
// used. What happened to a call when its connection fails decides whether it
// may be sent elsewhere: a call never written is CallNotDeliveredError, a
// call written and not answered is CallInterruptedError (it may have run).
import * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeFromString } from "@connectrpc/connect/protocol-connect";
import { FlusterError } from "../core/errors.js";
import { EnvelopeReader, STREAM_PROTO_CONTENT_TYPE, endStreamError, frameEnvelopes } from "../rpc/envelopes.js";
import { fromConnectError } from "../rpc/errors.js";
import type { CallResponse } from "../rpc/gen/fluster/actor/v1/actor_pb.js";
import { bearerHeader, http2ClientOptions } from "../rpc/transport.js";
import { CallInterruptedError, CallNotDeliveredError } from "./errors.js";
import { CALL_STREAM_PATH, MAX_REQUEST_BYTES_HEADER, STREAM_WINDOW_BYTES } from "./stream-server.js";
import { decodeStreamResponse, encodeCallHeader, encodeCancel, encodeStreamRequest } from "./wire.js";

/** Per-call options the data plane acts on. */
export interface StreamCallOptions {
  signal?: AbortSignal | undefined;
  timeoutMs?: number | undefined;
}

/** Options of {@link ActorConnections}. */
export interface ActorConnectionOptions {
  /** A connection with no call outstanding for this long closes (a later call opens a new one). @default 60_000 */
  idleTimeoutMs?: number;
  /** Until the server has sent the stream's headers, a connection waits this long, then fails its calls as not delivered. @default 10_000 */
  openTimeoutMs?: number;
  /** While calls are outstanding, the session is pinged this often; one unanswered for as long again means the peer is gone. @default 15_000 */
  pingIntervalMs?: number;
}

/** Answers larger than this are assumed acceptable until the server says its limit (an older server that sends no header). */
const DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024;

/** Codes of a whole stream refused at its start: no call on it ran. */
const STREAM_REFUSED = new Set<Code>([Code.Unauthenticated, Code.PermissionDenied, Code.Unavailable]);

/** The method a call is for: made once per method by its pool and reused by every call of it. */
export interface CallTarget {
  /** `actor.method`, for errors. */
  readonly label: string;
  /** The encoded actor and method fields of its CallRequest (wire.ts). */
  readonly header: Uint8Array;
}

/** The CallTarget of `actor.method`. */
export function callTarget(actor: string, method: string): CallTarget {
  return { label: `${actor}.${method}`, header: encodeCallHeader(actor, method) };
}

interface OutstandingCall {
  id: number;
  /** `actor.method`, for errors. */
  label: string;
  /** The encoded CallStreamRequest. */
  frame: Uint8Array;
  settle(response: CallResponse): void;
  fail(err: unknown): void;
  /** Undoes the signal listener and the timer, if any. */
  cleanup: (() => void) | undefined;
}

type ConnectionState = "opening" | "open" | "draining" | "closed";

/** One HTTP/2 session and its CallStream to one actor server, for one credential. */
class ActorConnection {
  private state: ConnectionState = "opening";
  private readonly session: http2.ClientHttp2Session;
  private readonly stream: http2.ClientHttp2Stream;
  private readonly reader = new EnvelopeReader(DEFAULT_MAX_REQUEST_BYTES * 4);
  private maxRequestBytes = DEFAULT_MAX_REQUEST_BYTES;
  /** Calls not yet written, in call order. */
  private unsent: OutstandingCall[] = [];
  /** Cancels of written calls whose callers gave up, for the next write. */
  private cancels: Uint8Array[] = [];
  /** Calls written and not yet answered, by call id. */
  private readonly written = new Map<number, OutstandingCall>();
  private nextId = 1;
  private flushScheduled = false;
  private idleTimer: NodeJS.Timeout | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private openTimer: NodeJS.Timeout | undefined;
  /** Whether the session keeps the process alive (only while calls are outstanding). */
  private referenced = true;
  private readonly flush = () => this.writeUnsent();

  constructor(
    readonly address: string,
    authorization: string | undefined,
    private readonly options: Required<ActorConnectionOptions>,
    private readonly onGone: (connection: ActorConnection) => void,
  ) {
    this.session = http2.connect(address, { ...http2ClientOptions(address), settings: { initialWindowSize: STREAM_WINDOW_BYTES } });
    this.session.on("connect", () => this.session.setLocalWindowSize(STREAM_WINDOW_BYTES));
    // Errors reach the calls through the stream's close; this keeps an unhandled 'error' from crashing the process.
    this.session.on("error", (err) => this.fail(err));
    this.session.on("close", () => this.fail(new ConnectError("connection closed", Code.Unavailable)));
    // The server is going away: calls outstanding finish here, new ones go to a new connection.
    this.session.on("goaway", () => this.retire());
    const headers: http2.OutgoingHttpHeaders = {
      ":method": "POST",
      ":path": CALL_STREAM_PATH,
      "content-type": STREAM_PROTO_CONTENT_TYPE,
      "connect-protocol-version": "1",
    };
    if (authorization) headers.authorization = authorization;
    this.stream = this.session.request(headers);
    this.stream.on("response", (h) => this.onResponse(h));
    this.stream.on("data", (chunk: Buffer) => this.onData(chunk));
    this.stream.on("error", (err) => this.fail(err));
    this.stream.on("close", () => this.fail(new ConnectError("stream closed", Code.Unavailable)));
    this.openTimer = setTimeout(() => this.fail(new ConnectError(`no answer from ${address} within ${options.openTimeoutMs / 1000} s`, Code.DeadlineExceeded)), options.openTimeoutMs);
    this.openTimer.unref();
  }

  /** Whether new calls may use this connection. */
  get usable(): boolean {
    return this.state === "opening" || this.state === "open";
  }

  /** Calls not yet answered. */
  get outstanding(): number {
    return this.unsent.length + this.written.size;
  }

  /**
   * Sends a call of `actor.method` with encoded `args` (and the caller's
   * `traceContext`, empty when it does not trace); resolves with what
   * `decode` makes of its answer. Rejects with CallNotDeliveredError when
   * it was never written or the server did not run it, with
   * CallInterruptedError when the connection failed after it was written.
   */
  call<R>(target: CallTarget, args: Uint8Array, traceContext: Record<string, string>, options: StreamCallOptions, decode: (response: CallResponse) => R): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      // An aborted call is never queued, let alone written.
      if (options.signal?.aborted) return reject(options.signal.reason);
      const id = this.nextId++;
      const frame = encodeStreamRequest(id, target.header, args, traceContext);
      const call: OutstandingCall = {
        id,
        label: target.label,
        frame,
        settle: (response) => {
          call.cleanup?.();
          try {
            resolve(decode(response));
          } catch (err) {
            reject(err);
          }
        },
        fail: (err) => {
          call.cleanup?.();
          reject(err);
        },
        cleanup: undefined,
      };
      if (options.signal || options.timeoutMs !== undefined) this.watchCall(call, options);
      if (frame.length > this.maxRequestBytes) return call.fail(this.tooLarge(call));
      this.unsent.push(call);
      this.busy();
      this.scheduleFlush();
    });
  }

  /** Writes what is queued once this turn is over: calls made in the same turn (a Promise.all of them) leave in one write. */
  private scheduleFlush(): void {
    if (this.state !== "open" || this.flushScheduled) return;
    this.flushScheduled = true;
    process.nextTick(this.flush);
  }

  /** Ends the connection: calls outstanding fail as `reason` says (not delivered when unsent, interrupted when written). */
  close(reason = "the connection was closed"): void {
    this.fail(new ConnectError(reason, Code.Canceled));
  }

  /** The caller's signal and timeout: either ends the call here, and a call not yet written is never sent. */
  private watchCall(call: OutstandingCall, options: StreamCallOptions): void {
    const { signal, timeoutMs } = options;
    const drop = (err: unknown) => {
      const at = this.unsent.indexOf(call);
      if (at >= 0) {
        this.unsent.splice(at, 1);
      } else if (this.written.delete(call.id) && this.usable) {
        // Written already: if it still waits for its actor's slot, the server drops it.
        this.cancels.push(encodeCancel(call.id));
        this.scheduleFlush();
      }
      call.fail(err);
      this.idleIfDone();
    };
    const onAbort = () => drop(signal?.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    const timer =
      timeoutMs !== undefined
        ? setTimeout(() => drop(new FlusterError(`call ${call.label} at ${this.address} got no answer within ${timeoutMs / 1000} s`, "deadline_exceeded")), timeoutMs)
        : undefined;
    call.cleanup = () => {
      signal?.removeEventListener("abort", onAbort);
      clearTimeout(timer);
    };
  }

  private tooLarge(call: OutstandingCall): FlusterError {
    return new FlusterError(
      `call ${call.label} is ${call.frame.length} bytes; the actor server at ${this.address} accepts calls of at most ${this.maxRequestBytes} bytes (its maxRequestBytes)`,
      "resource_exhausted",
    );
  }

  private onResponse(headers: http2.IncomingHttpHeaders): void {
    clearTimeout(this.openTimer);
    const status = Number(headers[":status"]);
    const contentType = String(headers["content-type"] ?? "");
    if (status !== 200 || !contentType.startsWith(STREAM_PROTO_CONTENT_TYPE)) {
      // Not an actor server's stream: nothing was written, so nothing ran.
      this.fail(new ConnectError(`${this.address} answered the call stream with HTTP ${status} (${contentType || "no content type"}): not a Fluster actor server?`, Code.Unavailable), true);
      return;
    }
    const limit = Number(headers[MAX_REQUEST_BYTES_HEADER]);
    if (Number.isSafeInteger(limit) && limit > 0) this.maxRequestBytes = limit;
    if (this.state === "opening") this.state = "open";
    this.writeUnsent();
  }

  private writeUnsent(): void {
    this.flushScheduled = false;
    if (this.state !== "open" && this.state !== "draining") return;
    if (this.unsent.length === 0 && this.cancels.length === 0) return;
    const calls = this.unsent;
    this.unsent = [];
    const frames: Uint8Array[] = this.cancels;
    this.cancels = [];
    for (const call of calls) {
      if (call.frame.length > this.maxRequestBytes) {
        call.fail(this.tooLarge(call));
        continue;
      }
      frames.push(call.frame);
      this.written.set(call.id, call);
    }
    if (frames.length > 0) this.stream.write(frameEnvelopes(frames));
    this.idleIfDone();
  }

  private onData(chunk: Buffer): void {
    let envelopes;
    try {
      envelopes = this.reader.read(chunk);
    } catch (err) {
      return this.fail(err);
    }
    for (const envelope of envelopes) {
      if (envelope.endStream) {
        let error: ConnectError | undefined;
        try {
          error = endStreamError(envelope.data);
        } catch (err) {
          error = ConnectError.from(err);
        }
        return this.fail(error ?? new ConnectError("the server ended the call stream", Code.Unavailable), error === undefined || STREAM_REFUSED.has(error.code));
      }
      let message;
      try {
        message = decodeStreamResponse(envelope.data);
      } catch (err) {
        return this.fail(new ConnectError(`malformed CallStreamResponse from ${this.address}: ${(err as Error).message}`, Code.Internal));
      }
      const id = message.callId;
      const call = this.written.get(id);
      // A call the caller gave up on (aborted, timed out) has no one to answer.
      if (!call) continue;
      this.written.delete(id);
      const outcome = message.outcome;
      if (outcome.case === "response") call.settle(outcome.value);
      else if (outcome.case === "refusal") call.fail(this.refusalError(call, outcome.value.code, outcome.value.message));
      else call.fail(new FlusterError(`actor ${call.label} at ${this.address} answered with neither a response nor a refusal`, "internal"));
    }
    this.idleIfDone();
  }

  /** The error of a call the server did not run: not delivered (safe to send elsewhere) for a stale endpoint or a stopping server. */
  private refusalError(call: OutstandingCall, codeName: string, message: string): FlusterError {
    const error = fromConnectError(new ConnectError(message, codeFromString(codeName) ?? Code.Unknown), `call ${call.label} at ${this.address}`);
    if (error.code === "not_found" || error.code === "unavailable") return new CallNotDeliveredError(error.message, error.code, { cause: error });
    return error;
  }

  /** Pools that use this connection, each with its group (the cluster client it came through); when the last one closes, the connection retires. */
  readonly users = new Map<object, object | undefined>();

  /**
   * Takes no new calls and closes once the calls outstanding are answered:
   * the server said it is going away, or no open pool uses this connection.
   */
  retire(): void {
    if (!this.usable) return;
    this.state = "draining";
    this.onGone(this);
    this.idleIfDone();
  }

  /** A call came: the session keeps the process alive and is watched for a dead peer. */
  private busy(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    if (!this.referenced) {
      this.referenced = true;
      this.session.ref();
    }
    if (!this.pingTimer) {
      this.pingTimer = setInterval(() => this.ping(), this.options.pingIntervalMs);
      this.pingTimer.unref();
    }
  }

  /** No call outstanding: the session lets the process exit, and the connection closes after the idle timeout. */
  private idleIfDone(): void {
    if (this.outstanding > 0 || this.state === "closed") return;
    if (this.state === "draining") return this.close("the server went away");
    if (this.referenced) {
      this.referenced = false;
      this.session.unref();
    }
    clearInterval(this.pingTimer);
    this.pingTimer = undefined;
    if (!this.idleTimer) {
      this.idleTimer = setTimeout(() => {
        this.idleTimer = undefined;
        if (this.outstanding === 0) this.close("the connection was idle");
      }, this.options.idleTimeoutMs);
      this.idleTimer.unref();
    }
  }

  /** A peer that stopped answering (a machine gone without a reset) would leave calls waiting forever: a ping tells. */
  private ping(): void {
    if (this.state === "closed") return;
    const timer = setTimeout(() => this.fail(new ConnectError(`${this.address} did not answer an HTTP/2 ping within ${this.options.pingIntervalMs / 1000} s`, Code.Unavailable)), this.options.pingIntervalMs);
    timer.unref();
    try {
      this.session.ping((err) => {
        clearTimeout(timer);
        if (err) this.fail(err);
      });
    } catch (err) {
      clearTimeout(timer);
      this.fail(err);
    }
  }

  /**
   * Ends the connection and settles every outstanding call. `nothingRan`:
   * the server said no call without an answer ran (a clean end, a refused
   * stream), so written calls count as not delivered too.
   */
  private fail(err: unknown, nothingRan = false): void {
    if (this.state === "closed") return;
    const wasUsable = this.usable;
    this.state = "closed";
    clearTimeout(this.openTimer);
    clearTimeout(this.idleTimer);
    clearInterval(this.pingTimer);
    const error = fromConnectError(err, `actor server ${this.address}`);
    const unsent = this.unsent;
    this.unsent = [];
    const written = [...this.written.values()];
    this.written.clear();
    const notDelivered = (call: OutstandingCall) =>
      call.fail(
        error.code === "unauthenticated" || error.code === "permission_denied"
          ? error
          : new CallNotDeliveredError(`call ${call.label} was not delivered to ${this.address}: ${error.message}`, error.code === "cancelled" ? "cancelled" : "unavailable", { cause: error }),
      );
    for (const call of unsent) notDelivered(call);
    for (const call of written) {
      if (nothingRan) notDelivered(call);
      else call.fail(new CallInterruptedError(`call ${call.label} at ${this.address} was interrupted: ${error.message}; it may have run`, { cause: error }));
    }
    if (wasUsable) this.onGone(this);
    if (!this.stream.closed) this.stream.close();
    if (!this.session.closed) this.session.close();
    // close() waits for streams to end; a peer that is gone never ends them.
    setTimeout(() => this.session.destroy(), 1_000).unref();
  }
}

/**
 * The connections of one process to actor servers, one per server address
 * and credential, shared by every pool. Users reach it through
 * `ActorPool.close()` and the cluster client's `close()`.
 */
export class ActorConnections {
  private readonly connections = new Map<string, ActorConnection>();
  private readonly options: Required<ActorConnectionOptions>;

  constructor(options: ActorConnectionOptions = {}) {
    this.options = { idleTimeoutMs: options.idleTimeoutMs ?? 60_000, openTimeoutMs: options.openTimeoutMs ?? 10_000, pingIntervalMs: options.pingIntervalMs ?? 15_000 };
  }

  /** Connections open now (for tests and metrics). */
  get size(): number {
    return this.connections.size;
  }

  /**
   * The connection to `address` for `authorization` (an `Authorization`
   * header value, or undefined for none), opened if need be, and recorded as
   * used by `user` (a pool, of `group`: the cluster client it came
   * through) until {@link release} or {@link releaseGroup}.
   */
  get(address: string, authorization: string | undefined, user: object, group?: object): ActorConnection {
    const key = authorization === undefined ? address : `${address}\n${authorization}`;
    let connection = this.connections.get(key);
    if (!connection?.usable) {
      connection = new ActorConnection(address, authorization, this.options, (gone) => {
        if (this.connections.get(key) === gone) this.connections.delete(key);
      });
      this.connections.set(key, connection);
    }
    if (!connection.users.has(user)) connection.users.set(user, group);
    return connection;
  }

  /**
   * `user` (a pool being closed) no longer uses its connections: those no
   * other pool uses take no new calls and close once their calls are answered.
   */
  release(user: object): void {
    for (const connection of [...this.connections.values()]) {
      if (connection.users.delete(user) && connection.users.size === 0) connection.retire();
    }
  }

  /** As {@link release}, for every pool of `group` (a cluster client being closed). */
  releaseGroup(group: object): void {
    for (const connection of [...this.connections.values()]) {
      let removed = false;
      for (const [user, of] of connection.users) {
        if (of === group) removed = connection.users.delete(user);
      }
      if (removed && connection.users.size === 0) connection.retire();
    }
  }
}

/** The process's connections to actor servers. */
export const actorConnections = new ActorConnections();

/** The `Authorization` header calls carry when their pool has no credential of its own: FLUSTER_TOKEN's, as every client's. */
export function defaultAuthorization(): string | undefined {
  const token = process.env.FLUSTER_TOKEN;
  return token ? bearerHeader(token) : undefined;
}
