// Serves the dashboard's files (built by scripts/build.mjs into dist/dashboard/
// from src/dashboard/) on the controller's port: `/` is the page, `/assets/…`
// its script and styles. The files hold no data and need no token; the page
// reads everything through the Connect API, which does.
import { createReadStream, existsSync, readFileSync, statSync } from "node:fs";
import { dirname, extname, join, normalize, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { sendText, type HttpRoute } from "../../rpc/transport.js";

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".png": "image/png",
  ".svg": "image/svg+xml",
  ".txt": "text/plain; charset=utf-8",
};

/**
 * The folder of the built dashboard: dist/dashboard/ of the package this
 * module belongs to, whether it runs from dist/ or (in this repository,
 * through tsx) from src/.
 */
export function dashboardDir(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const manifest = join(dir, "package.json");
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, "utf8")) as { name?: string }).name === "fluster") return join(dir, "dist", "dashboard");
    if (dirname(dir) === dir) return join(dirname(fileURLToPath(import.meta.url)), "..", "..", "dashboard");
  }
}

/** The routes of the dashboard served from `dir` (default {@link dashboardDir}). */
export function dashboardRoutes(dir = dashboardDir()): HttpRoute[] {
  const missing = () => `the dashboard is not built (no ${join(dir, "index.html")}): run \`npm run build\` in the fluster package`;
  return [
    {
      path: "/",
      auth: false,
      handle(_req, res) {
        const page = join(dir, "index.html");
        if (!existsSync(page)) return sendText(res, 503, missing());
        res.writeHead(200, { "content-type": CONTENT_TYPES[".html"]!, "cache-control": "no-cache", "x-content-type-options": "nosniff", "x-frame-options": "DENY" });
        res.end(readFileSync(page));
      },
    },
    {
      path: "/assets/",
      auth: false,
      handle(req, res) {
        const path = decodeURIComponent((req.url ?? "/").split("?")[0] ?? "/");
        const file = normalize(join(dir, path));
        // No escaping the folder with `..` or an encoded separator.
        if (!file.startsWith(join(dir, "assets") + sep)) return sendText(res, 404, `not found: ${path}`);
        let size: number;
        try {
          const stat = statSync(file);
          if (!stat.isFile()) return sendText(res, 404, `not found: ${path}`);
          size = stat.size;
        } catch {
          return sendText(res, existsSync(dir) ? 404 : 503, existsSync(dir) ? `not found: ${path}` : missing());
        }
        res.writeHead(200, {
          "content-type": CONTENT_TYPES[extname(file)] ?? "application/octet-stream",
          "content-length": String(size),
          "cache-control": "no-cache",
          "x-content-type-options": "nosniff",
        });
        if (req.method === "HEAD") return void res.end();
        createReadStream(file).pipe(res as NodeJS.WritableStream);
      },
    },
  ];
}
