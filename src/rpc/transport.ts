// The one RPC client factory and the one RPC server factory: Connect over
// HTTP/2 (h2c), with HTTP/1.1 on the same port for curl and browsers, and
// bearer-token auth when a token is set.
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import { timingSafeEqual } from "node:crypto";
import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import { Http2SessionManager, connectNodeAdapter, createConnectTransport, type ConnectNodeAdapterOptions } from "@connectrpc/connect-node";
import { FlusterError } from "../core/errors.js";
import { toConnectError } from "./errors.js";
import { compileRequestLimits, requestLimitsInterceptor, type RequestLimits } from "./limits.js";
import { improveEarlyErrors } from "./early-errors.js";

const AUTHORIZATION = "authorization";

/** Options of {@link createRpcChannel}. */
export interface RpcChannelOptions {
  /** Bearer token sent with every call. @default process.env.FLUSTER_TOKEN */
  token?: string;
  /** Per-call timeout when the call sets none. @default none */
  defaultTimeoutMs?: number;
  /** Close the HTTP/2 connection after this long without calls. @default 60_000 */
  idleConnectionTimeoutMs?: number;
  /**
   * Until the server has answered once, a unary call that gets no answer
   * within this long fails with a DeadlineExceeded "no answer from …"
   * error, instead of waiting for HTTP/2 keepalive to give up (about 30 s).
   * Streaming calls are not limited: a stream may rightly stay silent.
   * @default none
   */
  firstAnswerTimeoutMs?: number;
}

/**
 * A connection to one server. Clients for several services share its single
 * HTTP/2 session; `close()` tears the session down (a later call opens a
 * new one, so closing also resets a connection that stopped answering).
 */
export interface RpcChannel {
  readonly baseUrl: string;
  /** Whether the server has answered a call yet (with a result or an error of its own). */
  readonly answered: boolean;
  client<S extends DescService>(service: S): Client<S>;
  close(): void;
}

/** Opens a channel to `baseUrl` (`http://host:port`). Nothing connects until the first call. */
export function createRpcChannel(baseUrl: string, options: RpcChannelOptions = {}): RpcChannel {
  const url = normalizeBaseUrl(baseUrl);
  const token = options.token ?? process.env.FLUSTER_TOKEN;
  const sessionManager = new GuardedSessionManager(
    url,
    { idleConnectionTimeoutMs: options.idleConnectionTimeoutMs ?? 60_000, pingIntervalMs: 15_000 },
    // MB of unsent data: Node's default (10) fails a larger request with
    // ENHANCE_YOUR_CALM before the server can answer; servers bound requests themselves.
    { maxSessionMemory: 256 },
  );
  let answered = false;
  const interceptors: Interceptor[] = [
    firstAnswerInterceptor(url, options.firstAnswerTimeoutMs, () => answered, () => (answered = true)),
  ];
  if (token) {
    interceptors.push((next) => (req) => {
      req.header.set(AUTHORIZATION, `Bearer ${token}`);
      return next(req);
    });
  }
  const transport = createConnectTransport({
    baseUrl: url,
    httpVersion: "2",
    useBinaryFormat: true,
    sessionManager,
    interceptors,
    ...(options.defaultTimeoutMs ? { defaultTimeoutMs: options.defaultTimeoutMs } : {}),
  });
  const clients = new Map<DescService, unknown>();
  return {
    baseUrl: url,
    get answered() {
      return answered;
    },
    client<S extends DescService>(service: S): Client<S> {
      let client = clients.get(service) as Client<S> | undefined;
      if (!client) {
        client = createClient(service, transport);
        clients.set(service, client);
      }
      return client;
    },
    close() {
      sessionManager.abort();
    },
  };
}

/**
 * A session that fails after connect-node has let go of it (a peer that
 * answers HTTP/2 with HTTP/1.1 or garbage makes the session emit its error
 * after the manager removed its listeners) would crash the process with an
 * unhandled 'error' event. Every session gets a listener of its own; the
 * failure still reaches the caller through its stream.
 */
