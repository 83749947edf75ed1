// The hand-written baseline for the Zephyr map+filter benchmark: one Node
// process, no Fluster. Each input file in turn is streamed through gunzip,
// split into lines, parsed, mapped to `{ ...doc, n }` (n = words in text),
// filtered to n > 10, serialised, gzipped and written to part-NNNNN.jsonl.gz.
//   node bench/servers/handwritten-filter.mjs <outDir> <inputFiles...>
// Prints one JSON line: {"records": ..., "kept": ..., "seconds": ...}.
import { createReadStream, createWriteStream, mkdirSync } from "node:fs";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { StringDecoder } from "node:string_decoder";
import { createGunzip, createGzip } from "node:zlib";

const [outDir, ...inputs] = process.argv.slice(2);
if (!outDir || inputs.length === 0) {
  console.error("usage: node handwritten-filter.mjs <outDir> <inputFiles...>");
  process.exit(2);
}

let records = 0;
let kept = 0;

/** Parses, maps and filters one line; returns its output line (with "\n") or "" when dropped. */
function transformLine(line) {
  if (line.length === 0) return "";
  const doc = JSON.parse(line);
  records++;
  const n = doc.text.split(" ").length;
  if (n <= 10) return "";
  kept++;
  return JSON.stringify({ ...doc, n }) + "\n";
}

/** Decoded text chunks in, one output string per chunk out: lines split with indexOf, no readline. */
async function* filterLines(source) {
  const decoder = new StringDecoder("utf8");
  let carry = "";
  for await (const chunk of source) {
    const text = decoder.write(chunk);
    let nl = text.indexOf("\n");
    if (nl === -1) {
      carry += text;
      continue;
    }
    let out = transformLine(carry + text.slice(0, nl));
    let start = nl + 1;
    while ((nl = text.indexOf("\n", start)) !== -1) {
      out += transformLine(text.slice(start, nl));
      start = nl + 1;
    }
    carry = text.slice(start);
    if (out.length > 0) yield out;
  }
  const last = transformLine(carry + decoder.end());
  if (last.length > 0) yield last;
}

const started = performance.now();
mkdirSync(outDir, { recursive: true });
for (let i = 0; i < inputs.length; i++) {
  await pipeline(
    createReadStream(inputs[i], { highWaterMark: 256 * 1024 }),
    createGunzip({ chunkSize: 128 * 1024 }),
    filterLines,
    createGzip(),
    createWriteStream(join(outDir, `part-${String(i).padStart(5, "0")}.jsonl.gz`)),
  );
}
const seconds = (performance.now() - started) / 1000;
console.log(JSON.stringify({ records, kept, seconds }));
