import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { isGang, validateJobName, validateJobRequest, validateConstraints } from "../../src/core/job.js";
import { validateEnvironment } from "../../src/core/environment.js";
import { validateReservationConfig, validateJobGroupConfig } from "../../src/core/reservation.js";
import { Entrypoint } from "../../src/core/entrypoint.js";
import { ResourceConfig } from "../../src/core/resources.js";
import { ValidationError } from "../../src/core/errors.js";
import { isFinished, isTaskFinished, rollUpJobStatus, JOB_STATUSES } from "../../src/core/status.js";

function throwsValidation(fn: () => unknown, field: string, pattern?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ValidationError, `expected ValidationError, got ${String(err)}`);
    assert.equal(err.field, field);
    assert.equal(err.code, "invalid_argument");
    if (pattern) assert.match(err.message, pattern);
    return true;
  });
}

const command = Entrypoint.fromCommand(["node", "-e", "0"]);

describe("job names", () => {
  test("accepts letters, digits, - _ . in / segments", () => {
    for (const name of ["train", "my-job_1.2", "exp/run-3/step.4", "a".repeat(255)]) assert.equal(validateJobName(name), name);
  });
  test("rejects empty, long and malformed names", () => {
    throwsValidation(() => validateJobName(""), "name", /empty/);
    throwsValidation(() => validateJobName("a".repeat(256)), "name", /255/);
    for (const bad of ["has space", "a//b", "/lead", "trail/", "a/../b", "semi;colon", "ünïcode"]) {
      throwsValidation(() => validateJobName(bad), "name", new RegExp(JSON.stringify(bad).replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
    }
    throwsValidation(() => validateJobName(42), "name", /string/);
  });
});

describe("validateJobRequest", () => {
  test("fills defaults", () => {
    const r = validateJobRequest({ name: "j", resources: { cpu: 2 }, entrypoint: command });
    assert.ok(r.resources instanceof ResourceConfig);
    assert.equal(r.resources.cpu, 2);
    assert.equal(r.maxRetriesFailure, 0);
    assert.equal(r.maxRetriesPreemption, 100);
    assert.equal(r.priority, "interactive");
    assert.deepEqual(r.ports, []);
    assert.deepEqual(r.constraints, []);
    assert.equal(r.timeoutSeconds, undefined);
  });
  test("rejects bad fields by name", () => {
    const base = { name: "j", resources: {}, entrypoint: command };
    throwsValidation(() => validateJobRequest({ ...base, name: "bad name" }), "name");
    throwsValidation(() => validateJobRequest({ ...base, resources: { cpu: -1 } }), "resources.cpu");
    throwsValidation(() => validateJobRequest({ ...base, entrypoint: undefined }), "entrypoint");
    throwsValidation(() => validateJobRequest({ ...base, entrypoint: { kind: "shell" } }), "entrypoint.kind");
    throwsValidation(() => validateJobRequest({ ...base, maxRetriesFailure: -1 }), "maxRetriesFailure");
    throwsValidation(() => validateJobRequest({ ...base, timeoutSeconds: 0 }), "timeoutSeconds");
    throwsValidation(() => validateJobRequest({ ...base, timeoutSeconds: Number.NaN }), "timeoutSeconds");
    throwsValidation(() => validateJobRequest({ ...base, priority: "urgent" }), "priority", /"production"/);
    throwsValidation(() => validateJobRequest({ ...base, ports: ["http", "HTTP"] }), "ports[1]", /repeats/);
    throwsValidation(() => validateJobRequest({ ...base, ports: ["9-bad"] }), "ports[0]");
    throwsValidation(() => validateJobRequest(null), "request");
  });
  test("constraints need the operand their operator takes", () => {
    assert.deepEqual(validateConstraints([{ key: "region", op: "eq", value: "us-east1" }]), [
      { key: "region", op: "eq", value: "us-east1", preferred: false },
    ]);
    assert.equal(validateConstraints([{ key: "zone", op: "in", values: ["a", "b"], preferred: true }])[0]?.preferred, true);
    assert.equal(validateConstraints([{ key: "gpu-mem", op: "ge", value: 40 }])[0]?.value, 40);
    throwsValidation(() => validateConstraints([{ key: "zone", op: "in", values: [] }]), "constraints[0].values");
    throwsValidation(() => validateConstraints([{ key: "mem", op: "gt", value: "big" }]), "constraints[0].value");
    throwsValidation(() => validateConstraints([{ key: "x", op: "like" }]), "constraints[0].op");
    throwsValidation(() => validateConstraints([{ key: "", op: "exists" }]), "constraints[0].key");
  });
});

describe("gangs", () => {
  const request = (resources: ResourceConfig, coscheduled?: boolean) =>
    validateJobRequest({ name: "g", resources, entrypoint: command, ...(coscheduled !== undefined ? { coscheduled } : {}) });
  test("a job is a gang when it asks to be, or when it is a multi-host TPU job", () => {
    assert.equal(isGang(request(ResourceConfig.withCpu({ replicas: 3 }))), false, "replicas alone do not make a gang");
    assert.equal(isGang(request(ResourceConfig.withCpu({ replicas: 3 }), true)), true);
    assert.equal(isGang(request(ResourceConfig.withCpu(), true)), true);
    assert.equal(isGang(request(ResourceConfig.withGpu("H100", 8, { replicas: 2 }))), false);
    assert.equal(isGang(request(ResourceConfig.withTpu("v5litepod-16"))), true, "4 hosts of one slice");
    assert.equal(isGang(request(ResourceConfig.withTpu("v5litepod-8", { sliceCount: 2 }))), true, "two single-host slices");
    assert.equal(isGang(request(ResourceConfig.withTpu("v5litepod-8"))), false, "one host");
  });
});

describe("EnvironmentConfig validation (seed 000 Task 4)", () => {
  test("accepts a valid configuration", () => {
    const env = validateEnvironment({ packages: ["lodash@4", "zod"], envVars: { VAR1: "value1", VAR2: "value2" }, workspace: "/w" });
    assert.equal(env.packages?.length, 2);
    assert.equal(env.envVars?.VAR1, "value1");
  });
  test("rejects empty and non-string package strings", () => {
    throwsValidation(() => validateEnvironment({ packages: ["numpy", "", "pandas"] }), "environment.packages[1]", /empty/);
    throwsValidation(() => validateEnvironment({ packages: ["numpy", 123] }), "environment.packages[1]", /string/);
  });
  test("refuses non-empty extras, which are not supported yet, rather than ignoring them", () => {
    throwsValidation(() => validateEnvironment({ extras: ["tpu"] }), "environment.extras", /are not supported yet.*remove them/);
    assert.deepEqual(validateEnvironment({ extras: [] }).extras, []);
  });
  test("accepts Docker image references and refuses anything else, naming environment.image", () => {
    for (const image of ["node:20", "fluster-node:1100b49f495d4db4", "python", "library/ubuntu:24.04", "registry.example.com:5000/team/app_x-y.z:v1.2", `ghcr.io/org/img@sha256:${"a".repeat(64)}`, "localhost/img:latest"]) {
      assert.equal(validateEnvironment({ image }).image, image);
    }
    for (const image of ["", "Node:20", "-v", "node 20", "node:20 --privileged", "node:", "/abs", "node:@", "a".repeat(600), "img@sha256:xyz"]) {
      throwsValidation(() => validateEnvironment({ image }), "environment.image");
    }
    throwsValidation(() => validateEnvironment({ image: 20 }), "environment.image", /string/);
  });
  test("rejects non-string env values and bad keys", () => {
    throwsValidation(() => validateEnvironment({ envVars: { KEY: 123 } }), "environment.envVars.KEY", /string, got 123/);
    throwsValidation(() => validateEnvironment({ envVars: { "1BAD": "x" } }), "environment.envVars key", /"1BAD"/);
    throwsValidation(() => validateEnvironment({ envVars: new Map([["A", "b"]]) }), "environment.envVars", /Map/);
  });
});

describe("reservations and groups", () => {
  test("minimum greater than maximum is rejected", () => {
    throwsValidation(
      () => validateReservationConfig({ minResources: { cpu: 8 }, maxResources: { cpu: 4 } }),
      "minResources.cpu",
      /exceeds maxResources.cpu/,
    );
    throwsValidation(
      () => validateReservationConfig({ minResources: { memory: "16g" }, maxResources: { memory: "4g" } }),
      "minResources.memory",
    );
  });
  test("defaults and negative quantities", () => {
    const r = validateReservationConfig({ minResources: { cpu: 1 }, maxResources: { cpu: 4 } });
    assert.equal(r.ttlSeconds, 3600);
    assert.equal(r.priority, 0);
    assert.equal(r.preemptible, true);
    throwsValidation(() => validateReservationConfig({ minResources: { memory: -1024 }, maxResources: {} }), "minResources.memory");
  });
  test("group defaults", () => {
    assert.deepEqual({ ...validateJobGroupConfig({ name: "rl" }) }, { name: "rl", sameRegion: true, sameZone: false });
    throwsValidation(() => validateJobGroupConfig({ name: "" }), "group.name");
  });
});

describe("entrypoints", () => {
  test("fromCommand copies and checks argv", () => {
    const argv = ["node", "x.js"];
    const e = Entrypoint.fromCommand(argv);
    argv.push("mutated");
    assert.deepEqual(e.argv, ["node", "x.js"]);
    throwsValidation(() => Entrypoint.fromCommand([]), "entrypoint.argv");
    throwsValidation(() => Entrypoint.fromCommand(["node", 3 as unknown as string]), "entrypoint.argv[1]");
  });
  test("fromFunction refuses a plain function with a hint", () => {
    const plain = ((x: number) => x) as unknown as Parameters<typeof Entrypoint.fromFunction>[0];
    throwsValidation(() => Entrypoint.fromFunction(plain), "entrypoint.fn", /remote\(import\.meta\.url/);
  });
});

describe("status roll-up", () => {
  test("isFinished", () => {
    assert.deepEqual(JOB_STATUSES.filter(isFinished), ["succeeded", "failed", "killed", "unschedulable"]);
    assert.equal(isTaskFinished("worker_failed"), false);
    assert.equal(isTaskFinished("preempted"), false);
    assert.equal(isTaskFinished("killed"), true);
  });
  test("job state from task states", () => {
    assert.equal(rollUpJobStatus([]), "pending");
    assert.equal(rollUpJobStatus(["pending", "assigned"]), "pending");
    assert.equal(rollUpJobStatus(["building", "pending"]), "building");
    assert.equal(rollUpJobStatus(["running", "pending"]), "running");
    assert.equal(rollUpJobStatus(["succeeded", "worker_failed"]), "running");
    assert.equal(rollUpJobStatus(["succeeded", "succeeded"]), "succeeded");
    assert.equal(rollUpJobStatus(["succeeded", "failed"]), "failed");
    assert.equal(rollUpJobStatus(["running", "killed"]), "killed");
    assert.equal(rollUpJobStatus(["failed", "unschedulable"]), "unschedulable");
  });
});
