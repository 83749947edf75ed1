// Zephyr file I/O against real files in a temporary directory: line
// splitting across chunk boundaries, the three compressions, JSONL errors,
// atomic writes, shard patterns and input globs.
import assert from "node:assert/strict";
import { existsSync, readdirSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { gzipSync } from "node:zlib";
import { compress as zstdCompress } from "zstd-napi";
import { FlusterError, ValidationError } from "../../src/core/errors.js";
import { LineWriter, compressionOf, expandGlob, formatShardPattern, readJsonl, readLines, type Compression } from "../../src/zephyr/io.js";

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "fluster-io-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const EXTENSIONS: Record<Compression, string> = { none: ".txt", gzip: ".txt.gz", zstd: ".txt.zst" };

/** Every line of a file, and how many batches carried them. */
async function collect(path: string): Promise<{ lines: string[]; batches: number }> {
  const lines: string[] = [];
  let batches = 0;
  for await (const batch of readLines(path)) {
    assert.ok(batch.length > 0, "no empty batches");
    batches++;
    for (const line of batch) lines.push(line);
  }
  return { lines, batches };
}

/** Writes raw file content, compressed to match the file's extension. */
async function writeRaw(path: string, content: string | Buffer): Promise<void> {
  const bytes = typeof content === "string" ? Buffer.from(content, "utf8") : content;
  const compression = compressionOf(path);
  await writeFile(path, compression === "gzip" ? gzipSync(bytes) : compression === "zstd" ? zstdCompress(bytes) : bytes);
}

async function rejectsWith(promise: Promise<unknown>, check: (err: FlusterError) => void): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof FlusterError, `expected a FlusterError, got ${String(err)}`);
    check(err);
    return true;
  });
}

async function drain(iterable: AsyncIterable<unknown[]>): Promise<number> {
  let n = 0;
  for await (const batch of iterable) n += batch.length;
  return n;
}

describe("compressionOf", () => {
  test("chooses by extension", () => {
    assert.equal(compressionOf("a/b.jsonl.gz"), "gzip");
    assert.equal(compressionOf("b.zst"), "zstd");
    assert.equal(compressionOf("b.jsonl.zstd"), "zstd");
    assert.equal(compressionOf("b.jsonl"), "none");
    assert.equal(compressionOf("b.gz.txt"), "none");
  });
});

describe("LineWriter and readLines round trip", () => {
  // Varied lengths and characters, so lines and multi-byte characters cross many chunk boundaries.
  const lines = Array.from({ length: 120_000 }, (_, i) => `${i} ${"é😀x".repeat(i % 37)} ${i % 5 === 0 ? "" : "tail"}`);

  for (const compression of ["none", "gzip", "zstd"] as const) {
    test(`${compression}: 120k lines come back identical, across several batches`, async () => {
      const path = join(dir, `roundtrip${EXTENSIONS[compression]}`);
      const writer = await LineWriter.open(path);
      for (let i = 0; i < lines.length; i += 7_000) await writer.write(lines.slice(i, i + 7_000));
      const result = await writer.close();
      assert.equal(result.path, path);
      assert.equal(result.lines, lines.length);
      assert.equal(result.bytes, (await stat(path)).size);
      const raw = Buffer.byteLength(lines.join("\n") + "\n");
      if (compression === "none") assert.equal(result.bytes, raw);
      else assert.ok(result.bytes < raw / 2, `${compression} output should be compressed: ${result.bytes} of ${raw}`);

      const back = await collect(path);
      assert.ok(back.batches > 3, `expected several batches, got ${back.batches}`);
      assert.equal(back.lines.length, lines.length);
      assert.deepEqual(back.lines, lines);
    });
  }

  test("a writer with no lines makes an empty file that reads as no lines", async () => {
    for (const compression of ["none", "gzip", "zstd"] as const) {
      const path = join(dir, `empty-written${EXTENSIONS[compression]}`);
      const writer = await LineWriter.open(path);
      await writer.write([]);
      const result = await writer.close();
      assert.equal(result.lines, 0);
      assert.ok(existsSync(path));
      assert.deepEqual((await collect(path)).lines, [], compression);
    }
  });

  test("creates parent directories", async () => {
    const path = join(dir, "deep", "er", "out.txt");
    const writer = await LineWriter.open(path);
    await writer.write(["a", "b"]);
    await writer.close();
    assert.equal(await readFile(path, "utf8"), "a\nb\n");
  });
});

