// Baseline server for bench/actor.bench.ts: ActorService over Connect/h2c
// whose Call answers with the request's argument bytes, unchanged.
import { startConnectEcho } from "./echo.js";
import { announce } from "./ready.js";

const server = await startConnectEcho();
announce(server.url, () => server.close());
