// The state store's job groups and reservations (migration 4) on a real
// SQLite file: every field comes back as saved after a reopen, updates keep
// what must not change, and a database of the previous schema migrates with
// its jobs intact.
import { afterEach, test } from "node:test";
import assert from "node:assert/strict";
import Database from "better-sqlite3";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { StateStore } from "../../../src/cluster/controller/store.js";
import type { JobGroupRecord, ReservationRecord } from "../../../src/cluster/controller/model.js";
import { validateReservationConfig } from "../../../src/core/reservation.js";
import { jobSpecToProto, reservationSpecToProto } from "../../../src/rpc/convert.js";
import { newJobRecord } from "../../../src/cluster/controller/jobs.js";
import { Entrypoint } from "../../../src/core/entrypoint.js";
import { validateJobRequest } from "../../../src/core/job.js";

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

function tempDir(): string {
  dir = mkdtempSync(join(tmpdir(), "fluster-store-groups-"));
  return dir;
}

const group = (fields: Partial<JobGroupRecord> = {}): JobGroupRecord => ({
  groupId: "g-1",
  name: "pair",
  namespace: "ns",
  sameRegion: true,
  sameZone: false,
  jobIds: ["a-1", "b-1"],
  createdAt: 1000,
  ...fields,
});

const reservation = (fields: Partial<ReservationRecord> = {}): ReservationRecord => ({
  reservationId: "reservation-1",
  namespace: "ns",
  spec: reservationSpecToProto(validateReservationConfig({ minResources: { cpu: 2, memory: "1g", replicas: 2 }, maxResources: { cpu: 2, memory: "1g", replicas: 4 }, priority: 3, ttlSeconds: 60 })),
  state: "active",
  createdAt: 2000,
  expiresAt: 62_000,
  seq: 7,
  ...fields,
});

test("groups and reservations come back as saved, optional fields absent when unset", () => {
  const path = tempDir();
  const store = new StateStore(path);
  const full = group({ groupId: "g-2", sameZone: true, reservationId: "reservation-1", parentJobId: "p-1", finishedAt: 5000, requestId: "req-g", createdAt: 1500 });
  store.transaction(() => {
    store.saveGroup(group());
    store.saveGroup(full);
    store.saveReservation(reservation());
    store.saveReservation(reservation({ reservationId: "reservation-2", state: "released", message: "done", endedAt: 9000, seq: 8, requestId: "req-r" }));
  });
  store.close();
  const loaded = new StateStore(path);
  const state = loaded.load();
  assert.deepEqual(state.groups, [group(), full]);
  assert.deepEqual(state.reservations, [reservation(), reservation({ reservationId: "reservation-2", state: "released", message: "done", endedAt: 9000, seq: 8, requestId: "req-r" })]);
  loaded.close();
});

test("saving again updates what may change and keeps the rest", () => {
  const path = tempDir();
  const store = new StateStore(path);
  store.transaction(() => {
    store.saveGroup(group());
    store.saveReservation(reservation());
  });
  // A group's jobs and locality are fixed at launch: only its end is written later.
  store.transaction(() => {
    store.saveGroup(group({ finishedAt: 4000, name: "renamed", jobIds: [] }));
    store.saveReservation(reservation({ state: "expired", message: "expired after its TTL of 60s", endedAt: 62_000, expiresAt: 1 }));
  });
  const state = store.load();
  assert.deepEqual(state.groups, [group({ finishedAt: 4000 })]);
  assert.deepEqual(state.reservations, [reservation({ state: "expired", message: "expired after its TTL of 60s", endedAt: 62_000 })]);
  store.close();
});

test("a request id names one group and one reservation only", () => {
  const store = new StateStore(":memory:");
  store.transaction(() => store.saveGroup(group({ requestId: "same" })));
  assert.throws(() => store.transaction(() => store.saveGroup(group({ groupId: "g-other", requestId: "same" }))), /UNIQUE/);
  assert.equal(store.load().groups.length, 1);
  store.close();
});

test("a database of schema 3 migrates: its jobs load without a group or reservation, and the new tables are empty", () => {
  const path = tempDir();
  const before = new StateStore(path);
  const request = validateJobRequest({ name: "old", resources: { cpu: 1 }, entrypoint: Entrypoint.fromCommand(["true"]) });
  const job = newJobRecord(jobSpecToProto(request), request, { jobId: "old-1", namespace: "default", seq: 1, submittedAt: 100 });
  before.transaction(() => {
    before.saveJob(job);
    for (const t of job.tasks) before.saveTask(t);
  });
  before.close();
  // Back to schema 3, as a controller before job groups left it.
  const db = new Database(join(path, "controller.sqlite"));
  db.exec(`DROP TABLE vms; DROP TABLE job_groups; DROP TABLE reservations; ALTER TABLE jobs DROP COLUMN group_id; ALTER TABLE jobs DROP COLUMN reservation_id;`);
  db.pragma("user_version = 3");
  db.close();
  const store = new StateStore(path);
  const state = store.load();
  assert.deepEqual([state.groups, state.reservations, state.vms], [[], [], []]);
  assert.deepEqual(state.jobs.map((j) => [j.jobId, j.name, j.groupId, j.reservationId, j.tasks.length]), [["old-1", "old", undefined, undefined, 1]]);
  const version = new Database(join(path, "controller.sqlite"), { readonly: true });
  assert.equal(version.pragma("user_version", { simple: true }), 5);
  version.close();
  store.close();
});