describe("readLines", () => {
  test("multi-byte characters straddling chunk boundaries decode intact", async () => {
    // Only 3- and 4-byte characters: a chunk boundary at any power of two from 16 KiB up lands inside one.
    const line = "€😀€€😀".repeat(2_000);
    const content = Array.from({ length: 40 }, () => line).join("\n") + "\n";
    const bytes = Buffer.from(content, "utf8");
    const splitAt = [16_384, 65_536, 131_072, 262_144].filter((offset) => (bytes[offset]! & 0xc0) === 0x80);
    assert.ok(splitAt.length > 0, "the fixture must put a character across a likely chunk boundary");
    for (const compression of ["none", "gzip", "zstd"] as const) {
      const path = join(dir, `utf8${EXTENSIONS[compression]}`);
      await writeRaw(path, bytes);
      const { lines } = await collect(path);
      assert.equal(lines.length, 40, compression);
      assert.ok(lines.every((l) => l === line), `${compression}: every line decodes to the original`);
    }
  });

  test("\\r\\n ends lines, also when \\r and \\n fall in different chunks", async () => {
    const path = join(dir, "crlf.txt");
    await writeRaw(path, "a\r\nb\r\n\r\nc\nd\r\n");
    assert.deepEqual((await collect(path)).lines, ["a", "b", "", "c", "d"]);

    const long = "x".repeat(256 * 1024 - 1); // its \r ends the first 256 KiB read, its \n starts the next
    const split = join(dir, "crlf-split.txt");
    await writeRaw(split, `${long}\r\ny\r\n`);
    assert.deepEqual((await collect(split)).lines, [long, "y"]);
  });

  test("a last line without a newline is kept; a final newline adds no empty line", async () => {
    const cases: Array<[string, string[]]> = [
      ["a\nb", ["a", "b"]],
      ["a\nb\n", ["a", "b"]],
      ["a\n\n", ["a", ""]],
      ["\n", [""]],
      ["only", ["only"]],
    ];
    for (const [i, [content, expected]] of cases.entries()) {
      const path = join(dir, `ending-${i}.txt.gz`);
      await writeRaw(path, content);
      assert.deepEqual((await collect(path)).lines, expected, JSON.stringify(content));
    }
  });

  test("highly compressed data still arrives in bounded batches", async () => {
    // 12 MiB of lines that compress to a few KiB: one read chunk holds all of it.
    const line = "a".repeat(127);
    for (const compression of ["gzip", "zstd"] as const) {
      const path = join(dir, `dense${EXTENSIONS[compression]}`);
      await writeRaw(path, `${line}\n`.repeat(96 * 1024));
      assert.ok((await stat(path)).size < 256 * 1024, "the whole file fits one read");
      let largest = 0;
      let total = 0;
      for await (const batch of readLines(path)) {
        largest = Math.max(largest, batch.length);
        total += batch.length;
      }
      assert.equal(total, 96 * 1024);
      assert.ok(largest <= 4096, `${compression}: largest batch ${largest} lines`);
    }
  });

  test("a line longer than many chunks comes back whole", async () => {
    const path = join(dir, "long-line.txt.gz");
    const long = "y".repeat(3 * 1024 * 1024);
    await writeRaw(path, `short\n${long}\nend`);
    const { lines } = await collect(path);
    assert.deepEqual(lines.map((l) => l.length), [5, long.length, 3]);
    assert.equal(lines[1], long);
  });

  test("an empty file has no lines, whatever its extension", async () => {
    for (const name of ["empty.txt", "empty.txt.gz", "empty.txt.zst"]) {
      const path = join(dir, name);
      await writeFile(path, "");
      assert.equal(await drain(readLines(path)), 0, name);
    }
  });

  test("a missing file is a not_found error naming it", async () => {
    for (const name of ["missing.txt", "missing.jsonl.gz", "missing.zst"]) {
      const path = join(dir, name);
      await rejectsWith(drain(readLines(path)), (err) => {
        assert.equal(err.code, "not_found");
        assert.match(err.message, new RegExp(`${name.replace(/\./g, "\\.")} does not exist`));
      });
    }
  });

  test("corrupt or truncated compressed data is an error naming the file", async () => {
    const whole = gzipSync(Buffer.from("line\n".repeat(50_000)));
    const wholeZstd = zstdCompress(Buffer.from("line\n".repeat(50_000)));
    const cases: Array<[name: string, bytes: string | Buffer, kind: "gzip" | "zstd"]> = [
      ["garbage.jsonl.gz", "this is not gzip data at all", "gzip"],
      ["truncated.jsonl.gz", whole.subarray(0, whole.length - 100), "gzip"],
      ["truncated.jsonl.zst", wholeZstd.subarray(0, wholeZstd.length - 10), "zstd"],
      ["garbage.zst", "not zstd either", "zstd"],
    ];
    for (const [name, bytes, kind] of cases) {
      const path = join(dir, name);
      await writeFile(path, bytes);
      await rejectsWith(drain(readLines(path)), (err) => {
        assert.equal(err.code, "invalid_argument", name);
        assert.ok(err.message.includes(path), err.message);
        assert.match(err.message, new RegExp(`not valid ${kind} data`));
      });
    }
  });

  test("stopping early releases the file and leaves it readable", async () => {
    const path = join(dir, "early.txt.gz");
    await writeRaw(path, "row\n".repeat(200_000));
    for await (const batch of readLines(path)) {
      assert.equal(batch[0], "row");
      break;
    }
    assert.equal(await drain(readLines(path)), 200_000);
  });
});

