// The client side of bench/actor-scale.bench.ts's three targets, shared by
// the benchmark process and its n:n client processes (scale-client.ts). Each
// target makes the same three kinds of call against the endpoints it is given
// (bench/servers/scale-server.ts serves them): a small call, round-robin; a
// call carrying a large argument that comes back; and one call to every
// endpoint at once. The baselines send the very bytes an actor call puts in
// its request body (a CallRequest with MessagePack-encoded arguments),
// encoded once; the actor call encodes its arguments and decodes its result on
// every call, as users write it.
import { create, toBinary } from "@bufbuild/protobuf";
import * as http2 from "node:http2";
import { FixedResolver } from "../../src/actor/resolver.js";
import { decodeValue, encodeValue } from "../../src/rpc/codec.js";
import { ActorService, CallRequestSchema, type CallResponse } from "../../src/rpc/gen/fluster/actor/v1/actor_pb.js";
import { createRpcChannel } from "../../src/rpc/transport.js";

/** The actor every scale-server endpoint hosts under the name "bench". */
export interface BenchActor {
  add(a: number, b: number): number;
  /** Answers with its argument, so a large argument crosses the wire both ways. */
  echo(bytes: Uint8Array): Uint8Array;
  ping(): string;
}

export type TargetKey = "http2" | "connect" | "actor";

/** Every target, in the order tables list them. */
export const TARGETS: readonly { key: TargetKey; label: string }[] = [
  { key: "http2", label: "raw node:http2 echo" },
  { key: "connect", label: "raw Connect unary echo" },
  { key: "actor", label: "fluster actor call" },
];

/** One target's client over a fixed list of endpoints. */
export interface TargetClient {
  /** `add(1, 2)` (or its echo) on the next endpoint, round-robin. */
  small(): Promise<unknown>;
  /** `echo(payload)` on the next endpoint, round-robin: the payload travels both ways. */
  big(): Promise<unknown>;
  /** `ping()` on every endpoint at once; resolves, once all have settled, to how many answered. */
  broadcast(): Promise<number>;
  /** Makes one call of each kind and throws, naming the target, if an answer is wrong. */
  check(): Promise<void>;
  close(): void;
}

const smallArgs = encodeValue([1, 2]);
const pingArgs = encodeValue([]);
const requestBody = (method: string, args: Uint8Array) => toBinary(CallRequestSchema, create(CallRequestSchema, { actor: "bench", method, args }));

/** Round-robin over `items`. */
function roundRobin<T>(items: readonly T[]): () => T {
  if (items.length === 0) throw new Error("a target needs at least one endpoint");
  let next = 0;
  return () => {
    const item = items[next] as T;
    next = (next + 1) % items.length;
    return item;
  };
}

function sameBytes(a: unknown, b: Uint8Array): boolean {
  return a instanceof Uint8Array && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}

function fulfilled(results: readonly { status: string }[]): number {
  let count = 0;
  for (const result of results) if (result.status === "fulfilled") count++;
  return count;
}

function fail(key: TargetKey, what: string): never {
  throw new Error(`${key} target answered ${what} wrongly`);
}

/** A client of target `key` over `urls`; `payload` is what `big()` sends. */
export function createTargetClient(key: TargetKey, urls: readonly string[], payload: Uint8Array): TargetClient {
  switch (key) {
    case "http2":
      return http2Client(urls, payload);
    case "connect":
      return connectClient(urls, payload);
    case "actor":
      return actorClient(urls, payload);
  }
}

/** The headers a Connect client sends with a unary ActorService.Call. */
const UNARY_CALL_HEADERS = { ":method": "POST", ":path": "/fluster.actor.v1.ActorService/Call", "content-type": "application/proto", "connect-protocol-version": "1" };

/** The raw HTTP/2 baseline's request: a unary Call's path, headers and body on `session`; resolves with the answer's body. */
export function rawUnaryPost(session: http2.ClientHttp2Session, body: Uint8Array): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const stream = session.request(UNARY_CALL_HEADERS);
    const chunks: Buffer[] = [];
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("end", () => resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks)));
    stream.on("error", reject);
    stream.end(body);
  });
}

function http2Client(urls: readonly string[], payload: Uint8Array): TargetClient {
  // The path, headers and protobuf body a Connect client sends, over one session per endpoint.
  const sessions = urls.map((url) => http2.connect(url));
  const next = roundRobin(sessions);
  const post = rawUnaryPost;
  const small = requestBody("add", smallArgs);
  const big = requestBody("echo", encodeValue([payload]));
  const ping = requestBody("ping", pingArgs);
  const client: TargetClient = {
    small: () => post(next(), small),
    big: () => post(next(), big),
    broadcast: async () => fulfilled(await Promise.allSettled(sessions.map((session) => post(session, ping)))),
    async check() {
      if (!sameBytes(await client.small(), small)) fail("http2", "a small call");
      if (!sameBytes(await client.big(), big)) fail("http2", "a big call");
      const all = await Promise.allSettled(sessions.map((session) => post(session, ping)));
      if (all.length !== urls.length || !all.every((r) => r.status === "fulfilled" && sameBytes(r.value, ping))) fail("http2", "a broadcast");
    },
    close: () => sessions.forEach((session) => session.close()),
  };
  return client;
}

function connectClient(urls: readonly string[], payload: Uint8Array): TargetClient {
  const channels = urls.map((url) => createRpcChannel(url));
  const clients = channels.map((channel) => channel.client(ActorService));
  const next = roundRobin(clients);
  const bigArgs = encodeValue([payload]);
  const value = (answer: unknown) => {
    const result = (answer as CallResponse).result;
    return result.case === "value" ? result.value : undefined;
  };
  const pingAll = () => Promise.allSettled(clients.map((c) => c.call({ actor: "bench", method: "ping", args: pingArgs })));
  const client: TargetClient = {
    small: () => next().call({ actor: "bench", method: "add", args: smallArgs }),
    big: () => next().call({ actor: "bench", method: "echo", args: bigArgs }),
    broadcast: async () => fulfilled(await pingAll()),
    async check() {
      const sum = value(await client.small());
      if (!sum || JSON.stringify(decodeValue(sum)) !== "[1,2]") fail("connect", "a small call");
      if (!sameBytes(value(await client.big()), bigArgs)) fail("connect", "a big call");
      const all = await pingAll();
      if (all.length !== urls.length || !all.every((r) => r.status === "fulfilled" && sameBytes(value(r.value), pingArgs))) fail("connect", "a broadcast");
    },
    close: () => channels.forEach((channel) => channel.close()),
  };
  return client;
}

function actorClient(urls: readonly string[], payload: Uint8Array): TargetClient {
  // One pool over every endpoint of the name: calls go round-robin, a broadcast goes to all.
  const pool = new FixedResolver({ bench: urls }).lookup<BenchActor>("bench");
  const client: TargetClient = {
    small: () => pool.call().add(1, 2),
    big: () => pool.call().echo(payload),
    broadcast: async () => fulfilled(await pool.broadcast().ping()),
    async check() {
      if ((await client.small()) !== 3) fail("actor", "a small call");
      if (!sameBytes(await client.big(), payload)) fail("actor", "a big call");
      const all = await pool.broadcast().ping();
      if (all.length !== urls.length || !all.every((r) => r.status === "fulfilled" && r.value === "pong")) fail("actor", "a broadcast");
    },
    // A pool has no close of its own: its sessions belong to the process, which exits after the run.
    close: () => undefined,
  };
  return client;
}
