// Server process of bench/actor-scale.bench.ts: hosts `count` endpoints of
// each target on 127.0.0.1, each on its own port: raw node:http2 echoes,
// raw Connect echoes, and ActorServers each hosting one BenchActor under the
// name "bench". An ActorServer hosts one actor per name, so `count` servers
// are how one process holds `count` endpoints of the same name (what a
// broadcast reaches), as `count` Ray actors would be `count` endpoints.
//   node --import tsx bench/servers/scale-server.ts <count>
import { ActorServer } from "../../src/actor/server.js";
import { startConnectEcho, startHttp2Echo, type EchoServer } from "./echo.js";
import { announce } from "./ready.js";
import type { BenchActor } from "./scale-targets.js";

class Actor implements BenchActor {
  add(a: number, b: number): number {
    return a + b;
  }
  echo(bytes: Uint8Array): Uint8Array {
    return bytes;
  }
  ping(): string {
    return "pong";
  }
}

const count = Number(process.argv[2] ?? "1");
if (!Number.isSafeInteger(count) || count < 1) throw new Error(`scale-server.ts: count must be a whole number ≥ 1, got ${process.argv[2]}`);

const http2Echoes: EchoServer[] = [];
const connectEchoes: EchoServer[] = [];
const actorServers: ActorServer[] = [];
for (let i = 0; i < count; i++) {
  http2Echoes.push(await startHttp2Echo());
  connectEchoes.push(await startConnectEcho());
  const server = new ActorServer(undefined);
  await server.register("bench", new Actor());
  actorServers.push(server);
}
const close = async () => {
  await Promise.all([...http2Echoes, ...connectEchoes].map((e) => e.close()).concat(actorServers.map((s) => s.shutdown())));
};
announce(actorServers[0]?.address ?? "", close, {
  http2: http2Echoes.map((e) => e.url),
  connect: connectEchoes.map((e) => e.url),
  actor: actorServers.map((s) => s.address),
});
