// The one RPC client factory and the one RPC server factory: Connect over
// HTTP/2 (h2c), with HTTP/1.1 on the same port for curl and browsers, and
// bearer-token auth: one token, or an authenticator that tells who the caller
// is (handlers read it from the call's context values). With a certificate and
// key, the server speaks HTTP/2 and HTTP/1.1 over TLS instead; clients verify an
// https:// server against the system CAs plus an optional CA file.
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import { readFileSync } from "node:fs";
import { resolve as resolvePath } from "node:path";
import { rootCertificates } from "node:tls";
import { timingSafeEqual } from "node:crypto";
import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createContextKey, type Client, type ConnectRouter, type ContextKey, type Interceptor } from "@connectrpc/connect";
import { Http2SessionManager, connectNodeAdapter, createConnectTransport, type ConnectNodeAdapterOptions } from "@connectrpc/connect-node";
import { FlusterError } from "../core/errors.js";
import { toConnectError } from "./errors.js";
import { compileRequestLimits, requestLimitsInterceptor, type RequestLimits } from "./limits.js";
import { improveEarlyErrors } from "./early-errors.js";
import { tracingClientInterceptor, tracingServerInterceptor } from "./tracing.js";
import { STREAM_PROTO_CONTENT_TYPE, frameEndStream } from "./envelopes.js";

const AUTHORIZATION = "authorization";

/** Options of {@link createRpcChannel}. */
export interface RpcChannelOptions {
  /**
   * Bearer token sent with every call, or a function asked at each call (a
   * credential that arrives or changes later). A call that sets its own
   * `Authorization` header keeps it. @default process.env.FLUSTER_TOKEN
   */
  token?: string | (() => string | undefined);
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
  /**
   * A PEM file of CA certificates an https:// server's certificate may also
   * chain to, besides the system's (e.g. the CA of a self-signed controller
   * certificate). @default process.env.FLUSTER_TLS_CA
   */
  tlsCaFile?: string;
}

/** The environment variable naming a CA file every client trusts besides the system CAs (jobs get it from their worker). */
export const TLS_CA_ENV = "FLUSTER_TLS_CA";

/** Node's codes for a server certificate that does not verify. */
const UNTRUSTED_CERTIFICATE = new Set([
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_UNTRUSTED",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/**
 * Why a failed call's server certificate was refused (Node's words, e.g.
 * "self-signed certificate"), found along the error's cause chain; undefined
 * when the call did not fail for its certificate.
 */
export function untrustedCertificateReason(err: unknown): string | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 6; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && UNTRUSTED_CERTIFICATE.has(code)) return e.message;
  }
  return undefined;
}

