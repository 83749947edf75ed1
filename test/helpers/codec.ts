// The value codec's test kit: strict equivalence (what the codec promises),
// round-trip and DecodeError expectations, and fast-check arbitraries for any
// value and any error. Shared by test/rpc/codec-*.test.ts.
import assert from "node:assert/strict";
import fc from "fast-check";
import { inspect } from "node:util";
import { DecodeError, decodeValue, encodeValue } from "../../src/rpc/codec.js";

export const roundTrip = <T>(value: T): unknown => decodeValue(encodeValue(value));

const BUILTIN_ERRORS = [AggregateError, TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError, Error];
const ERROR_SLOTS = new Set(["name", "message", "stack", "cause"]);

function builtinErrorBase(error: Error): ErrorConstructor | AggregateErrorConstructor {
  return BUILTIN_ERRORS.find((ctor) => error instanceof ctor) ?? Error;
}

export const show = (value: unknown): string => inspect(value, { depth: 2, breakLength: Infinity });

function bytesOf(view: ArrayBufferView | ArrayBuffer): Uint8Array {
  return view instanceof ArrayBuffer ? new Uint8Array(view) : new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

/**
 * What the codec promises, checked strictly: same primitives (Object.is), same
 * classes for the supported builtins, key and entry order kept, other objects as
 * plain objects of their own enumerable fields, errors field by field.
 */
export function assertEquivalent(actual: unknown, expected: unknown, path = "$"): void {
  if (typeof expected !== "object" || expected === null) {
    if (!Object.is(actual, expected)) assert.fail(`${path}: expected ${show(expected)}, got ${show(actual)}`);
    return;
  }
  if (typeof actual !== "object" || actual === null) assert.fail(`${path}: expected an object, got ${show(actual)}`);
  if (Array.isArray(expected)) {
    assert.ok(Array.isArray(actual), `${path}: expected an array`);
    assert.equal(actual.length, expected.length, `${path}: array length`);
    for (let i = 0; i < expected.length; i++) assertEquivalent(actual[i], expected[i], `${path}[${i}]`);
    return;
  }
  if (ArrayBuffer.isView(expected) || expected instanceof ArrayBuffer) {
    assert.equal(Object.getPrototypeOf(actual), Object.getPrototypeOf(expected), `${path}: binary class`);
    assert.deepEqual(bytesOf(actual as ArrayBufferView), bytesOf(expected), `${path}: bytes`);
    return;
  }
  if (expected instanceof Date) {
    assert.ok(actual instanceof Date, `${path}: expected a Date`);
    assert.ok(Object.is(actual.getTime(), expected.getTime()), `${path}: ${actual.getTime()} vs ${expected.getTime()}`);
    return;
  }
  if (expected instanceof RegExp) {
    assert.ok(actual instanceof RegExp, `${path}: expected a RegExp`);
    assert.equal(actual.source, expected.source);
    assert.equal(actual.flags, expected.flags);
    return;
  }
  if (expected instanceof Map) {
    assert.ok(actual instanceof Map, `${path}: expected a Map`);
    const a = [...actual];
    const e = [...expected];
    assert.equal(a.length, e.length, `${path}: map size`);
    e.forEach(([key, value], i) => {
      assertEquivalent(a[i]?.[0], key, `${path}<key #${i}>`);
      assertEquivalent(a[i]?.[1], value, `${path}<value #${i}>`);
    });
    return;
  }
  if (expected instanceof Set) {
    assert.ok(actual instanceof Set, `${path}: expected a Set`);
    assertEquivalent([...actual], [...expected], `${path}<set>`);
    return;
  }
  if (expected instanceof Error) {
    assert.ok(actual instanceof Error, `${path}: expected an Error`);
    const base = builtinErrorBase(expected);
    assert.equal(Object.getPrototypeOf(actual), base.prototype, `${path}: error class should be ${base.name}`);
    // Usually strings, but own fields may set them to any value (an arbitrary's fields can).
    assertEquivalent(actual.name, expected.name, `${path}.name`);
    assertEquivalent(actual.message, expected.message, `${path}.message`);
    assertEquivalent(actual.stack, expected.stack, `${path}.stack`);
    assert.equal(Object.hasOwn(actual, "cause"), Object.hasOwn(expected, "cause"), `${path}: has a cause`);
    if (Object.hasOwn(expected, "cause")) assertEquivalent(actual.cause, expected.cause, `${path}.cause`);
    const aggregate = expected instanceof AggregateError;
    if (aggregate) assertEquivalent((actual as AggregateError).errors, expected.errors, `${path}.errors`);
    const fields = (error: object) => Object.keys(error).filter((key) => !ERROR_SLOTS.has(key) && !(aggregate && key === "errors"));
    assert.deepEqual(fields(actual), fields(expected), `${path}: error fields`);
    for (const key of fields(expected)) assertEquivalent((actual as never)[key], (expected as never)[key], `${path}.${key}`);
    return;
  }
  // A plain object, or an instance of another class, which arrives as a plain object.
  assert.equal(Object.getPrototypeOf(actual), Object.prototype, `${path}: expected a plain object`);
  assert.deepEqual(Object.keys(actual), Object.keys(expected), `${path}: keys in order`);
  for (const key of Object.keys(expected)) {
    assert.ok(Object.hasOwn(actual, key), `${path}: own key ${JSON.stringify(key)}`);
    assertEquivalent((actual as Record<string, unknown>)[key], (expected as Record<string, unknown>)[key], `${path}[${JSON.stringify(key)}]`);
  }
}

export function expectRoundTrip(value: unknown): unknown {
  const decoded = roundTrip(value);
  assertEquivalent(decoded, value);
  return decoded;
}

export function expectDecodeError(bytes: Uint8Array, message?: RegExp): void {
  assert.throws(
    () => decodeValue(bytes),
    (error: unknown) => {
      assert.ok(error instanceof DecodeError, `expected DecodeError, got ${show(error)}`);
      assert.equal(error.code, "invalid_argument");
      assert.match(error.message, /^cannot decode value: .+ \(\d+ bytes\)$/s);
      if (message) assert.match(error.message, message);
      return true;
    },
  );
}

/** Decoding untrusted bytes: a value or a DecodeError, nothing else. */
export function decodesOrRejects(bytes: Uint8Array): void {
  try {
    decodeValue(bytes);
  } catch (error) {
    if (!(error instanceof DecodeError)) throw new Error(`decodeValue threw ${show(error)} for ${Buffer.from(bytes).toString("hex")}`, { cause: error });
  }
}

export const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ""), "hex"));

