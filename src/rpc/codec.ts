// Fluster's one value codec: turns user values (function arguments, results,
// actor call arguments, thrown errors) into self-describing bytes and back.
//
// Built on msgpackr (MessagePack with records off, so every message stands
// alone), chosen by measurement (bench/RESULTS.md): round trips beat bare
// v8.serialize at every size (a V8-based codec would also need a walk to keep
// Error names and fields), and MessagePack, unlike V8's format, is stable
// across Node versions.
//
// What round-trips: primitives (strings with lone surrogates, -0, NaN, ±Infinity),
// undefined (also as a field or element), BigInt of any size, arrays, plain
// objects (key order kept, a "__proto__" key kept as a plain own key), Map (any
// keys), Set, Date (invalid ones too), RegExp, ArrayBuffer, DataView, every typed
// array, and Error (name, message, stack, cause, AggregateError's errors, own
// enumerable fields; the nearest builtin class is rebuilt, so a TypeError
// subclass is still `instanceof TypeError`).
//
// What changes on the way: a Buffer decodes as a Buffer and a Uint8Array as a
// Uint8Array, but other classes do not survive: like structuredClone, an
// instance of any other class arrives as a plain object of its own enumerable
// fields. Symbol keys, array holes (read as undefined), extra properties on arrays
// and shared references (sent twice) are not carried. Functions, symbols,
// promises, weak collections, boxed primitives, SharedArrayBuffer and values
// nested deeper than 1000 levels (cycles) throw EncodeError, naming where.
//
// msgpackr registers extensions process-wide: ours are keyed to private box
// classes, so they never change how other msgpackr users encode their values.
import { Packr, addExtension } from "msgpackr";
import { types } from "node:util";
import { FlusterError, describeValue } from "../core/errors.js";

/** A value cannot be sent: a function, a symbol, a promise, too deep... */
export class EncodeError extends FlusterError {
  override name = "EncodeError";
  /** Where in the value the problem is, e.g. `[0].handler`; "" for the value itself. */
  readonly path: string;

  constructor(reason: string, path = "", options?: ErrorOptions) {
    super(`cannot encode value${path ? ` at ${path}` : ""}: ${reason}`, "invalid_argument", options);
    this.path = path;
  }
}

/** Bytes are not a value this codec wrote: empty, truncated, corrupt or of the wrong shape. */
export class DecodeError extends FlusterError {
  override name = "DecodeError";

  constructor(reason: string, byteLength: number, options?: ErrorOptions) {
    super(`cannot decode value: ${reason} (${byteLength} bytes)`, "invalid_argument", options);
  }
}

/** Deeper than this is almost surely a cycle, and would overflow the stack on decode. */
const MAX_DEPTH = 1000;

// ---------------------------------------------------------------------------
// Extension types. Values 0x00-0x7f are for applications; msgpackr itself uses
// 0x00, 0x42, 0x62, 0x65, 0x69, 0x70, 0x72, 0x73, 0x74, 0x78 and -1.

const EXT_MAP = 0x4d; // "M": flat [key, value, key, value, ...]
const EXT_ERROR = 0x45; // "E": see ErrorBox
const EXT_OBJECT = 0x4f; // "O": flat entries of an object whose keys MessagePack would mangle
const EXT_UTF16 = 0x55; // "U": a string with lone surrogates, as UTF-16LE code units
const EXT_NEGATIVE_ZERO = 0x5a; // "Z"

/** Wire shape problems inside an extension; decodeValue reports them as DecodeError. */
class ShapeError extends Error {}

class MapBox {
  constructor(readonly entries: unknown[]) {}
}
class ObjectBox {
  constructor(readonly entries: unknown[]) {}
}
/** [name, message, stack, base, causeSlot, errors, extras]: see prepareError. */
class ErrorBox {
  constructor(readonly fields: unknown[]) {}
}
class Utf16String {
  constructor(readonly value: string) {}
}
class NegativeZero {}
const NEGATIVE_ZERO = new NegativeZero();

addExtension({
  Class: MapBox,
  type: EXT_MAP,
  write: (box: MapBox) => box.entries,
  read: (entries: unknown) => {
    const flat = flatEntries(entries, "map");
    const map = new Map<unknown, unknown>();
    for (let i = 0; i < flat.length; i += 2) map.set(flat[i], flat[i + 1]);
    return map;
  },
});

addExtension({
  Class: ObjectBox,
  type: EXT_OBJECT,
  write: (box: ObjectBox) => box.entries,
  read: (entries: unknown) => {
    const flat = flatEntries(entries, "object");
    const object: Record<string, unknown> = {};
    for (let i = 0; i < flat.length; i += 2) defineField(object, stringKey(flat[i], "object"), flat[i + 1]);
    return object;
  },
});

addExtension({
  Class: ErrorBox,
  type: EXT_ERROR,
  write: (box: ErrorBox) => box.fields,
  read: (fields: unknown) => buildError(fields),
});

addExtension({
  Class: Utf16String,
  type: EXT_UTF16,
  pack: (box: Utf16String) => Buffer.from(box.value, "utf16le"),
  unpack: (data: Uint8Array) => {
    if (data.byteLength % 2 !== 0) throw new ShapeError("utf-16 string extension has an odd byte length");
    return Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("utf16le");
  },
});

addExtension({
  Class: NegativeZero,
  type: EXT_NEGATIVE_ZERO,
  pack: () => new Uint8Array(1),
  unpack: () => -0,
});

/**
 * Records (msgpackr's "structures") stay off: they make a message depend on
 * state kept by the encoder. int64 comes back as BigInt because only BigInts are
 * ever written as int64 (numbers beyond 32 bits go out as float64), copyBuffers
 * keeps decoded bytes from aliasing the input, and the structured-clone
 * reference extensions are refused on decode.
 */