/** Reads a PEM file for TLS, or says which file and why it cannot be read. */
export function readPemFile(path: string, what: string): string {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new FlusterError(`cannot read the ${what} ${resolvePath(path)}: ${(err as Error).message}`, "invalid_argument", { cause: err });
  }
  if (!text.includes("-----BEGIN ")) throw new FlusterError(`the ${what} ${resolvePath(path)} is not a PEM file (no -----BEGIN line)`, "invalid_argument");
  return text;
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
    {
      idleConnectionTimeoutMs: options.idleConnectionTimeoutMs ?? 60_000,
      pingIntervalMs: 15_000,
    },
    http2ClientOptions(url, options.tlsCaFile),
  );
  let answered = false;
  const interceptors: Interceptor[] = [
    tracingClientInterceptor,
    firstAnswerInterceptor(url, options.firstAnswerTimeoutMs, () => answered, () => (answered = true)),
  ];
  if (token) {
    interceptors.push((next) => (req) => {
      const current = typeof token === "function" ? token() : token;
      if (current && !req.header.has(AUTHORIZATION)) req.header.set(AUTHORIZATION, bearerHeader(current));
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
 * Options of an HTTP/2 client session to `url`: for https://, the CA file
 * (`caFile`, else FLUSTER_TLS_CA) trusted besides the system's CAs.
 */
export function http2ClientOptions(url: string, caFile: string | undefined = process.env[TLS_CA_ENV] || undefined): http2.SecureClientSessionOptions {
  // The system CAs stay trusted: Node's `ca` replaces them unless they are listed too.
  const tlsOptions = url.startsWith("https:") && caFile ? { ca: [...rootCertificates, readPemFile(caFile, "CA file")] } : {};
  // MB of unsent data: Node's default (10) fails a larger request with
  // ENHANCE_YOUR_CALM before the server can answer; servers bound requests themselves.
  return { ...tlsOptions, maxSessionMemory: 256 };
}

/** The `Authorization` header value that carries `token`. */
export function bearerHeader(token: string): string {
  return `Bearer ${token}`;
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
 * Whether a failed call carries an answer of the server. connect-node
 * turns a socket's own failure into a ConnectError with the Node error as
 * its cause, and some of those get a code a server could send too: a reset
 * connection (ECONNRESET, what a TLS server does to a plain HTTP/2 client
 * when its handshake fails) is `aborted`. An error the server sent has no
 * such cause.
 */
function isServerAnswer(err: unknown): boolean {
  if (!(err instanceof ConnectError) || NO_ANSWER_CODES.has(err.code)) return false;
  for (let e: unknown = err.cause, depth = 0; e instanceof Error && depth < 6; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && /^(E[A-Z0-9]+|ERR_[A-Z0-9_]+)$/.test(code)) return false;
  }
  return true;
}

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
        if (isServerAnswer(err)) markAnswered();
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

/**
 * Tells who a call comes from by its bearer token. The caller it answers is
 * put in the call's context values under `key`, where handlers (and the
 * authorization that guards them) read it: `ctx.values.get(key)`.
 */
export interface Authenticator<P> {
  key: ContextKey<P | undefined>;
  /** The caller `token` stands for, or undefined when it is not accepted (the call is refused as a wrong token). */
  authenticate(token: string): P | undefined | Promise<P | undefined>;
}

/** Options of {@link startRpcServer}. */
export interface RpcServerOptions<P = unknown> {
  /** Registers the services. */
  routes: (router: ConnectRouter) => void;
  /** Address to bind. @default "127.0.0.1" */
  host?: string;
  /** Port to bind; 0 picks a free one. @default 0 */
  port?: number;
  /** When set, every call must carry `Authorization: Bearer <token>`. */
  token?: string;
  /** When set (instead of `token`), every call must carry a bearer token it accepts; the caller it names reaches the handlers. */
  authenticator?: Authenticator<P>;
  /** Ends the message refusing a missing or wrong token: where the right one is. @default "set FLUSTER_TOKEN" */
  tokenHint?: string;
  /** Called for each call refused for its token, e.g. to log who was turned away. */
  onUnauthenticated?: (refusal: TokenRefusal) => void;
  /**
   * Plain HTTP paths served beside the RPCs (`/metrics`, the dashboard's
   * files), tried in order; a path none of them serves gets a 404.
   */
  httpRoutes?: readonly HttpRoute[];
  /**
   * HTTP/2 paths whose streams the server handles itself rather than through
   * connect-node, after the same bearer-token check: the actor data plane's
   * long-lived CallStream, which speaks Connect's streaming protocol with
   * less work per message (src/actor/stream-server.ts). HTTP/1.1 requests
   * to these paths still reach connect-node.
   */
  streamRoutes?: readonly StreamRoute<P>[];
  /** More interceptors, run after authentication (e.g. fault injection in tests, rpc/faults.ts). @default none */
  interceptors?: readonly Interceptor[];
  /** Serve over TLS with this certificate chain and private key (PEM text); the URL is then https://. @default plain h2c and HTTP/1.1 */
  tls?: { cert: string; key: string };
  /** Request size, string and list limits; unset ones keep their defaults (see DEFAULT_REQUEST_LIMITS). */
  limits?: Partial<RequestLimits>;
}

/** A plain HTTP request and its response, as Node's HTTP/1.1 and HTTP/2 servers give them. */
export type HttpRequest = http.IncomingMessage | http2.Http2ServerRequest;
export type HttpResponse = http.ServerResponse | http2.Http2ServerResponse;

/** An HTTP/2 path whose streams a server handles itself (see RpcServerOptions.streamRoutes). */
export interface StreamRoute<P> {
  /** The exact path, `/package.Service/Method`. */
  path: string;
  /** Takes over an authenticated POST to the path; `caller` is the authenticator's answer (undefined without auth). */
  handle(req: http2.Http2ServerRequest, res: http2.Http2ServerResponse, caller: P | undefined): void;
}

/** Answers a Connect streaming request with no messages and `error` in its end-stream envelope, as Connect does. */
export function refuseStream(res: http2.Http2ServerResponse, error: ConnectError): void {
  res.writeHead(200, { "content-type": STREAM_PROTO_CONTENT_TYPE });
  res.end(frameEndStream(error));
}

/**
 * Wraps the connect-node handler so that HTTP/2 POSTs to a stream route's
 * path go to that route once their bearer token is accepted.
 */
function withStreamRoutes<P>(
  handler: (req: HttpRequest, res: HttpResponse) => void,
  routes: readonly StreamRoute<P>[],
  authenticator: Authenticator<P> | undefined,
  hint: string,
  onRefused: ((refusal: TokenRefusal) => void) | undefined,
): (req: HttpRequest, res: HttpResponse) => void {
  const byPath = new Map(routes.map((r) => [r.path, r]));
  return (req, res) => {
    const route = req.httpVersion === "2.0" && req.method === "POST" ? byPath.get(requestPath(req)) : undefined;
    if (!route) return handler(req, res);
    const h2req = req as http2.Http2ServerRequest;
    const h2res = res as http2.Http2ServerResponse;
    if (!authenticator) return route.handle(h2req, h2res, undefined);
    const header = req.headers[AUTHORIZATION];
    const token = bearerToken(typeof header === "string" ? header : null);
    const refuse = (err: unknown) => refuseStream(h2res, toConnectError(err));
    const accept = (caller: P | undefined) => {
      if (caller !== undefined) return route.handle(h2req, h2res, caller);
      const reason = header ? "wrong" : "missing";
      onRefused?.({ procedure: route.path.slice(1), reason, request: undefined });
      refuse(new ConnectError(`${reason} bearer token: ${hint}`, Code.Unauthenticated));
    };
    if (token === undefined) return accept(undefined);
    try {
      const caller = authenticator.authenticate(token);
      if (caller instanceof Promise) caller.then(accept, refuse);
      else accept(caller);
    } catch (err) {
      refuse(err);
    }
  };
}

/** A plain HTTP path a server answers besides its RPCs. */
export interface HttpRoute {
  /** The path (`/metrics`), or a prefix when it ends with `/` (`/assets/`); the query string is ignored. */
  path: string;
  /**
   * Whether the request must carry the server's bearer token, like an RPC
   * (when the server has one). Metrics do; static files that hold no data
   * (the dashboard's page and scripts, which then sign in) need not.
   */
  auth: boolean;
  /** Answers the request (GET and HEAD only reach it; other methods get a 405). */
  handle(req: HttpRequest, res: HttpResponse): void | Promise<void>;
}

/** The path of a request, without its query string. */
function requestPath(req: HttpRequest): string {
  const url = req.url ?? "/";
  const query = url.indexOf("?");
  return query < 0 ? url : url.slice(0, query);
}

function routeMatches(route: HttpRoute, path: string): boolean {
  return route.path.endsWith("/") && route.path !== "/" ? path.startsWith(route.path) : path === route.path;
}

/** Answers a plain HTTP request with a short text body. */
export function sendText(res: HttpResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store", ...headers });
  res.end(`${text}\n`);
}

/** The connect-node fallback that serves `routes`, checking the bearer token of those that need it. */
function httpRoutesHandler(routes: readonly HttpRoute[], authenticator: Authenticator<unknown> | undefined, hint: string): NonNullable<ConnectNodeAdapterOptions["fallback"]> {
  return (request, response) => {
    // connect-node narrows the response's type; it is Node's own object.
    const req = request as HttpRequest;
    const res = response as HttpResponse;
    const path = requestPath(req);
    const route = routes.find((r) => routeMatches(r, path));
    if (!route) return sendText(res, 404, `not found: ${path}`);
    if (req.method !== "GET" && req.method !== "HEAD") return sendText(res, 405, `method ${req.method} not allowed on ${path}`, { allow: "GET, HEAD" });
    void (async () => {
      if (route.auth && authenticator) {
        const header = req.headers[AUTHORIZATION];
        const token = bearerToken(typeof header === "string" ? header : null);
        let caller: unknown;
        try {
          caller = token === undefined ? undefined : await authenticator.authenticate(token);
        } catch {
          caller = undefined;
        }
        if (caller === undefined) return sendText(res, 401, `${header ? "wrong" : "missing"} bearer token: ${hint}`, { "www-authenticate": "Bearer" });
      }
      await route.handle(req, res);
    })().catch((err: unknown) => {
      if (!res.headersSent) sendText(res, 500, `failed to serve ${path}: ${(err as Error).message}`);
      else res.end();
    });
  };
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
  /** `http://host:port` (`https://` with TLS) a client on this machine can use. */
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
export async function startRpcServer<P = unknown>(options: RpcServerOptions<P>): Promise<RpcServer> {
  const limits = compileRequestLimits(options.limits);
  const interceptors: Interceptor[] = [...(options.interceptors ?? []), errorInterceptor];
  const authenticator: Authenticator<unknown> | undefined = options.authenticator ?? (options.token ? staticTokenAuthenticator(options.token) : undefined);
  if (authenticator) interceptors.unshift(authInterceptor(authenticator, options.tokenHint ?? "set FLUSTER_TOKEN", options.onUnauthenticated));
  // Refused calls are traced too: a span names the caller's trace either way.
  interceptors.unshift(tracingServerInterceptor);
  // Outermost: nothing after it (a refusal's log line, a handler) sees an oversized field.
  interceptors.unshift(requestLimitsInterceptor(limits));
  const handler = connectNodeAdapter({
    routes: (router) => {
      options.routes(router);
      improveEarlyErrors(router);
    },
    interceptors,
    readMaxBytes: limits.maxRequestBytes,
    ...(options.httpRoutes?.length ? { fallback: httpRoutesHandler(options.httpRoutes, authenticator, options.tokenHint ?? "set FLUSTER_TOKEN") } : {}),
  });
  const serve = options.streamRoutes?.length
    ? withStreamRoutes(handler, options.streamRoutes, options.authenticator ?? (authenticator as Authenticator<P> | undefined), options.tokenHint ?? "set FLUSTER_TOKEN", options.onUnauthenticated)
    : handler;
  const sockets = new Set<net.Socket>();
  const sessions = new Set<http2.ServerHttp2Session>();
  const trackSessions = (h2: http2.Http2Server | http2.Http2SecureServer) =>
    h2.on("session", (session) => {
      sessions.add(session);
      session.on("close", () => sessions.delete(session));
    });
  const trackSocket = (socket: net.Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
  };
  let h1: http.Server | undefined;
  let server: net.Server;
  if (options.tls) {
    // ALPN picks HTTP/2 or HTTP/1.1; a client that does not speak TLS fails its handshake (the client says so).
    let secure: http2.Http2SecureServer;
    try {
      secure = http2.createSecureServer({ cert: options.tls.cert, key: options.tls.key, allowHTTP1: true }, serve);
    } catch (err) {
      throw new FlusterError(`cannot serve TLS with the certificate and key given: ${(err as Error).message}`, "invalid_argument", { cause: err });
    }
    trackSessions(secure);
    secure.on("connection", trackSocket);
    secure.on("tlsClientError", () => undefined);
    server = secure;
  } else {
    const h2 = http2.createServer({}, serve);
    const plain = http.createServer(handler);
    plain.keepAliveTimeout = 5_000;
    h1 = plain;
    trackSessions(h2);
    server = net.createServer((socket) => {
      trackSocket(socket);
      // Peek at the first bytes without consuming them: both servers read
      // data already buffered on the socket when they take it over.
      socket.once("readable", () => {
        const first = socket.read() as Buffer | null;
        if (first === null) return;
        socket.unshift(first);
        const target = first.subarray(0, 3).toString("latin1") === "PRI" ? h2 : plain;
        target.emit("connection", socket);
      });
    });
  }
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
    url: `${options.tls ? "https" : "http"}://${urlHost}:${address.port}`,
    port: address.port,
    address: address.address,
    shutdown: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const session of sessions) session.close();
        h1?.closeAllConnections();
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

/** The bearer token of an `Authorization` header (the scheme in any case, as RFC 9110 says), or undefined. */
export function bearerToken(header: string | null): string | undefined {
  const match = header ? /^bearer[ \t]+(\S+)[ \t]*$/i.exec(header) : null;
  return match?.[1];
}

/** Accepts exactly one token (compared in constant time). */
function staticTokenAuthenticator(token: string): Authenticator<true> {
  const expected = Buffer.from(token);
  return {
    key: STATIC_CALLER,
    authenticate(given) {
      const buffer = Buffer.from(given);
      return buffer.length === expected.length && timingSafeEqual(buffer, expected) ? true : undefined;
    },
  };
}

const STATIC_CALLER = createContextKey<true | undefined>(undefined, { description: "caller with the server's token" });

function authInterceptor<P>(authenticator: Authenticator<P>, hint: string, onRefused: ((refusal: TokenRefusal) => void) | undefined): Interceptor {
  return (next) => async (req) => {
    const header = req.header.get(AUTHORIZATION);
    const token = bearerToken(header);
    let caller: P | undefined;
    try {
      caller = token === undefined ? undefined : await authenticator.authenticate(token);
    } catch (err) {
      // An authenticator may refuse with a reason of its own (a credential of an attempt that ended).
      throw toConnectError(err);
    }
    if (caller === undefined) {
      const reason = header ? "wrong" : "missing";
      onRefused?.({ procedure: `${req.service.typeName}/${req.method.name}`, reason, request: req.stream ? undefined : req.message });
      throw new ConnectError(`${reason} bearer token: ${hint}`, Code.Unauthenticated);
    }
    req.contextValues.set(authenticator.key, caller);
    return next(req);
  };
}
