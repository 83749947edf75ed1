// Connect's stream envelopes as the actor data plane frames and reads them:
// any split of the bytes into chunks gives back the same messages, an
// oversized or compressed envelope is refused, and the end-stream envelope
// carries an error as connect-es reads it.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { Code, ConnectError } from "@connectrpc/connect";
import { EnvelopeReader, endStreamError, frameEndStream, frameEnvelopes } from "../../src/rpc/envelopes.js";

describe("stream envelopes", () => {
  test("messages framed together come back whole, however the bytes are split into chunks", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 12 }), fc.array(fc.nat(), { maxLength: 20 }), (payloads, cuts) => {
        const bytes = frameEnvelopes(payloads);
        const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
        const reader = new EnvelopeReader(1024);
        const read: Uint8Array[] = [];
        let from = 0;
        for (const to of [...points, bytes.length]) {
          for (const envelope of reader.read(bytes.subarray(from, to))) {
            assert.equal(envelope.endStream, false);
            read.push(Buffer.from(envelope.data));
          }
          from = to;
        }
        assert.deepEqual(read.map((r) => [...r]), payloads.map((p) => [...p]));
        assert.equal(reader.pending, false, "nothing left over");
      }),
      { numRuns: 300 },
    );
  });

  test("an envelope over the limit is refused from its header, before its payload arrives", () => {
    const reader = new EnvelopeReader(16);
    const header = frameEnvelopes([new Uint8Array(17)]).subarray(0, 5);
    assert.throws(() => reader.read(header), (err: unknown) => err instanceof ConnectError && err.code === Code.ResourceExhausted && /17 bytes is larger than the limit of 16/.test(err.message));
  });

  test("a compressed envelope is refused: these streams never negotiate compression", () => {
    const bytes = frameEnvelopes([new Uint8Array([1])]);
    bytes[0] = 1;
    assert.throws(() => new EnvelopeReader(16).read(bytes), /compressed messages are not supported/);
  });

  test("the end-stream envelope carries success or an error as connect-es reads it", () => {
    const [ok] = new EnvelopeReader(1024).read(frameEndStream());
    assert.equal(ok?.endStream, true);
    assert.equal(endStreamError(ok?.data ?? new Uint8Array()), undefined);
    const [failed] = new EnvelopeReader(1024).read(frameEndStream(new ConnectError("no entry", Code.PermissionDenied)));
    const error = endStreamError(failed?.data ?? new Uint8Array());
    assert.equal(error?.code, Code.PermissionDenied);
    assert.equal(error?.rawMessage, "no entry");
  });
});
