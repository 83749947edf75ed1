#!/usr/bin/env node
// The `fluster` command: runs the built CLI (dist/) with plain node, no loader.
// In a checkout, `npm install` builds dist/ (the prepare script) and `npm test`
// rebuilds it when src/ changed; `npm run build` does it by hand.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const main = new URL("../dist/cli/main.js", import.meta.url);
if (!existsSync(main)) {
  const root = fileURLToPath(new URL("..", import.meta.url));
  process.stderr.write(`fluster: the built command line (dist/) is missing; run \`npm run build\` in ${root}\n`);
  process.exit(1);
}
await import(main.href);
