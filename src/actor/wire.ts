// The two messages every actor call puts on a CallStream, encoded and decoded
// with protobuf-es's own wire reader and writer instead of its reflective
// toBinary/fromBinary: those were half of an actor server's CPU per call
// (bench/RESULTS.md, issue 16). The bytes are the same as toBinary's (fields
// in number order, defaults left out), and anything but the common shape
// (a refusal, a thrown error, an unknown field) goes through the reflective
// codec, so the wire format stays the generated schema's;
// test/actor/wire.test.ts checks both against it.
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import {
  CallStreamResponseSchema,
  type CallRequest,
  type CallResponse,
  type CallStreamResponse,
} from "../rpc/gen/fluster/actor/v1/actor_pb.js";

/** Field numbers of fluster.actor.v1 messages (actor.proto). */
const CALL_ID = 1;
const CALL = 2;
const ACTOR = 1;
const METHOD = 2;
const ARGS = 3;
const TRACE_CONTEXT = 4;
const MAP_KEY = 1;
const MAP_VALUE = 2;
const CANCEL = 3;
const RESPONSE = 2;
const RESULT_VALUE = 1;

/** The value of an absent bytes field (never written to: decoded fields get their own arrays). */
const NO_BYTES = new Uint8Array(0);

/**
 * The fixed part of a call to `actor.method` (its CallRequest's actor and
 * method fields), encoded once and reused for every call of that method.
 */
export function encodeCallHeader(actor: string, method: string): Uint8Array {
  const writer = new BinaryWriter();
  if (actor !== "") writer.tag(ACTOR, WireType.LengthDelimited).string(actor);
  if (method !== "") writer.tag(METHOD, WireType.LengthDelimited).string(method);
  return writer.finish();
}

/** A CallStreamRequest: call `callId` of the method whose {@link encodeCallHeader} is `header`, with encoded `args`. */
export function encodeStreamRequest(callId: number, header: Uint8Array, args: Uint8Array, traceContext: Readonly<Record<string, string>>): Uint8Array {
  const writer = new BinaryWriter();
  if (callId !== 0) writer.tag(CALL_ID, WireType.Varint).uint64(callId);
  writer.tag(CALL, WireType.LengthDelimited).fork().raw(header);
  if (args.length > 0) writer.tag(ARGS, WireType.LengthDelimited).bytes(args);
  for (const key in traceContext) {
    writer
      .tag(TRACE_CONTEXT, WireType.LengthDelimited)
      .fork()
      .tag(MAP_KEY, WireType.LengthDelimited)
      .string(key)
      .tag(MAP_VALUE, WireType.LengthDelimited)
      .string(traceContext[key] as string)
      .join();
  }
  return writer.join().finish();
}

/** A CallStreamRequest that withdraws call `callId` (its caller gave up on it). */
export function encodeCancel(callId: number): Uint8Array {
  const writer = new BinaryWriter();
  if (callId !== 0) writer.tag(CALL_ID, WireType.Varint).uint64(callId);
  return writer.tag(CANCEL, WireType.Varint).bool(true).finish();
}

/** A decoded CallStreamRequest; `call` is absent when the request had none (a cancel has none). */
export interface StreamRequest {
  callId: bigint;
  call: CallRequest | undefined;
  cancel: boolean;
}

/** Decodes a CallStreamRequest (throws on malformed bytes, as fromBinary does). */
export function decodeStreamRequest(bytes: Uint8Array): StreamRequest {
  const reader = new BinaryReader(bytes);
  let callId = 0n;
  let call: CallRequest | undefined;
  let cancel = false;
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === CALL_ID && wireType === WireType.Varint) callId = BigInt(reader.uint64());
    else if (field === CALL && wireType === WireType.LengthDelimited) call = readCallRequest(reader, reader.uint32(), call);
    else if (field === CANCEL && wireType === WireType.Varint) cancel = reader.bool();
    else reader.skip(wireType, field);
  }
  return { callId, call, cancel };
}

