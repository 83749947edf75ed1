// A job runs in the worker's copy of its workspace, not in the client's
// directory: the client's workspace is deleted after launch, before any
// worker exists, and the function job still imports and reads it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { Entrypoint } from "../../../src/core/entrypoint.js";
import type { RemoteFunction } from "../../../src/core/remote.js";
import { REPO_ROOT } from "../../helpers/index.js";
import { collectLogs, startLocalCluster } from "../../helpers/local-cluster.js";

/** A workspace of its own (a package.json, a module with a remote function, a data file it reads, a nested module). */
function writeWorkspace(root: string): void {
  // Fluster itself lies outside this workspace, so the job imports it by its absolute URL.
  const remoteUrl = pathToFileURL(join(REPO_ROOT, "src", "core", "remote.ts")).href;
  writeFileSync(join(root, "package.json"), JSON.stringify({ name: "bundle-fixture", type: "module" }));
  mkdirSync(join(root, "lib"));
  writeFileSync(join(root, "lib", "greeting.ts"), `export const greeting = "hello from the bundle";\n`);
  writeFileSync(join(root, "data.txt"), "data travelled with the bundle");
  writeFileSync(
    join(root, "tasks.ts"),
    [
      `import { readFileSync } from "node:fs";`,
      `import { remote } from ${JSON.stringify(remoteUrl)};`,
      `import { greeting } from "./lib/greeting.js";`,
      `export const describe = remote(import.meta.url, function describe(suffix: string) {`,
      `  const seen = {`,
      `    greeting: greeting + suffix,`,
      `    data: readFileSync(new URL("./data.txt", import.meta.url), "utf8"),`,
      `    module: import.meta.url,`,
      `    cwd: process.cwd(),`,
      `    workspace: process.env.FLUSTER_WORKSPACE,`,
      `  };`,
      `  console.log("RESULT " + JSON.stringify(seen));`,
      `});`,
      ``,
    ].join("\n"),
  );
}

test("a function job runs from the worker's copy of its workspace after the client's copy is deleted", { timeout: 120_000 }, async (t) => {
  const root = realpathSync(mkdtempSync(join(tmpdir(), "fluster-ws-job-")));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  writeWorkspace(root);
  const { describe: describeFn } = (await import(pathToFileURL(join(root, "tasks.ts")).href)) as { describe: RemoteFunction<[string], unknown> };

  const cluster = await startLocalCluster(t, { workers: 0 });
  const jobId = await cluster.launch({
    name: "from-bundle",
    resources: { cpu: 0.1, memory: "64m" },
    entrypoint: Entrypoint.fromFunction(describeFn, "!"),
  });
  assert.equal((await cluster.poll(jobId)).status, "pending", "no worker yet");
  rmSync(root, { recursive: true, force: true });
  await cluster.addWorker();

  const info = await cluster.wait(jobId, { timeoutSeconds: 60 });
  assert.equal(info.status, "succeeded", info.errorMessage);
  const line = /RESULT (.*)/.exec(await collectLogs(cluster, jobId))?.[1] ?? "{}";
  const value = JSON.parse(line) as { greeting: string; data: string; module: string; cwd: string; workspace: string };
  assert.equal(value.greeting, "hello from the bundle!");
  assert.equal(value.data, "data travelled with the bundle");
  assert.equal(value.cwd, value.workspace);
  assert.ok(!value.cwd.startsWith(root), `the job ran in ${value.cwd}, the client's path`);
  assert.equal(value.module, pathToFileURL(join(value.workspace, "tasks.ts")).href);
  assert.ok(existsSync(value.workspace));
  assert.match(value.workspace, /\/workers\/local-0\/bundles\/[0-9a-f]{64}$/, "the worker's bundle cache");
  // Exactly the packed files: its dependencies (fluster, linked in) come from the worker's environment for it.
  assert.deepEqual(readdirSync(value.workspace).sort(), ["data.txt", "lib", "package.json", "tasks.ts"]);
});
