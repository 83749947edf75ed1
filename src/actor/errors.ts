// Errors of the actor layer: what an actor threw, as its caller sees it, and
// a call that never reached an actor.
import { ERROR_BRAND, FlusterError, type FlusterErrorCode } from "../core/errors.js";

/**
 * An actor method threw. Carries the remote error's name, message and stack;
 * `cause` is the remote error itself, rebuilt with its own cause chain and
 * extra fields. Never retried: the actor ran the call.
 */
export class ActorError extends FlusterError {
  static override readonly [ERROR_BRAND]: string = "fluster.ActorError";
  override name = "ActorError";
  /** The thrown error's name on the actor's side, e.g. `"RangeError"`. */
  readonly remoteName: string;
  /** The thrown error's stack on the actor's side. */
  readonly remoteStack: string;
  /** Actor name and method that threw. */
  readonly actor: string;
  readonly method: string;
  /** Address of the endpoint that ran the call. */
  readonly address: string;

  constructor(init: { remoteName: string; message: string; remoteStack: string; actor: string; method: string; address: string; cause?: unknown }) {
    super(init.message, "failed_precondition", init.cause !== undefined ? { cause: init.cause } : undefined);
    this.remoteName = init.remoteName;
    this.remoteStack = init.remoteStack;
    this.actor = init.actor;
    this.method = init.method;
    this.address = init.address;
  }

  override toString(): string {
    return `ActorError: ${this.remoteName}: ${this.message} (in ${this.actor}.${this.method} at ${this.address})`;
  }
}

/**
 * A call that never reached an actor: the connection was refused, or the
 * endpoint no longer hosts that actor (a stale registration). Safe to send
 * elsewhere, which ActorPool does before giving up with this error.
 */
export class CallNotDeliveredError extends FlusterError {
  static override readonly [ERROR_BRAND]: string = "fluster.CallNotDeliveredError";
  override name = "CallNotDeliveredError";

  constructor(message: string, code: FlusterErrorCode, options?: ErrorOptions) {
    super(message, code, options);
  }
}

/**
 * A call that was sent but whose answer never came: the connection to its
 * endpoint dropped (the process hosting the actor died, say) after the
 * request was written. The actor may or may not have run it, so Fluster never
 * repeats it by itself; a caller whose method is safe to repeat (idempotent)
 * may call again, and the pool sends the new call to a live endpoint. Its
 * code is `unavailable`, the code of errors worth retrying.
 */
export class CallInterruptedError extends FlusterError {
  static override readonly [ERROR_BRAND]: string = "fluster.CallInterruptedError";
  override name = "CallInterruptedError";
  /** Always true: the actor may have run the call. */
  readonly mayHaveRun = true;

  constructor(message: string, options?: ErrorOptions) {
    super(message, "unavailable", options);
  }
}