/** Reads a CallRequest of `length` bytes, merged into `into` as protobuf merges a repeated message field. */
function readCallRequest(reader: BinaryReader, length: number, into: CallRequest | undefined): CallRequest {
  const end = reader.pos + length;
  // A plain message object: create() walks the schema, which showed in profiles at one call per request.
  const call: CallRequest = into ?? { $typeName: "fluster.actor.v1.CallRequest", actor: "", method: "", args: NO_BYTES, traceContext: {} };
  while (reader.pos < end) {
    const [field, wireType] = reader.tag();
    if (field === ACTOR && wireType === WireType.LengthDelimited) call.actor = reader.string();
    else if (field === METHOD && wireType === WireType.LengthDelimited) call.method = reader.string();
    else if (field === ARGS && wireType === WireType.LengthDelimited) call.args = reader.bytes();
    else if (field === TRACE_CONTEXT && wireType === WireType.LengthDelimited) readMapEntry(reader, reader.uint32(), call.traceContext);
    else reader.skip(wireType, field);
  }
  if (reader.pos !== end) throw new Error("premature end of a CallRequest");
  return call;
}

function readMapEntry(reader: BinaryReader, length: number, map: Record<string, string>): void {
  const end = reader.pos + length;
  let key = "";
  let value = "";
  while (reader.pos < end) {
    const [field, wireType] = reader.tag();
    if (field === MAP_KEY && wireType === WireType.LengthDelimited) key = reader.string();
    else if (field === MAP_VALUE && wireType === WireType.LengthDelimited) value = reader.string();
    else reader.skip(wireType, field);
  }
  map[key] = value;
}

/** Encodes a CallStreamResponse; a call's returned value takes the direct path, anything else the reflective one. */
export function encodeStreamResponse(message: CallStreamResponse): Uint8Array {
  const outcome = message.outcome;
  if (outcome.case !== "response" || outcome.value.result.case !== "value") return toBinary(CallStreamResponseSchema, message);
  const writer = new BinaryWriter();
  if (message.callId !== 0n) writer.tag(CALL_ID, WireType.Varint).uint64(message.callId);
  writer.tag(RESPONSE, WireType.LengthDelimited).fork();
  // A oneof member is written even when empty: its presence is what says which case is set.
  writer.tag(RESULT_VALUE, WireType.LengthDelimited).bytes(outcome.value.result.value);
  return writer.join().finish();
}

/** A decoded CallStreamResponse, its call id as the number the caller gave it. */
export interface StreamResponse {
  callId: number;
  outcome: CallStreamResponse["outcome"];
}

/**
 * Decodes a CallStreamResponse: one that carries a returned value (call id,
 * then a CallResponse of only its value) directly, any other through the
 * reflective codec.
 */
export function decodeStreamResponse(bytes: Uint8Array): StreamResponse {
  const reader = new BinaryReader(bytes);
  let callId = 0;
  let value: Uint8Array | undefined;
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === CALL_ID && wireType === WireType.Varint) {
      callId = Number(reader.uint64());
    } else if (field === RESPONSE && wireType === WireType.LengthDelimited && value === undefined) {
      const end = reader.uint32() + reader.pos;
      const [inner, innerType] = reader.tag();
      if (inner !== RESULT_VALUE || innerType !== WireType.LengthDelimited) return reflective(bytes);
      value = reader.bytes();
      if (reader.pos !== end) return reflective(bytes);
    } else {
      return reflective(bytes);
    }
  }
  if (value === undefined) return reflective(bytes);
  const response: CallResponse = { $typeName: "fluster.actor.v1.CallResponse", result: { case: "value", value } };
  return { callId, outcome: { case: "response", value: response } };
}

function reflective(bytes: Uint8Array): StreamResponse {
  const message = fromBinary(CallStreamResponseSchema, bytes);
  return { callId: Number(message.callId), outcome: message.outcome };
}
