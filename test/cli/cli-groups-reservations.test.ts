// `fluster group …` and `fluster reservation …` as real CLI processes against
// a LocalCluster (controller in this process, worker daemons as children).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { Entrypoint } from "../../src/core/entrypoint.js";
import { REPO_ROOT, cleanEnv, eventually, runNode, type NodeResult } from "../helpers/index.js";
import { useLocalCluster } from "../helpers/local-cluster.js";

const bin = join(REPO_ROOT, "bin", "fluster.js");
const sleeper = (name: string) => ({ name, resources: { cpu: 0.1, memory: "32m" }, entrypoint: Entrypoint.fromCommand(["node", "-e", "setTimeout(() => {}, 60_000)"]) });

describe("fluster group and reservation commands", { timeout: 120_000 }, () => {
  const local = useLocalCluster({ workers: 1, workerCpu: 2, workerMemory: "1g" });
  const fluster = (args: string[]): Promise<NodeResult> => runNode([bin, ...args], { env: cleanEnv({ FLUSTER_CLUSTER_ADDRESS: local.cluster.address }) });

  test("group list, status and stop", async () => {
    const { groupId, jobIds } = await local.cluster.launchGroupWithId([sleeper("cli-a"), sleeper("cli-b")], { name: "cli-pair" });
    await eventually(async () => (await local.cluster.getGroup(groupId)).status === "running", { what: "the group to run", timeoutMs: 30_000 });

    const list = await fluster(["group", "list", "--json", "--prefix", "cli-"]);
    assert.equal(list.code, 0, list.stderr);
    const groups = JSON.parse(list.stdout) as Array<{ groupId: string; status: string; jobIds: string[] }>;
    assert.deepEqual(groups.map((g) => [g.groupId, g.status, g.jobIds]), [[groupId, "running", jobIds]]);
    const table = await fluster(["group", "list"]);
    assert.match(table.stdout, /^ID\s+NAME\s+STATUS\s+JOBS/);
    assert.match(table.stdout, new RegExp(`${groupId}\\s+cli-pair\\s+running\\s+2`));

    const status = await fluster(["group", "status", groupId]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /status:\s+running/);
    assert.match(status.stdout, /placed in one region/);
    for (const jobId of jobIds) assert.match(status.stdout, new RegExp(`${jobId}\\s+cli-[ab]\\s+running`));

    const jobStatus = await fluster(["job", "status", jobIds[0] as string]);
    assert.match(jobStatus.stdout, new RegExp(`^group:\\s+${groupId}$`, "m"));

    const stop = await fluster(["group", "stop", groupId, "--json"]);
    assert.equal(stop.code, 0, stop.stderr);
    assert.equal((JSON.parse(stop.stdout) as { status: string }).status, "killed");
    for (const jobId of jobIds) assert.equal((await local.cluster.poll(jobId)).status, "killed");

    const missing = await fluster(["group", "status", "no-such-group"]);
    assert.notEqual(missing.code, 0);
    assert.equal(missing.stderr.trim(), "fluster: job group no-such-group not found");
  });

  test("reservation create prints its id; list, status and release show and end it", async () => {
    const created = await fluster(["reservation", "create", "--cpu", "0.5", "--memory", "64m", "--min", "2", "--max", "3", "--ttl", "600", "--priority", "2"]);
    assert.equal(created.code, 0, created.stderr);
    const id = created.stdout.trim();
    assert.match(id, /^reservation-/);
    const info = await local.cluster.getReservation(id);
    assert.deepEqual([info.minReplicas, info.maxReplicas, info.priority, info.allocatedResources.cpu, info.preemptible], [2, 3, 2, 0.5, true]);

    const list = await fluster(["reservation", "list", "--json"]);
    assert.equal(list.code, 0, list.stderr);
    const listed = JSON.parse(list.stdout) as Array<{ reservationId: string; state: string; minReplicas: number; slot: { cpu: number } }>;
    assert.deepEqual(listed.map((r) => [r.reservationId, r.state, r.minReplicas, r.slot.cpu]), [[id, "active", 2, 0.5]]);
    const table = await fluster(["reservation", "list"]);
    assert.match(table.stdout, /^ID\s+STATE\s+SLOT\s+MIN-MAX\s+USED\s+HELD\s+PENDING/);
    assert.match(table.stdout, new RegExp(`${id}\\s+active\\s+cpu=0.5 mem=64m\\s+2-3`));

    const status = await fluster(["reservation", "status", id]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /state:\s+active/);
    assert.match(status.stdout, /\(min 2, max 3\)/);

    const released = await fluster(["reservation", "release", id, "--reason", "done with it"]);
    assert.equal(released.code, 0, released.stderr);
    assert.equal(released.stdout, `${id} released\n`);
    assert.equal((await local.cluster.getReservation(id)).message, "done with it");
    assert.equal((await fluster(["reservation", "list"])).stdout, "no active reservations (--all shows ended ones)\n");
    assert.match((await fluster(["reservation", "list", "--all"])).stdout, new RegExp(`${id}\\s+released`));
  });

  test("bad reservations and unknown ids are one clear line and a non-zero exit", async () => {
    const inverted = await fluster(["reservation", "create", "--min", "3", "--max", "2"]);
    assert.notEqual(inverted.code, 0);
    assert.equal(inverted.stderr.trim().split("\n").length, 1, inverted.stderr);
    assert.match(inverted.stderr, /^fluster: .*replicas/);
    const zero = await fluster(["reservation", "create", "--min", "0"]);
    assert.notEqual(zero.code, 0);
    assert.match(zero.stderr, /--min/);
    const missing = await fluster(["reservation", "release", "reservation-none"]);
    assert.notEqual(missing.code, 0);
    assert.equal(missing.stderr.trim(), "fluster: reservation reservation-none not found");
    assert.equal((await local.cluster.listReservations()).length, 0, "nothing was created");
  });
});
