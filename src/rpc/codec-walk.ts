// The codec's encoding walk: one pass over a value that leaves the parts
// msgpackr carries natively untouched (same reference, so plain data is not
// copied) and boxes the rest (maps, errors, odd keys, lone surrogates, -0).
import { types } from "node:util";
import { describeValue } from "../core/errors.js";
import { ErrorBox, MapBox, NEGATIVE_ZERO, ObjectBox, SLOT_FIELDS, Utf16String, builtinBase } from "./codec-wire.js";

/** Deeper than this is almost surely a cycle, and would overflow the stack on decode. */
const MAX_DEPTH = 1000;

/** Thrown by the walk; collects the path on the way out. */
export class PrepareFailure extends Error {
  readonly reversedPath: string[] = [];

  constructor(readonly reason: string) {
    super(reason);
  }

  renderPath(): string {
    const parts = this.reversedPath.reverse();
    return parts.length > 12 ? `${parts.slice(0, 6).join("")}...${parts.slice(-6).join("")}` : parts.join("");
  }
}

function atPath<T>(segment: () => string, run: () => T): T {
  try {
    return run();
  } catch (error) {
    if (error instanceof PrepareFailure) error.reversedPath.push(segment());
    throw error;
  }
}

const isWellFormed = (s: string): boolean => (s as unknown as { isWellFormed(): boolean }).isWellFormed();
const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;
const keySegment = (key: string): string => (IDENTIFIER.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`);

export function prepare(value: unknown, depth: number): unknown {
  switch (typeof value) {
    case "object":
      return value === null ? null : prepareObject(value, depth);
    case "string":
      return isWellFormed(value) ? value : new Utf16String(value);
    case "number":
      return value === 0 && 1 / value < 0 ? NEGATIVE_ZERO : value;
    case "function":
      throw new PrepareFailure(`a function (${value.name || "anonymous"}) cannot be sent`);
    case "symbol":
      throw new PrepareFailure(`a symbol (${String(value)}) cannot be sent`);
    default:
      return value; // boolean, undefined, bigint
  }
}

/** True when prepare() replaced the value (NaN is the one value unequal to itself). */
const changed = (prepared: unknown, original: unknown): boolean => prepared !== original && prepared === prepared;

function prepareObject(value: object, depth: number): unknown {
  if (depth >= MAX_DEPTH) throw new PrepareFailure(`nested deeper than ${MAX_DEPTH} levels (is the value circular?)`);
  if (Array.isArray(value)) return prepareArray(value, depth);
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto === Object.prototype || proto === null) return preparePlainObject(value as Record<string, unknown>, depth);
  if (ArrayBuffer.isView(value)) return prepareView(value);
  if (value instanceof Map) return prepareMap(value, depth);
  if (value instanceof Set) return prepareSet(value, depth);
  if (value instanceof Date || value instanceof RegExp || value instanceof ArrayBuffer) return value;
  if (value instanceof Error || types.isNativeError(value)) return prepareError(value as Error, depth);
  // From another realm (node:vm): rebuild in this one so msgpackr recognizes it.
  if (types.isMap(value)) return prepareMap(value as Map<unknown, unknown>, depth);
  if (types.isSet(value)) return prepareSet(new Set(value as Set<unknown>), depth);
  if (types.isDate(value)) return new Date((value as Date).getTime());
  const unsupported = unsupportedKind(value);
  if (unsupported) throw new PrepareFailure(`${unsupported} cannot be sent`);
  // Any other class instance: its own enumerable fields, as structuredClone does.
  return preparePlainObject({ ...(value as Record<string, unknown>) }, depth);
}

function unsupportedKind(value: object): string | undefined {
  if (types.isPromise(value)) return "a Promise (missing await?)";
  if (types.isWeakMap(value) || types.isWeakSet(value) || value instanceof WeakRef) return `a ${describeValue(value)}`;
  if (types.isBoxedPrimitive(value)) return "a boxed primitive";
  if (types.isSharedArrayBuffer(value)) return "a SharedArrayBuffer (copy it into an ArrayBuffer)";
  return undefined;
}

function prepareArray(array: unknown[], depth: number): unknown[] {
  let out: unknown[] | undefined;
  let i = 0;
  try {
    for (; i < array.length; i++) {
      const item = array[i];
      const prepared = prepare(item, depth + 1);
      if (out !== undefined) out.push(prepared);
      else if (changed(prepared, item)) {
        out = array.slice(0, i);
        out.push(prepared);
      }
    }
  } catch (error) {
    if (error instanceof PrepareFailure) error.reversedPath.push(`[${i}]`);
    throw error;
  }
  return out ?? array;
}

function preparePlainObject(object: Record<string, unknown>, depth: number): unknown {
  let out: Record<string, unknown> | undefined;
  let key = "";
  try {
    // for-in rather than Object.keys: no array to allocate, and V8 caches the key list per shape.
    for (key in object) {
      if (!Object.hasOwn(object, key)) continue;
      // msgpackr renames "__proto__" on decode, and UTF-8 cannot carry lone surrogates.
      if (key === "__proto__" || !isWellFormed(key)) return prepareObjectEntries(object, depth);
      const item = object[key];
      const prepared = prepare(item, depth + 1);
      if (out !== undefined) out[key] = prepared;
      else if (changed(prepared, item)) out = copyFieldsBefore(object, key, prepared);
    }
  } catch (error) {
    if (error instanceof PrepareFailure) error.reversedPath.push(keySegment(key));
    throw error;
  }
  return out ?? object;
}

/** A copy of the fields before `key` (unchanged by the walk so far), then `key` with its prepared value. */
function copyFieldsBefore(object: Record<string, unknown>, key: string, prepared: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const earlier in object) {
    if (earlier === key) break;
    if (Object.hasOwn(object, earlier)) out[earlier] = object[earlier];
  }
  out[key] = prepared;
  return out;
}

function prepareObjectEntries(object: Record<string, unknown>, depth: number): ObjectBox {
  const entries: unknown[] = [];
  for (const key of Object.keys(object)) {
    entries.push(prepare(key, depth + 1), atPath(() => keySegment(key), () => prepare(object[key], depth + 1)));
  }
  return new ObjectBox(entries);
}

function prepareMap(map: Map<unknown, unknown>, depth: number): MapBox {
  const entries: unknown[] = [];
  let n = 0;
  for (const [key, item] of map) {
    entries.push(
      atPath(() => `<map key #${n}>`, () => prepare(key, depth + 1)),
      atPath(() => `<map value #${n}>`, () => prepare(item, depth + 1)),
    );
    n++;
  }
  return new MapBox(entries);
}

