// The value codec and errors: thrown errors round-trip with their class,
// fields and causes, and values that cannot be sent fail with a clear
// EncodeError.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { DecodeError, EncodeError, decodeValue, encodeValue } from "../../src/rpc/codec.js";
import { FlusterError, ValidationError } from "../../src/core/errors.js";
import { CustomTypeError, anyError, expectRoundTrip, hex, roundTrip, show } from "../helpers/codec.js";

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