class GuardedSessionManager extends Http2SessionManager {
  private readonly guarded = new WeakSet<http2.Http2Session>();

  override async request(...args: Parameters<Http2SessionManager["request"]>): Promise<http2.ClientHttp2Stream> {
    const stream = await super.request(...args);
    const session = stream.session;
    if (session && !this.guarded.has(session)) {
      this.guarded.add(session);
      session.on("error", () => undefined);
    }
    return stream;
  }
}

/** Codes a client makes up itself when no server answered (refused, reset, timed out, aborted, malformed). */
const NO_ANSWER_CODES = new Set<Code>([Code.Unavailable, Code.DeadlineExceeded, Code.Canceled, Code.Unknown, Code.Internal]);

/**
 * Records the first answer of the server, and until then gives unary calls
 * `timeoutMs` to get one: a server that accepts connections but never
 * speaks (a wrong port, a firewall, a stuck process) fails fast and says so.
 */
function firstAnswerInterceptor(url: string, timeoutMs: number | undefined, answered: () => boolean, markAnswered: () => void): Interceptor {
  return (next) => async (req) => {
    const observe = async <T>(call: Promise<T>): Promise<T> => {
      try {
        const res = await call;
        markAnswered();
        return res;
      } catch (err) {
        if (err instanceof ConnectError && !NO_ANSWER_CODES.has(err.code)) markAnswered();
        throw err;
      }
    };
    if (answered() || req.stream || !timeoutMs) return observe(next(req));
    const gaveUp = new AbortController();
    const signal = AbortSignal.any([req.signal, gaveUp.signal]);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const seconds = Math.round(timeoutMs / 100) / 10;
        reject(new ConnectError(`no answer from ${url} within ${seconds} s`, Code.DeadlineExceeded));
        gaveUp.abort();
      }, timeoutMs);
    });
    try {
      return await Promise.race([observe(next({ ...req, signal })), deadline]);
    } finally {
      clearTimeout(timer);
    }
  };
}

/** Checks and normalizes a server address: `host:port` gets `http://`; no trailing slash. */
export function normalizeBaseUrl(address: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(address) ? address : `http://${address}`;
  let parsed: URL;
  try {
    parsed = new URL(withScheme);
  } catch {
    throw new FlusterError(`not a valid server address: ${JSON.stringify(address)} (expected http://host:port)`, "invalid_argument");
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new FlusterError(`unsupported scheme in ${JSON.stringify(address)}: use http:// or https://`, "invalid_argument");
  }
  return parsed.origin;
}

/** Options of {@link startRpcServer}. */
export interface RpcServerOptions {
  /** Registers the services. */
  routes: (router: ConnectRouter) => void;
  /** Address to bind. @default "127.0.0.1" */
  host?: string;
  /** Port to bind; 0 picks a free one. @default 0 */
  port?: number;
  /** When set, every call must carry `Authorization: Bearer <token>`. */
  token?: string;
  /** Ends the message refusing a missing or wrong token: where the right one is. @default "set FLUSTER_TOKEN" */
  tokenHint?: string;
  /** Called for each call refused for its token, e.g. to log who was turned away. */
  onUnauthenticated?: (refusal: TokenRefusal) => void;
  /** Extra plain HTTP handler for paths that are not RPCs (e.g. the dashboard). */
  fallback?: ConnectNodeAdapterOptions["fallback"];
  /** Request size, string and list limits; unset ones keep their defaults (see DEFAULT_REQUEST_LIMITS). */
  limits?: Partial<RequestLimits>;
}

/** A call refused for its bearer token. */
export interface TokenRefusal {
  /** `Service/Method`, e.g. `fluster.cluster.v1.ControllerService/RegisterWorker`. */
  procedure: string;
  reason: "missing" | "wrong";
  /** The request message of a unary call (undefined for streams). */
  request: unknown;
}

