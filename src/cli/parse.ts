// Parsers for `fluster` option values, as small pure functions. Each throws
// commander's InvalidArgumentError, which commander reports naming the option.
import { InvalidArgumentError } from "commander";
import { parseByteSize } from "../core/quantity.js";
import { tpuTopology } from "../core/tpu.js";

/** A `--gpu` value: `H100:8` or just `H100` (one device). */
export interface GpuSpec {
  variant: string;
  count: number;
}

/** Parses a whole number ≥ 1 written in decimal digits (`"4"`; not `"4.5"`, `"0"`, `"1e3"`). */
export function parsePositiveInt(value: string): number {
  const trimmed = value.trim();
  const n = Number(trimmed);
  if (!/^\d+$/.test(trimmed) || !Number.isSafeInteger(n) || n < 1) {
    throw new InvalidArgumentError("Expected a positive integer.");
  }
  return n;
}

/** Parses a whole number ≥ 0 (`"0"`, `"3"`). */
export function parseNonNegativeInt(value: string): number {
  const trimmed = value.trim();
  const n = Number(trimmed);
  if (!/^\d+$/.test(trimmed) || !Number.isSafeInteger(n)) {
    throw new InvalidArgumentError("Expected a whole number ≥ 0.");
  }
  return n;
}

/** Parses a number > 0, fractions allowed (`"0.5"`, `"2"`; not `"0"`, `"-1"`, `"abc"`). */
export function parsePositiveNumber(value: string): number {
  const trimmed = value.trim();
  const n = Number(trimmed);
  if (!/^\d+(\.\d+)?$/.test(trimmed) || !Number.isFinite(n) || n <= 0) {
    throw new InvalidArgumentError("Expected a number greater than 0.");
  }
  return n;
}

/** Parses a TCP port to listen on: an integer from 1 to 65535. */
export function parsePort(value: string): number {
  let port: number;
  try {
    port = parsePositiveInt(value);
  } catch {
    throw new InvalidArgumentError("Expected a port number from 1 to 65535.");
  }
  if (port > 65535) throw new InvalidArgumentError("Expected a port number from 1 to 65535.");
  return port;
}

/**
 * Splits `key=value` at the first `=`. The key must be non-empty and free of
 * whitespace; the value may be empty and may itself contain `=`.
 */
export function parseKeyValue(value: string): [key: string, value: string] {
  const at = value.indexOf("=");
  const key = at < 0 ? "" : value.slice(0, at);
  if (at < 0 || key.length === 0 || /\s/.test(key)) {
    throw new InvalidArgumentError("Expected KEY=VALUE, e.g. region=us-east1.");
  }
  return [key, value.slice(at + 1)];
}

/**
 * Commander collector for a repeatable `KEY=VALUE` option (`--label`, `-e`):
 * adds one pair to the record so far (none on the first use); a repeated key
 * keeps the last value.
 */
export function collectKeyValue(value: string, previous: Readonly<Record<string, string>> = {}): Record<string, string> {
  const [key, val] = parseKeyValue(value);
  return { ...previous, [key]: val };
}

/** Parses `--gpu VARIANT:COUNT` or `--gpu VARIANT` (count 1). */
export function parseGpu(value: string): GpuSpec {
  const at = value.lastIndexOf(":");
  const variant = (at < 0 ? value : value.slice(0, at)).trim();
  if (variant.length === 0 || /\s/.test(variant)) {
    throw new InvalidArgumentError("Expected VARIANT or VARIANT:COUNT, e.g. H100:8.");
  }
  if (at < 0) return { variant, count: 1 };
  let count: number;
  try {
    count = parsePositiveInt(value.slice(at + 1));
  } catch {
    throw new InvalidArgumentError("Expected VARIANT:COUNT with a positive integer COUNT, e.g. H100:8.");
  }
  return { variant, count };
}

/** Checks a byte size such as `8g` or `512m` and returns it unchanged, for the resource config to parse. */
export function parseMemory(value: string): string {
  try {
    parseByteSize(value, "size");
  } catch {
    throw new InvalidArgumentError('Expected a size such as "512m", "8g" or "2GB".');
  }
  return value;
}

/** Checks a TPU variant against the topology table (`v5litepod-16`) and returns it. */
export function parseTpu(value: string): string {
  try {
    tpuTopology(value, "It");
  } catch (err) {
    // The table's message lists the known variants of the same generation.
    throw new InvalidArgumentError(`${err instanceof Error ? err.message : String(err)}.`);
  }
  return value;
}
