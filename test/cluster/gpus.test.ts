// GPU indexes per attempt on a worker, and the CUDA_VISIBLE_DEVICES they make.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { assignGpus, cudaVisibleDevices } from "../../src/cluster/worker/gpus.js";

describe("GPU assignment", () => {
  test("lowest free indexes first; none when too few are free", () => {
    assert.deepEqual(assignGpus(2, [], 1), [0]);
    assert.deepEqual(assignGpus(2, [[0]], 1), [1]);
    assert.equal(assignGpus(2, [[0], [1]], 1), undefined);
    assert.deepEqual(assignGpus(8, [[0, 1], [4]], 3), [2, 3, 5]);
    assert.equal(assignGpus(8, [[0, 1, 2, 3, 4, 5]], 3), undefined);
  });

  test("CUDA_VISIBLE_DEVICES names the indexes, through the daemon's own list when it has one", () => {
    assert.equal(cudaVisibleDevices([0, 1], undefined), "0,1");
    assert.equal(cudaVisibleDevices([], undefined), "");
    assert.equal(cudaVisibleDevices([1], "2,3"), "3");
    assert.equal(cudaVisibleDevices([0, 1], "GPU-aaa, GPU-bbb"), "GPU-aaa,GPU-bbb");
  });
});
