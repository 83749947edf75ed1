// A worker that refuses RunTask ("no room") is asked again after a backoff
// that doubles per refusal in a row, capped at 30 s, with jitter so that
// tasks refused together are not offered again in the same instant.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { refusalBackoffMs } from "../../../src/cluster/controller/workers.js";

describe("refusalBackoffMs", () => {
  test("1 s doubling per refusal in a row up to 30 s, less up to a fifth at random", () => {
    const none = () => 0;
    const most = () => 1;
    assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 20].map((n) => refusalBackoffMs(n, none)), [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]);
    assert.deepEqual([1, 2, 6].map((n) => refusalBackoffMs(n, most)), [800, 1_600, 24_000]);
  });

  test("many tasks refused together spread out instead of coming back in step", () => {
    const delays = new Set(Array.from({ length: 50 }, () => refusalBackoffMs(3)));
    assert.ok(delays.size > 10, `50 refusals gave only ${delays.size} distinct delays`);
    for (const d of delays) assert.ok(d >= 3_200 && d <= 4_000, `${d} within [3.2 s, 4 s]`);
  });
});
