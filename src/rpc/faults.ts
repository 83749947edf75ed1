// Fault injection for tests (SPEC §7), as a Connect server interceptor: named
// RPCs are dropped (failing with `unavailable`, as a lost packet looks to the
// caller) or delayed, each with a probability. Never on unless an option
// turns it on; chaos tests are then ordinary tests.
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { ValidationError, describeValue } from "../core/errors.js";
import { checkNonNegative, checkPlainObject } from "../core/validate.js";

/** What happens to calls of one RPC method. */
export interface RpcFault {
  /** Probability that a call is dropped before the handler runs (the request was lost). @default 0 */
  dropProbability?: number;
  /** Probability that the handler runs but its answer is dropped (the response was lost). @default 0 */
  dropResponseProbability?: number;
  /** Probability that a call is held back `delayMs` first. @default 1 when `delayMs` is set */
  delayProbability?: number;
  /** How long a delayed call waits before it is handled. @default 0 */
  delayMs?: number;
}

/**
 * Faults per RPC method, keyed by the method's name (`"Heartbeat"`,
 * `"Reconcile"`) or by `Service/Method`
 * (`"fluster.cluster.v1.ControllerService/Heartbeat"`). Test-only.
 */
export type RpcFaults = Readonly<Record<string, RpcFault>>;

/** Longest delay a fault may ask for: longer looks like a hang, which tests make with SIGSTOP. */
const MAX_DELAY_MS = 60_000;

/** Checks RPC faults (also untyped JSON); throws a ValidationError naming the field (`field` is where they sit, e.g. `faults.rpc`). */
export function compileRpcFaults(raw: unknown, field: string): RpcFaults {
  const faults = checkPlainObject(raw, field);
  const compiled: Record<string, RpcFault> = {};
  for (const [method, value] of Object.entries(faults)) {
    const at = `${field}.${method}`;
    if (!/^([A-Za-z0-9_.]+\/)?[A-Z][A-Za-z0-9]*$/.test(method)) throw new ValidationError(at, `must be keyed by a method name such as "Heartbeat" or "Service/Method", got ${describeValue(method)}`);
    const o = checkPlainObject(value, at);
    const known = ["dropProbability", "dropResponseProbability", "delayProbability", "delayMs"];
    for (const key of Object.keys(o)) if (!known.includes(key)) throw new ValidationError(`${at}.${key}`, `is not a fault (known: ${known.join(", ")})`);
    const fault: RpcFault = {};
    for (const key of ["dropProbability", "dropResponseProbability", "delayProbability"] as const) {
      if (o[key] !== undefined) fault[key] = checkProbability(o[key], `${at}.${key}`);
    }
    if (o.delayMs !== undefined) {
      const ms = checkNonNegative(o.delayMs, `${at}.delayMs`);
      if (ms > MAX_DELAY_MS) throw new ValidationError(`${at}.delayMs`, `must be at most ${MAX_DELAY_MS} ms, got ${ms}`);
      fault.delayMs = ms;
    }
    compiled[method] = fault;
  }
  return compiled;
}

/** Counts of what the interceptor did, per `Service/Method`, for tests to check. */
export interface FaultCounts {
  calls: number;
  dropped: number;
  droppedResponses: number;
  delayed: number;
}

/** A fault interceptor and what it has done so far. */
export interface FaultInjector {
  readonly interceptor: Interceptor;
  /** Per `Service/Method` that has a fault: calls seen and faults injected. */
  readonly counts: ReadonlyMap<string, FaultCounts>;
}

/**
 * A server interceptor injecting `faults`. `random` is for tests
 * (deterministic draws); each call draws once per fault it has.
 */
export function createFaultInjector(faults: RpcFaults, random: () => number = Math.random): FaultInjector {
  const counts = new Map<string, FaultCounts>();
  const interceptor: Interceptor = (next) => async (req) => {
    const procedure = `${req.service.typeName}/${req.method.name}`;
    const fault = faults[procedure] ?? faults[`${req.service.typeName.split(".").at(-1)}/${req.method.name}`] ?? faults[req.method.name];
    if (!fault) return next(req);
    let count = counts.get(procedure);
    if (!count) counts.set(procedure, (count = { calls: 0, dropped: 0, droppedResponses: 0, delayed: 0 }));
    count.calls += 1;
    if (fault.delayMs && random() < (fault.delayProbability ?? 1)) {
      count.delayed += 1;
      await abortableDelay(fault.delayMs, req.signal);
    }
    if (fault.dropProbability && random() < fault.dropProbability) {
      count.dropped += 1;
      throw new ConnectError(`fault injection: ${procedure} request dropped`, Code.Unavailable);
    }
    const res = await next(req);
    if (fault.dropResponseProbability && random() < fault.dropResponseProbability) {
      count.droppedResponses += 1;
      throw new ConnectError(`fault injection: ${procedure} response dropped`, Code.Unavailable);
    }
    return res;
  };
  return { interceptor, counts };
}

function abortableDelay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}

/** Checks a probability option (0 to 1) of a fault. */
export function checkProbability(value: unknown, field: string): number {
  const p = checkNonNegative(value, field);
  if (p > 1) throw new ValidationError(field, `must be a probability between 0 and 1, got ${p}`);
  return p;
}
