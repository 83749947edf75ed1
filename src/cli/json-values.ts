// Decoded user values as JSON, for `fluster job results --json`. JSON has no
// Map, Date, bigint or bytes, so those become one-key tagged objects (as
// MongoDB's Extended JSON does); the table below is the documented form.
//
//   bigint                     {"$bigint": "123"}                  (decimal string)
//   Date                       {"$date": "2026-01-01T00:00:00.000Z"} (null when invalid)
//   Map                        {"$map": [[key, value], ...]}
//   Set                        {"$set": [value, ...]}
//   Uint8Array, Buffer,
//   ArrayBuffer, DataView      {"$bytes": "<base64>"}
//   other typed arrays         {"$Float64Array": [1.5, ...]}       (bigint elements as strings)
//   NaN, Infinity, -Infinity   {"$number": "NaN"} ...
//   RegExp                     {"$regexp": "/a+/g"}
//   Error                      {"$error": {"name", "message", "stack"?, "cause"?, ...own fields}}
//   undefined                  null in an array or as a task's value; a field holding it is left out
//
// Everything else (strings, finite numbers, booleans, null, arrays, plain
// objects) is itself. A plain object whose only key starts with "$" reads
// like a tag: a consumer that must tell them apart should use the text form.

/** A value JSON.stringify writes as it is. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

const MAX_DEPTH = 1000;

/** `value` in the tagged JSON form described at the top of this module. */
export function toJsonValue(value: unknown, depth = 0): JsonValue {
  // The codec refuses deeper values, so only a value built here could be; checked anyway to fail clearly, not overflow.
  if (depth > MAX_DEPTH) throw new RangeError(`value is nested deeper than ${MAX_DEPTH} levels`);
  const next = (v: unknown): JsonValue => toJsonValue(v, depth + 1);
  switch (typeof value) {
    case "undefined":
      return null;
    case "boolean":
    case "string":
      return value;
    case "number":
      return Number.isFinite(value) ? value : { $number: String(value) };
    case "bigint":
      return { $bigint: value.toString() };
    case "object":
      break;
    default:
      // The codec never decodes functions or symbols; say what it was rather than drop it silently.
      return { $unsupported: typeof value };
  }
  if (value === null) return null;
  if (Array.isArray(value)) return value.map(next);
  if (value instanceof Date) return { $date: Number.isNaN(value.getTime()) ? null : value.toISOString() };
  if (value instanceof Map) return { $map: [...value].map(([k, v]) => [next(k), next(v)]) };
  if (value instanceof Set) return { $set: [...value].map(next) };
  if (value instanceof RegExp) return { $regexp: String(value) };
  if (value instanceof Uint8Array) return { $bytes: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("base64") };
  if (value instanceof ArrayBuffer) return { $bytes: Buffer.from(value).toString("base64") };
  if (value instanceof DataView) return { $bytes: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("base64") };
  if (ArrayBuffer.isView(value)) {
    const elements = [...(value as unknown as Iterable<number | bigint>)].map((e) => (typeof e === "bigint" ? e.toString() : next(e)));
    return { [`$${value.constructor.name}`]: elements };
  }
  if (value instanceof Error) {
    const error: { [key: string]: JsonValue } = { name: value.name, message: value.message };
    if (value.stack !== undefined) error.stack = value.stack;
    if ("cause" in value) error.cause = next(value.cause);
    if (value instanceof AggregateError) error.errors = value.errors.map(next);
    Object.assign(error, fields(value, next));
    return { $error: error };
  }
  return fields(value, next);
}

/** Own enumerable string-keyed fields, leaving out those that hold undefined (as JSON.stringify does). */
function fields(value: object, next: (v: unknown) => JsonValue): { [key: string]: JsonValue } {
  const out: { [key: string]: JsonValue } = {};
  for (const [key, field] of Object.entries(value)) {
    if (field === undefined) continue;
    // defineProperty: a "__proto__" key stays a plain key instead of changing the prototype.
    Object.defineProperty(out, key, { value: next(field), enumerable: true, writable: true, configurable: true });
  }
  return out;
}
