// A job's FLUSTER_PORT_ACTOR is chosen by its worker and bound later by the
// job: if something took the port meanwhile, the actor server binds another
// one (callers find it by the address it registers), while a port the caller
// chose explicitly still fails loudly.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:net";
import { ActorServer } from "../../src/actor/server.js";
import { FixedResolver } from "../../src/actor/resolver.js";
import { Calculator } from "../fixtures/actor/calculator.js";

async function occupyPort(): Promise<{ server: Server; port: number }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  assert.ok(address && typeof address === "object");
  return { server, port: address.port };
}

const saved = process.env.FLUSTER_PORT_ACTOR;
after(() => {
  if (saved === undefined) delete process.env.FLUSTER_PORT_ACTOR;
  else process.env.FLUSTER_PORT_ACTOR = saved;
});

test("a taken FLUSTER_PORT_ACTOR: the server serves on another port and answers there", async () => {
  const taken = await occupyPort();
  try {
    process.env.FLUSTER_PORT_ACTOR = String(taken.port);
    const server = new ActorServer(undefined, { host: "127.0.0.1" });
    await server.register("calculator", new Calculator());
    await server.serveBackground();
    try {
      assert.notEqual(Number(new URL(server.address).port), taken.port, "bound elsewhere");
      const pool = new FixedResolver({ calculator: server.address }).lookup<Calculator>("calculator");
      assert.equal(await pool.call().add(2, 3), 5);
    } finally {
      await server.shutdown();
    }
  } finally {
    delete process.env.FLUSTER_PORT_ACTOR;
    taken.server.close();
  }
});

test("a taken port the caller chose is an error naming it", async () => {
  const taken = await occupyPort();
  try {
    const server = new ActorServer(undefined, { host: "127.0.0.1", port: taken.port });
    await assert.rejects(server.serveBackground(), /EADDRINUSE/);
  } finally {
    taken.server.close();
  }
});
