// The one place that turns Fluster errors into Connect wire codes and back.
import { Code, ConnectError } from "@connectrpc/connect";
import { FlusterError, type FlusterErrorCode } from "../core/errors.js";

const TO_WIRE: Record<FlusterErrorCode, Code> = {
  invalid_argument: Code.InvalidArgument,
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  failed_precondition: Code.FailedPrecondition,
  unavailable: Code.Unavailable,
  resource_exhausted: Code.ResourceExhausted,
  deadline_exceeded: Code.DeadlineExceeded,
  cancelled: Code.Canceled,
  internal: Code.Internal,
  unimplemented: Code.Unimplemented,
  unauthenticated: Code.Unauthenticated,
  permission_denied: Code.PermissionDenied,
};

const FROM_WIRE = new Map<Code, FlusterErrorCode>([
  ...Object.entries(TO_WIRE).map(([k, v]) => [v, k as FlusterErrorCode] as const),
  [Code.Unknown, "internal"],
  [Code.Aborted, "unavailable"],
  [Code.OutOfRange, "invalid_argument"],
  [Code.DataLoss, "internal"],
]);

/** Server side: any thrown value → ConnectError with the matching code. */
export function toConnectError(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  if (err instanceof FlusterError) return new ConnectError(err.message, TO_WIRE[err.code], undefined, undefined, err);
  return ConnectError.from(err, Code.Internal);
}

/**
 * Client side: a ConnectError → FlusterError with the matching code, keeping
 * the server's message (without Connect's "[code]" prefix) and the cause.
 */
export function fromConnectError(err: unknown, context?: string): FlusterError {
  if (err instanceof FlusterError) return err;
  const connect = ConnectError.from(err);
  const code = FROM_WIRE.get(connect.code) ?? "internal";
  const message = context ? `${context}: ${connect.rawMessage}` : connect.rawMessage;
  return new FlusterError(message, code, { cause: err });
}

/** True for failures where retrying (maybe elsewhere) can help: the peer is gone or unreachable. */
export function isTransportFailure(err: unknown): boolean {
  if (err instanceof FlusterError) return err.code === "unavailable" || err.code === "deadline_exceeded";
  const connect = ConnectError.from(err);
  return connect.code === Code.Unavailable || connect.code === Code.DeadlineExceeded;
}
