#!/usr/bin/env node
// Runs the test suite with node's built-in runner (through tsx) and fails when
// no test ran, so a broken glob can never pass as a green run. Tests import
// src/ directly, but the `fluster` bin, the examples and the package test run
// the built dist/, so it is rebuilt first when src/ changed (instant otherwise).
import { spawn } from "node:child_process";
import { readdirSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
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

const child = spawn(
  process.execPath,
  ["--import", "tsx", "--test", "--test-reporter=spec", ...files],
  { cwd: root, stdio: ["ignore", "pipe", "inherit"] },
);
let tail = "";
child.stdout.on("data", (chunk) => {
  process.stdout.write(chunk);
  tail = (tail + chunk.toString()).slice(-4096);
});
child.on("close", (code, signal) => {
  const match = /(?:ℹ|#) tests (\d+)/.exec(tail);
  const count = match ? Number(match[1]) : 0;
  if (code === 0 && count === 0) {
    console.error("run-tests: the runner reported zero tests; failing the run");
    process.exit(1);
  }
  process.exit(code ?? (signal ? 1 : 0));
});

function findTests(dir) {
  return readdirSync(dir, { recursive: true })
    .map(String)
    .filter((f) => /\.test\.ts$/.test(f))
    .sort()
    .map((f) => relative(root, join(dir, f)));
}
