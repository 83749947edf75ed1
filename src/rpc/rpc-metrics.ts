// Prometheus metrics of the RPCs a server handles, as a Connect server
// interceptor: calls started, calls handled by Connect code, and how long unary
// calls took. Streaming calls are counted but not timed (a stream's length is
// its client's, not the server's latency).
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { Counter, Histogram, type Registry } from "prom-client";
import { ValidationError, describeValue } from "../core/errors.js";

/** Options of {@link rpcMetricsInterceptor}. */
export interface RpcMetricsOptions {
  /**
   * Start of every metric's name, e.g. `fluster_controller` gives
   * `fluster_controller_rpc_handled_total`. Letters, digits and underscores,
   * not starting with a digit.
   */
  prefix: string;
  /** Upper bounds of the latency histogram's buckets, in seconds. @default 1 ms to 10 s, roughly ×2.5 apart */
  buckets?: readonly number[];
}

/** Latency buckets from a quick local call (1 ms) to one that waits on disk or a worker (10 s). */
export const DEFAULT_RPC_BUCKETS: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

const METRIC_PREFIX = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/**
 * An interceptor that records every call it sees in `registry`:
 * - `<prefix>_rpc_started_total{service,method}`: calls that reached the server's handlers;
 * - `<prefix>_rpc_handled_total{service,method,code}`: calls that ended, by Connect
 *   code (`ok`, `not_found`, …); a stream counts when it ends, `canceled` when its client left;
 * - `<prefix>_rpc_handling_seconds{service,method}`: how long unary and
 *   client-streaming calls took, until their answer (server streams are not timed).
 * Put it first among a server's interceptors, so that it sees the codes the
 * others answer with. Throws a ValidationError for a bad prefix or buckets.
 */
export function rpcMetricsInterceptor(registry: Registry, options: RpcMetricsOptions): Interceptor {
  const { prefix } = options;
  if (typeof prefix !== "string" || !METRIC_PREFIX.test(prefix)) throw new ValidationError("prefix", `must be letters, digits and underscores, not starting with a digit, got ${describeValue(prefix)}`);
  const buckets = options.buckets ?? DEFAULT_RPC_BUCKETS;
  if (!Array.isArray(buckets) || buckets.length === 0 || buckets.some((b, i) => !(b > 0) || !Number.isFinite(b) || (i > 0 && b <= (buckets[i - 1] as number)))) {
    throw new ValidationError("buckets", `must be increasing positive numbers of seconds, got ${describeValue(buckets)}`);
  }
  const started = new Counter({
    name: `${prefix}_rpc_started_total`,
    help: "RPC calls that reached the server's handlers (started minus handled: calls in progress, open streams).",
    labelNames: ["service", "method"],
    registers: [registry],
  });
  const handled = new Counter({
    name: `${prefix}_rpc_handled_total`,
    help: "RPC calls that ended, by Connect code: ok, or the error code (not_found, unauthenticated, canceled, ...). A stream counts when it ends.",
    labelNames: ["service", "method", "code"],
    registers: [registry],
  });
  const seconds = new Histogram({
    name: `${prefix}_rpc_handling_seconds`,
    help: "Seconds a unary or client-streaming RPC took on the server, from the call's arrival to its answer or error; server streams are not timed.",
    labelNames: ["service", "method"],
    buckets: [...buckets],
    registers: [registry],
  });
  return (next) => async (req) => {
    const labels = { service: req.service.typeName, method: req.method.name };
    started.inc(labels);
    const timed = req.method.methodKind === "unary" || req.method.methodKind === "client_streaming";
    const begin = performance.now();
    const ended = (code: string) => {
      handled.inc({ ...labels, code });
      if (timed) seconds.observe(labels, (performance.now() - begin) / 1000);
    };
    const res = await next(req).catch((err: unknown) => {
      ended(codeOf(err));
      throw err;
    });
    if (!res.stream) {
      ended(answeredCode(req.signal));
      return res;
    }
    return { ...res, message: countStream(res.message, req.signal, ended) };
  };
}

/**
 * The code of a call whose handler finished without an error: `ok`, unless
 * the call's signal was aborted meanwhile, when no one got the answer: the
 * client left (`canceled`) or its deadline passed (`deadline_exceeded`).
 * (Connect aborts the signal itself only after the handler finished.)
 */
function answeredCode(signal: AbortSignal): string {
  if (!signal.aborted) return "ok";
  return signal.reason instanceof ConnectError ? codeToString(signal.reason.code) : codeToString(Code.Canceled);
}

/** The Connect code of an error as the wire names it (`not_found`); anything not a ConnectError is `internal`, as the server answers it. */
function codeOf(err: unknown): string {
  return codeToString(err instanceof ConnectError ? err.code : Code.Internal);
}

/** Passes a response stream through, and says how it ended: `ok`, its error's code, or `canceled` when its client left. */
async function* countStream<T>(messages: AsyncIterable<T>, signal: AbortSignal, ended: (code: string) => void): AsyncGenerator<T> {
  let code = codeToString(Code.Canceled);
  try {
    yield* messages;
    code = answeredCode(signal);
  } catch (err) {
    code = codeOf(err);
    throw err;
  } finally {
    ended(code);
  }
}
