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
