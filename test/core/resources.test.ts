import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ResourceConfig, checkResourceRange } from "../../src/core/resources.js";
import { TPU_TOPOLOGIES, tpuTopology } from "../../src/core/tpu.js";
import { formatByteSize, parseByteSize } from "../../src/core/quantity.js";
import { ValidationError } from "../../src/core/errors.js";

function throwsValidation(fn: () => unknown, field: string, pattern?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ValidationError, `expected ValidationError, got ${String(err)}`);
    assert.equal(err.field, field);
    assert.ok(err.message.startsWith(field), `message should name ${field}: ${err.message}`);
    if (pattern) assert.match(err.message, pattern);
    return true;
  });
}

describe("byte sizes", () => {
  test("accepts units in any case, with optional b/i/ib suffixes", () => {
    assert.equal(parseByteSize("512m", "m"), 512 * 1024 ** 2);
    assert.equal(parseByteSize("8g", "m"), 8 * 1024 ** 3);
    assert.equal(parseByteSize("2GB", "m"), 2 * 1024 ** 3);
    assert.equal(parseByteSize("8Gi", "m"), 8 * 1024 ** 3);
    assert.equal(parseByteSize("512MiB", "m"), 512 * 1024 ** 2);
    assert.equal(parseByteSize("1.5k", "m"), 1536);
    assert.equal(parseByteSize("100", "m"), 100);
    assert.equal(parseByteSize(4096, "m"), 4096);
  });
  test("rejects bad sizes naming the field and value", () => {
    throwsValidation(() => parseByteSize("8 parsecs", "resources.memory"), "resources.memory", /"8 parsecs"/);
    throwsValidation(() => parseByteSize(-1, "resources.disk"), "resources.disk", /-1/);
    throwsValidation(() => parseByteSize(Number.NaN, "resources.disk"), "resources.disk", /NaN/);
    throwsValidation(() => parseByteSize(1.5, "resources.disk"), "resources.disk");
    throwsValidation(() => parseByteSize("", "resources.disk"), "resources.disk");
  });
  test("formats compactly", () => {
    assert.equal(formatByteSize(8 * 1024 ** 3), "8g");
    assert.equal(formatByteSize(1536), "1.5k");
    assert.equal(formatByteSize(12), "12b");
  });
});

describe("TPU topology table", () => {
  test("has every generation, with consistent chip and host counts", () => {
    const generations = new Set(TPU_TOPOLOGIES.map((t) => t.generation));
    assert.deepEqual([...generations].sort(), ["v4", "v5litepod", "v5p", "v6e"]);
    for (const t of TPU_TOPOLOGIES) {
      assert.equal(t.hostCount * t.chipsPerHost, t.chipCount, t.variant);
      const dims = t.topology.split("x").map(Number);
      assert.equal(dims.reduce((a, b) => a * b, 1), t.chipCount, `${t.variant} topology ${t.topology}`);
      const size = Number(t.variant.split("-")[1]);
      const coresPerChip = t.generation === "v4" || t.generation === "v5p" ? 2 : 1;
      assert.equal(size, t.chipCount * coresPerChip, `${t.variant} name counts ${coresPerChip === 2 ? "cores" : "chips"}`);
    }
    assert.equal(new Set(TPU_TOPOLOGIES.map((t) => t.variant)).size, TPU_TOPOLOGIES.length, "variants are unique");
  });
  test("known shapes", () => {
    assert.deepEqual(
      { ...tpuTopology("v4-8") },
      { variant: "v4-8", generation: "v4", chipCount: 4, hostCount: 1, chipsPerHost: 4, topology: "2x2x1" },
    );
    assert.equal(tpuTopology("v5litepod-16").hostCount, 4);
    assert.equal(tpuTopology("v5litepod-8").hostCount, 1);
    assert.equal(tpuTopology("v5p-128").chipCount, 64);
    assert.equal(tpuTopology("v6e-256").topology, "16x16");
    for (const v of ["v4-4096", "v5litepod-1", "v5litepod-256", "v5p-8", "v5p-12288", "v6e-1", "v6e-64"]) tpuTopology(v);
  });
  test("unknown variants list the generation's valid ones", () => {
    throwsValidation(() => tpuTopology("v5litepod-3"), "tpu variant", /v5litepod-4/);
    throwsValidation(() => tpuTopology("v9-8"), "tpu variant", /known generations/);
  });
});

