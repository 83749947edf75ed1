#!/usr/bin/env node
// Runs the test suite with node's built-in runner (through tsx) and fails when
// no test ran, so a broken glob can never pass as a green run. Tests import
// src/ directly, but the `fluster` bin, the examples and the package test run
// the built dist/, so it is rebuilt first when src/ changed (instant otherwise).
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { buildIfStale } from "./build.mjs";

const root = fileURLToPath(new URL("..", import.meta.url));
const args = process.argv.slice(2);
const files = args.length > 0 ? args : findTests(join(root, "test"));
if (files.length === 0) {
  console.error("run-tests: no test files found under test/");
  process.exit(1);
}

try {
  buildIfStale({ log: (line) => console.error(`run-tests: ${line}`) });
} catch (err) {
  console.error(`run-tests: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}

const slots = mkdtempSync(join(tmpdir(), "fluster-test-slots-"));
const child = spawn(
  process.execPath,
  ["--import", "tsx", "--import", pathToFileURL(join(root, "scripts", "test-slot.mjs")).href, "--test", "--test-reporter=spec", `--test-concurrency=${concurrency()}`, ...files],
  { cwd: root, stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, FLUSTER_TEST_SLOT_DIR: slots } },
);
let tail = "";
child.stdout.on("data", (chunk) => {
  process.stdout.write(chunk);
  tail = (tail + chunk.toString()).slice(-4096);
});
child.on("close", (code, signal) => {
  rmSync(slots, { recursive: true, force: true });
  const match = /(?:ℹ|#) tests (\d+)/.exec(tail);
  const count = match ? Number(match[1]) : 0;
  if (code === 0 && count === 0) {
    console.error("run-tests: the runner reported zero tests; failing the run");
    process.exit(1);
  }
  process.exit(code ?? (signal ? 1 : 0));
});

/**
 * Test files run two at a time (FLUSTER_TEST_CONCURRENCY to change it): most
 * of a file's time is spent waiting on processes, sockets and timers, so two
 * files share a 2-core machine well; every test makes its own ports,
 * directories, namespaces and containers, so files never see each other.
 * Files that time faults against the clock run alone (scripts/test-slot.mjs).
 */
function concurrency() {
  const given = process.env.FLUSTER_TEST_CONCURRENCY;
  if (given === undefined || given === "") return 2;
  const n = Number(given);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`run-tests: FLUSTER_TEST_CONCURRENCY must be a positive integer, got ${JSON.stringify(given)}`);
    process.exit(1);
  }
  return n;
}

function findTests(dir) {
  return readdirSync(dir, { recursive: true })
    .map(String)
    .filter((f) => /\.test\.ts$/.test(f))
    .sort()
    .map((f) => relative(root, join(dir, f)));
}
