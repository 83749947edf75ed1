// The actor data plane's direct codec (src/actor/wire.ts) against protobuf-es's
// reflective one, on random messages: the same bytes out, the same messages
// in, whatever the fields, including ones the direct path does not know.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { CallStreamRequestSchema, CallStreamResponseSchema, type CallStreamResponse } from "../../src/rpc/gen/fluster/actor/v1/actor_pb.js";
import { decodeStreamRequest, decodeStreamResponse, encodeCallHeader, encodeCancel, encodeStreamRequest, encodeStreamResponse } from "../../src/actor/wire.js";

const RUNS = 300;
const callId = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const bytes = fc.uint8Array({ maxLength: 300 });
const traceContext = fc.dictionary(fc.string({ maxLength: 20 }), fc.string({ maxLength: 60 }), { maxKeys: 3 });

const response: fc.Arbitrary<CallStreamResponse> = fc.record({ id: callId, value: bytes, kind: fc.constantFrom("value", "failure", "refusal"), text: fc.string({ maxLength: 40 }) }).map(
  ({ id, value, kind, text }) =>
    create(CallStreamResponseSchema, {
      callId: BigInt(id),
      outcome:
        kind === "refusal"
          ? { case: "refusal", value: { code: "not_found", message: text } }
          : { case: "response", value: { result: kind === "value" ? { case: "value", value } : { case: "failure", value: { name: "Error", message: text, stack: text, error: value } } } },
    }),
);

describe("actor wire codec", () => {
  test("a CallStreamRequest is encoded byte for byte as toBinary does, and decodes as fromBinary does", () => {
    fc.assert(
      fc.property(callId, fc.string({ maxLength: 30 }), fc.string({ maxLength: 30 }), bytes, traceContext, (id, actor, method, args, trace) => {
        const direct = encodeStreamRequest(id, encodeCallHeader(actor, method), args, trace);
        const reflective = toBinary(CallStreamRequestSchema, create(CallStreamRequestSchema, { callId: BigInt(id), call: { actor, method, args, traceContext: trace } }));
        assert.deepEqual(Buffer.from(direct), Buffer.from(reflective));
        const decoded = decodeStreamRequest(direct);
        const expected = fromBinary(CallStreamRequestSchema, reflective);
        assert.equal(decoded.callId, expected.callId);
        assert.deepEqual(decoded.call, expected.call);
        assert.equal(decoded.cancel, false);
      }),
      { numRuns: RUNS },
    );
  });

  test("a cancel is encoded as toBinary does and decodes as one", () => {
    fc.assert(
      fc.property(callId, (id) => {
        const direct = encodeCancel(id);
        assert.deepEqual(Buffer.from(direct), Buffer.from(toBinary(CallStreamRequestSchema, create(CallStreamRequestSchema, { callId: BigInt(id), cancel: true }))));
        assert.deepEqual(decodeStreamRequest(direct), { callId: BigInt(id), call: undefined, cancel: true });
      }),
      { numRuns: RUNS },
    );
  });

  test("a CallStreamResponse of any outcome round-trips through either codec into the other", () => {
    fc.assert(
      fc.property(response, (message) => {
        const direct = encodeStreamResponse(message);
        assert.deepEqual(Buffer.from(direct), Buffer.from(toBinary(CallStreamResponseSchema, message)));
        const decoded = decodeStreamResponse(direct);
        assert.equal(decoded.callId, Number(message.callId));
        assert.deepEqual(decoded.outcome, fromBinary(CallStreamResponseSchema, direct).outcome);
      }),
      { numRuns: RUNS },
    );
  });

  test("fields the direct path does not know are skipped on requests and sent to the reflective codec on responses", () => {
    const unknown = new BinaryWriter().tag(9, WireType.LengthDelimited).string("from a newer peer").finish();
    const request = encodeStreamRequest(7, encodeCallHeader("a", "m"), new Uint8Array([1, 2]), {});
    const decoded = decodeStreamRequest(Buffer.concat([request, unknown]));
    assert.equal(decoded.callId, 7n);
    assert.deepEqual([decoded.call?.actor, decoded.call?.method, [...(decoded.call?.args ?? [])]], ["a", "m", [1, 2]]);
    const answer = encodeStreamResponse(create(CallStreamResponseSchema, { callId: 7n, outcome: { case: "response", value: { result: { case: "value", value: new Uint8Array([3]) } } } }));
    const withUnknown = decodeStreamResponse(Buffer.concat([answer, unknown]));
    assert.equal(withUnknown.callId, 7);
    assert.equal(withUnknown.outcome.case, "response");
    assert.throws(() => decodeStreamRequest(new Uint8Array([0x12, 0x05, 0x0a])), "a truncated request is an error");
  });
});
