// Human-readable byte sizes ("512m", "8g", "2GB", "1.5Gi") parsed to byte
// counts, and the reverse for messages. Units are binary (1k = 1024) as in Iris.
import { ValidationError, describeValue } from "./errors.js";

const UNIT_POWERS: Record<string, number> = { "": 0, b: 0, k: 1, m: 2, g: 3, t: 4, p: 5 };

/** A byte size: a non-negative byte count or a string such as `"512m"`, `"8g"`, `"2GB"`. */
export type ByteSize = number | string;

/**
 * Parses a byte size. Accepts a non-negative integer byte count, or a number
 * followed by an optional unit `b`, `k`, `m`, `g`, `t`, `p` (any case), itself
 * optionally followed by `b`, `i` or `ib` (`"2GB"`, `"8Gi"`, `"512MiB"`).
 * @param field the field name used in the error message.
 */
export function parseByteSize(value: unknown, field: string): number {
  if (typeof value === "number") {
    if (!Number.isFinite(value) || value < 0 || !Number.isInteger(value)) {
      throw new ValidationError(field, `must be a non-negative whole number of bytes or a size such as "8g", got ${describeValue(value)}`);
    }
    return value;
  }
  if (typeof value !== "string") {
    throw new ValidationError(field, `must be a byte count or a size string such as "8g", got ${describeValue(value)}`);
  }
  const match = /^\s*(\d+(?:\.\d+)?)\s*([bkmgtp]?)(i?b?)\s*$/i.exec(value);
  if (!match) {
    throw new ValidationError(field, `must be a size such as "512m", "8g" or "2GB", got ${describeValue(value)}`);
  }
  const [, amount = "0", unit = ""] = match;
  const bytes = Number(amount) * 1024 ** (UNIT_POWERS[unit.toLowerCase()] ?? 0);
  if (!Number.isSafeInteger(Math.round(bytes))) {
    throw new ValidationError(field, `is too large: ${describeValue(value)}`);
  }
  return Math.round(bytes);
}

/** Formats a byte count compactly: `8589934592` → `"8g"`, `1536` → `"1.5k"`. */
export function formatByteSize(bytes: number): string {
  const units = ["", "k", "m", "g", "t", "p"];
  let value = bytes;
  let index = 0;
  while (value >= 1024 && index < units.length - 1) {
    value /= 1024;
    index += 1;
  }
  const text = Number.isInteger(value) ? String(value) : value.toFixed(1).replace(/\.0$/, "");
  return `${text}${units[index] ?? ""}${index === 0 ? "b" : ""}`;
}
