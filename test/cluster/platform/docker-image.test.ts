// Building a node image when Docker cannot take it ends in an error naming
// why, never a hang: the real docker CLI, pointed at a daemon socket that
// does not exist, fails its `docker import` at once, and the tar feeding it
// (more than a pipe holds: node and its libraries) must not wait forever.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FlusterError } from "../../../src/core/errors.js";
import { ensureNodeImage } from "../../../src/cluster/platform/docker/image.js";

test("an image build whose docker import fails rejects naming the daemon error, leaving no rootfs behind", { timeout: 60_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "fluster-docker-image-test-"));
  const previousTmp = process.env.TMPDIR;
  t.after(() => {
    if (previousTmp === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = previousTmp;
    rmSync(dir, { recursive: true, force: true });
  });
  const docker = join(dir, "docker-without-daemon");
  writeFileSync(docker, `#!/bin/sh\nDOCKER_HOST=unix://${dir}/no-daemon.sock exec docker "$@"\n`);
  chmodSync(docker, 0o755);
  // Its own temporary directory (this file's process only), to see the rootfs go.
  const scratch = join(dir, "tmp");
  mkdirSync(scratch);
  process.env.TMPDIR = scratch;

  await assert.rejects(ensureNodeImage({ docker, repository: "fluster-test-no-daemon" }), (err: unknown) => {
    assert.ok(err instanceof FlusterError, String(err));
    assert.match(err.message, /building the image fluster-test-no-daemon:\w+ failed/);
    assert.match(err.message, /docker import exit 1/);
    assert.match(err.message, /Cannot connect to the Docker daemon/);
    return true;
  });
  assert.deepEqual(readdirSync(scratch), [], "the image's rootfs was removed");
});
