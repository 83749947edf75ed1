// The server side of the actor data plane: one long-lived CallStream per
// caller connection. Calls arrive in Connect envelopes, run in arrival order,
// and the answers ready at the same moment leave in one write. This is the
// path ActorPool takes; a unary Call (buf curl, other languages) reaches the
// same dispatch through connect-node.
import type * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { FlusterError } from "../core/errors.js";
import { EnvelopeReader, STREAM_PROTO_CONTENT_TYPE, frameEndStream, frameEnvelopes } from "../rpc/envelopes.js";
import { toConnectError } from "../rpc/errors.js";
import type { CallRequest, CallResponse, CallStreamResponse } from "../rpc/gen/fluster/actor/v1/actor_pb.js";
import { decodeStreamRequest, encodeStreamResponse } from "./wire.js";

/** The response header that tells a caller the largest call the server accepts. */
export const MAX_REQUEST_BYTES_HEADER = "fluster-max-request-bytes";

/** The path of ActorService.CallStream. */
export const CALL_STREAM_PATH = "/fluster.actor.v1.ActorService/CallStream";

/**
 * Runs one call: its answer at once (a synchronous method with a free slot)
 * or later. Throws (or rejects with) a FlusterError when it will not run the
 * call, e.g. no such actor here, or the server is stopping. A call that waits
 * for its actor's slot hands `queued` the function that withdraws it.
 */
export type CallDispatch = (call: CallRequest, queued: (withdraw: () => void) => void) => CallResponse | Promise<CallResponse>;

/** HTTP/2 flow-control window of a connection carrying a CallStream, and of its streams, on both sides: a 1 MiB call or answer travels without waiting for window updates (Node's default is 64 KiB). */
export const STREAM_WINDOW_BYTES = 8 * 1024 * 1024;
/** Sessions whose windows are widened already. */
const widened = new WeakSet<http2.Http2Session>();

/** Widens the windows of the session a CallStream opened on (Node's defaults are 64 KiB), once per session. */
export function widenFlowControl(session: http2.Http2Session | undefined): void {
  if (!session || widened.has(session) || session.destroyed) return;
  widened.add(session);
  session.setLocalWindowSize(STREAM_WINDOW_BYTES);
  session.settings({ initialWindowSize: STREAM_WINDOW_BYTES });
}

/** One CallStream being served. */
export class CallStreamHandler {
  private readonly reader: EnvelopeReader;
  /** Encoded answers waiting for the next write. */
  private queue: Uint8Array[] = [];
  private flushScheduled = false;
  /** Calls dispatched and not yet answered. */
  private running = 0;
  private inputEnded = false;
  private ended = false;
  private finished = false;
  private readonly flush = () => this.writeQueued();
  /** Calls waiting for their actor's slot, by call id: a cancel withdraws one. */
  private readonly waiting = new Map<bigint, () => void>();

  /**
   * @param onEnd called once when the stream is over (ended by either side,
   * or failed): the server stops tracking it.
   */
  constructor(
    req: http2.Http2ServerRequest,
    private readonly res: http2.Http2ServerResponse,
    private readonly dispatch: CallDispatch,
    maxRequestBytes: number,
    private readonly onEnd: (handler: CallStreamHandler) => void,
  ) {
    this.reader = new EnvelopeReader(maxRequestBytes);
    // Headers go out at once (writeHead sends them on HTTP/2): the caller learns the limit before sending its first call.
    res.writeHead(200, { "content-type": STREAM_PROTO_CONTENT_TYPE, [MAX_REQUEST_BYTES_HEADER]: String(maxRequestBytes) });
    req.on("data", (chunk: Buffer) => this.onData(chunk));
    req.on("end", () => {
      this.inputEnded = true;
      this.endIfDone();
    });
    // A caller that went away: answers still running have nowhere to go.
    res.on("close", () => this.finish());
    req.on("error", () => this.finish());
  }

  /** Ends the stream once its running calls have answered (the server is stopping; new calls are refused meanwhile). */
  end(): void {
    this.inputEnded = true;
    this.endIfDone();
  }

  private onData(chunk: Buffer): void {
    if (this.ended) return;
    let envelopes;
    try {
      envelopes = this.reader.read(chunk);
    } catch (err) {
      return this.fail(err);
    }
    for (const envelope of envelopes) {
      if (envelope.endStream) return this.fail(new ConnectError("a caller may not send an end-stream message", Code.InvalidArgument));
      let request;
      try {
        request = decodeStreamRequest(envelope.data);
      } catch (err) {
        return this.fail(new ConnectError(`malformed CallStreamRequest: ${(err as Error).message}`, Code.InvalidArgument));
      }
      if (request.cancel) this.waiting.get(request.callId)?.();
      else this.run(request.callId, request.call);
    }
  }

  private run(callId: bigint, call: CallRequest | undefined): void {
    this.running += 1;
    let outcome: CallResponse | Promise<CallResponse>;
    try {
      if (!call) throw new FlusterError("a CallStreamRequest needs its call", "invalid_argument");
      outcome = this.dispatch(call, (withdraw) => this.waiting.set(callId, withdraw));
    } catch (err) {
      return this.refuse(callId, err);
    }
    if (outcome instanceof Promise) {
      outcome.then(
        (response) => this.answer(callId, response),
        (err: unknown) => this.refuse(callId, err),
      );
    } else {
      this.answer(callId, outcome);
    }
  }

  private answer(callId: bigint, response: CallResponse): void {
    this.send({ $typeName: "fluster.actor.v1.CallStreamResponse", callId, outcome: { case: "response", value: response } });
  }

  /** The call did not run: the caller gets the code a unary Call would have failed with. */
  private refuse(callId: bigint, err: unknown): void {
    const error = toConnectError(err);
    this.send({
      $typeName: "fluster.actor.v1.CallStreamResponse",
      callId,
      outcome: { case: "refusal", value: { $typeName: "fluster.actor.v1.CallRefusal", code: codeToString(error.code), message: error.rawMessage } },
    });
  }

  private send(message: CallStreamResponse): void {
    this.running -= 1;
    if (this.waiting.size > 0) this.waiting.delete(message.callId);
    if (this.ended) return;
    this.queue.push(encodeStreamResponse(message));
    // Answers that are ready in the same turn (a burst of synchronous calls) leave in one write.
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      process.nextTick(this.flush);
    }
  }

  private writeQueued(): void {
    this.flushScheduled = false;
    if (this.queue.length > 0 && !this.ended) {
      const frames = frameEnvelopes(this.queue);
      this.queue = [];
      this.res.write(frames);
    }
    this.endIfDone();
  }

  private endIfDone(): void {
    if (!this.inputEnded || this.running > 0 || this.flushScheduled || this.ended) return;
    this.ended = true;
    this.res.end(frameEndStream());
    this.finish();
  }

  /** Ends the stream with `err` (a malformed or oversized message): calls not yet answered are lost to this caller. */
  private fail(err: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.queue = [];
    this.res.end(frameEndStream(toConnectError(err)));
    this.finish();
  }

  private finish(): void {
    this.ended = true;
    if (this.finished) return;
    this.finished = true;
    this.onEnd(this);
  }
}
