// OpenTelemetry tracing for every RPC, when the program has a tracer: a client
// span around each call that carries its context to the server in the request
// headers (W3C `traceparent`, or whatever propagator is registered), and a
// server span, child of the caller's, around each handler. `@opentelemetry/api`
// is an optional peer dependency: without it, or without a registered tracer
// provider, the interceptors pass calls straight through.
import { createRequire } from "node:module";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { ConnectError, type Interceptor, type StreamResponse, type UnaryResponse } from "@connectrpc/connect";
import type * as OtelApi from "@opentelemetry/api";

type Api = typeof OtelApi;

/** The tracer's name on every span Fluster makes (its instrumentation scope). */
export const TRACER_NAME = "fluster";

/**
 * Where `@opentelemetry/api` 1.x keeps what a program registered (its tracer
 * provider under `trace`): a process that registered nothing has nothing
 * there, and never loads the API for Fluster's sake.
 */
const OTEL_GLOBAL = Symbol.for("opentelemetry.js.api.1");

/** `@opentelemetry/api` as the program has it (one copy shares the global registry), undefined when not installed; loaded on first need. */
let api: Api | undefined | null = null;

function loadApi(): Api | undefined {
  if (api !== null) return api;
  try {
    // Synchronous on purpose: interceptors run synchronously up to their first await, and a top-level await would keep require(esm) out.
    api = createRequire(import.meta.url)("@opentelemetry/api") as Api;
  } catch {
    api = undefined;
  }
  return api;
}

/** The registered tracer and the API, or undefined when no tracer provider is registered (or the API is not installed). */
function activeTracer(): { otel: Api; tracer: OtelApi.Tracer } | undefined {
  const registered = (globalThis as Record<symbol, { trace?: unknown } | undefined>)[OTEL_GLOBAL];
  if (!registered?.trace) return undefined;
  const otel = loadApi();
  if (!otel) return undefined;
  const provider = otel.trace.getTracerProvider() as OtelApi.TracerProvider & { getDelegateTracer?: (name: string) => OtelApi.Tracer | undefined };
  // The global provider is a proxy until an SDK registers a delegate; a proxy with none makes only no-op spans.
  const tracer = typeof provider.getDelegateTracer === "function" ? provider.getDelegateTracer(TRACER_NAME) : provider.getTracer(TRACER_NAME);
  return tracer && { otel, tracer };
}

/** Whether RPCs are traced now: `@opentelemetry/api` is installed and a tracer provider is registered. */
export function tracingActive(): boolean {
  return activeTracer() !== undefined;
}

const headerSetter: OtelApi.TextMapSetter<Headers> = { set: (headers, key, value) => headers.set(key, value) };
const headerGetter: OtelApi.TextMapGetter<Headers> = {
  keys: (headers) => [...headers.keys()],
  get: (headers, key) => headers.get(key) ?? undefined,
};

function spanName(service: string, method: string): string {
  return `${service}/${method}`;
}

function rpcAttributes(service: string, method: string): OtelApi.Attributes {
  return { "rpc.system": "connect_rpc", "rpc.service": service, "rpc.method": method };
}

/** Ends `span` as failed with `err`, recording the Connect code as the semantic conventions name it. */
function endFailed(otel: Api, span: OtelApi.Span, err: unknown): void {
  const error = ConnectError.from(err);
  span.setAttribute("rpc.connect_rpc.error_code", codeToString(error.code));
  span.recordException(error);
  span.setStatus({ code: otel.SpanStatusCode.ERROR, message: error.rawMessage });
  span.end();
}

/** Ends the span when a streamed response ends, fails or is abandoned, not when its first message arrives. */
async function* spanningStream<T>(otel: Api, span: OtelApi.Span, messages: AsyncIterable<T>): AsyncIterable<T> {
  let failed = false;
  try {
    yield* messages;
  } catch (err) {
    failed = true;
    endFailed(otel, span, err);
    throw err;
  } finally {
    if (!failed) span.end();
  }
}

function finish<R extends UnaryResponse | StreamResponse>(otel: Api, span: OtelApi.Span, res: R): R {
  if (res.stream) return { ...res, message: spanningStream(otel, span, res.message) };
  span.end();
  return res;
}

