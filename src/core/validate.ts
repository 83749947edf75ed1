// Small field checkers shared by the core types. Each throws a ValidationError
// naming the field and the offending value.
import { ValidationError, describeValue } from "./errors.js";

export function checkNonNegative(value: unknown, field: string): number {
  if (typeof value !== "number" || Number.isNaN(value) || value < 0 || !Number.isFinite(value)) {
    throw new ValidationError(field, `must be a non-negative number, got ${describeValue(value)}`);
  }
  return value;
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
