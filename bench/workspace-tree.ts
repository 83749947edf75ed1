// A seeded workspace for the bundle benchmarks: a package.json, a .gitignore,
// and `files` source-like and data-like files over nested folders, `bytes`
// in all. Half of each file is text (compressible, as code is), half random
// bytes (as data and assets are), so neither tar's gzip nor a content hash
// gets an unrealistic shortcut. The same options always give the same tree.
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { rng } from "./stats.js";

export interface WorkspaceTreeOptions {
  /** Files in the tree (besides package.json and .gitignore). @default 2000 */
  files?: number;
  /** Their total size in bytes. @default 50 MiB */
  bytes?: number;
  /** @default 1 */
  seed?: number;
}

const WORDS = ["export", "const", "function", "return", "import", "from", "await", "async", "value", "result", "tensor", "shard", "worker", "data"];

/** Writes the tree under `root` (which must be empty or missing); returns the files written, relative to `root`. */
export function writeWorkspaceTree(root: string, options: WorkspaceTreeOptions = {}): string[] {
  const files = options.files ?? 2000;
  const bytes = options.bytes ?? 50 * 1024 * 1024;
  const random = rng(options.seed ?? 1);
  mkdirSync(root, { recursive: true });
  writeFileSync(join(root, "package.json"), `${JSON.stringify({ name: "bench-workspace", private: true, type: "module" }, null, 2)}\n`);
  writeFileSync(join(root, ".gitignore"), "node_modules/\n*.log\n");
  // Sizes vary (a few large files, many small ones) around the mean, then scale to the total exactly.
  const weights = Array.from({ length: files }, () => Math.exp(random() * 4));
  const scale = bytes / weights.reduce((a, b) => a + b, 0);
  const written: string[] = [];
  for (let i = 0; i < files; i++) {
    const path = `src/m${i % 10}/p${Math.floor(i / 10) % 20}/f${i}.${i % 3 === 0 ? "bin" : "ts"}`;
    const size = Math.max(1, Math.round((weights[i] as number) * scale));
    const buffer = Buffer.allocUnsafe(size);
    const textBytes = Math.floor(size / 2);
    let at = 0;
    while (at < textBytes) {
      const word = WORDS[Math.floor(random() * WORDS.length)] as string;
      at += buffer.write(`${word} `, at, Math.min(word.length + 1, textBytes - at), "latin1");
    }
    for (let j = textBytes; j < size; j++) buffer[j] = Math.floor(random() * 256);
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), buffer);
    written.push(path);
  }
  return written;
}
