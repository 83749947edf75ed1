// The value codec: explicit round trips for every supported kind, property-based
// round trips with fast-check, clear EncodeErrors, and DecodeError (never a crash
// or a stray exception) for empty, truncated, corrupt and wrong-shaped bytes.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { inspect } from "node:util";
import { runInNewContext } from "node:vm";
import { Packr, pack as plainMsgpack, unpack as plainUnpack } from "msgpackr";
import { DecodeError, EncodeError, decodeValue, encodeValue } from "../../src/rpc/codec.js";
import { FlusterError, ValidationError } from "../../src/core/errors.js";

const roundTrip = <T>(value: T): unknown => decodeValue(encodeValue(value));

const BUILTIN_ERRORS = [AggregateError, TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError, Error];
const ERROR_SLOTS = new Set(["name", "message", "stack", "cause"]);

function builtinErrorBase(error: Error): ErrorConstructor | AggregateErrorConstructor {
  return BUILTIN_ERRORS.find((ctor) => error instanceof ctor) ?? Error;
}

const show = (value: unknown): string => inspect(value, { depth: 2, breakLength: Infinity });

function bytesOf(view: ArrayBufferView | ArrayBuffer): Uint8Array {
  return view instanceof ArrayBuffer ? new Uint8Array(view) : new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

/**
 * What the codec promises, checked strictly: same primitives (Object.is), same
 * classes for the supported builtins, key and entry order kept, other objects as
 * plain objects of their own enumerable fields, errors field by field.
 */
function assertEquivalent(actual: unknown, expected: unknown, path = "$"): void {
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
    assert.equal(actual.name, expected.name, `${path}.name`);
    assert.equal(actual.message, expected.message, `${path}.message`);
    assert.equal(actual.stack, expected.stack, `${path}.stack`);
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

function expectRoundTrip(value: unknown): unknown {
  const decoded = roundTrip(value);
  assertEquivalent(decoded, value);
  return decoded;
}

function expectDecodeError(bytes: Uint8Array, message?: RegExp): void {
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
function decodesOrRejects(bytes: Uint8Array): void {
  try {
    decodeValue(bytes);
  } catch (error) {
    if (!(error instanceof DecodeError)) throw new Error(`decodeValue threw ${show(error)} for ${Buffer.from(bytes).toString("hex")}`, { cause: error });
  }
}

const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ""), "hex"));

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
const anyValue = fc.anything({
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
const anyError: fc.Arbitrary<Error> = fc.letrec<{ error: Error }>((tie) => ({
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
class CustomTypeError extends TypeError {
  override name = "CustomTypeError";
}

// ---------------------------------------------------------------------------

describe("codec: primitives", () => {
  test("strings, including unicode and lone surrogates", () => {
    for (const s of ["", "a", "héllo wörld", "日本語", "😀 emoji 👨‍👩‍👧", "\u0000nul", "x".repeat(70_000), "\ud800", "\udfff", "a\udc00\ud800b", "😀\ud83d", "\ud83d😀".repeat(40)]) {
      const decoded = roundTrip(s);
      assert.equal(decoded, s, `string of length ${s.length}`);
    }
  });

  test("numbers keep their exact value and stay numbers", () => {
    const numbers = [0, -0, 1, -1, 0.1, -1.5, NaN, Infinity, -Infinity, 127, 128, 255, 256, 65535, 65536, 2 ** 31, 2 ** 31 - 1, -(2 ** 31), -(2 ** 31) - 1, 2 ** 32, 2 ** 32 - 1];
    numbers.push(Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, 2 ** 53 + 2, 2 ** 60, -(2 ** 63), 2 ** 64, 1e21, 1e308, Number.MAX_VALUE, Number.MIN_VALUE, 5e-324);
    for (const n of numbers) {
      const decoded = roundTrip(n);
      assert.equal(typeof decoded, "number", `${n} should stay a number`);
      assert.ok(Object.is(decoded, n), `${n} came back as ${String(decoded)}`);
    }
  });

  test("booleans, null and undefined", () => {
    for (const v of [true, false, null, undefined]) assert.equal(roundTrip(v), v);
  });

  test("undefined as an object field and an array element is kept", () => {
    const decoded = expectRoundTrip({ a: undefined, b: [undefined, 1, undefined], c: 2 }) as Record<string, unknown>;
    assert.ok(Object.hasOwn(decoded, "a"));
  });

  test("BigInt of any size and sign stays BigInt", () => {
    const bigints = [0n, 1n, -1n, 127n, 2n ** 53n + 1n, 2n ** 63n - 1n, -(2n ** 63n), 2n ** 63n, 2n ** 64n - 1n, 2n ** 64n, -(2n ** 64n), 2n ** 200n + 12345n, -(2n ** 1000n) - 1n];
    for (const b of bigints) {
      const decoded = roundTrip(b);
      assert.equal(typeof decoded, "bigint", `${b}n should stay a bigint`);
      assert.equal(decoded, b);
    }
  });

  test("property: doubles and bigints round-trip exactly", () => {
    fc.assert(fc.property(fc.double(), (n) => Object.is(roundTrip(n), n)), { numRuns: 2000 });
    fc.assert(fc.property(fc.bigInt({ min: -(2n ** 300n), max: 2n ** 300n }), (b) => roundTrip(b) === b), { numRuns: 2000 });
  });

  test("property: any sequence of UTF-16 code units round-trips", () => {
    const anyCodeUnits = fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), maxLength: 200 });
    fc.assert(fc.property(anyCodeUnits, (s) => roundTrip(s) === s), { numRuns: 2000 });
  });
});

describe("codec: containers", () => {
  test("nested plain objects and arrays", () => {
    expectRoundTrip({ a: 1, b: { c: [1, "two", { d: [[], {}] }], e: null }, f: [{ g: true }] });
    expectRoundTrip([[[[1]]], { x: [{ y: { z: "deep" } }] }]);
  });

  test("object key order is kept", () => {
    const decoded = roundTrip({ zeta: 1, alpha: 2, mid: 3, "1": "one", "0": "zero", "": "empty" }) as object;
    assert.deepEqual(Object.keys(decoded), ["0", "1", "zeta", "alpha", "mid", ""]);
  });

  test("an own __proto__ key stays a plain key and never sets the prototype", () => {
    const value = JSON.parse('{"before": 1, "__proto__": {"polluted": true}, "after": 2}') as Record<string, unknown>;
    const decoded = expectRoundTrip(value) as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(decoded), Object.prototype);
    assert.deepEqual(Object.keys(decoded), ["before", "__proto__", "after"]);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });

  test("keys with lone surrogates", () => {
    expectRoundTrip({ "\ud800": 1, ok: { "a\udfffb": [2] } });
  });

  test("a Map and a plain object stay distinguishable", () => {
    const decoded = roundTrip({ obj: { a: 1 }, map: new Map([["a", 1]]), emptyObj: {}, emptyMap: new Map() }) as Record<string, unknown>;
    assert.ok(decoded.map instanceof Map);
    assert.ok(decoded.emptyMap instanceof Map);
    assert.ok(!(decoded.obj instanceof Map));
    assert.equal(Object.getPrototypeOf(decoded.obj), Object.prototype);
    assert.equal(Object.getPrototypeOf(decoded.emptyObj), Object.prototype);
  });

  test("Map with non-string keys, in order", () => {
    const map = new Map<unknown, unknown>([
      [1, "number"],
      ["1", "string"],
      [1n, "bigint"],
      [NaN, "nan"],
      [undefined, "undefined"],
      [null, "null"],
      [true, "bool"],
      [{ k: [1] }, "object"],
      [new Map([[2, 3]]), new Map([[{ nested: true }, new Set([1])]])],
      [new Date(0), "date"],
    ]);
    expectRoundTrip(map);
  });

  test("Set with mixed members, in order", () => {
    expectRoundTrip(new Set<unknown>([3, "3", 3n, { a: 1 }, [1, 2], null, undefined, NaN, new Map([[1, 2]]), new Set(["inner"])]));
  });

  test("Set members that need boxing (-0 becomes 0 inside a Set by JS rules)", () => {
    expectRoundTrip(new Set(["\ud800", new Map([[1, 1]]), new Error("in a set")]));
  });

  test("an array with holes reads the holes as undefined", () => {
    const sparse = [1, , 3]; // eslint-disable-line no-sparse-arrays
    assert.deepEqual(roundTrip(sparse), [1, undefined, 3]);
  });

  test("values nested 900 levels deep round-trip", () => {
    let value: unknown = "bottom";
    for (let i = 0; i < 900; i++) value = i % 2 ? [value] : { v: value };
    expectRoundTrip(value);
  });

  test("an object with more than 65535 keys", () => {
    const big: Record<string, number> = {};
    for (let i = 0; i < 70_000; i++) big[`k${i}`] = i;
    expectRoundTrip(big);
  });
});

describe("codec: dates and binary", () => {
  test("dates, including sub-second, pre-1970, far ones and invalid ones", () => {
    for (const t of [0, 1, -1, 999, -1500, 1712345678901, 1712345678000, -62135596800000, 8.64e15, -8.64e15, 4294967296000, 4294967295999, NaN]) {
      expectRoundTrip(new Date(t));
    }
  });

  test("property: any Date", () => {
    fc.assert(fc.property(fc.date({ noInvalidDate: false }), (d) => Object.is((roundTrip(d) as Date).getTime(), d.getTime())), { numRuns: 2000 });
  });

  test("Uint8Array stays a Uint8Array and Buffer stays a Buffer", () => {
    const decoded = roundTrip({ u8: new Uint8Array([0, 1, 255]), buf: Buffer.from("hello"), empty: new Uint8Array(0), emptyBuf: Buffer.alloc(0) }) as Record<string, Uint8Array>;
    assert.equal(Object.getPrototypeOf(decoded.u8), Uint8Array.prototype);
    assert.ok(Buffer.isBuffer(decoded.buf));
    assert.deepEqual([...(decoded.u8 ?? [])], [0, 1, 255]);
    assert.equal(Buffer.from(decoded.buf ?? []).toString(), "hello");
    assert.equal(decoded.empty?.byteLength, 0);
    assert.ok(Buffer.isBuffer(decoded.emptyBuf));
  });

  test("views into a larger buffer send only their own bytes", () => {
    const backing = new Uint8Array(64).map((_, i) => i);
    const decoded = roundTrip([backing.subarray(3, 7), new Float64Array(backing.buffer, 8, 2), Buffer.from(backing.buffer, 5, 4)]) as Uint8Array[];
    assert.deepEqual([...(decoded[0] ?? [])], [3, 4, 5, 6]);
    assert.equal(decoded[1]?.byteLength, 16);
    assert.deepEqual([...(decoded[2] ?? [])], [5, 6, 7, 8]);
  });

  test("every typed array class, DataView and ArrayBuffer", () => {
    const values = [
      new Int8Array([-128, 0, 127]),
      new Uint8Array([0, 255]),
      new Uint8ClampedArray([0, 128, 255]),
      new Int16Array([-32768, 32767]),
      new Uint16Array([0, 65535]),
      new Int32Array([-(2 ** 31), 2 ** 31 - 1]),
      new Uint32Array([0, 2 ** 32 - 1]),
      new Float32Array([1.5, -0, NaN, Infinity]),
      new Float64Array([Math.PI, -0, NaN, -Infinity, Number.MIN_VALUE]),
      new BigInt64Array([-(2n ** 63n), 0n, 2n ** 63n - 1n]),
      new BigUint64Array([0n, 2n ** 64n - 1n]),
      new DataView(new Uint8Array([9, 8, 7]).buffer),
      new Uint8Array([1, 2, 3]).buffer,
      new Float64Array(0),
      new ArrayBuffer(0),
    ];
    expectRoundTrip(values);
  });

  test("a typed array subclass arrives as the builtin it extends", () => {
    class Samples extends Float32Array {}
    const decoded = roundTrip(new Samples([1, 2.5]));
    assert.equal(Object.getPrototypeOf(decoded), Float32Array.prototype);
    assert.deepEqual([...(decoded as Float32Array)], [1, 2.5]);
  });

  test("RegExp", () => {
    expectRoundTrip([/a+b/gi, new RegExp("^x\\d$", "mu")]);
  });

  test("a 1 MiB Uint8Array", () => {
    const bytes = new Uint8Array(1 << 20).map((_, i) => (i * 31) & 0xff);
    expectRoundTrip({ bytes });
  });
});

describe("codec: errors", () => {
  test("name, message, stack and own enumerable fields", () => {
    const error = Object.assign(new Error("not found"), { code: "E_X", status: 404, details: { path: "/a", tries: [1, 2] } });
    const decoded = expectRoundTrip(error) as Error & { code: string; status: number };
    assert.equal(decoded.code, "E_X");
    assert.equal(decoded.status, 404);
    assert.equal(decoded.stack, error.stack);
  });

  test("cause, recursively, of any kind", () => {
    const root = new RangeError("root", { cause: { reason: "disk", free: 0n } });
    const middle = new TypeError("middle", { cause: root });
    const top = new Error("top", { cause: middle });
    const decoded = expectRoundTrip(top) as Error;
    assert.ok(decoded.cause instanceof TypeError);
    assert.ok((decoded.cause as Error).cause instanceof RangeError);
    expectRoundTrip(new Error("string cause", { cause: "just a string" }));
    expectRoundTrip(new Error("map cause", { cause: new Map([[1, new Error("in a map")]]) }));
  });

  test("a cause of undefined is kept, and no cause stays no cause", () => {
    const withUndefined = roundTrip(new Error("x", { cause: undefined })) as Error;
    assert.ok(Object.hasOwn(withUndefined, "cause"));
    const without = roundTrip(new Error("y")) as Error;
    assert.ok(!Object.hasOwn(without, "cause"));
  });

  test("builtin classes decode to the builtin class", () => {
    for (const Ctor of [TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError]) {
      const decoded = roundTrip(new Ctor("bad")) as Error;
      assert.ok(decoded instanceof Ctor, Ctor.name);
      assert.equal(decoded.name, Ctor.name);
      assert.equal(decoded.message, "bad");
    }
  });

  test("AggregateError keeps its errors", () => {
    const error = new AggregateError([new TypeError("one"), "two", { three: 3 }, new AggregateError([new Error("inner")], "nested")], "many failed");
    const decoded = expectRoundTrip(error) as AggregateError;
    assert.ok(decoded instanceof AggregateError);
    assert.ok(decoded.errors[0] instanceof TypeError);
    assert.ok(decoded.errors[3] instanceof AggregateError);
  });

  test("a custom subclass decodes as its nearest builtin class with the original name", () => {
    class MyErr extends Error {
      override name = "MyErr";
      retryable = true;
    }
    const decoded = roundTrip(new MyErr("custom", { cause: new MyErr("inner") })) as Error & { retryable: boolean };
    assert.ok(decoded instanceof Error);
    assert.equal(Object.getPrototypeOf(decoded), Error.prototype);
    assert.equal(decoded.name, "MyErr");
    assert.equal(decoded.retryable, true);
    assert.equal((decoded.cause as Error).name, "MyErr");

    const typed = roundTrip(new CustomTypeError("typed")) as Error;
    assert.ok(typed instanceof TypeError);
    assert.equal(typed.name, "CustomTypeError");
  });

  test("Fluster's own errors keep name, code and fields", () => {
    const decoded = expectRoundTrip(new ValidationError("resources.cpu", "must be positive")) as Error & { code: string; field: string };
    assert.equal(decoded.name, "ValidationError");
    assert.equal(decoded.code, "invalid_argument");
    assert.equal(decoded.field, "resources.cpu");
    expectRoundTrip(new FlusterError("down", "unavailable"));
  });

  test("an error without a stack, with a changed name, or with an errors field", () => {
    const noStack = new Error("no stack");
    delete noStack.stack;
    const decoded = expectRoundTrip(noStack) as Error;
    assert.equal(decoded.stack, undefined);
    const renamed = new TypeError("renamed");
    renamed.name = "Fancy\ud800Name";
    expectRoundTrip(renamed);
    expectRoundTrip(Object.assign(new Error("has errors"), { errors: ["not an aggregate"] }));
  });

  test("own name, message or stack fields that are not strings keep their values", () => {
    // Found by the property test: `Object.assign(new Error(""), { name: false })`.
    const decoded = expectRoundTrip(Object.assign(new Error(""), { name: false, message: 5, stack: null })) as unknown as Record<string, unknown>;
    assert.equal(decoded.name, false);
    assert.equal(decoded.message, 5);
    assert.equal(decoded.stack, null);
  });

  test("errors inside other values", () => {
    expectRoundTrip({ failures: [new Error("a"), new Set([new RangeError("b")])], byId: new Map([[7, new TypeError("c")]]) });
  });

  test("decoding an error leaves Error.stackTraceLimit alone", () => {
    const before = Error.stackTraceLimit;
    roundTrip(new Error("x"));
    assert.throws(() => decodeValue(hex("d4 45 00 97 a1 78 a1 79 d4 00 00 a3 4e 6f 70 90 d4 00 00 90")), DecodeError);
    assert.equal(Error.stackTraceLimit, before);
  });

  test("property: any error round-trips", () => {
    fc.assert(
      fc.property(anyError, (error) => {
        expectRoundTrip(error);
      }),
      { numRuns: 500 },
    );
  });
});

describe("codec: other objects", () => {
  test("a class instance arrives as a plain object of its own enumerable fields", () => {
    class Point {
      private readonly hidden = "own fields are sent";
      constructor(
        readonly x: number,
        readonly y: number,
      ) {}
      get length(): number {
        return Math.hypot(this.x, this.y);
      }
      describe(): string {
        return `${this.hidden} (${this.x}, ${this.y})`;
      }
    }
    const point = new Point(3, 4);
    Object.defineProperty(point, "secret", { value: 1, enumerable: false });
    (point as unknown as Record<symbol, number>)[Symbol("tag")] = 1;
    const decoded = roundTrip({ point });
    assert.deepEqual(decoded, { point: { hidden: "own fields are sent", x: 3, y: 4 } });
    assert.equal(Object.getPrototypeOf((decoded as { point: object }).point), Object.prototype);
  });

  test("null-prototype objects arrive as plain objects", () => {
    const bare = Object.assign(Object.create(null) as Record<string, unknown>, { a: 1, b: [2] });
    expectRoundTrip(bare);
  });

  test("Map, Set and Date from another realm (node:vm) keep their kind", () => {
    const foreign = runInNewContext("({ map: new Map([[1, { a: 2 }]]), set: new Set(['x']), date: new Date(5), list: [1, { b: 2 }] })") as Record<string, unknown>;
    const decoded = roundTrip(foreign) as { map: Map<number, unknown>; set: Set<string>; date: Date; list: unknown[] };
    assert.ok(decoded.map instanceof Map);
    assert.deepEqual(decoded.map.get(1), { a: 2 });
    assert.deepEqual([...decoded.set], ["x"]);
    assert.equal(decoded.date.getTime(), 5);
    assert.deepEqual(decoded.list, [1, { b: 2 }]);
  });

  test("toJSON is not consulted: the fields are what is sent", () => {
    class Money {
      constructor(readonly cents: number) {}
      toJSON(): string {
        return `$${this.cents / 100}`;
      }
    }
    assert.deepEqual(roundTrip(new Money(250)), { cents: 250 });
  });
});

describe("codec: values that cannot be sent", () => {
  const cases: Array<[string, unknown, RegExp]> = [
    ["a function", () => 1, /^cannot encode value: a function \(anonymous\) cannot be sent$/],
    ["a nested function, named by path", { args: [1, { handler: function onData() {} }] }, /^cannot encode value at \.args\[1\]\.handler: a function \(onData\) cannot be sent$/],
    ["a symbol", { s: Symbol("x") }, /at \.s: a symbol \(Symbol\(x\)\) cannot be sent/],
    ["a symbol in a map value", new Map([["k", Symbol.iterator]]), /at <map value #0>: a symbol/],
    ["a function in an error field", Object.assign(new Error("x"), { retry: () => 0 }), /at \.retry: a function/],
    ["a promise", { result: Promise.resolve(1) }, /at \.result: a Promise \(missing await\?\) cannot be sent/],
    ["a WeakMap", [new WeakMap()], /at \[0\]: a WeakMap cannot be sent/],
    ["a WeakSet", new WeakSet(), /a WeakSet cannot be sent/],
    ["a boxed primitive", { n: Object(1) as unknown }, /at \.n: a boxed primitive cannot be sent/],
    ["a SharedArrayBuffer", new SharedArrayBuffer(8), /a SharedArrayBuffer/],
    ["a key with spaces", { "a key": () => 0 }, /at \["a key"\]: a function/],
  ];
  for (const [what, value, message] of cases) {
    test(what, () => {
      assert.throws(
        () => encodeValue(value),
        (error: unknown) => {
          assert.ok(error instanceof EncodeError, `expected EncodeError, got ${show(error)}`);
          assert.ok(error instanceof FlusterError);
          assert.equal(error.code, "invalid_argument");
          assert.match(error.message, message);
          return true;
        },
      );
    });
  }

  test("a cycle fails clearly instead of overflowing the stack", () => {
    const a: Record<string, unknown> = { name: "a" };
    a.self = { back: a };
    assert.throws(() => encodeValue(a), /cannot encode value at \.self\.back\.self.*: nested deeper than 1000 levels \(is the value circular\?\)/);
    const error = new Error("loop");
    error.cause = error;
    assert.throws(() => encodeValue(error), EncodeError);
  });

  test("a getter that throws becomes an EncodeError with the thrown error as cause", () => {
    const value = {
      get broken(): never {
        throw new RangeError("nope");
      },
    };
    assert.throws(
      () => encodeValue(value),
      (error: unknown) => error instanceof EncodeError && error.cause instanceof RangeError,
    );
  });
});

describe("codec: bad bytes", () => {
  test("empty input", () => expectDecodeError(new Uint8Array(0), /no bytes \(0 bytes\)/));

  test("not bytes at all", () => {
    assert.throws(() => decodeValue("hello" as unknown as Uint8Array), DecodeError);
    assert.throws(() => decodeValue(null as unknown as Uint8Array), DecodeError);
  });

  test("every truncation of a valid encoding", () => {
    const values = [{ a: 1, b: "two", c: [3n, new Map([[1, new Set([2])]])] }, new TypeError("x", { cause: new Error("y") }), "\ud800abc", -0, new Float64Array([1, 2]), 2n ** 100n, new Date(1.5e12)];
    for (const value of values) {
      const bytes = encodeValue(value);
      for (let length = 1; length < bytes.length; length++) expectDecodeError(bytes.subarray(0, length));
    }
  });

  test("trailing bytes after a value", () => {
    expectDecodeError(Uint8Array.from([...encodeValue({ a: 1 }), 0x01]));
  });

  test("an extension of ours with the wrong shape", () => {
    expectDecodeError(hex("d4 4d 00 05"), /map extension expects a flat array/); // map of a number
    expectDecodeError(hex("d4 4d 00 91 01"), /map extension expects a flat array/); // odd entries
    expectDecodeError(hex("d4 4f 00 92 01 02"), /object key must be a string/);
    expectDecodeError(hex("d4 45 00 90"), /error extension expects a 7-element array/);
    expectDecodeError(hex("d4 45 00 97 01 a1 79 d4 00 00 a5 45 72 72 6f 72 90 d4 00 00 90"), /error name and message must be strings/);
    expectDecodeError(hex("d4 45 00 97 a1 78 a1 79 d4 00 00 a3 4e 6f 70 90 d4 00 00 90"), /unknown error base class "Nop"/);
    expectDecodeError(hex("d4 45 00 97 a1 78 a1 79 d4 00 00 a5 45 72 72 6f 72 92 01 02 d4 00 00 90"), /cause slot/);
    expectDecodeError(hex("d4 45 00 97 a1 78 a1 79 d4 00 00 a5 45 72 72 6f 72 90 d4 00 00 91 01"), /error field extension expects/);
    expectDecodeError(hex("c7 03 55 41 00 42"), /odd byte length/);
    expectDecodeError(hex("c7 02 4d 00 00")); // a write/read extension sent as raw ext data
  });

  test("msgpackr's structured-clone references are refused", () => {
    expectDecodeError(hex("d6 70 00 00 00 01"));
    expectDecodeError(hex("d6 69 00 00 00 01 90"));
  });

  test("deep nesting is a DecodeError, not a crash", () => {
    expectDecodeError(new Uint8Array(200_000).fill(0x91));
    expectDecodeError(new Uint8Array(200_000).fill(0x81).map((b, i) => (i % 2 ? b : 0xa0)));
  });

  test("huge declared lengths with little data", () => {
    for (const bytes of ["dd ff ff ff ff", "df ff ff ff ff", "db ff ff ff ff 41", "c6 ff ff ff ff", "c9 ff ff ff ff 74 08", "dc ff ff c0"]) expectDecodeError(hex(bytes));
  });

  test("property: random bytes decode to a value or a DecodeError", () => {
    const interesting = fc.constantFrom(0xc0, 0xc1, 0xc7, 0xc8, 0xc9, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xdc, 0xdd, 0xde, 0xdf, 0xd9, 0xdb, 0xcf, 0xd3, 0x4d, 0x45, 0x4f, 0x55, 0x5a, 0x42, 0x62, 0x65, 0x69, 0x70, 0x72, 0x73, 0x74, 0x78, 0xff, 0x00, 0x90, 0x91, 0x81, 0xa1);
    const bytes = fc.array(fc.oneof(fc.integer({ min: 0, max: 255 }), interesting), { maxLength: 80 }).map((b) => Uint8Array.from(b));
    fc.assert(fc.property(bytes, decodesOrRejects), { numRuns: 20_000 });
    fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), decodesOrRejects), { numRuns: 5_000 });
  });

  test("property: corrupted valid encodings decode to a value or a DecodeError", () => {
    const mutation = fc.record({ at: fc.nat(), op: fc.constantFrom("set", "insert", "delete", "truncate"), byte: fc.integer({ min: 0, max: 255 }) });
    fc.assert(
      fc.property(fc.oneof(anyValue, anyError), fc.array(mutation, { minLength: 1, maxLength: 4 }), (value, mutations) => {
        const bytes = [...encodeValue(value)];
        for (const { at, op, byte } of mutations) {
          const i = at % Math.max(1, bytes.length);
          if (op === "set") bytes[i] = byte;
          else if (op === "insert") bytes.splice(i, 0, byte);
          else if (op === "delete") bytes.splice(i, 1);
          else bytes.length = i;
        }
        decodesOrRejects(Uint8Array.from(bytes));
      }),
      { numRuns: 3_000 },
    );
  });
});