/** Runs the call in a span of `kind` (a child of `parent`), active meanwhile; `enter` runs first inside it. */
async function inSpan<R extends UnaryResponse | StreamResponse>(
  otel: Api,
  tracer: OtelApi.Tracer,
  req: { service: { typeName: string }; method: { name: string } },
  kind: OtelApi.SpanKind,
  parent: OtelApi.Context,
  call: () => Promise<R>,
  enter: () => void = () => undefined,
): Promise<R> {
  const service = req.service.typeName;
  const method = req.method.name;
  return tracer.startActiveSpan(spanName(service, method), { kind, attributes: rpcAttributes(service, method) }, parent, async (span) => {
    enter();
    try {
      return finish(otel, span, await call());
    } catch (err) {
      endFailed(otel, span, err);
      throw err;
    }
  });
}

/**
 * The client side: a span (kind client) around each call, and the current
 * trace context written into its request headers. Streaming calls end their
 * span when the response stream ends.
 */
export const tracingClientInterceptor: Interceptor = (next) => async (req) => {
  const active = activeTracer();
  if (!active) return next(req);
  const { otel, tracer } = active;
  return inSpan(otel, tracer, req, otel.SpanKind.CLIENT, otel.context.active(), () => next(req), () =>
    otel.propagation.inject(otel.context.active(), req.header, headerSetter),
  );
};

/**
 * The server side: the caller's trace context read from the request headers,
 * and a span (kind server), its child, active while the handler runs, so
 * calls the handler makes are children of it.
 */
export const tracingServerInterceptor: Interceptor = (next) => async (req) => {
  const active = activeTracer();
  if (!active) return next(req);
  const { otel, tracer } = active;
  const parent = otel.propagation.extract(otel.ROOT_CONTEXT, req.header, headerGetter);
  return inSpan(otel, tracer, req, otel.SpanKind.SERVER, parent, () => next(req));
};

/**
 * A client span around one call that does not travel as an RPC of its own (an
 * actor call on a shared CallStream), and the trace context its request carries.
 */
export interface CallSpan {
  /** The W3C trace context (`traceparent`, `tracestate`) to send with the call. */
  readonly carrier: Record<string, string>;
  /** Ends the span: failed with `err` when given. */
  end(err?: unknown): void;
}

/**
 * Starts a client span for one call of `service`/`method`, a child of the
 * active span; undefined when no tracer provider is registered (nothing is
 * done then).
 */
export function startCallSpan(service: string, method: string, attributes: OtelApi.Attributes): CallSpan | undefined {
  const active = activeTracer();
  if (!active) return undefined;
  const { otel, tracer } = active;
  const span = tracer.startSpan(spanName(service, method), { kind: otel.SpanKind.CLIENT, attributes: { ...rpcAttributes(service, method), ...attributes } }, otel.context.active());
  const carrier: Record<string, string> = {};
  otel.propagation.inject(otel.trace.setSpan(otel.context.active(), span), carrier);
  return { carrier, end: (err) => endSpan(otel, span, err) };
}

/**
 * Runs `fn` in a server span, the child of the caller's `carrier`, active
 * while it runs (so calls it makes nest under it), and ended when its result
 * settles; `failure` tells a result that reports an error (an actor method
 * that threw). Without a tracer provider, or a carrier, `fn` runs as it is.
 */
export function inCallSpan<R>(
  service: string,
  method: string,
  attributes: OtelApi.Attributes,
  carrier: Record<string, string>,
  fn: () => R | Promise<R>,
  failure: (result: R) => Error | undefined,
): R | Promise<R> {
  const active = activeTracer();
  if (!active) return fn();
  const { otel, tracer } = active;
  const parent = otel.propagation.extract(otel.ROOT_CONTEXT, carrier);
  const span = tracer.startSpan(spanName(service, method), { kind: otel.SpanKind.SERVER, attributes: { ...rpcAttributes(service, method), ...attributes } }, parent);
  const settle = (result: R): R => {
    endSpan(otel, span, failure(result));
    return result;
  };
  let result: R | Promise<R>;
  try {
    result = otel.context.with(otel.trace.setSpan(parent, span), fn);
  } catch (err) {
    endSpan(otel, span, err);
    throw err;
  }
  if (result instanceof Promise) {
    return result.then(settle, (err: unknown) => {
      endSpan(otel, span, err);
      throw err;
    });
  }
  return settle(result);
}

/** Ends `span`, as failed with `err` when given: a Fluster error's code, or a Connect one's, names the failure. */
function endSpan(otel: Api, span: OtelApi.Span, err: unknown): void {
  if (err === undefined) return span.end();
  const code = (err as { code?: unknown }).code;
  if (typeof code !== "string") return endFailed(otel, span, err);
  const error = err as Error;
  span.setAttribute("rpc.connect_rpc.error_code", code);
  span.recordException(error);
  span.setStatus({ code: otel.SpanStatusCode.ERROR, message: error.message });
  span.end();
}
