// Small field checkers shared by the core types. Each throws a ValidationError
// naming the field and the offending value.
import { ValidationError, describeValue } from "./errors.js";

export function checkNonNegative(value: unknown, field: string): number {
  if (typeof value !== "number" || Number.isNaN(value) || value < 0 || !Number.isFinite(value)) {
    throw new ValidationError(field, `must be a non-negative number, got ${describeValue(value)}`);
  }
  return value;
}

export function checkPositive(value: unknown, field: string): number {
  const n = checkNonNegative(value, field);
  if (n === 0) throw new ValidationError(field, "must be greater than 0, got 0");
  return n;
}

/** A TCP port to bind: 0 (any free one) to 65535. */
export function checkPort(value: unknown, field = "port"): number {
  const port = checkInteger(value, field, 0);
  if (port > 65_535) throw new ValidationError(field, `must be at most 65535, got ${port}`);
  return port;
}

export function checkInteger(value: unknown, field: string, min: number): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min) {
    throw new ValidationError(field, `must be a whole number ≥ ${min}, got ${describeValue(value)}`);
  }
  return value;
}

export function checkString(value: unknown, field: string, options: { nonEmpty?: boolean } = {}): string {
  if (typeof value !== "string") {
    throw new ValidationError(field, `must be a string, got ${describeValue(value)}`);
  }
  if (options.nonEmpty && value.trim() === "") {
    throw new ValidationError(field, "must not be empty");
  }
  return value;
}

export function checkBoolean(value: unknown, field: string): boolean {
  if (typeof value !== "boolean") {
    throw new ValidationError(field, `must be true or false, got ${describeValue(value)}`);
  }
  return value;
}

export function checkStringArray(value: unknown, field: string): string[] {
  if (!Array.isArray(value)) {
    throw new ValidationError(field, `must be an array of strings, got ${describeValue(value)}`);
  }
  return value.map((item, index) => checkString(item, `${field}[${index}]`, { nonEmpty: true }));
}

export function checkPlainObject(value: unknown, field: string): Record<string, unknown> {
  if (value === null || typeof value !== "object" || Array.isArray(value) || value instanceof Map) {
    throw new ValidationError(field, `must be an object of string keys and values, got ${describeValue(value)}`);
  }
  return value as Record<string, unknown>;
}

export function checkOneOf<T extends string>(value: unknown, field: string, allowed: readonly T[]): T {
  if (typeof value !== "string" || !(allowed as readonly string[]).includes(value)) {
    throw new ValidationError(field, `must be one of ${allowed.map((a) => JSON.stringify(a)).join(", ")}, got ${describeValue(value)}`);
  }
  return value as T;
}
