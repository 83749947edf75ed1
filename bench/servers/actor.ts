// Actor server for bench/actor.bench.ts: an ActorServer without a cluster
// hosting one adder under "bench" (clients reach it through a FixedResolver).
import { ActorServer } from "../../src/actor/server.js";
import { announce } from "./ready.js";

const server = new ActorServer(undefined);
await server.register("bench", {
  add(a: number, b: number): number {
    return a + b;
  },
});
announce(server.address, () => server.shutdown());
