// The TypeScript blocks of the README files, as a reader sees them, and how
// each one is tried. A block is known by its file, the heading it sits under
// and its place among that heading's TypeScript blocks:
// "README.md › Actors: typed RPC to objects, found by name #1".
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { REPO_ROOT } from "../helpers/index.js";

/** The Markdown files whose TypeScript blocks are tested. */
export const DOCUMENTS = [
  "README.md",
  "examples/training/README.md",
  "examples/inference/README.md",
  "examples/rl/README.md",
  "examples/multislice/README.md",
  "examples/pipeline/README.md",
];

/** One fenced TypeScript block of a document. */
export interface Snippet {
  key: string;
  document: string;
  /** The line of its opening fence, 1-based. */
  line: number;
  code: string;
}

/** Every ```ts / ```typescript block of `document` (a path relative to the repository root). */
export function snippetsOf(document: string): Snippet[] {
  const lines = readFileSync(join(REPO_ROOT, document), "utf8").split("\n");
  const snippets: Snippet[] = [];
  let heading = "(top)";
  let countUnderHeading = 0;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    const title = /^#{1,6}\s+(.*)$/.exec(line);
    if (title) {
      heading = (title[1] as string).trim();
      countUnderHeading = 0;
      continue;
    }
    const fence = /^(`{3,})\s*(\w*)/.exec(line);
    if (!fence) continue;
    const close = lines.findIndex((l, j) => j > i && l.startsWith(fence[1] as string));
    if (close < 0) throw new Error(`${document}:${i + 1}: a code block is never closed`);
    if (fence[2] === "ts" || fence[2] === "typescript") {
      countUnderHeading++;
      snippets.push({ key: `${document} › ${heading} #${countUnderHeading}`, document, line: i + 1, code: `${lines.slice(i + 1, close).join("\n")}\n` });
    }
    i = close;
  }
  return snippets;
}

/**
 * How a snippet is tried. Each is exactly one of:
 * - a program: saved as `saveAs` in an empty npm project (with `fluster` and
 *   `tsx` installed, `"type": "module"`), beside the snippets it imports
 *   (`with`), and run with `node --import tsx <saveAs>`: it must exit 0 within
 *   the time limit, print what `prints` says, and leave no process and no
 *   temporary directory behind;
 * - a module: saved beside a program that lists it in `with` (it must be
 *   listed by one);
 * - an excerpt: its text appears verbatim in a file of the repository, which
 *   a test runs (the examples).
 * Every project is also type-checked with `tsc --strict`.
 */
export type SnippetPlan =
  | { kind: "program"; saveAs: string; with?: string[]; setup?: (dir: string) => void; prints: RegExp[]; timeoutMs?: number }
  | { kind: "module"; saveAs: string }
  | { kind: "excerpt"; of: string };

/**
 * The declared fill-ins: every TypeScript block of {@link DOCUMENTS} has an
 * entry here. Nothing is added to a block's text; what a reader would bring
 * (data files) comes from `setup`.
 */
export const PLANS: Record<string, SnippetPlan> = {
  "README.md › Jobs from a program #1": {
    kind: "program",
    saveAs: "main.ts",
    with: ["README.md › Remote functions: code travels by reference #1"],
    prints: [/^square: succeeded$/m, /^\[ 49 \]$/m],
  },
  "README.md › Job groups, reservations, gangs and preemption #1": {
    kind: "program",
    saveAs: "groups.ts",
    with: ["README.md › Remote functions: code travels by reference #1"],
    prints: [/^\[ 9 \]\n\[ 16, 16 \]\nactive$/m],
  },
  "README.md › Describe a job #1": { kind: "program", saveAs: "describe.ts", prints: [/^16$/m] },
  "README.md › Remote functions: code travels by reference #1": { kind: "program", saveAs: "tasks.ts", prints: [/^49$/m] },
  "README.md › Actors: typed RPC to objects, found by name #1": {
    kind: "program",
    saveAs: "actors.ts",
    prints: [/^sum: 5$/m, /^broadcast: 1 of 1 fulfilled$/m],
  },
  "README.md › Worker pools #1": {
    kind: "program",
    saveAs: "pool.ts",
    with: ["README.md › Remote functions: code travels by reference #1"],
    prints: [/^49 \[ 1, 4, 9 \]$/m],
  },
  "README.md › Cancellation #1": { kind: "module", saveAs: "slow.ts" },
  "README.md › Cancellation #2": {
    kind: "program",
    saveAs: "cancel.ts",
    with: ["README.md › Cancellation #1"],
    prints: [/^AbortError\n4$/m],
  },
  "README.md › Job contexts: one program, inline, on threads or on a cluster #1": {
    kind: "program",
    saveAs: "contexts.ts",
    prints: [/^\[ 1, 4, 9 \]$/m, /^done: 2, chained: 1, counter: 15$/m],
  },
  "README.md › Zephyr: dataset pipelines, storage-first #1": { kind: "module", saveAs: "pipelines.ts" },
  "README.md › Zephyr: dataset pipelines, storage-first #2": {
    kind: "program",
    saveAs: "main.ts",
    with: ["README.md › Zephyr: dataset pipelines, storage-first #1"],
    setup: writeDocs,
    prints: [
      /^stage 0 \(one shard per file\): files data\/\*\.jsonl\.gz → loadJsonl → map → filter → writeJsonl out\/part-\{shard:05d\}\.jsonl\.gz$/m,
      /^wrote 2 files$/m,
      /\{ w: 'c', n: 3 \}/,
    ],
  },
  "README.md › Zephyr: dataset pipelines, storage-first #3": {
    kind: "program",
    saveAs: "at-scale.ts",
    prints: [/^stage 2 shard \d+: \d+ runs spilled$/m, /^\[ 999, 999, 999 \]$/m],
  },
  "README.md › Watching a cluster: dashboard, metrics, logs, traces #1": {
    kind: "program",
    saveAs: "traces.ts",
    setup: linkOpenTelemetry,
    prints: [/^fluster\.cluster\.v1\.ControllerService\/ListJobs SERVER in the trace of 'list jobs'\nfluster\.cluster\.v1\.ControllerService\/ListJobs CLIENT in the trace of 'list jobs'$/m],
  },
  "examples/pipeline/README.md › Data processing: a Zephyr pipeline over files #1": { kind: "excerpt", of: "examples/pipeline/pipeline.ts" },
};

/** The OpenTelemetry packages the tracing snippet's reader installs (`npm install @opentelemetry/api @opentelemetry/sdk-trace-base …`), linked from this repository's. */
function linkOpenTelemetry(dir: string): void {
  symlinkSync(join(REPO_ROOT, "node_modules", "@opentelemetry"), join(dir, "node_modules", "@opentelemetry"));
}

/** Two gzipped JSONL files of `{ id, text }` for the Zephyr snippet: some long documents, some short. */
function writeDocs(dir: string): void {
  mkdirSync(join(dir, "data"));
  for (let file = 0; file < 2; file++) {
    const docs = Array.from({ length: 10 }, (_, i) => ({ id: file * 10 + i, text: "word ".repeat(i % 2 === 0 ? 20 : 3).trim() }));
    writeFileSync(join(dir, "data", `part-${file}.jsonl.gz`), gzipSync(docs.map((d) => JSON.stringify(d)).join("\n") + "\n"));
  }
}
