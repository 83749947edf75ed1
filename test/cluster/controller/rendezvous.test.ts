// The rendezvous variables, from placements: TPU host ids and lists, multislice, the coordinator address.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { COORDINATOR_PORTS, coordinatorPort, hostOfAddress, rendezvousVariables } from "../../../src/cluster/controller/rendezvous.js";

const HOSTS = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.1.1", "10.0.1.2", "10.0.1.3", "10.0.1.4"];

describe("rendezvous variables", () => {
  test("one v5litepod-16 slice: each task its host id, all the same host list in host order, a coordinator on task 0's host", () => {
    const port = coordinatorPort("j/0/0");
    for (let i = 0; i < 4; i++) {
      assert.deepEqual(rendezvousVariables({ taskIndex: i, numTasks: 4, hosts: HOSTS.slice(0, 4), tpuHostsPerSlice: 4, coordinatorAttemptId: "j/0/0" }), {
        TPU_WORKER_ID: String(i),
        TPU_WORKER_HOSTNAMES: "10.0.0.1,10.0.0.2,10.0.0.3,10.0.0.4",
        FLUSTER_COORDINATOR_ADDRESS: `10.0.0.1:${port}`,
      });
    }
  });

  test("multislice: host ids restart per slice, each slice its own hosts, MEGASCALE_* from slice 0's host 0", () => {
    const port = coordinatorPort("j/0/3");
    const env = (i: number) => rendezvousVariables({ taskIndex: i, numTasks: 8, hosts: HOSTS, tpuHostsPerSlice: 4, coordinatorAttemptId: "j/0/3" });
    assert.deepEqual(env(5), {
      FLUSTER_COORDINATOR_ADDRESS: `10.0.0.1:${port}`,
      TPU_WORKER_ID: "1",
      TPU_WORKER_HOSTNAMES: "10.0.1.1,10.0.1.2,10.0.1.3,10.0.1.4",
      MEGASCALE_NUM_SLICES: "2",
      MEGASCALE_SLICE_ID: "1",
      MEGASCALE_COORDINATOR_ADDRESS: `10.0.0.1:${port + 1}`,
    });
    assert.equal(env(2).MEGASCALE_SLICE_ID, "0");
    assert.equal(env(2).TPU_WORKER_HOSTNAMES, "10.0.0.1,10.0.0.2,10.0.0.3,10.0.0.4");
  });

  test("a multi-task CPU job gets only the coordinator; a single task gets nothing", () => {
    assert.deepEqual(Object.keys(rendezvousVariables({ taskIndex: 1, numTasks: 3, hosts: ["a", "b", "c"], coordinatorAttemptId: "x/0/0" })), ["FLUSTER_COORDINATOR_ADDRESS"]);
    assert.deepEqual(rendezvousVariables({ taskIndex: 0, numTasks: 1, hosts: ["a"], coordinatorAttemptId: "x/0/0" }), {});
  });

  test("a single-host TPU names itself; unknown hosts leave their variables out", () => {
    assert.deepEqual(rendezvousVariables({ taskIndex: 0, numTasks: 1, hosts: ["h"], tpuHostsPerSlice: 1, coordinatorAttemptId: "t/0/0" }), { TPU_WORKER_ID: "0", TPU_WORKER_HOSTNAMES: "h" });
    const partial = rendezvousVariables({ taskIndex: 1, numTasks: 4, hosts: [undefined, "b", "c", "d"], tpuHostsPerSlice: 4 });
    assert.deepEqual(partial, { TPU_WORKER_ID: "1" });
  });

  test("IPv6 hosts are bracketed in addresses, bare in host lists", () => {
    const env = rendezvousVariables({ taskIndex: 0, numTasks: 2, hosts: ["fd00::1", "fd00::2"], tpuHostsPerSlice: 2, coordinatorAttemptId: "a" });
    assert.equal(env.TPU_WORKER_HOSTNAMES, "fd00::1,fd00::2");
    assert.match(env.FLUSTER_COORDINATOR_ADDRESS ?? "", /^\[fd00::1\]:\d+$/);
    assert.equal(hostOfAddress("http://[fd00::1]:7070"), "fd00::1");
    assert.equal(hostOfAddress("https://10.0.0.2:7070"), "10.0.0.2");
    assert.equal(hostOfAddress("not a url"), undefined);
  });

  test("coordinator ports: even, in range, stable per attempt, different for a new attempt of task 0", () => {
    const ports = new Set<number>();
    for (let n = 0; n < 500; n++) {
      const port = coordinatorPort(`job-${n}/0/0`);
      assert.equal(port % 2, 0);
      assert.ok(port >= COORDINATOR_PORTS.first && port + 1 <= COORDINATOR_PORTS.last, String(port));
      ports.add(port);
    }
    assert.ok(ports.size > 400, `spread: ${ports.size} distinct of 500`);
    assert.equal(coordinatorPort("j/0/0"), coordinatorPort("j/0/0"));
    assert.notEqual(coordinatorPort("j/0/0"), coordinatorPort("j/0/1"));
  });
});
