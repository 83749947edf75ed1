// The access table as plain data: every ControllerService method has a rule,
// and the rules answer as designed for each kind of caller (no sockets here;
// identity.test.ts checks the same end to end).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { CONTROLLER_ACCESS, authorize, inSubtree, type AccessScope, type Caller } from "../../../src/cluster/controller/access.js";
import { FlusterError } from "../../../src/core/errors.js";
import {
  ControllerService,
  HeartbeatRequestSchema,
  LaunchJobRequestSchema,
  ListJobsRequestSchema,
  LookupEndpointsRequestSchema,
  TerminateJobRequestSchema,
  UnregisterEndpointRequestSchema,
} from "../../../src/rpc/gen/fluster/cluster/v1/controller_pb.js";

const jobs: Record<string, { namespace: string; parentJobId?: string }> = {
  root: { namespace: "a" },
  child: { namespace: "a", parentJobId: "root" },
  grandchild: { namespace: "a", parentJobId: "child" },
  sibling: { namespace: "a" },
  stranger: { namespace: "b" },
};
const scope: AccessScope = {
  job: (id) => jobs[id],
  endpoint: (id) => (id === "ep-b" ? { namespace: "b" } : id === "ep-a" ? { namespace: "a" } : undefined),
  attemptJob: () => undefined,
  requestedJob: (requestId) => (requestId === "req-stranger" ? "stranger" : requestId === "req-child" ? "child" : undefined),
};
const asJob = (jobId: string): Caller => ({ kind: "job", jobId, attemptId: `${jobId}-0`, namespace: jobs[jobId]?.namespace ?? "a" });
const worker: Caller = { kind: "worker", workerId: "w1" };
const operator: Caller = { kind: "operator" };

function outcome(run: () => void): string {
  try {
    run();
    return "ok";
  } catch (err) {
    assert.ok(err instanceof FlusterError);
    return err.code;
  }
}

describe("the controller's access table", () => {
  test("has a rule for every ControllerService method, and none for a method that does not exist", () => {
    const methods = ControllerService.methods.map((m) => m.localName).sort();
    assert.deepEqual(Object.keys(CONTROLLER_ACCESS).sort(), methods);
  });

  test("a job terminates only its own subtree, in its namespace", () => {
    const terminate = (caller: Caller, jobId: string) => outcome(() => authorize(CONTROLLER_ACCESS, "terminateJob", caller, create(TerminateJobRequestSchema, { jobId }), scope));
    assert.equal(terminate(asJob("root"), "root"), "ok");
    assert.equal(terminate(asJob("root"), "grandchild"), "ok");
    assert.equal(terminate(asJob("child"), "root"), "permission_denied", "not its parent");
    assert.equal(terminate(asJob("root"), "sibling"), "permission_denied", "not another job of the namespace");
    assert.equal(terminate(asJob("root"), "stranger"), "permission_denied", "not another namespace's");
    assert.equal(terminate(operator, "stranger"), "ok");
    assert.equal(terminate(worker, "root"), "permission_denied");
    assert.equal(terminate(undefined as unknown as Caller, "stranger"), "ok", "auth off: everyone is the operator");
    assert.ok(inSubtree("grandchild", "root", scope));
    assert.ok(!inSubtree("root", "grandchild", scope));
  });

  test("a job launches children of its subtree in its own namespace only", () => {
    const launch = (caller: Caller, namespace: string, parentJobId: string, requestId = "") =>
      outcome(() => authorize(CONTROLLER_ACCESS, "launchJob", caller, create(LaunchJobRequestSchema, { namespace, parentJobId, requestId }), scope));
    assert.equal(launch(asJob("root"), "", "root"), "ok");
    assert.equal(launch(asJob("root"), "a", "child"), "ok");
    assert.equal(launch(asJob("root"), "b", "root"), "permission_denied");
    assert.equal(launch(asJob("root"), "a", "sibling"), "permission_denied");
    assert.equal(launch(asJob("root"), "a", ""), "permission_denied");
    assert.equal(launch(asJob("root"), "a", "root", "req-child"), "ok", "a retried launch of its own child");
    assert.equal(launch(asJob("root"), "a", "root", "req-stranger"), "permission_denied", "a request id replayed to learn another namespace's job");
  });

  test("lookups and listings stay in the job's namespace; every namespace is the operator's", () => {
    const lookup = (namespace: string) => outcome(() => authorize(CONTROLLER_ACCESS, "lookupEndpoints", asJob("root"), create(LookupEndpointsRequestSchema, { name: "x", namespace }), scope));
    assert.equal(lookup("a"), "ok");
    assert.equal(lookup("b"), "permission_denied");
    assert.equal(lookup(""), "permission_denied", "an empty namespace is the default one, not the job's");
    const list = (caller: Caller, allNamespaces: boolean) => outcome(() => authorize(CONTROLLER_ACCESS, "listJobs", caller, create(ListJobsRequestSchema, { namespace: "a", allNamespaces }), scope));
    assert.equal(list(asJob("root"), false), "ok");
    assert.equal(list(asJob("root"), true), "permission_denied");
    assert.equal(list(operator, true), "ok");
    const unregister = (endpointId: string) => outcome(() => authorize(CONTROLLER_ACCESS, "unregisterEndpoint", asJob("root"), create(UnregisterEndpointRequestSchema, { endpointId }), scope));
    assert.equal(unregister("ep-a"), "ok");
    assert.equal(unregister("ep-b"), "permission_denied");
  });

  test("a heartbeat is a worker's own word: not the operator's, not another worker's, not a job's", () => {
    const heartbeat = (caller: Caller) => outcome(() => authorize(CONTROLLER_ACCESS, "heartbeat", caller, create(HeartbeatRequestSchema, { workerId: "w1" }), scope));
    assert.equal(heartbeat(worker), "ok");
    assert.equal(heartbeat({ kind: "worker", workerId: "w2" }), "permission_denied");
    assert.equal(heartbeat(operator), "permission_denied");
    assert.equal(heartbeat(asJob("root")), "permission_denied");
    assert.equal(heartbeat({ kind: "namespace", namespace: "a" }), "permission_denied");
  });
});