describe("codec: round-trip properties", () => {
  test("property: any value round-trips", () => {
    fc.assert(
      fc.property(anyValue, (value) => {
        expectRoundTrip(value);
      }),
      { numRuns: 3_000 },
    );
  });

  test("property: a value wrapped in every container round-trips", () => {
    fc.assert(
      fc.property(anyValue, anyValue, (a, b) => {
        expectRoundTrip([{ a, m: new Map<unknown, unknown>([[a, b]]), s: new Set([a, b]), e: new Error("e", { cause: a }) }]);
      }),
      { numRuns: 1_000 },
    );
  });
});

describe("codec: wire format and state", () => {
  test("plain data is standard MessagePack, byte for byte", () => {
    assert.deepEqual(encodeValue({ a: 1 }), Buffer.from(hex("81 a1 61 01")));
    assert.deepEqual(encodeValue([true, null, "x"]), Buffer.from(hex("93 c3 c0 a1 78")));
    assert.deepEqual(encodeValue(2 ** 40), Buffer.from(hex("cb 42 70 00 00 00 00 00 00")));
    const json = { name: "job", args: [1, 2.5, "three", { four: [null, false] }] };
    assert.deepEqual(plainUnpack(encodeValue(json)), json);
    assert.deepEqual(decodeValue(plainMsgpack(json)), json);
  });

  test("the extension bytes are stable", () => {
    assert.deepEqual(encodeValue(-0), Buffer.from(hex("d4 5a 00")));
    assert.deepEqual(encodeValue(new Map([[1, 2]])), Buffer.from(hex("d4 4d 00 92 01 02")));
    assert.deepEqual(encodeValue("\ud800"), Buffer.from(hex("d5 55 00 d8")));
    assert.deepEqual(encodeValue(undefined), Buffer.from(hex("d4 00 00")));
    assert.deepEqual(encodeValue(1n), Buffer.from(hex("d3 00 00 00 00 00 00 00 01")));
  });

  test("encoded bytes are not changed by later encodes", () => {
    const first = encodeValue({ first: "x".repeat(100) });
    const copy = Uint8Array.from(first);
    for (let i = 0; i < 2_000; i++) encodeValue({ later: i, pad: "y".repeat(i % 300) });
    encodeValue({ big: new Uint8Array(1 << 20) });
    assert.deepEqual(Uint8Array.from(first), copy);
    assert.deepEqual(decodeValue(first), { first: "x".repeat(100) });
  });

  test("decoded values share nothing with the input or with each other", () => {
    const bytes = encodeValue({ buf: Buffer.from([1, 2, 3]), u8: new Uint8Array([4, 5]), list: [1] });
    const input = Uint8Array.from(bytes);
    const one = decodeValue(input) as { buf: Buffer; u8: Uint8Array; list: number[] };
    const two = decodeValue(input) as { buf: Buffer; u8: Uint8Array; list: number[] };
    assert.notEqual(one, two);
    assert.notEqual(one.list, two.list);
    input.fill(0);
    assert.deepEqual([...one.buf], [1, 2, 3]);
    assert.deepEqual([...one.u8], [4, 5]);
    one.buf[0] = 9;
    assert.equal(two.buf[0], 1);
    assert.deepEqual(Object.keys(input), Object.keys(new Uint8Array(input.length)), "decoding must not decorate its input");
  });

  test("record definitions in foreign bytes do not carry over to the next decode", () => {
    const withRecords = new Packr({ useRecords: true }).pack({ a: 1 });
    assert.equal(withRecords[0], 0xd4, "msgpackr wrote a record definition");
    assert.deepEqual(decodeValue(withRecords), { a: 1 });
    assert.equal(decodeValue(Uint8Array.of(0x40)), 0x40, "0x40 is a plain integer again");
  });

  test("decoding accepts a Buffer or a plain Uint8Array at any offset", () => {
    const bytes = encodeValue({ ok: [1, "two"] });
    const shifted = new Uint8Array(bytes.length + 5);
    shifted.set(bytes, 5);
    assert.deepEqual(decodeValue(shifted.subarray(5)), { ok: [1, "two"] });
    assert.deepEqual(decodeValue(Buffer.from(bytes)), { ok: [1, "two"] });
  });
});
