// Job environments on a real LocalCluster: a workspace outside the repository
// whose lockfile (and the job's `packages`) the worker installs with npm,
// offline, while the task shows `building`; shared installs; failed installs.
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { pathToFileURL } from "node:url";
import { Entrypoint } from "../../src/core/entrypoint.js";
import type { JobRequest } from "../../src/core/job.js";
import type { TaskState } from "../../src/core/status.js";
import { REPO_ROOT } from "../helpers/index.js";
import { collectLogs, useLocalCluster } from "../helpers/local-cluster.js";
import { packTarball, userNpmCache, writeLockedWorkspace } from "../helpers/npm-workspaces.js";

const small = { cpu: 0.1, memory: "64m" } as const;
const root = mkdtempSync(join(tmpdir(), "fluster-envs-cluster-"));
const envsDir = join(root, "envs");
let serial = 0;

after(() => rmSync(root, { recursive: true, force: true }));

/** A workspace outside the repository: a lockfile pinning debug (and ms), and a module of remote functions that imports them and fluster. */
function lockedWorkspace(): string {
  const dir = join(root, `ws-${serial++}`);
  writeLockedWorkspace(dir, ["debug"]);
  writeFileSync(
    join(dir, "tasks.mjs"),
    `import { remote } from "fluster";
import ms from "ms";
import debug from "debug";
export const duration = remote(import.meta.url, async function duration(text, extra) {
  const extras = extra ? [(await import(extra)).default] : [];
  const found = [ms(text), typeof debug, ...extras];
  console.log("found " + JSON.stringify(found));
  return found;
});
`,
  );
  return dir;
}

function functionJob(name: string, workspace: string, args: unknown[], packages: string[] = []): JobRequest {
  return {
    name,
    resources: small,
    entrypoint: { kind: "function", ref: { module: pathToFileURL(join(workspace, "tasks.mjs")).href, name: "duration" }, args },
    environment: { workspace, ...(packages.length ? { packages } : {}) },
  };
}

/** How many npm installs the worker ran for each environment, from the build logs. */
function installsPerKey(): Record<string, number> {
  const logs = join(envsDir, "logs");
  if (!existsSync(logs)) return {};
  return Object.fromEntries(readdirSync(logs).map((f) => [f.replace(/\.log$/, ""), (readFileSync(join(logs, f), "utf8").match(/^# build of environment/gm) ?? []).length]));
}

describe("job environments on a LocalCluster", { timeout: 180_000 }, () => {
  const local = useLocalCluster({ workers: 0, workerCpu: 4 });
  before(async () => {
    await local.cluster.addWorker({ environmentsDir: envsDir, npmCacheDir: userNpmCache(), npmOffline: true });
  });

  test("a function job imports its lockfile's packages, fluster and `packages`, installed while the task shows building", async () => {
    const workspace = lockedWorkspace();
    assert.ok(!workspace.startsWith(REPO_ROOT));
    const tarballs = join(root, "tarballs");
    mkdirSync(tarballs, { recursive: true });
    // Its install script sleeps, so that `building` lasts long enough to be seen.
    const slow = packTarball(tarballs, "fluster-fixture-slow", "1.0.0", { installDelayMs: 1500 });
    const jobId = await local.cluster.launch(functionJob("env-function", workspace, ["2s", "fluster-fixture-slow"], [slow]));
    const seen: TaskState[] = [];
    for await (const info of local.cluster.watch(jobId)) {
      const state = info.tasks[0]?.state;
      if (state && seen.at(-1) !== state) seen.push(state);
      if (info.status === "succeeded" || info.status === "failed" || info.status === "killed") break;
    }
    const info = await local.cluster.wait(jobId, { timeoutSeconds: 60 });
    assert.equal(info.status, "succeeded", info.errorMessage);
    assert.ok(seen.includes("building"), `states seen: ${seen.join(" → ")}`);
    assert.ok(seen.indexOf("building") < seen.indexOf("succeeded"));
    assert.match(await collectLogs(local.cluster, jobId), /found \[2000,"function","fluster-fixture-slow@1\.0\.0"\]/);
    // Installing left the workspace's files alone.
    assert.deepEqual(readdirSync(workspace).sort(), ["package-lock.json", "package.json", "tasks.mjs"]);
  });

  test("jobs with the same key share one install, also when their attempts start together; a command job gets it too", async () => {
    const workspace = lockedWorkspace();
    const before = installsPerKey();
    const jobs = await Promise.all([1, 2, 3].map((i) => local.cluster.launch(functionJob(`env-shared-${i}`, workspace, [`${i}m`]))));
    const infos = await local.cluster.wait(jobs, { timeoutSeconds: 90 });
    assert.deepEqual(infos.map((i) => i.status), ["succeeded", "succeeded", "succeeded"], infos.map((i) => i.errorMessage).join("; "));
    const command = await local.cluster.launch({
      name: "env-command",
      resources: small,
      entrypoint: Entrypoint.fromCommand(["node", "--input-type=module", "-e", `import ms from "ms"; if (ms("1h") !== 3600000) process.exit(2);`]),
      environment: { workspace },
    });
    assert.equal((await local.cluster.wait(command, { timeoutSeconds: 60 })).status, "succeeded");
    const after = installsPerKey();
    const added = Object.keys(after).filter((key) => after[key] !== before[key]);
    assert.equal(added.length, 1, `environments built: ${JSON.stringify(after)}`);
    assert.equal(after[added[0]!], 1);
  });

  test("a lockfile npm rejects fails the attempt with npm's error tail, and leaves no environment", async () => {
    const workspace = join(root, `ws-${serial++}`);
    mkdirSync(workspace);
    writeFileSync(join(workspace, "package.json"), JSON.stringify({ name: "broken", version: "1.0.0", dependencies: { ms: "^2.1.3" } }));
    writeFileSync(join(workspace, "package-lock.json"), "{ garbage");
    const jobId = await local.cluster.launch({ name: "env-broken", resources: small, entrypoint: Entrypoint.fromCommand(["true"]), environment: { workspace } });
    const info = await local.cluster.wait(jobId, { timeoutSeconds: 60 });
    assert.equal(info.status, "failed");
    const message = info.tasks[0]?.errorMessage ?? "";
    assert.match(message, /installing the job's dependencies failed \(npm ci exited \d+; environment [0-9a-f]{64}\)/);
    assert.match(message, /npm error/);
    const key = /environment ([0-9a-f]{64})/.exec(message)![1]!;
    assert.ok(!existsSync(join(envsDir, key)));
    assert.deepEqual(readdirSync(envsDir).filter((f) => f.startsWith(".build-") || f.endsWith(".lock")), []);
  });

  test("terminating a job while its environment builds kills the attempt at once", async () => {
    const tarballs = join(root, "tarballs");
    mkdirSync(tarballs, { recursive: true });
    const slower = packTarball(tarballs, "fluster-fixture-slower", "1.0.0", { installDelayMs: 30_000 });
    const jobId = await local.cluster.launch({ name: "env-killed", resources: small, entrypoint: Entrypoint.fromCommand(["true"]), environment: { workspace: join(root, "tarballs"), packages: [slower] } });
    for await (const info of local.cluster.watch(jobId)) if (info.tasks[0]?.state === "building") break;
    const started = Date.now();
    await local.cluster.terminate(jobId, "changed my mind");
    const info = await local.cluster.wait(jobId, { timeoutSeconds: 20 });
    assert.equal(info.status, "killed");
    assert.ok(Date.now() - started < 10_000, "the kill did not wait for the install");
  });
});
