// The value codec, value by value: explicit round trips for every supported
// kind (primitives, containers, dates and binary, other objects) and
// property-based round trips with fast-check.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { runInNewContext } from "node:vm";
import { anyValue, expectRoundTrip, roundTrip } from "../helpers/codec.js";

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
