// Fluster's error classes. Every error a user must tell apart has its own
// class and a stable `code`, so callers can branch without parsing messages.

/** Stable codes carried by every {@link FlusterError}. */
export type FlusterErrorCode =
  | "invalid_argument"
  | "not_found"
  | "already_exists"
  | "failed_precondition"
  | "unavailable"
  | "deadline_exceeded"
  | "cancelled"
  | "internal"
  | "unimplemented"
  | "unauthenticated";

/** Base class of every error Fluster throws on purpose. */
export class FlusterError extends Error {
  override name = "FlusterError";
  readonly code: FlusterErrorCode;

  constructor(message: string, code: FlusterErrorCode = "internal", options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

/**
 * A value given to Fluster is malformed. The message names the field and the
 * offending value, e.g. `resources.cpu must be a non-negative number, got -1`.
 */
export class ValidationError extends FlusterError {
  override name = "ValidationError";
  /** Dotted path of the offending field, e.g. `resources.memory`. */
  readonly field: string;

  constructor(field: string, message: string) {
    super(`${field} ${message}`, "invalid_argument");
    this.field = field;
  }
}

/** Renders a user value for an error message: short, unambiguous, never throws. */
export function describeValue(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value.length > 80 ? `${value.slice(0, 77)}...` : value);
  if (typeof value === "bigint") return `${value}n`;
  if (value === null || typeof value !== "object") return String(value);
  if (Array.isArray(value)) return `array(${value.length})`;
  const ctor = (value as object).constructor;
  return ctor && ctor.name && ctor.name !== "Object" ? ctor.name : "object";
}
