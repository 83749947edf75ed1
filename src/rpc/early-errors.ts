// connect-es answers a request whose binary protobuf does not decode with
// `internal` ("parse binary: …"), as if the server were at fault, while JSON
// that does not parse gets `invalid_argument`; and a request above the size
// limit names connect's `readMaxBytes`, not our option. Both happen before
// any interceptor runs, so this wraps the router's handlers and rewrites
// exactly those answers, in each protocol's own error form.
import type { ConnectRouter } from "@connectrpc/connect";
import { encodeEnvelope, type UniversalHandler, type UniversalServerRequest, type UniversalServerResponse } from "@connectrpc/connect/protocol";

/** connect-es's prefix for a message that fails to decode from binary. */
const PARSE_BINARY = "parse binary: ";
const CONNECT_END_STREAM = 0b10;
const GRPC_WEB_TRAILER = 0x80;

/** Makes every handler registered on `router` so far answer undecodable binary input with `invalid_argument`, and name maxRequestBytes. */
export function improveEarlyErrors(router: ConnectRouter): void {
  const handlers = router.handlers;
  for (let i = 0; i < handlers.length; i++) handlers[i] = wrap(handlers[i]!);
}

function wrap(handler: UniversalHandler): UniversalHandler {
  const typeName = handler.method.input.typeName;
  const wrapped = async (req: UniversalServerRequest): Promise<UniversalServerResponse> => rewrite(await handler(req), typeName);
  return Object.assign(wrapped, {
    protocolNames: handler.protocolNames,
    service: handler.service,
    method: handler.method,
    requestPath: handler.requestPath,
    allowedMethods: handler.allowedMethods,
    supportedContentType: handler.supportedContentType,
  });
}

/** The better code and message for an error connect raised before the handler, or undefined to keep it. */
function improve(code: unknown, message: unknown, typeName: string): { code: "invalid_argument" | "resource_exhausted"; message: string } | undefined {
  if (typeof message !== "string") return undefined;
  if (code === "internal" && message.startsWith(PARSE_BINARY)) {
    return { code: "invalid_argument", message: `the request is not a valid binary ${typeName}: ${message.slice(PARSE_BINARY.length)}` };
  }
  if (code === "resource_exhausted" && message.includes("readMaxBytes") && !message.includes("maxRequestBytes")) {
    return { code: "resource_exhausted", message: `the request is too large: ${message.replace("configured readMaxBytes", "the server's maxRequestBytes")}` };
  }
  return undefined;
}

async function rewrite(res: UniversalServerResponse, typeName: string): Promise<UniversalServerResponse> {
  const contentType = res.header?.get("content-type") ?? "";
  if (!res.body) return res;
  if (res.status >= 400 && contentType.startsWith("application/json")) return rewriteConnectUnary(res, res.body, typeName);
  if (contentType.startsWith("application/connect+") || contentType.startsWith("application/grpc-web")) {
    return { ...res, body: rewriteEndOfStream(res.body, typeName) };
  }
  if (contentType.startsWith("application/grpc") && res.trailer) return { ...res, body: rewriteGrpcTrailer(res.body, res.trailer, typeName) };
  return res;
}

/** Connect unary: the error is the JSON body of a 500. */
async function rewriteConnectUnary(res: UniversalServerResponse, body: AsyncIterable<Uint8Array>, typeName: string): Promise<UniversalServerResponse> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of body) chunks.push(chunk);
  const bytes = Buffer.concat(chunks);
  const error = parseJson(bytes) as { code?: unknown; message?: unknown } | undefined;
  const better = improve(error?.code, error?.message, typeName);
  if (!better) return { ...res, body: oneChunk(bytes) };
  const rewritten = Buffer.from(JSON.stringify({ ...error, ...better }));
  const header = new Headers(res.header);
  header.set("content-length", String(rewritten.byteLength));
  return { ...res, status: better.code === "invalid_argument" ? 400 : res.status, header, body: oneChunk(rewritten) };
}

/** Connect streams and gRPC-web: the error is in the last envelope. */
async function* rewriteEndOfStream(body: AsyncIterable<Uint8Array>, typeName: string): AsyncIterable<Uint8Array> {
  for await (const chunk of body) {
    const flags = chunk[0] ?? 0;
    if (chunk.byteLength < 5 || (flags & (CONNECT_END_STREAM | GRPC_WEB_TRAILER)) === 0) {
      yield chunk;
      continue;
    }
    const data = chunk.subarray(5);
    if (flags & GRPC_WEB_TRAILER) {
      const text = Buffer.from(data).toString("utf8");
      yield /grpc-status: ?13\r\n/.test(text) && text.includes("grpc-message: parse%20binary")
        ? encodeEnvelope(flags, Buffer.from(text.replace(/grpc-status: ?13/, "grpc-status: 3")))
        : chunk;
      continue;
    }
    const end = parseJson(data) as { error?: { code?: unknown; message?: unknown } } | undefined;
    const error = end?.error;
    const better = improve(error?.code, error?.message, typeName);
    yield better ? encodeEnvelope(flags, Buffer.from(JSON.stringify({ ...end, error: { ...error, ...better } }))) : chunk;
  }
}

/** gRPC: the status is in the trailers, set once the body has been sent. */
async function* rewriteGrpcTrailer(body: AsyncIterable<Uint8Array>, trailer: Headers, typeName: string): AsyncIterable<Uint8Array> {
  yield* body;
  const better = improve(trailer.get("grpc-status") === "13" ? "internal" : undefined, decodeURIComponent(trailer.get("grpc-message") ?? ""), typeName);
  if (better) {
    trailer.set("grpc-status", "3");
    trailer.set("grpc-message", encodeURIComponent(better.message));
  }
}

function parseJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(Buffer.from(bytes).toString("utf8")) as unknown;
  } catch {
    return undefined;
  }
}

async function* oneChunk(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  yield bytes;
}