describe("readJsonl", () => {
  test("parses non-empty lines and skips blank ones", async () => {
    const path = join(dir, "records.jsonl.zst");
    await writeRaw(path, '{"a":1}\n\n  \n{"a":2,"s":"é"}\r\n[3]\n');
    const records: unknown[] = [];
    for await (const batch of readJsonl(path)) records.push(...batch);
    assert.deepEqual(records, [{ a: 1 }, { a: 2, s: "é" }, [3]]);
  });

  test("a bad line names the file, its 1-based line number and the JSON error", async () => {
    const path = join(dir, "bad.jsonl");
    await writeRaw(path, '{"a":1}\n\n{"a":\n');
    await assert.rejects(drain(readJsonl(path)), (err: unknown) => {
      assert.ok(err instanceof ValidationError);
      assert.ok(err.message.startsWith(`${path} line 3 is not valid JSON: `), err.message);
      assert.match(err.message, /JSON/);
      return true;
    });
  });

  test("line numbers count across batches", async () => {
    const path = join(dir, "bad-late.jsonl.gz");
    // ~2.5 MB of text: several decompressed chunks, so batches arrive before the bad line.
    const lines = Array.from({ length: 200_000 }, (_, i) => JSON.stringify({ i, pad: "x".repeat(i % 8) }));
    lines[171_233] = "{not json";
    await writeRaw(path, lines.join("\n"));
    let seen = 0;
    await assert.rejects(
      (async () => {
        for await (const batch of readJsonl<{ i: number }>(path)) seen += batch.length;
      })(),
      (err: unknown) => err instanceof ValidationError && err.message.includes(`${path} line 171234 is not valid JSON`),
    );
    assert.ok(seen > 0 && seen <= 171_233, `records before the bad line arrived first (${seen})`);
  });
});

describe("formatShardPattern", () => {
  test("substitutes {shard} and zero-padded {shard:0Nd}", () => {
    assert.equal(formatShardPattern("out/part-{shard}.jsonl", 7), "out/part-7.jsonl");
    assert.equal(formatShardPattern("out/part-{shard:05d}.jsonl.gz", 7), "out/part-00007.jsonl.gz");
    assert.equal(formatShardPattern("{shard:02d}", 12345), "12345");
    assert.equal(formatShardPattern("{shard:010d}", 3), "0000000003");
    assert.equal(formatShardPattern("{shard}/{shard:03d}", 4), "4/004");
    assert.equal(formatShardPattern("static.jsonl", 4), "static.jsonl");
  });

  test("an unknown placeholder is a ValidationError naming it", () => {
    for (const [pattern, placeholder] of [
      ["out/{part}.jsonl", "{part}"],
      ["out/{shard:5d}.jsonl", "{shard:5d}"],
      ["out/{}.jsonl", "{}"],
    ] as const) {
      assert.throws(
        () => formatShardPattern(pattern, 1),
        (err: unknown) => err instanceof ValidationError && err.message.includes(`unknown placeholder ${placeholder}`) && err.message.includes(pattern),
      );
    }
  });

  test("a shard number must be a non-negative integer", () => {
    assert.throws(() => formatShardPattern("{shard}", -1), ValidationError);
    assert.throws(() => formatShardPattern("{shard}", 1.5), ValidationError);
  });
});

