// Feasibility: constraints (each operator), preemptible workers, regions and zones.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { schedule } from "../../../src/cluster/controller/scheduler/index.js";
import { matchesConstraint } from "../../../src/cluster/controller/scheduler/feasibility.js";
import type { Constraint } from "../../../src/core/job.js";
import { job, placed, worker } from "./fixtures.js";

describe("constraints", () => {
  const w = worker("w", { device: ["gpu", "H100", 8], attributes: { region: "us-east1", rack: "10", slot: "08", name: "abc", "device-type": "stale" } });
  const check = (c: Constraint) => matchesConstraint(w, c);

  test("eq and ne on strings", () => {
    assert.equal(check({ key: "region", op: "eq", value: "us-east1" }), true);
    assert.equal(check({ key: "region", op: "eq", value: "us-west1" }), false);
    assert.equal(check({ key: "region", op: "ne", value: "us-west1" }), true);
    assert.equal(check({ key: "region", op: "ne", value: "us-east1" }), false);
    assert.equal(check({ key: "missing", op: "eq", value: "x" }), false);
    assert.equal(check({ key: "missing", op: "ne", value: "x" }), true, "a worker without the attribute is not equal");
  });

  test("eq and ne with a number compare numerically when the attribute is a number", () => {
    assert.equal(check({ key: "slot", op: "eq", value: 8 }), true);
    assert.equal(check({ key: "slot", op: "eq", value: "8" }), false, "a string operand compares as text");
    assert.equal(check({ key: "slot", op: "ne", value: 8 }), false);
    assert.equal(check({ key: "name", op: "eq", value: 8 }), false);
    assert.equal(check({ key: "name", op: "ne", value: 8 }), true);
  });

  test("exists, not_exists, in", () => {
    assert.equal(check({ key: "rack", op: "exists" }), true);
    assert.equal(check({ key: "missing", op: "exists" }), false);
    assert.equal(check({ key: "missing", op: "not_exists" }), true);
    assert.equal(check({ key: "rack", op: "not_exists" }), false);
    assert.equal(check({ key: "region", op: "in", values: ["us-west1", "us-east1"] }), true);
    assert.equal(check({ key: "region", op: "in", values: ["us-west1"] }), false);
    assert.equal(check({ key: "missing", op: "in", values: ["x"] }), false);
  });

  test("gt, ge, lt, le compare as numbers, and a non-number never matches", () => {
    // As text "10" < "9"; as numbers it is larger.
    assert.equal(check({ key: "rack", op: "gt", value: 9 }), true);
    assert.equal(check({ key: "rack", op: "gt", value: 10 }), false);
    assert.equal(check({ key: "rack", op: "ge", value: 10 }), true);
    assert.equal(check({ key: "rack", op: "lt", value: 11 }), true);
    assert.equal(check({ key: "rack", op: "lt", value: 10 }), false);
    assert.equal(check({ key: "rack", op: "le", value: 10 }), true);
    assert.equal(check({ key: "rack", op: "le", value: 9.5 }), false);
    for (const op of ["gt", "ge", "lt", "le"] as const) {
      assert.equal(check({ key: "name", op, value: 0 }), false, `${op} on a non-number`);
      assert.equal(check({ key: "missing", op, value: 0 }), false, `${op} on a missing attribute`);
    }
  });

  test("device-type and device-variant come from the worker's capacity", () => {
    assert.equal(check({ key: "device-type", op: "eq", value: "gpu" }), true);
    assert.equal(check({ key: "device-variant", op: "eq", value: "H100" }), true);
    assert.equal(matchesConstraint(worker("plain"), { key: "device-type", op: "eq", value: "cpu" }), true);
    assert.equal(matchesConstraint(worker("plain"), { key: "device-variant", op: "not_exists" }), true);
  });

  test("required constraints filter, with the constraint named when none matches", () => {
    const workers = [worker("w1", { attributes: { region: "us-west1" } }), worker("w2", { attributes: { region: "us-east1" } })];
    const ok = schedule([job("a", { constraints: [{ key: "region", op: "eq", value: "us-east1" }] })], workers);
    assert.deepEqual(placed(ok.placements), ["a/0@w2"]);
    const none = schedule([job("b", { constraints: [{ key: "region", op: "eq", value: "eu-west4" }] })], workers);
    assert.equal(none.neverFits.get("b"), "no worker matches constraint region eq eu-west4");
    const inList = schedule([job("c", { constraints: [{ key: "rack", op: "in", values: ["1", "2"] }] })], workers);
    assert.equal(inList.neverFits.get("c"), "no worker matches constraint rack in [1, 2]");
  });

  test("reasons say 'matching worker' once constraints narrowed the choice", () => {
    const workers = [worker("w1", { cpu: 2, attributes: { region: "us-east1" } }), worker("w2", { cpu: 64 })];
    const result = schedule([job("a", { cpu: 4, constraints: [{ key: "region", op: "eq", value: "us-east1" }] })], workers);
    assert.equal(result.neverFits.get("a"), "insufficient cpu: wants 4, largest matching worker has 2");
  });

  test("preferred constraints rank: more satisfied first, then the usual order", () => {
    const workers = [
      worker("none", { attributes: {} }),
      worker("one", { attributes: { ssd: "true" } }),
      worker("two", { cpu: 2, attributes: { ssd: "true", zone: "a" } }),
    ];
    const constraints: Constraint[] = [
      { key: "ssd", op: "eq", value: "true", preferred: true },
      { key: "zone", op: "eq", value: "a", preferred: true },
    ];
    const jobs = [1, 2, 3, 4].map((i) => job(`j${i}`, { cpu: 2, constraints }));
    const result = schedule(jobs, workers);
    assert.deepEqual(placed(result.placements), ["j1/0@two", "j2/0@one", "j3/0@one", "j4/0@one"]);
    // A preferred constraint that no worker meets does not block placement.
    const unmet = schedule([job("x", { constraints: [{ key: "gpu", op: "exists", preferred: true }] })], workers);
    assert.equal(unmet.placements.length, 1);
  });
});

