// parseProcStat reads /proc/<pid>/stat, whose command name may hold spaces
// and parentheses.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { parseProcStat, parseProcUsage, procUnits } from "../../src/core/proc-stat.js";

test("parseProcStat counts fields after the command name's last parenthesis", () => {
  const text = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000000 100 18446744073709551615\n";
  assert.deepEqual(parseProcStat(text), { pid: 4242, ppid: 1, pgid: 4242, state: "S", startTime: "987654" });
  assert.equal(parseProcStat("garbage"), undefined);
  assert.equal(parseProcStat("1 (short) S 0"), undefined, "too few fields for a start time");
});

test("parseProcStat reads this process's own entry", { skip: !existsSync("/proc/self/stat") && "no /proc here" }, () => {
  const stat = parseProcStat(readFileSync(`/proc/${process.pid}/stat`, "utf8"));
  assert.ok(stat);
  assert.equal(stat.pid, process.pid);
  assert.equal(stat.ppid, process.ppid);
  assert.match(stat.state, /^[RS]$/);
  assert.match(stat.startTime, /^\d+$/);
});

test("parseProcUsage reads CPU ticks (user + system) and resident pages", () => {
  const text = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 17 25 0 0 20 0 1 0 987654 1000000 321 18446744073709551615\n";
  assert.deepEqual(parseProcUsage(text), { cpuTicks: 42, residentPages: 321 });
  assert.equal(parseProcUsage("garbage"), undefined);
  assert.equal(parseProcUsage("1 (short) S 0 1 1 0 -1 0 0 0 0 0 5 6"), undefined, "too few fields for the resident size");
});

test("parseProcUsage reads this process's own usage", { skip: !existsSync("/proc/self/stat") && "no /proc here" }, () => {
  const usage = parseProcUsage(readFileSync(`/proc/${process.pid}/stat`, "utf8"));
  assert.ok(usage);
  const { ticksPerSecond, pageBytes } = procUnits();
  assert.ok(ticksPerSecond > 0 && pageBytes > 0);
  // The kernel's count of resident memory and Node's agree within a page or two (other allocations may come between).
  const rss = usage.residentPages * pageBytes;
  assert.ok(rss > 1024 * 1024, `resident ${rss} bytes`);
  assert.ok(Math.abs(rss - process.memoryUsage().rss) < 64 * 1024 * 1024, `/proc says ${rss}, Node ${process.memoryUsage().rss}`);
});
