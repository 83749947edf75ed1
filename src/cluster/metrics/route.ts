// The `/metrics` path of a server: its registry in the Prometheus text format,
// behind the server's bearer token like its RPCs.
import type { Registry } from "prom-client";
import type { HttpRoute } from "../../rpc/transport.js";

/** The path Prometheus scrapes. */
export const METRICS_PATH = "/metrics";

/** Serves `registry` at `/metrics`; a server with a token asks for it (a scrape config sends it as a bearer token). */
export function metricsRoute(registry: Registry): HttpRoute {
  return {
    path: METRICS_PATH,
    auth: true,
    async handle(req, res) {
      const text = await registry.metrics();
      res.writeHead(200, { "content-type": registry.contentType, "cache-control": "no-store" });
      if (req.method === "HEAD") res.end();
      else res.end(text);
    },
  };
}
