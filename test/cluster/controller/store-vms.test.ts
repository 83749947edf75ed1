// The autoscaler's VM records in the state database: saved before a platform
// is asked, updated through their lifecycle, loaded back after a restart,
// and ended ones forgotten after their retention.
import { afterEach, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { StateStore } from "../../../src/cluster/controller/store.js";
import type { ManagedVmRecord } from "../../../src/cluster/controller/model.js";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function vm(overrides: Partial<ManagedVmRecord> = {}): ManagedVmRecord {
  return { vmId: "cpu-1a2b3c4d", group: "cpu", platform: "docker", state: "requested", since: 1000, createdAt: 1000, workerIds: ["cpu-1a2b3c4d"], ...overrides };
}

test("a VM is stored when requested, updated as it boots, and loaded back by the next controller", () => {
  const dir = mkdtempSync(join(tmpdir(), "fluster-store-vms-"));
  dirs.push(dir);
  const first = new StateStore(dir);
  first.transaction(() => first.saveVm(vm()));
  first.transaction(() => first.saveVm(vm({ state: "booting", since: 2000, platformId: "container 0123abcd", workerIds: ["cpu-1a2b3c4d-0", "cpu-1a2b3c4d-1"] })));
  first.transaction(() => first.saveVm(vm({ vmId: "cpu-99", state: "failed", since: 3000, createdAt: 2500, workerIds: ["cpu-99"], reason: "allocation failed: quota" })));
  first.close();
  const second = new StateStore(dir);
  assert.deepEqual(second.load().vms, [
    vm({ state: "booting", since: 2000, platformId: "container 0123abcd", workerIds: ["cpu-1a2b3c4d-0", "cpu-1a2b3c4d-1"] }),
    vm({ vmId: "cpu-99", state: "failed", since: 3000, createdAt: 2500, workerIds: ["cpu-99"], reason: "allocation failed: quota" }),
  ]);
  // Ended VMs go after their retention; live ones stay whatever their age.
  assert.equal(second.deleteEndedVms(3001), 1);
  assert.deepEqual(
    second.load().vms.map((v) => v.vmId),
    ["cpu-1a2b3c4d"],
  );
  second.close();
});

test("a VM write that fails leaves the record as it was", () => {
  const store = new StateStore(":memory:");
  const record = vm();
  store.transaction(() => store.saveVm(record));
  assert.throws(() =>
    store.transaction(() => {
      store.keep(record);
      record.state = "ready";
      store.saveVm(record);
      throw new Error("a later step failed");
    }),
  );
  assert.equal(record.state, "requested");
  assert.equal(store.load().vms[0]?.state, "requested");
  store.close();
});
