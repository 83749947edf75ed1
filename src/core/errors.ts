// Fluster's error classes. Every error a user must tell apart has its own
// class and a stable `code`, so callers can branch without parsing messages.

/** Stable codes carried by every {@link FlusterError}. */
export type FlusterErrorCode =
  | "invalid_argument"
  | "not_found"
  | "already_exists"
  | "failed_precondition"
  | "unavailable"
  | "resource_exhausted"
  | "deadline_exceeded"
  | "cancelled"
  | "internal"
  | "unimplemented"
  | "unauthenticated"
  | "permission_denied";

/** Names the class on a class (an own static field); every class a user may test with `instanceof` sets one. */
export const ERROR_BRAND: unique symbol = Symbol.for("fluster.errorBrand");
/** The brands of an instance's class and its ancestors. Symbol.for: shared by every copy of fluster in a process. */
const ERROR_BRANDS: unique symbol = Symbol.for("fluster.errorBrands");

/**
 * Base class of every error Fluster throws on purpose.
 *
 * `instanceof` works across two copies of the package in one process (a job
 * that bundles its own fluster, say): classes carry a brand registered with
 * `Symbol.for`, and an error of another copy's class passes the check when
 * its class chain carries the same brand.
 */
export class FlusterError extends Error {
  static readonly [ERROR_BRAND]: string = "fluster.FlusterError";
  override name = "FlusterError";
  readonly code: FlusterErrorCode;
  declare readonly [ERROR_BRANDS]: readonly string[];

  constructor(message: string, code: FlusterErrorCode = "internal", options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    Object.defineProperty(this, ERROR_BRANDS, { value: brandsOf(new.target) });
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    if (Function.prototype[Symbol.hasInstance].call(this, value)) return true;
    const brand = Object.hasOwn(this, ERROR_BRAND) ? (this as { [ERROR_BRAND]?: unknown })[ERROR_BRAND] : undefined;
    const brands = typeof value === "object" && value !== null ? (value as { [ERROR_BRANDS]?: unknown })[ERROR_BRANDS] : undefined;
    return typeof brand === "string" && Array.isArray(brands) && brands.includes(brand);
  }

  /**
   * Any thrown value as a FlusterError: itself if it is one; an abort as
   * `cancelled` and a timeout (`AbortSignal.timeout`, `timers/promises`) as
   * `deadline_exceeded`; anything else as `fallback`, keeping it as the cause.
   */
  static from(err: unknown, fallback: FlusterErrorCode = "internal"): FlusterError {
    if (err instanceof FlusterError) return err;
    const error = err instanceof Error ? err : undefined;
    const message = error?.message ?? String(err);
    if (isTimeout(err)) return new FlusterError(message || "timed out", "deadline_exceeded", { cause: err });
    if (error?.name === "AbortError") return new FlusterError(message || "aborted", "cancelled", { cause: err });
    return new FlusterError(message, fallback, { cause: err });
  }
}

/** A timeout, also when it arrives as the reason or cause of an abort. */
function isTimeout(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 3; e = e.cause, depth++) if (e.name === "TimeoutError") return true;
  return false;
}

function brandsOf(cls: unknown): string[] {
  const brands: string[] = [];
  for (let c = cls; typeof c === "function" && c !== Error; c = Object.getPrototypeOf(c)) {
    if (Object.hasOwn(c, ERROR_BRAND)) brands.push(String((c as unknown as { [ERROR_BRAND]: unknown })[ERROR_BRAND]));
  }
  return brands;
}

/**
 * A value given to Fluster is malformed. The message names the field and the
 * offending value, e.g. `resources.cpu must be a non-negative number, got -1`.
 */
export class ValidationError extends FlusterError {
  static override readonly [ERROR_BRAND]: string = "fluster.ValidationError";
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