function prepareSet(set: Set<unknown>, depth: number): Set<unknown> {
  let out: Set<unknown> | undefined;
  let n = 0;
  for (const item of set) {
    const prepared = atPath(() => `<set element #${n}>`, () => prepare(item, depth + 1));
    if (out !== undefined) out.add(prepared);
    else if (changed(prepared, item)) {
      out = new Set();
      for (const earlier of set) {
        if (earlier === item) break;
        out.add(earlier);
      }
      out.add(prepared);
    }
    n++;
  }
  return out ?? set;
}

/** Typed arrays msgpackr knows (by its own list), plus Buffer and DataView. */
const NATIVE_VIEW_PROTOTYPES = new Set<unknown>(
  [Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array, Float32Array, Float64Array, BigInt64Array, BigUint64Array, DataView, Buffer].map(
    (ctor) => ctor.prototype,
  ),
);

function prepareView(view: ArrayBufferView): ArrayBufferView {
  if (NATIVE_VIEW_PROTOTYPES.has(Object.getPrototypeOf(view))) return view;
  // A subclass: send it as the builtin it extends.
  for (let proto: unknown = Object.getPrototypeOf(view); proto !== null; proto = Object.getPrototypeOf(proto)) {
    if (!NATIVE_VIEW_PROTOTYPES.has(proto)) continue;
    const copy = view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength);
    if (proto === Buffer.prototype) return Buffer.from(copy);
    const Ctor = (proto as { constructor: new (buffer: ArrayBufferLike) => ArrayBufferView }).constructor;
    return new Ctor(copy);
  }
  throw new PrepareFailure(`a ${describeValue(view)} is not a supported typed array`);
}

function prepareError(error: Error, depth: number): ErrorBox {
  const base = builtinBase(error);
  const isAggregate = base === "AggregateError";
  const extras: unknown[] = [];
  for (const key of Object.keys(error)) {
    // A slot carries name/message/stack only as strings; an own field of another type travels as an extra.
    const inSlot = SLOT_FIELDS.has(key) && (key === "cause" || typeof (error as unknown as Record<string, unknown>)[key] === "string");
    if (inSlot || (isAggregate && key === "errors")) continue;
    extras.push(prepare(key, depth + 1), atPath(() => keySegment(key), () => prepare((error as unknown as Record<string, unknown>)[key], depth + 1)));
  }
  // Error's own message and stack are non-enumerable: carry them as extras too when they are not strings.
  for (const key of ["message", "stack"] as const) {
    const value: unknown = error[key];
    if (Object.hasOwn(error, key) && !Object.prototype.propertyIsEnumerable.call(error, key) && value !== undefined && typeof value !== "string") {
      extras.push(prepare(key, depth + 1), atPath(() => `.${key}`, () => prepare(value, depth + 1)));
    }
  }
  const stack = error.stack;
  return new ErrorBox([
    prepare(String(error.name), depth + 1),
    prepare(String(error.message), depth + 1),
    typeof stack === "string" ? prepare(stack, depth + 1) : undefined,
    base,
    Object.hasOwn(error, "cause") ? [atPath(() => ".cause", () => prepare(error.cause, depth + 1))] : [],
    isAggregate ? atPath(() => ".errors", () => prepare(Array.from((error as AggregateError).errors ?? []), depth + 1)) : undefined,
    extras,
  ]);
}
