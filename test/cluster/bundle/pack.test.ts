// What a workspace bundle holds: the files git would track, with their
// executable bit and in-tree symlinks; and the errors for what it refuses.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EXECUTABLE_MODE, FILE_MODE, SYMLINK_MODE, bundleIdOf, sha256Hex } from "../../../src/cluster/bundle/manifest.js";
import { packWorkspace } from "../../../src/cluster/bundle/pack.js";
import { FlusterError } from "../../../src/core/errors.js";

function tree(t: { after: (fn: () => void) => void }, files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), "fluster-pack-"));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(root, path, ".."), { recursive: true });
    writeFileSync(join(root, path), content);
  }
  return root;
}

test("a bundle holds what git would track: .gitignore at every level, never node_modules, .git or state directories", async (t) => {
  const root = tree(t, {
    "package.json": "{}",
    ".gitignore": "*.log\n!keep.log\n/build/\n",
    "a.log": "ignored",
    "keep.log": "taken back by !keep.log",
    "build/out.js": "ignored folder",
    "src/build/inner.js": "/build/ is anchored to the root",
    "sub/.gitignore": "secret.txt\n",
    "sub/secret.txt": "ignored by sub/.gitignore",
    "sub/ok.txt": "kept",
    "sub/deep/secret.txt": "ignored: sub's rules reach below it",
    "other/secret.txt": "kept: sub's rules stop at sub",
    "node_modules/dep/index.js": "never",
    "sub/node_modules/dep/index.js": "never, at any level",
    ".git/HEAD": "never",
    ".fluster/controller.sqlite": "never",
    "state/controller.lock": "a controller's state directory",
    "state/controller.sqlite": "",
    "cache/CACHEDIR.TAG": "a cache",
    "cache/blob": "",
    "run.sh": "#!/bin/sh\necho hi\n",
  });
  chmodSync(join(root, "run.sh"), 0o755);
  symlinkSync("sub/ok.txt", join(root, "link-to-ok"));
  symlinkSync("../run.sh", join(root, "sub", "run-link"));
  const socketPath = join(root, "control.sock");
  const server = createServer().listen(socketPath);
  t.after(() => server.close());
  await new Promise((resolve) => server.once("listening", resolve));

  const packed = await packWorkspace(root);
  assert.deepEqual(
    packed.files.map((f) => f.path),
    [".gitignore", "keep.log", "link-to-ok", "other/secret.txt", "package.json", "run.sh", "src/build/inner.js", "sub/.gitignore", "sub/ok.txt", "sub/run-link"],
  );
  const byPath = new Map(packed.files.map((f) => [f.path, f]));
  assert.equal(byPath.get("run.sh")?.mode, EXECUTABLE_MODE);
  assert.equal(byPath.get("keep.log")?.mode, FILE_MODE);
  assert.equal(byPath.get("link-to-ok")?.mode, SYMLINK_MODE);
  assert.equal(byPath.get("link-to-ok")?.sha256, sha256Hex("sub/ok.txt"), "a symlink's blob is its target");
  assert.equal(byPath.get("sub/ok.txt")?.sha256, sha256Hex("kept"));
  assert.equal(packed.bundleId, bundleIdOf(packed.files));
  assert.deepEqual(packed.sources.get(sha256Hex("kept")), { kind: "file", path: join(packed.root, "sub", "ok.txt") });
});

test("the bundle id depends on content and modes only, not on where or when the tree was packed", async (t) => {
  const files = { "package.json": "{}", "a.txt": "a", "d/b.txt": "b" };
  const one = tree(t, files);
  const two = tree(t, files);
  utimesSync(join(two, "a.txt"), new Date(0), new Date(0));
  const [a, b] = await Promise.all([packWorkspace(one), packWorkspace(two)]);
  assert.equal(a.bundleId, b.bundleId);
  chmodSync(join(two, "a.txt"), 0o755);
  assert.notEqual((await packWorkspace(two)).bundleId, a.bundleId);
  writeFileSync(join(one, "a.txt"), "changed");
  assert.notEqual((await packWorkspace(one)).bundleId, a.bundleId);
});

test("a symlink that leaves the workspace is refused, naming it and how to leave it out", async (t) => {
  const root = tree(t, { "package.json": "{}" });
  symlinkSync("../../etc/passwd", join(root, "escape"));
  await assert.rejects(packWorkspace(root), (err: unknown) => {
    assert.ok(err instanceof FlusterError);
    assert.match(err.message, /the symlink escape points outside it \(to \.\.\/\.\.\/etc\/passwd\)/);
    assert.match(err.message, /\.gitignore/);
    return true;
  });
  rmSync(join(root, "escape"));
  symlinkSync("/etc/passwd", join(root, "absolute"));
  await assert.rejects(packWorkspace(root), /the symlink absolute points outside it/);
  writeFileSync(join(root, ".gitignore"), "/absolute\n");
  assert.deepEqual((await packWorkspace(root)).files.map((f) => f.path), [".gitignore", "package.json"]);
});

test("a workspace over the size limit is refused with its largest files and folders and how to exclude them", async (t) => {
  const root = tree(t, {
    "package.json": "{}",
    "data/big.bin": "x".repeat(6000),
    "data/medium.bin": "x".repeat(3000),
    "model.pt": "x".repeat(4000),
    "src/a.ts": "small",
  });
  await assert.rejects(packWorkspace(root, { maxBytes: 10_000 }), (err: unknown) => {
    assert.ok(err instanceof FlusterError);
    assert.equal(err.code, "failed_precondition");
    assert.match(err.message, /over the bundle limit of/);
    assert.match(err.message, /Largest files: data\/big\.bin \(5\.9k\), model\.pt \(3\.9k\), data\/medium\.bin/);
    assert.match(err.message, /Largest folders: data\/ \(8\.8k\)/);
    assert.match(err.message, /\.gitignore/);
    assert.match(err.message, /maxBundleBytes/);
    return true;
  });
  writeFileSync(join(root, ".gitignore"), "/data/\n");
  assert.ok((await packWorkspace(root, { maxBytes: 10_000 })).totalBytes < 10_000);
});