// ---------------------------------------------------------------------------
// Arbitraries

/** Any UTF-16 code units, so lone surrogates show up often. */
const codeUnitString = fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), maxLength: 8 });
const objectKey = fc.oneof(fc.string({ maxLength: 6 }), codeUnitString, fc.constantFrom("__proto__", "constructor", "toString", "hasOwnProperty", "0", "7", "", "toJSON"));
const specialNumber = fc.constantFrom(-0, 0, NaN, Infinity, -Infinity, 2 ** 53 + 2, -(2 ** 63), 2 ** 64, 2 ** 31, 2 ** 32 - 1, -(2 ** 31) - 1, Number.MAX_VALUE, Number.MIN_VALUE);
const leaf = fc.oneof(
  fc.double(),
  fc.integer(),
  specialNumber,
  fc.bigInt({ min: -(2n ** 200n), max: 2n ** 200n }),
  fc.bigInt({ min: -(2n ** 64n), max: 2n ** 64n }),
  fc.string({ unit: "binary", maxLength: 12 }),
  codeUnitString,
  fc.boolean(),
  fc.constant(null),
  fc.constant(undefined),
  fc.date({ noInvalidDate: false }),
);
export const anyValue = fc.anything({
  key: objectKey,
  values: [leaf],
  maxDepth: 4,
  withMap: true,
  withSet: true,
  withBigInt: true,
  withDate: true,
  withTypedArray: true,
  withSparseArray: true,
  withNullPrototype: true,
  withObjectString: true,
});

/** Past this depth, causes and aggregated errors stop being errors themselves. */
const errorDepth = { maxDepth: 2, depthIdentifier: "error" };
/** Errors of every builtin class and a custom one, with fields and (nested) causes. */
export const anyError: fc.Arbitrary<Error> = fc.letrec<{ error: Error }>((tie) => ({
  error: fc
    .record({
      kind: fc.constantFrom("Error", "TypeError", "RangeError", "SyntaxError", "ReferenceError", "EvalError", "URIError", "AggregateError", "Custom", "CustomTypeError"),
      name: fc.option(codeUnitString, { nil: undefined }),
      message: fc.oneof(fc.string(), codeUnitString),
      cause: fc.oneof(errorDepth, anyValue, tie("error")),
      hasCause: fc.boolean(),
      fields: fc.dictionary(fc.string({ minLength: 1, maxLength: 5 }), leaf, { maxKeys: 3 }),
      errors: fc.array(fc.oneof(errorDepth, leaf, tie("error")), { maxLength: 3 }),
      dropStack: fc.boolean(),
    })
    .map(({ kind, name, message, cause, hasCause, fields, errors, dropStack }) => {
      const options = hasCause ? { cause } : undefined;
      let error: Error;
      if (kind === "AggregateError") error = new AggregateError(errors, message, options);
      else if (kind === "Custom") error = new CustomError(message, options);
      else if (kind === "CustomTypeError") error = new CustomTypeError(message, options);
      else error = new (globalThis[kind as "TypeError"])(message, options);
      if (name !== undefined) error.name = name;
      if (dropStack) delete error.stack;
      Object.assign(error, fields);
      return error;
    }),
})).error;

class CustomError extends Error {
  override name = "CustomError";
  code = "E_CUSTOM";
}
export class CustomTypeError extends TypeError {
  override name = "CustomTypeError";
}