/** A running RPC server. */
export interface RpcServer {
  /** `http://host:port` a client on this machine can use. */
  readonly url: string;
  readonly port: number;
  /** The IP address the socket is bound to (e.g. `127.0.0.1`, `::`). */
  readonly address: string;
  /** Stops accepting connections, ends open ones, and resolves when closed. */
  shutdown(): Promise<void>;
}

/**
 * Serves Connect RPCs over h2c and HTTP/1.1 on one port. The first bytes of
 * each connection tell which: HTTP/2 opens with its fixed preface.
 */
export async function startRpcServer(options: RpcServerOptions): Promise<RpcServer> {
  const limits = compileRequestLimits(options.limits);
  const interceptors: Interceptor[] = [errorInterceptor];
  if (options.token) interceptors.unshift(authInterceptor(options.token, options.tokenHint ?? "set FLUSTER_TOKEN", options.onUnauthenticated));
  // Outermost: nothing after it (a refusal's log line, a handler) sees an oversized field.
  interceptors.unshift(requestLimitsInterceptor(limits));
  const handler = connectNodeAdapter({
    routes: (router) => {
      options.routes(router);
      improveEarlyErrors(router);
    },
    interceptors,
    readMaxBytes: limits.maxRequestBytes,
    ...(options.fallback ? { fallback: options.fallback } : {}),
  });
  const h2 = http2.createServer({}, handler);
  const h1 = http.createServer(handler);
  h1.keepAliveTimeout = 5_000;
  const sockets = new Set<net.Socket>();
  const sessions = new Set<http2.ServerHttp2Session>();
  h2.on("session", (session) => {
    sessions.add(session);
    session.on("close", () => sessions.delete(session));
  });
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    // Peek at the first bytes without consuming them: both servers read
    // data already buffered on the socket when they take it over.
    socket.once("readable", () => {
      const first = socket.read() as Buffer | null;
      if (first === null) return;
      socket.unshift(first);
      const target = first.subarray(0, 3).toString("latin1") === "PRI" ? h2 : h1;
      target.emit("connection", socket);
    });
  });
  const host = options.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as net.AddressInfo;
  const urlHost = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;
  return {
    url: `http://${urlHost}:${address.port}`,
    port: address.port,
    address: address.address,
    shutdown: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const session of sessions) session.close();
        h1.closeAllConnections();
        // Sessions get a moment to finish in-flight streams, then sockets go.
        setTimeout(() => {
          for (const socket of sockets) socket.destroy();
        }, 200).unref();
      }),
  };
}

/**
 * Maps thrown Fluster errors to their wire codes, so handlers can just throw.
 * A streaming handler throws while its messages are iterated, after the
 * interceptor returned, so its stream is wrapped too.
 */
const errorInterceptor: Interceptor = (next) => async (req) => {
  try {
    const res = await next(req);
    return res.stream ? { ...res, message: mapStreamErrors(res.message) } : res;
  } catch (err) {
    throw toConnectError(err);
  }
};

async function* mapStreamErrors<T>(messages: AsyncIterable<T>): AsyncIterable<T> {
  try {
    yield* messages;
  } catch (err) {
    throw toConnectError(err);
  }
}

function authInterceptor(token: string, hint: string, onRefused: ((refusal: TokenRefusal) => void) | undefined): Interceptor {
  const expected = Buffer.from(`Bearer ${token}`);
  return (next) => (req) => {
    const header = req.header.get(AUTHORIZATION);
    // The scheme is case-insensitive (RFC 7235); the token is not.
    const given = Buffer.from(header?.replace(/^bearer /i, "Bearer ") ?? "");
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      const reason = header ? "wrong" : "missing";
      onRefused?.({ procedure: `${req.service.typeName}/${req.method.name}`, reason, request: req.stream ? undefined : req.message });
      throw new ConnectError(`${reason} bearer token: ${hint}`, Code.Unauthenticated);
    }
    return next(req);
  };
}
