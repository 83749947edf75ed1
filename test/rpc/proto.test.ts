// The committed generated code must match proto/: regenerate into a temp dir
// with the pinned buf + protoc-gen-es and compare byte for byte. Also lint.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../..", import.meta.url));
const buf = join(root, "node_modules", ".bin", "buf");
const env = { ...process.env, PATH: `${join(root, "node_modules", ".bin")}:${process.env.PATH ?? ""}` };

function listFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)))
    .sort();
}

test("buf lint passes on proto/", () => {
  execFileSync(buf, ["lint"], { cwd: root, env, stdio: "pipe" });
});

test("generated code in src/rpc/gen is up to date with proto/ (run `npm run generate`)", () => {
  const out = mkdtempSync(join(tmpdir(), "fluster-gen-"));
  try {
    execFileSync(buf, ["generate", "--output", out], { cwd: root, env, stdio: "pipe" });
    const committedDir = join(root, "src", "rpc", "gen");
    const freshDir = join(out, "src", "rpc", "gen");
    const committed = listFiles(committedDir);
    const fresh = listFiles(freshDir);
    assert.ok(fresh.length >= 4, `expected generated files, got ${fresh.join(", ")}`);
    assert.deepEqual(committed, fresh, "generated file list differs: run `npm run generate`");
    for (const file of fresh) {
      const a = readFileSync(join(committedDir, file), "utf8");
      const b = readFileSync(join(freshDir, file), "utf8");
      assert.ok(a === b, `${file} is stale: run \`npm run generate\``);
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test("generated services expose the methods SPEC.md names", async () => {
  const { ControllerService } = await import("../../src/rpc/gen/fluster/cluster/v1/controller_pb.js");
  const { WorkerService } = await import("../../src/rpc/gen/fluster/worker/v1/worker_pb.js");
  const { ActorService } = await import("../../src/rpc/gen/fluster/actor/v1/actor_pb.js");
  const names = (svc: { methods: ReadonlyArray<{ name: string }> }) => svc.methods.map((m) => m.name);
  for (const m of ["LaunchJob", "LaunchJobGroup", "GetJobStatus", "TerminateJob", "ListJobs", "StreamJobLogs", "RegisterWorker",
    "Heartbeat", "RegisterEndpoint", "UnregisterEndpoint", "LookupEndpoints", "ListEndpoints", "CreateReservation",
    "GetReservation", "ReleaseReservation"]) {
    assert.ok(names(ControllerService).includes(m), `ControllerService lacks ${m}`);
  }
  for (const m of ["RunTask", "Reconcile", "GetTaskStatus", "StreamLogs", "KillTask", "HealthCheck"]) {
    assert.ok(names(WorkerService).includes(m), `WorkerService lacks ${m}`);
  }
  for (const m of ["Call", "HealthCheck"]) assert.ok(names(ActorService).includes(m), `ActorService lacks ${m}`);
});
