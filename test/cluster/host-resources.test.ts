// Host resource detection: GPU name mapping, TPU from the environment, and
// detection on this (GPU-less) machine and through a fake nvidia-smi.
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { ValidationError } from "../../src/core/errors.js";
import { detectHostResources, detectTpu, gpuVariantFromName, parseGpuList } from "../../src/cluster/worker/host-resources.js";

const root = mkdtempSync(join(tmpdir(), "fluster-host-"));
after(() => rmSync(root, { recursive: true, force: true }));

/**
 * A FAKE of the external `nvidia-smi` binary (no GPU on the machines that run
 * these tests): a shell script running `script`, in a fresh directory that the
 * test puts first on PATH. Returns that directory.
 */
function fakeNvidiaSmi(name: string, script: string): string {
  const binDir = mkdtempSync(join(root, `${name}-bin-`));
  const path = join(binDir, "nvidia-smi");
  writeFileSync(path, `#!/bin/sh\n# FAKE nvidia-smi for tests\n${script}\n`);
  chmodSync(path, 0o755);
  return binDir;
}

describe("gpuVariantFromName", () => {
  test("maps nvidia-smi model names to short variants", () => {
    assert.equal(gpuVariantFromName("NVIDIA H100 80GB HBM3"), "H100");
    assert.equal(gpuVariantFromName("NVIDIA A100-SXM4-40GB"), "A100");
    assert.equal(gpuVariantFromName("Tesla V100-SXM2-16GB"), "V100");
    assert.equal(gpuVariantFromName("NVIDIA L4"), "L4");
    assert.equal(gpuVariantFromName("NVIDIA A10G"), "A10G");
    assert.equal(gpuVariantFromName("Tesla T4"), "T4");
    assert.equal(gpuVariantFromName("NVIDIA GH200 480GB"), "GH200");
    assert.equal(gpuVariantFromName("NVIDIA GeForce RTX 4090"), "RTX4090");
    assert.equal(gpuVariantFromName("  NVIDIA H200  \r"), "H200");
  });

  test("parseGpuList counts GPUs and reports the most common model", () => {
    assert.deepEqual(parseGpuList("NVIDIA H100 80GB HBM3\nNVIDIA H100 80GB HBM3\n"), { variant: "H100", count: 2 });
    assert.deepEqual(parseGpuList("NVIDIA L4\nNVIDIA A100-SXM4-40GB\nNVIDIA A100-SXM4-80GB\n"), { variant: "A100", count: 2 });
    assert.equal(parseGpuList("\n"), undefined);
  });
});

describe("detectTpu", () => {
  test("reads the slice type and the chips on this host from the environment", () => {
    assert.equal(detectTpu({}), undefined);
    assert.deepEqual(detectTpu({ TPU_ACCELERATOR_TYPE: "v5litepod-16" }), { variant: "v5litepod-16", chips: 4 });
    assert.deepEqual(detectTpu({ TPU_ACCELERATOR_TYPE: "v5litepod-8" }), { variant: "v5litepod-8", chips: 8 });
    assert.deepEqual(detectTpu({ TPU_ACCELERATOR_TYPE: "v4-8" }), { variant: "v4-8", chips: 4 });
    assert.deepEqual(detectTpu({ TPU_ACCELERATOR_TYPE: "v6e-64", TPU_CHIPS_PER_HOST_BOUNDS: "2,2,1" }), { variant: "v6e-64", chips: 4 });
    assert.deepEqual(detectTpu({ TPU_ACCELERATOR_TYPE: "v9z-1", TPU_CHIPS_PER_HOST_BOUNDS: "1,1,1" }), { variant: "v9z-1", chips: 1 });
    assert.equal(detectTpu({ TPU_ACCELERATOR_TYPE: "v9z-1" }), undefined, "an unknown type without bounds is not reported");
  });
});

describe("detectHostResources", () => {
  test("detects this machine: CPUs, memory and disk, and no GPU", async () => {
    const host = await detectHostResources({ workDir: root, env: { PATH: "/usr/bin:/bin" } });
    assert.ok(Number.isInteger(host.cpu) && host.cpu >= 1);
    assert.ok(host.memory > 0);
    assert.ok(host.disk > 0);
    assert.equal(host.gpus, undefined);
    assert.equal(host.tpu, undefined);
  });

  test("the CLI's --cpu and --memory override detection; bad overrides are rejected", async () => {
    const host = await detectHostResources({ workDir: join(root, "not", "created", "yet"), cpu: 3, memory: 2 ** 30 });
    assert.equal(host.cpu, 3);
    assert.equal(host.memory, 2 ** 30);
    assert.ok(host.disk > 0, "a work dir that does not exist yet is measured on its nearest ancestor");
    await assert.rejects(detectHostResources({ cpu: -1 }), (err: unknown) => err instanceof ValidationError && err.message === "cpu must be a positive number, got -1");
    await assert.rejects(detectHostResources({ memory: 1.5 }), /memory must be a positive number of bytes, got 1.5/);
  });

  test("finds GPUs through nvidia-smi (a fake one, first on PATH)", async () => {
    const bin = fakeNvidiaSmi("two-h100", 'echo "NVIDIA H100 80GB HBM3"\necho "NVIDIA H100 80GB HBM3"');
    const host = await detectHostResources({ workDir: root, env: { PATH: `${bin}:${process.env.PATH ?? ""}` } });
    assert.deepEqual(host.gpus, { variant: "H100", count: 2 });
  });

  test("device overrides stand for the machine's accelerators: nvidia-smi and the TPU variables are not read", async () => {
    const bin = fakeNvidiaSmi("override-h100", 'echo "NVIDIA H100 80GB HBM3"');
    const env = { PATH: `${bin}:/usr/bin:/bin`, TPU_ACCELERATOR_TYPE: "v4-8" };
    const gpu = await detectHostResources({ workDir: root, env, gpus: { variant: "L4", count: 2 } });
    assert.deepEqual([gpu.gpus, gpu.tpu], [{ variant: "L4", count: 2 }, undefined]);
    const tpu = await detectHostResources({ workDir: root, env, tpu: { variant: "v5litepod-16", chips: 4 } });
    assert.deepEqual([tpu.gpus, tpu.tpu], [undefined, { variant: "v5litepod-16", chips: 4 }]);
  });

  test("a failing or hanging nvidia-smi means no GPU, within the probe timeout", async () => {
    const failing = fakeNvidiaSmi("failing", 'echo "NVIDIA-SMI has failed" >&2; exit 9');
    assert.equal((await detectHostResources({ workDir: root, env: { PATH: `${failing}:/usr/bin:/bin` } })).gpus, undefined);
    const hanging = fakeNvidiaSmi("hanging", "exec sleep 30");
    const started = Date.now();
    const host = await detectHostResources({ workDir: root, env: { PATH: `${hanging}:/usr/bin:/bin` }, gpuProbeTimeoutMs: 300 });
    assert.equal(host.gpus, undefined);
    assert.ok(Date.now() - started < 2000);
  });
});
