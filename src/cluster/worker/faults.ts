// A worker daemon's fault injection options (SPEC §7), for tests only: drop
// or delay the RPCs it serves, and kill its attempts at random. Off unless set.
import { ValidationError } from "../../core/errors.js";
import { checkPlainObject } from "../../core/validate.js";
import { checkProbability, compileRpcFaults, type RpcFaults } from "../../rpc/faults.js";

/** Faults a worker daemon injects. Test-only; never on by default. */
export interface WorkerFaults {
  /** Faults of the RPCs the worker serves (WorkerService), by method, e.g. `{ Reconcile: { dropProbability: 0.05 } }`. @default none */
  rpc?: RpcFaults;
  /**
   * Each second, each running attempt is SIGKILLed (its whole group) with
   * this probability and reported `worker_failed`, as if its machine had
   * died under it (a preemption retry). @default 0
   */
  killAttemptProbability?: number;
}

/** Checks worker faults (also untyped JSON); throws a ValidationError naming the field. */
export function compileWorkerFaults(raw: unknown): WorkerFaults {
  const o = checkPlainObject(raw, "faults");
  for (const key of Object.keys(o)) if (key !== "rpc" && key !== "killAttemptProbability") throw new ValidationError(`faults.${key}`, "is not a worker fault (known: rpc, killAttemptProbability)");
  return {
    ...(o.rpc !== undefined ? { rpc: compileRpcFaults(o.rpc, "faults.rpc") } : {}),
    ...(o.killAttemptProbability !== undefined ? { killAttemptProbability: checkProbability(o.killAttemptProbability, "faults.killAttemptProbability") } : {}),
  };
}
