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
  LaunchJobGroupRequestSchema,
  GetJobGroupRequestSchema,
  ListJobGroupsRequestSchema,
  TerminateJobGroupRequestSchema,
  CreateReservationRequestSchema,
  GetReservationRequestSchema,
  ReleaseReservationRequestSchema,
  ListReservationsRequestSchema,
} from "../../../src/rpc/gen/fluster/cluster/v1/controller_pb.js";

const jobs: Record<string, { namespace: string; parentJobId?: string }> = {
  root: { namespace: "a" },
  child: { namespace: "a", parentJobId: "root" },
  grandchild: { namespace: "a", parentJobId: "child" },
  sibling: { namespace: "a" },
  stranger: { namespace: "b" },
};
const groups: Record<string, { namespace: string; parentJobId?: string }> = {
  "group-child": { namespace: "a", parentJobId: "child" },
  "group-sibling": { namespace: "a", parentJobId: "sibling" },
  "group-operator": { namespace: "a" },
  "group-b": { namespace: "b", parentJobId: "stranger" },
};
const scope: AccessScope = {
  job: (id) => jobs[id],
  endpoint: (id) => (id === "ep-b" ? { namespace: "b" } : id === "ep-a" ? { namespace: "a" } : undefined),
  attemptJob: () => undefined,
  requestedJob: (requestId) => (requestId === "req-stranger" ? "stranger" : requestId === "req-child" ? "child" : undefined),
  group: (id) => groups[id],
  requestedGroup: (requestId) => (requestId === "req-group-b" ? groups["group-b"] : requestId === "req-group-child" ? groups["group-child"] : undefined),
  reservation: (id) => (id === "res-a" ? { namespace: "a" } : id === "res-b" ? { namespace: "b" } : undefined),
  requestedReservation: (requestId) => (requestId === "req-res-b" ? { namespace: "b" } : requestId === "req-res-a" ? { namespace: "a" } : undefined),
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

  test("a job launches groups as children, reads its namespace's groups and terminates only groups of its subtree", () => {
    const launch = (caller: Caller, namespace: string, parentJobId: string, requestId = "") =>
      outcome(() => authorize(CONTROLLER_ACCESS, "launchJobGroup", caller, create(LaunchJobGroupRequestSchema, { namespace, parentJobId, requestId }), scope));
    assert.equal(launch(asJob("root"), "", "root"), "ok");
    assert.equal(launch(asJob("root"), "b", "root"), "permission_denied");
    assert.equal(launch(asJob("root"), "a", ""), "permission_denied", "a group is launched as the job's children");
    assert.equal(launch(asJob("root"), "a", "sibling"), "permission_denied");
    assert.equal(launch(asJob("root"), "a", "root", "req-group-child"), "ok", "a retried launch of a group of its subtree");
    assert.equal(launch(asJob("root"), "a", "root", "req-group-b"), "permission_denied", "a request id replayed to learn another namespace's group");
    const get = (caller: Caller, groupId: string) => outcome(() => authorize(CONTROLLER_ACCESS, "getJobGroup", caller, create(GetJobGroupRequestSchema, { groupId }), scope));
    assert.equal(get(asJob("root"), "group-sibling"), "ok", "any group of its namespace may be read");
    assert.equal(get(asJob("root"), "group-b"), "permission_denied");
    assert.equal(get(worker, "group-child"), "permission_denied");
    const list = (caller: Caller, namespace: string, allNamespaces = false) =>
      outcome(() => authorize(CONTROLLER_ACCESS, "listJobGroups", caller, create(ListJobGroupsRequestSchema, { namespace, allNamespaces }), scope));
    assert.equal(list(asJob("root"), "a"), "ok");
    assert.equal(list(asJob("root"), "b"), "permission_denied");
    assert.equal(list(asJob("root"), "a", true), "permission_denied");
    assert.equal(list(operator, "", true), "ok");
    const terminate = (caller: Caller, groupId: string) => outcome(() => authorize(CONTROLLER_ACCESS, "terminateJobGroup", caller, create(TerminateJobGroupRequestSchema, { groupId }), scope));
    assert.equal(terminate(asJob("root"), "group-child"), "ok", "launched by its child");
    assert.equal(terminate(asJob("child"), "group-child"), "ok");
    assert.equal(terminate(asJob("grandchild"), "group-child"), "permission_denied", "launched by its parent");
    assert.equal(terminate(asJob("root"), "group-sibling"), "permission_denied");
    assert.equal(terminate(asJob("root"), "group-operator"), "permission_denied", "launched by the operator");
    assert.equal(terminate(asJob("root"), "group-b"), "permission_denied");
    assert.equal(terminate(operator, "group-b"), "ok");
  });

  test("a job creates, reads, lists and releases reservations of its own namespace only", () => {
    const createIn = (caller: Caller, namespace: string, requestId = "") =>
      outcome(() => authorize(CONTROLLER_ACCESS, "createReservation", caller, create(CreateReservationRequestSchema, { namespace, requestId }), scope));
    assert.equal(createIn(asJob("root"), ""), "ok", "empty: the job's own namespace");
    assert.equal(createIn(asJob("root"), "a"), "ok");
    assert.equal(createIn(asJob("root"), "b"), "permission_denied");
    assert.equal(createIn(asJob("root"), "a", "req-res-a"), "ok");
    assert.equal(createIn(asJob("root"), "a", "req-res-b"), "permission_denied", "a request id replayed to learn another namespace's reservation");
    assert.equal(createIn(worker, "a"), "permission_denied");
    assert.equal(createIn(operator, "b"), "ok");
    const get = (caller: Caller, reservationId: string) => outcome(() => authorize(CONTROLLER_ACCESS, "getReservation", caller, create(GetReservationRequestSchema, { reservationId }), scope));
    assert.equal(get(asJob("root"), "res-a"), "ok");
    assert.equal(get(asJob("root"), "res-b"), "permission_denied");
    assert.equal(get(asJob("root"), "res-unknown"), "ok", "an unknown one is the handler's not_found");
    const release = (caller: Caller, reservationId: string) => outcome(() => authorize(CONTROLLER_ACCESS, "releaseReservation", caller, create(ReleaseReservationRequestSchema, { reservationId }), scope));
    assert.equal(release(asJob("sibling"), "res-a"), "ok");
    assert.equal(release(asJob("root"), "res-b"), "permission_denied");
    assert.equal(release(operator, "res-b"), "ok");
    assert.equal(release({ kind: "namespace", namespace: "a" }, "res-a"), "permission_denied");
    const list = (caller: Caller, namespace: string, allNamespaces = false) =>
      outcome(() => authorize(CONTROLLER_ACCESS, "listReservations", caller, create(ListReservationsRequestSchema, { namespace, allNamespaces }), scope));
    assert.equal(list(asJob("root"), "a"), "ok");
    assert.equal(list(asJob("root"), "b"), "permission_denied");
    assert.equal(list(asJob("root"), "a", true), "permission_denied");
    assert.equal(list(operator, "", true), "ok");
  });
});
