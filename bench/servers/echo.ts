// The two baseline servers the actor benchmarks measure actors against, as
// functions, so one process can host several of them (bench/servers/scale-server.ts)
// and the one-server scripts (http2-echo.ts, connect-echo.ts) stay thin.
import { create } from "@bufbuild/protobuf";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { ActorService, CallResponseSchema } from "../../src/rpc/gen/fluster/actor/v1/actor_pb.js";
import { startRpcServer } from "../../src/rpc/transport.js";

/** A baseline server: where to reach it and how to close it. */
export interface EchoServer {
  url: string;
  close(): Promise<void>;
}

/** Bare node:http2 (h2c) on 127.0.0.1 that answers each request with its body, unchanged. */
export async function startHttp2Echo(): Promise<EchoServer> {
  const server = http2.createServer();
  server.on("stream", (stream) => {
    const chunks: Buffer[] = [];
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("end", () => {
      stream.respond({ ":status": 200, "content-type": "application/proto" });
      stream.end(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
    });
    stream.on("error", () => stream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** ActorService over Connect/h2c whose Call answers with the request's argument bytes, unchanged. */
export async function startConnectEcho(): Promise<EchoServer> {
  const server = await startRpcServer({
    routes: (router) =>
      router.service(ActorService, {
        call: (req) => create(CallResponseSchema, { result: { case: "value", value: req.args } }),
      }),
  });
  return { url: server.url, close: () => server.shutdown() };
}
