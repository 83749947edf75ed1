// Connect's streaming wire format, for callers that speak it on a raw HTTP/2
// stream instead of through connect-node (the actor data plane: one
// long-lived stream per endpoint, bench/actor.bench.ts). Each message is an
// envelope: one flags byte, a 4-byte big-endian length, the payload; the
// stream ends with an end-stream envelope whose payload is JSON (connect-es
// encodes and parses that one, so its error format is Connect's own).
import { Code, ConnectError } from "@connectrpc/connect";
import { endStreamFlag, endStreamFromJson, endStreamToJson } from "@connectrpc/connect/protocol-connect";

/** The content type of a Connect stream of binary protobuf messages. */
export const STREAM_PROTO_CONTENT_TYPE = "application/connect+proto";

/** Bytes before each envelope's payload. */
const HEADER_BYTES = 5;
/** The envelope flag of a compressed payload. */
const COMPRESSED_FLAG = 1;

/** One message read off a stream. */
export interface Envelope {
  /** Whether this is the end-stream envelope (its payload is JSON). */
  endStream: boolean;
  data: Uint8Array;
}

/**
 * Frames `payloads` as one buffer of envelopes, so that messages sent
 * together reach the socket in one write (and usually one HTTP/2 DATA frame).
 */
export function frameEnvelopes(payloads: readonly Uint8Array[]): Buffer {
  let size = 0;
  for (const p of payloads) size += HEADER_BYTES + p.length;
  const out = Buffer.allocUnsafe(size);
  let offset = 0;
  for (const p of payloads) {
    out[offset] = 0;
    out.writeUInt32BE(p.length, offset + 1);
    out.set(p, offset + HEADER_BYTES);
    offset += HEADER_BYTES + p.length;
  }
  return out;
}

/** The end-stream envelope: success, or `error` for the peer to raise. */
export function frameEndStream(error?: ConnectError): Buffer {
  const json = Buffer.from(JSON.stringify(endStreamToJson(new Headers(), error, undefined)));
  const out = Buffer.allocUnsafe(HEADER_BYTES + json.length);
  out[0] = endStreamFlag;
  out.writeUInt32BE(json.length, 1);
  json.copy(out, HEADER_BYTES);
  return out;
}

/** The error an end-stream envelope carries, if any (a malformed one is an error too). */
export function endStreamError(data: Uint8Array): ConnectError | undefined {
  return endStreamFromJson(data).error;
}

/**
 * Reads envelopes out of a byte stream whose chunks may split them anywhere.
 * A payload that lies whole inside one chunk is a view of it, not a copy.
 */
export class EnvelopeReader {
  /** Bytes of a split envelope seen so far. */
  private partial: Buffer[] = [];
  private partialBytes = 0;

  /** @param maxMessageBytes a larger envelope fails the stream with `resource_exhausted`, before its payload is buffered. */
  constructor(private readonly maxMessageBytes: number) {}

  /** Whether bytes of an unfinished envelope are waiting for the rest. */
  get pending(): boolean {
    return this.partialBytes > 0;
  }

  /** The envelopes completed by `chunk`, in order. Throws a ConnectError for an oversized one. */
  read(chunk: Buffer): Envelope[] {
    let data = chunk;
    if (this.partialBytes > 0) {
      this.partial.push(chunk);
      this.partialBytes += chunk.length;
      // Join only once the split envelope is whole (or its header is, to learn its size).
      const first = this.partial[0] as Buffer;
      const needed = this.partialBytes >= HEADER_BYTES ? HEADER_BYTES + this.lengthAt(Buffer.concat(this.partial, Math.min(this.partialBytes, HEADER_BYTES)), 0) : HEADER_BYTES;
      if (this.partialBytes < needed) return [];
      data = this.partial.length === 1 ? first : Buffer.concat(this.partial, this.partialBytes);
      this.partial = [];
      this.partialBytes = 0;
    }
    const out: Envelope[] = [];
    let offset = 0;
    while (data.length - offset >= HEADER_BYTES) {
      const length = this.lengthAt(data, offset);
      const end = offset + HEADER_BYTES + length;
      if (end > data.length) break;
      // No compression is ever negotiated on these streams.
      if (((data[offset] as number) & COMPRESSED_FLAG) !== 0) throw new ConnectError("compressed messages are not supported on this stream", Code.InvalidArgument);
      out.push({ endStream: ((data[offset] as number) & endStreamFlag) !== 0, data: data.subarray(offset + HEADER_BYTES, end) });
      offset = end;
    }
    if (offset < data.length) {
      // A copy: the rest of this chunk must not pin a large buffer, and the next read joins it anyway.
      const rest = Buffer.from(data.subarray(offset));
      this.partial = [rest];
      this.partialBytes = rest.length;
    }
    return out;
  }

  private lengthAt(data: Buffer, offset: number): number {
    const length = data.readUInt32BE(offset + 1);
    if (length > this.maxMessageBytes) {
      throw new ConnectError(`message of ${length} bytes is larger than the limit of ${this.maxMessageBytes} bytes`, Code.ResourceExhausted);
    }
    return length;
  }
}
