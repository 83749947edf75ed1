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
import { ERROR_BRAND, FlusterError, describeValue } from "../core/errors.js";
import { PrepareFailure, prepare } from "./codec-walk.js";
import {
  BUILTIN_ERRORS,
  EXT_ERROR,
  EXT_MAP,
  EXT_NEGATIVE_ZERO,
  EXT_OBJECT,
  EXT_UTF16,
  ErrorBox,
  MapBox,
  NegativeZero,
  ObjectBox,
  ShapeError,
  Utf16String,
  defineField,
  flatEntries,
  stringKey,
} from "./codec-wire.js";

/** A value cannot be sent: a function, a symbol, a promise, too deep... */
export class EncodeError extends FlusterError {
  static override readonly [ERROR_BRAND]: string = "fluster.EncodeError";
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
  static override readonly [ERROR_BRAND]: string = "fluster.DecodeError";
  override name = "DecodeError";

  constructor(reason: string, byteLength: number, options?: ErrorOptions) {
    super(`cannot decode value: ${reason} (${byteLength} bytes)`, "invalid_argument", options);
  }
}

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

/** Values decoded with where each one's bytes lie: value `i` was encoded in `bytes[offsets[i]..offsets[i + 1])`. */
export interface DecodedSpans {
  readonly values: unknown[];
  /** One more than `values`: the start of each value, then the end of the last. */
  readonly offsets: Uint32Array;
}

/**
 * Decodes values written back to back, each by {@link encodeValue} (a
 * MessagePack sequence), with each one's byte span. A value's bytes are its
 * whole encoding, so they can be copied into another sequence and decoded
 * there without being encoded again.
 */
export function decodeSequence(bytes: Uint8Array): DecodedSpans {
  return decodeSpans(bytes, 0, undefined);
}

/**
 * Decodes an array written by {@link encodeValue} element by element, with
 * each element's byte span (see {@link decodeSequence}): a MessagePack
 * array is its header followed by its elements' encodings.
 */
export function decodeArrayElements(bytes: Uint8Array): DecodedSpans {
  if (!(bytes instanceof Uint8Array)) throw new DecodeError(`expected a Uint8Array, got ${describeValue(bytes)}`, 0);
  if (bytes.byteLength === 0) throw new DecodeError("no bytes", 0);
  const first = bytes[0] as number;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let length: number;
  let header: number;
  if (first >= 0x90 && first <= 0x9f) [length, header] = [first & 0x0f, 1];
  else if (first === 0xdc && bytes.byteLength >= 3) [length, header] = [view.getUint16(1), 3];
  else if (first === 0xdd && bytes.byteLength >= 5) [length, header] = [view.getUint32(1), 5];
  else throw new DecodeError("not an encoded array", bytes.byteLength);
  return decodeSpans(bytes, header, length);
}

function decodeSpans(bytes: Uint8Array, from: number, expected: number | undefined): DecodedSpans {
  if (!(bytes instanceof Uint8Array)) throw new DecodeError(`expected a Uint8Array, got ${describeValue(bytes)}`, 0);
  const values: unknown[] = [];
  const ends: number[] = [];
  if (bytes.byteLength > from) {
    const source = Buffer.from(bytes.buffer, bytes.byteOffset + from, bytes.byteLength - from);
    try {
      // Only collects: no other decoding may run inside msgpackr's sequential read.
      packr.unpackMultiple(source, (value: unknown, _start?: number, end?: number) => {
        values.push(value);
        ends.push(from + (end as number));
      });
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new DecodeError(reason, bytes.byteLength, { cause: error });
    }
  }
  if (expected !== undefined && values.length !== expected) throw new DecodeError(`an array of ${expected} elements holds ${values.length}`, bytes.byteLength);
  const offsets = new Uint32Array(values.length + 1);
  offsets[0] = from;
  offsets.set(ends, 1);
  return { values, offsets };
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