const packr = new Packr({
  useRecords: false,
  mapsAsObjects: true,
  moreTypes: true,
  useBigIntExtension: true,
  int64AsType: "bigint",
  copyBuffers: true,
  structuredClone: false,
  useToJSON: false,
  variableMapSize: true,
});

/** Encodes any supported value; throws {@link EncodeError} naming the first part that cannot be sent. */
export function encodeValue(value: unknown): Uint8Array {
  let prepared: unknown;
  try {
    prepared = prepare(value, 0);
  } catch (error) {
    if (error instanceof PrepareFailure) throw new EncodeError(error.reason, error.renderPath());
    throw new EncodeError(`reading it threw ${describeValue(error)}`, "", { cause: error });
  }
  try {
    return packr.pack(prepared);
  } catch (error) {
    throw new EncodeError(error instanceof Error ? error.message : String(error), "", { cause: error });
  }
}

/** Decodes bytes written by {@link encodeValue}; anything else throws {@link DecodeError}. */
export function decodeValue(bytes: Uint8Array): unknown {
  if (!(bytes instanceof Uint8Array)) throw new DecodeError(`expected a Uint8Array, got ${describeValue(bytes)}`, 0);
  if (bytes.byteLength === 0) throw new DecodeError("no bytes", 0);
  // A fresh Buffer view: msgpackr caches a DataView on its input, so the caller's
  // object stays untouched, and undecorated binary always decodes as a Buffer.
  const source = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  try {
    return packr.unpack(source);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new DecodeError(reason, bytes.byteLength, { cause: error });
  }
}

// ---------------------------------------------------------------------------
// Encoding: one walk that leaves msgpackr-native parts untouched (returning the
// same reference, so plain data is not copied) and boxes the rest.

/** Thrown by the walk; collects the path on the way out. */
class PrepareFailure extends Error {
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

function prepare(value: unknown, depth: number): unknown {
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

// ---------------------------------------------------------------------------
// Errors. Wire shape: [name, message, stack, base, causeSlot, errors, extras]
//   base      the nearest builtin class in the prototype chain ("TypeError")
//   causeSlot [] without a cause, [cause] with one (a cause may be undefined)
//   errors    AggregateError's errors, else undefined
//   extras    flat [key, value, ...] of the other own enumerable fields

const BUILTIN_ERRORS: Readonly<Record<string, ErrorConstructor | AggregateErrorConstructor>> = Object.assign(Object.create(null) as object, {
  Error,
  TypeError,
  RangeError,
  SyntaxError,
  ReferenceError,
  EvalError,
  URIError,
  AggregateError,
});
const BUILTIN_BY_PROTOTYPE = new Map<unknown, string>(Object.entries(BUILTIN_ERRORS).map(([name, ctor]) => [ctor.prototype, name]));
const SLOT_FIELDS = new Set(["name", "message", "stack", "cause"]);

function builtinBase(error: Error): string {
  for (let proto: unknown = Object.getPrototypeOf(error); proto !== null; proto = Object.getPrototypeOf(proto)) {
    const name = BUILTIN_BY_PROTOTYPE.get(proto);
    if (name !== undefined) return name;
  }
  // From another realm (vm): its prototypes are not ours, so trust a builtin name.
  return typeof error.name === "string" && error.name in BUILTIN_ERRORS ? error.name : "Error";
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

function buildError(fields: unknown): Error {
  if (!Array.isArray(fields) || fields.length !== 7) throw new ShapeError("error extension expects a 7-element array");
  const [name, message, stack, base, causeSlot, errors, extras] = fields as unknown[];
  if (typeof name !== "string" || typeof message !== "string") throw new ShapeError("error name and message must be strings");
  if (stack !== undefined && typeof stack !== "string") throw new ShapeError("error stack must be a string");
  if (typeof base !== "string" || !(base in BUILTIN_ERRORS)) throw new ShapeError(`unknown error base class ${describeValue(base)}`);
  if (!Array.isArray(causeSlot) || causeSlot.length > 1) throw new ShapeError("error cause slot must hold zero or one value");
  if (errors !== undefined && !Array.isArray(errors)) throw new ShapeError("AggregateError errors must be an array");
  const flat = flatEntries(extras, "error field");

  const options = causeSlot.length === 1 ? { cause: causeSlot[0] } : undefined;
  // The stack comes from the sender; capturing one here would be wasted work.
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  let error: Error;
  try {
    error =
      base === "AggregateError"
        ? new AggregateError((errors as unknown[] | undefined) ?? [], message, options)
        : new (BUILTIN_ERRORS[base] as ErrorConstructor)(message, options);
  } finally {
    Error.stackTraceLimit = limit;
  }
  if (name !== base) error.name = name;
  if (stack === undefined) delete error.stack;
  else Object.defineProperty(error, "stack", { value: stack, writable: true, enumerable: false, configurable: true });
  for (let i = 0; i < flat.length; i += 2) defineField(error, stringKey(flat[i], "error field"), flat[i + 1]);
  return error;
}

// ---------------------------------------------------------------------------
// Decoding helpers shared by the extensions.

function flatEntries(entries: unknown, what: string): unknown[] {
  if (!Array.isArray(entries) || entries.length % 2 !== 0) throw new ShapeError(`${what} extension expects a flat array of key/value pairs`);
  return entries;
}

function stringKey(key: unknown, what: string): string {
  if (typeof key !== "string") throw new ShapeError(`${what} key must be a string, got ${describeValue(key)}`);
  return key;
}

/** Defines an own enumerable field; unlike assignment, "__proto__" stays a plain key. */
function defineField(target: object, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
}
