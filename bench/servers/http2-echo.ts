// Baseline server for bench/actor.bench.ts: bare node:http2 (h2c) that
// answers each request with its body, unchanged.
import { startHttp2Echo } from "./echo.js";
import { announce } from "./ready.js";

const server = await startHttp2Echo();
announce(server.url, () => server.close());