describe("LineWriter atomicity", () => {
  const entries = (d: string) => readdirSync(d).sort();

  test("the final path appears only on close; the temporary file is a dot file beside it", async () => {
    const sub = join(dir, "atomic");
    const path = join(sub, "part-00000.jsonl.gz");
    const writer = await LineWriter.open(path);
    await writer.write(Array.from({ length: 50_000 }, (_, i) => `line ${i}`));
    assert.equal(existsSync(path), false, "no final file before close");
    const temps = entries(sub);
    assert.equal(temps.length, 1);
    assert.match(temps[0]!, /^\.part-00000\.jsonl\.gz\..*\.tmp$/);
    await writer.close();
    assert.deepEqual(entries(sub), ["part-00000.jsonl.gz"], "the temporary file was renamed into place");
    assert.equal(await drain(readLines(path)), 50_000);
  });

  test("abort leaves neither the final file nor a temporary one, and is safe twice", async () => {
    const sub = join(dir, "aborted");
    const path = join(sub, "out.jsonl.zst");
    const writer = await LineWriter.open(path);
    await writer.write(Array.from({ length: 100_000 }, (_, i) => `line ${i}`));
    await writer.abort();
    await writer.abort();
    assert.deepEqual(entries(sub), []);
    await rejectsWith(writer.write(["late"]), (err) => assert.equal(err.code, "failed_precondition"));
    await rejectsWith(writer.close(), (err) => assert.equal(err.code, "failed_precondition"));
  });

  test("a re-run replaces the file whole; abort after close keeps it", async () => {
    const path = join(dir, "rerun.txt");
    await writeFile(path, "old\n".repeat(10));
    const writer = await LineWriter.open(path);
    await writer.write(["new"]);
    assert.equal(await readFile(path, "utf8"), "old\n".repeat(10), "the old file stays whole until close");
    await writer.close();
    await writer.abort();
    assert.equal(await readFile(path, "utf8"), "new\n");
    await rejectsWith(writer.write(["again"]), (err) => assert.equal(err.code, "failed_precondition"));
  });
});

describe("expandGlob", () => {
  let root: string;
  before(async () => {
    root = join(dir, "glob");
    await mkdir(join(root, "nested"), { recursive: true });
    for (const name of ["b.jsonl", "a.jsonl", "c.jsonl", "notes.txt", ".a.jsonl.1234.tmp", "nested/d.jsonl"]) {
      await writeFile(join(root, name), "{}\n");
    }
  });

  test("returns absolute paths, sorted, skipping dot files", async () => {
    assert.deepEqual(await expandGlob("*.jsonl", root), ["a.jsonl", "b.jsonl", "c.jsonl"].map((n) => join(root, n)));
    assert.deepEqual(await expandGlob("**/*.jsonl", root), ["a.jsonl", "b.jsonl", "c.jsonl", "nested/d.jsonl"].map((n) => join(root, n)));
    assert.deepEqual(await expandGlob(join(root, "*.txt")), [join(root, "notes.txt")]);
  });

  test("a plain path naming a file matches it", async () => {
    assert.deepEqual(await expandGlob("nested/d.jsonl", root), [join(root, "nested", "d.jsonl")]);
    assert.deepEqual(await expandGlob(join(root, "b.jsonl"), "/"), [join(root, "b.jsonl")]);
  });

  test("no match is a ValidationError naming the pattern and cwd", async () => {
    for (const pattern of ["*.parquet", "missing.jsonl", "nested"]) {
      await assert.rejects(expandGlob(pattern, root), (err: unknown) => {
        assert.ok(err instanceof ValidationError);
        assert.ok(err.message.includes(JSON.stringify(pattern)) && err.message.includes(root), err.message);
        return true;
      });
    }
  });
});