describe("ResourceConfig", () => {
  test("defaults", () => {
    const r = new ResourceConfig();
    assert.equal(r.cpu, 1);
    assert.equal(r.memory, 1024 ** 3);
    assert.equal(r.disk, 0);
    assert.deepEqual(r.device, { kind: "cpu" });
    assert.equal(r.replicas, 1);
    assert.equal(r.preemptible, false);
    assert.equal(r.chipCount(), 0);
    assert.equal(r.vmCount(), 1);
    assert.ok(Object.isFrozen(r));
  });
  test("withCpu parses memory and disk strings", () => {
    const r = ResourceConfig.withCpu({ cpu: 4, memory: "8g", disk: "2GB" });
    assert.equal(r.cpu, 4);
    assert.equal(r.memory, 8 * 1024 ** 3);
    assert.equal(r.disk, 2 * 1024 ** 3);
  });
  test("withGpu", () => {
    const r = ResourceConfig.withGpu("H100", 8, { replicas: 2 });
    assert.deepEqual(r.device, { kind: "gpu", variant: "H100", count: 8 });
    assert.equal(r.chipsPerTask(), 8);
    assert.equal(r.chipCount(), 16);
    assert.equal(r.vmCount(), 2);
    assert.equal(ResourceConfig.withGpu().device.kind, "gpu");
    assert.deepEqual(ResourceConfig.withGpu().device, { kind: "gpu", variant: "auto", count: 1 });
  });
  test("withTpu: one task per host of every slice", () => {
    const r = ResourceConfig.withTpu("v5litepod-16");
    assert.deepEqual(r.device, { kind: "tpu", variant: "v5litepod-16", topology: "4x4", sliceCount: 1 });
    assert.equal(r.replicas, 4);
    assert.equal(r.vmCount(), 4);
    assert.equal(r.chipCount(), 16);
    const multi = ResourceConfig.withTpu("v4-32", { sliceCount: 2 });
    assert.equal(multi.vmCount(), 8);
    assert.equal(multi.chipCount(), 32);
    const single = ResourceConfig.withTpu("v6e-8");
    assert.equal(single.vmCount(), 1);
    assert.equal(single.chipCount(), 8);
  });
  test("rejects negative, NaN and malformed values naming the field", () => {
    throwsValidation(() => new ResourceConfig({ cpu: -1 }), "resources.cpu", /-1/);
    throwsValidation(() => new ResourceConfig({ cpu: Number.NaN }), "resources.cpu", /NaN/);
    throwsValidation(() => new ResourceConfig({ memory: "lots" }), "resources.memory", /"lots"/);
    throwsValidation(() => new ResourceConfig({ replicas: 0 }), "resources.replicas", /0/);
    throwsValidation(() => new ResourceConfig({ replicas: 1.5 }), "resources.replicas");
    throwsValidation(() => ResourceConfig.withGpu("H100", 0), "resources.device.count");
    throwsValidation(() => ResourceConfig.withTpu("v5litepod-17"), "resources.device.variant", /v5litepod-16/);
    throwsValidation(() => ResourceConfig.withTpu("v4-8", { sliceCount: 0 }), "resources.device.sliceCount");
    throwsValidation(() => new ResourceConfig({ device: ResourceConfig.withTpu("v4-16").device, replicas: 3 }), "resources.replicas", /2/);
    throwsValidation(() => new ResourceConfig({ regions: ["us-east1", ""] }), "resources.regions[1]");
  });
  test("with() copies and validates again", () => {
    const r = ResourceConfig.withCpu({ cpu: 2 }).with({ memory: "4g" });
    assert.equal(r.cpu, 2);
    assert.equal(r.memory, 4 * 1024 ** 3);
    throwsValidation(() => r.with({ cpu: -3 }), "resources.cpu");
  });
  test("checkResourceRange rejects minimum > maximum", () => {
    const lo = ResourceConfig.withCpu({ cpu: 8 });
    const hi = ResourceConfig.withCpu({ cpu: 4 });
    throwsValidation(() => checkResourceRange(lo, hi, "minResources", "maxResources"), "minResources.cpu", /exceeds maxResources.cpu/);
    checkResourceRange(hi, lo, "minResources", "maxResources");
  });
});