describe("preemptible, regions and zones", () => {
  test("a non-preemptible job never goes on a preemptible worker", () => {
    const workers = [worker("spot", { attributes: { preemptible: "true" } })];
    const strict = schedule([job("a")], workers);
    assert.equal(strict.neverFits.get("a"), "every worker is preemptible and the job does not accept preemptible workers");
    const relaxed = schedule([job("b", { preemptible: true })], workers);
    assert.deepEqual(placed(relaxed.placements), ["b/0@spot"]);
    const both = schedule([job("c")], [...workers, worker("steady", { attributes: { preemptible: "false" } })]);
    assert.deepEqual(placed(both.placements), ["c/0@steady"]);
  });

  test("regions and zone filter by the region and zone attributes", () => {
    const workers = [
      worker("e", { attributes: { region: "us-east1", zone: "us-east1-b" } }),
      worker("w", { attributes: { region: "us-west1", zone: "us-west1-a" } }),
    ];
    assert.deepEqual(placed(schedule([job("a", { regions: ["eu-west4", "us-west1"] })], workers).placements), ["a/0@w"]);
    assert.deepEqual(placed(schedule([job("b", { zone: "us-east1-b" })], workers).placements), ["b/0@e"]);
    assert.equal(schedule([job("c", { regions: ["eu-west4"] })], workers).neverFits.get("c"), "no worker in region eu-west4");
    assert.equal(schedule([job("d", { regions: ["x", "y"] })], workers).neverFits.get("d"), "no worker in regions x, y");
    assert.equal(schedule([job("e", { zone: "us-east1-c" })], workers).neverFits.get("e"), "no worker in zone us-east1-c");
    const gpuJob = job("f", { regions: ["us-east1"], deviceType: "gpu", deviceVariant: "H100", deviceCount: 1 });
    const gpus = [worker("g", { device: ["gpu", "H100", 8], attributes: { region: "us-west1" } })];
    assert.equal(schedule([gpuJob], gpus).neverFits.get("f"), "no gpu H100 worker in region us-east1");
  });
});
