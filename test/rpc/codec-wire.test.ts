// The value codec's bytes: DecodeError (never a crash or a stray exception)
// for empty, truncated, corrupt and wrong-shaped input, and a wire format that
// is standard MessagePack with stable extensions and no state between calls;
// an array's elements decode with the byte spans of their encodings.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { Packr, pack as plainMsgpack, unpack as plainUnpack } from "msgpackr";
import { DecodeError, decodeArrayElements, decodeSequence, decodeValue, encodeValue } from "../../src/rpc/codec.js";
import { anyError, anyValue, assertEquivalent, decodesOrRejects, expectDecodeError, hex } from "../helpers/codec.js";

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

describe("codec: values with their byte spans", () => {
  test("property: an array's elements decode with spans that decode alone, and copied back to back form a sequence", () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(anyValue, anyError), { maxLength: 40 }), (array) => {
        const bytes = encodeValue(array);
        const whole = decodeValue(bytes);
        const { values, offsets } = decodeArrayElements(bytes);
        assertEquivalent(values, whole);
        assert.equal(offsets.length, array.length + 1);
        assert.equal(offsets[array.length], bytes.length, "the last element ends the encoding");
        const spans = values.map((_, i) => bytes.subarray(offsets[i], offsets[i + 1]));
        spans.forEach((span, i) => assertEquivalent(decodeValue(span), values[i], `element ${i} alone`));
        const sequence = decodeSequence(Buffer.concat(spans));
        assertEquivalent(sequence.values, whole);
        assert.deepEqual([...sequence.offsets], [0, ...spans.map((_, i) => offsets[i + 1]! - offsets[0]!)]);
      }),
      { numRuns: 300 },
    );
  });

  test("arrays of every header size (fixarray, array16, array32)", () => {
    for (const length of [0, 15, 16, 65_535, 65_536]) {
      const array = Array.from({ length }, (_, i) => i % 3 === 0 ? `s${i}` : i);
      const { values, offsets } = decodeArrayElements(encodeValue(array));
      assert.deepEqual(values, array);
      assert.equal(offsets[0], length < 16 ? 1 : length < 65_536 ? 3 : 5, "elements start after the header");
    }
  });

  test("bytes that are not an encoded array, or hold fewer elements than it says, are a DecodeError", () => {
    const isDecodeError = (error: unknown) => error instanceof DecodeError;
    assert.throws(() => decodeArrayElements(encodeValue({ a: 1 })), /not an encoded array/);
    assert.throws(() => decodeArrayElements(new Uint8Array(0)), isDecodeError);
    const three = encodeValue([1, "two", 3]);
    assert.throws(() => decodeArrayElements(three.subarray(0, three.length - 1)), isDecodeError);
    assert.throws(() => decodeArrayElements(Uint8Array.of(0x93, 0x01)), /an array of 3 elements holds 1/);
    assert.throws(() => decodeSequence(Uint8Array.of(0xa5, 0x61)), isDecodeError, "a truncated string");
    assert.deepEqual(decodeSequence(new Uint8Array(0)).values, []);
  });
});
