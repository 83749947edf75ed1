// Reference points for bench/zephyr.bench.ts: the hand-written script
// (handwritten-filter.mjs) run N times side by side, the input files dealt
// round-robin, either on N worker threads of one process or as N processes.
// They show what parallel Node can do on this machine without Fluster.
//   node bench/servers/handwritten-parallel.mjs <threads|processes> <n> <outDir> <inputFiles...>
// Prints one JSON line: {"records": ..., "kept": ..., "seconds": ...}.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";

const SCRIPT = fileURLToPath(new URL("./handwritten-filter.mjs", import.meta.url));
const [mode, countText, outDir, ...inputs] = process.argv.slice(2);
const count = Number(countText);
if ((mode !== "threads" && mode !== "processes") || !(count >= 1) || !outDir || inputs.length === 0) {
  console.error("usage: node handwritten-parallel.mjs <threads|processes> <n> <outDir> <inputFiles...>");
  process.exit(2);
}

/** Runs the script on one share of the files; resolves with its JSON result line. */
function runOne(index, files) {
  const argv = [join(outDir, `part-${index}`), ...files];
  return new Promise((resolve, reject) => {
    let out = "";
    const collect = (chunk) => (out += chunk.toString());
    const done = (code) => (code === 0 ? resolve(JSON.parse(out.trim().split("\n").pop())) : reject(new Error(`share ${index} exited with ${code}`)));
    if (mode === "threads") {
      const worker = new Worker(SCRIPT, { argv, stdout: true });
      worker.stdout.on("data", collect);
      worker.on("error", reject);
      worker.on("exit", done);
    } else {
      const child = spawn(process.execPath, [SCRIPT, ...argv], { stdio: ["ignore", "pipe", "inherit"] });
      child.stdout.on("data", collect);
      child.on("error", reject);
      child.on("exit", done);
    }
  });
}

const started = performance.now();
const shares = Array.from({ length: count }, (_, i) => inputs.filter((_, f) => f % count === i));
const results = await Promise.all(shares.filter((files) => files.length > 0).map((files, i) => runOne(i, files)));
const seconds = (performance.now() - started) / 1000;
const sum = (key) => results.reduce((total, r) => total + r[key], 0);
console.log(JSON.stringify({ records: sum("records"), kept: sum("kept"), seconds }));
