// The controller's fault injection options (SPEC §7), for tests only: drop or
// delay the RPCs it serves, and declare workers lost at random. Off unless set.
import { ValidationError } from "../../core/errors.js";
import { checkPlainObject } from "../../core/validate.js";
import { checkProbability, compileRpcFaults, type RpcFaults } from "../../rpc/faults.js";

/** Faults a controller injects. Test-only; never on by default. */
export interface ControllerFaults {
  /** Faults of the RPCs the controller serves (ControllerService), by method, e.g. `{ Heartbeat: { dropProbability: 0.05 } }`. @default none */
  rpc?: RpcFaults;
  /**
   * At each reconcile round, each worker is cut off with this probability
   * for 1.5 × the grace: every call to it and from it fails, as on a
   * partitioned network, so it is lost, fences its attempts itself, and
   * registers again afterwards. @default 0
   */
  loseWorkerProbability?: number;
}

/** Checks controller faults (also untyped JSON); throws a ValidationError naming the field. */
export function compileControllerFaults(raw: unknown): ControllerFaults {
  const o = checkPlainObject(raw, "faults");
  for (const key of Object.keys(o)) if (key !== "rpc" && key !== "loseWorkerProbability") throw new ValidationError(`faults.${key}`, "is not a controller fault (known: rpc, loseWorkerProbability)");
  return {
    ...(o.rpc !== undefined ? { rpc: compileRpcFaults(o.rpc, "faults.rpc") } : {}),
    ...(o.loseWorkerProbability !== undefined ? { loseWorkerProbability: checkProbability(o.loseWorkerProbability, "faults.loseWorkerProbability") } : {}),
  };
}
