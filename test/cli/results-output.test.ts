// How `fluster job results` prints values: one line per task as text, and the
// tagged JSON form of --json, where every value the codec carries has one;
// each read back through a real encode/decode round trip.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { oneLineInspect } from "../../src/cli/commands.js";
import { toJsonValue } from "../../src/cli/json-values.js";
import { decodeValue, encodeValue } from "../../src/rpc/codec.js";

/** What the CLI sees: the value after the codec, then as JSON text parsed again. */
function viaCli(value: unknown): unknown {
  return JSON.parse(JSON.stringify(toJsonValue(decodeValue(encodeValue(value)))));
}

describe("toJsonValue", () => {
  test("plain data is itself; a __proto__ key stays a plain key", () => {
    const plain = { a: 1, b: "two", c: [true, null, { d: -3.5 }], ["__proto__"]: "kept" };
    const json = viaCli(plain) as Record<string, unknown>;
    assert.deepEqual(Object.keys(json), ["a", "b", "c", "__proto__"]);
    assert.deepEqual(json.c, [true, null, { d: -3.5 }]);
    assert.equal(json["__proto__"], "kept");
    assert.equal(Object.getPrototypeOf(toJsonValue(decodeValue(encodeValue(plain)))), Object.prototype);
  });

  test("Map, Set, Date, bigint, bytes, typed arrays, odd numbers and RegExp get tags", () => {
    assert.deepEqual(viaCli(new Map<unknown, unknown>([["k", 1], [2, new Set(["x"])]])), { $map: [["k", 1], [2, { $set: ["x"] }]] });
    assert.deepEqual(viaCli(new Date(Date.UTC(2026, 0, 2))), { $date: "2026-01-02T00:00:00.000Z" });
    assert.deepEqual(viaCli(new Date(Number.NaN)), { $date: null });
    assert.deepEqual(viaCli(2n ** 70n), { $bigint: "1180591620717411303424" });
    assert.deepEqual(viaCli(new Uint8Array([1, 2, 255])), { $bytes: "AQL/" });
    assert.deepEqual(viaCli(Buffer.from("hi")), { $bytes: "aGk=" });
    assert.deepEqual(viaCli(new Uint8Array([9, 1, 2, 3]).subarray(1, 3)), { $bytes: "AQI=" }, "a view's own bytes, not its whole buffer");
    assert.deepEqual(viaCli(new Float64Array([1.5, -2])), { $Float64Array: [1.5, -2] });
    assert.deepEqual(viaCli(new BigInt64Array([5n])), { $BigInt64Array: ["5"] });
    assert.deepEqual(viaCli([Number.NaN, Number.POSITIVE_INFINITY, -Infinity, -0]), [{ $number: "NaN" }, { $number: "Infinity" }, { $number: "-Infinity" }, 0]);
    assert.deepEqual(viaCli(/a+/g), { $regexp: "/a+/g" });
  });

  test("undefined is null as a value or element, and a field holding it is left out", () => {
    assert.equal(viaCli(undefined), null);
    assert.deepEqual(viaCli([undefined, 1]), [null, 1]);
    assert.deepEqual(viaCli({ a: undefined, b: 1 }), { b: 1 });
  });

  test("an Error keeps its name, message, cause and fields", () => {
    const error = Object.assign(new RangeError("too big", { cause: new Error("inner") }), { limit: 3n });
    const json = viaCli(error) as { $error: Record<string, unknown> };
    assert.equal(json.$error.name, "RangeError");
    assert.equal(json.$error.message, "too big");
    assert.match(String(json.$error.stack), /RangeError: too big/);
    assert.deepEqual(json.$error.limit, { $bigint: "3" });
    assert.equal((json.$error.cause as { $error: { message: string } }).$error.message, "inner");
  });
});

describe("oneLineInspect", () => {
  test("a value is one line, however big or nested; line breaks show as \\n", () => {
    const value = decodeValue(encodeValue({ list: Array.from({ length: 50 }, (_, i) => i), text: "two\nlines", deep: { a: { b: { c: { d: [new Map([[1, new Set([2])]])] } } } } }));
    const line = oneLineInspect(value);
    assert.ok(!line.includes("\n"), line);
    assert.ok(line.startsWith("{ list: [ 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,"), line);
    assert.ok(line.endsWith("text: 'two\\nlines', deep: { a: { b: { c: { d: [ Map(1) { 1 => Set(1) { 2 } } ] } } } } }"), line);
    const error = oneLineInspect(decodeValue(encodeValue(new RangeError("boom"))));
    assert.ok(!error.includes("\n") && error.startsWith("RangeError: boom\\n    at "), error);
  });
});
