// The codec's wire vocabulary, shared by its encoding walk (codec-walk.ts)
// and its decoder (codec.ts): extension type codes, the private box classes
// the walk produces, the builtin error classes, and decoding helpers.
import { describeValue } from "../core/errors.js";

// ---------------------------------------------------------------------------
// Extension types. Values 0x00-0x7f are for applications; msgpackr itself uses
// 0x00, 0x42, 0x62, 0x65, 0x69, 0x70, 0x72, 0x73, 0x74, 0x78 and -1.

export const EXT_MAP = 0x4d; // "M": flat [key, value, key, value, ...]
export const EXT_ERROR = 0x45; // "E": see ErrorBox
export const EXT_OBJECT = 0x4f; // "O": flat entries of an object whose keys MessagePack would mangle
export const EXT_UTF16 = 0x55; // "U": a string with lone surrogates, as UTF-16LE code units
export const EXT_NEGATIVE_ZERO = 0x5a; // "Z"

/** Wire shape problems inside an extension; decodeValue reports them as DecodeError. */
export class ShapeError extends Error {}

export class MapBox {
  constructor(readonly entries: unknown[]) {}
}
export class ObjectBox {
  constructor(readonly entries: unknown[]) {}
}
/** [name, message, stack, base, causeSlot, errors, extras]: see prepareError. */
export class ErrorBox {
  constructor(readonly fields: unknown[]) {}
}
export class Utf16String {
  constructor(readonly value: string) {}
}
export class NegativeZero {}
export const NEGATIVE_ZERO = new NegativeZero();

// ---------------------------------------------------------------------------
// Errors. Wire shape: [name, message, stack, base, causeSlot, errors, extras]
//   base      the nearest builtin class in the prototype chain ("TypeError")
//   causeSlot [] without a cause, [cause] with one (a cause may be undefined)
//   errors    AggregateError's errors, else undefined
//   extras    flat [key, value, ...] of the other own enumerable fields

export const BUILTIN_ERRORS: Readonly<Record<string, ErrorConstructor | AggregateErrorConstructor>> = Object.assign(Object.create(null) as object, {
  Error,
  TypeError,
  RangeError,
  SyntaxError,
  ReferenceError,
  EvalError,
  URIError,
  AggregateError,
});
export const BUILTIN_BY_PROTOTYPE = new Map<unknown, string>(Object.entries(BUILTIN_ERRORS).map(([name, ctor]) => [ctor.prototype, name]));
export const SLOT_FIELDS = new Set(["name", "message", "stack", "cause"]);

export function builtinBase(error: Error): string {
  for (let proto: unknown = Object.getPrototypeOf(error); proto !== null; proto = Object.getPrototypeOf(proto)) {
    const name = BUILTIN_BY_PROTOTYPE.get(proto);
    if (name !== undefined) return name;
  }
  // From another realm (vm): its prototypes are not ours, so trust a builtin name.
  return typeof error.name === "string" && error.name in BUILTIN_ERRORS ? error.name : "Error";
}

// ---------------------------------------------------------------------------
// Decoding helpers shared by the extensions.

export function flatEntries(entries: unknown, what: string): unknown[] {
  if (!Array.isArray(entries) || entries.length % 2 !== 0) throw new ShapeError(`${what} extension expects a flat array of key/value pairs`);
  return entries;
}

export function stringKey(key: unknown, what: string): string {
  if (typeof key !== "string") throw new ShapeError(`${what} key must be a string, got ${describeValue(key)}`);
  return key;
}

/** Defines an own enumerable field; unlike assignment, "__proto__" stays a plain key. */
export function defineField(target: object, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
}
