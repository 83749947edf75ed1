// Loaded (--import) into every test file's process by run-tests.mjs, which
// runs two files at a time: a file that times faults against the clock (a
// host partitioned for a grace period, a worker stopped for 30 s, chaos, a
// lease renewed against a 1 s fence, a timeout racing a container start) takes the machine alone, the others
// share it. A readers-writer lock across processes, kept as marker files in
// FLUSTER_TEST_SLOT_DIR; a waiting exclusive file goes before new shared
// ones, and a marker whose process is gone (a SIGKILLed file) counts for
// nothing. Without FLUSTER_TEST_SLOT_DIR (a file run on its own) it does nothing.
import { closeSync, mkdirSync, openSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

/** Test files (relative to the repository, `/` separated) that run alone. */
const ALONE = [
  /^test\/multihost\//,
  /^test\/cluster\/chaos\.test\.ts$/,
  /^test\/cluster\/hung-worker\.test\.ts$/,
  /^test\/cluster\/worker-lease\.test\.ts$/,
  /^test\/cluster\/lease-supervisor\.test\.ts$/,
  /^test\/cluster\/task-image\.test\.ts$/,
];

const dir = process.env.FLUSTER_TEST_SLOT_DIR;
// Only in a test file's own process (the runner marks it), not in the runner that starts them.
const file = process.env.NODE_TEST_CONTEXT?.startsWith("child") ? process.argv.find((arg) => arg.endsWith(".test.ts")) : undefined;
if (dir && file) await takeSlot(dir, file);

async function takeSlot(dir, file) {
  const relative = file.replace(/\\/g, "/").replace(/^.*?(?=test\/)/, "");
  const alone = ALONE.some((pattern) => pattern.test(relative));
  const me = `${process.pid}`;
  mkdirSync(dir, { recursive: true });
  const release = () => {
    for (const kind of ["shared", "alone", "waiting"]) rmSync(join(dir, `${kind}.${me}`), { force: true });
  };
  process.on("exit", release);
  for (;;) {
    const taken = withMutex(dir, () => {
      const markers = liveMarkers(dir);
      const others = (kind) => markers.filter((m) => m.kind === kind && m.pid !== me);
      if (alone) {
        if (others("shared").length === 0 && others("alone").length === 0) {
          rmSync(join(dir, `waiting.${me}`), { force: true });
          writeFileSync(join(dir, `alone.${me}`), relative);
          return true;
        }
        writeFileSync(join(dir, `waiting.${me}`), relative);
        return false;
      }
      if (others("alone").length === 0 && others("waiting").length === 0) {
        writeFileSync(join(dir, `shared.${me}`), relative);
        return true;
      }
      return false;
    });
    if (taken) return;
    await sleep(100);
  }
}

/** Markers of processes still alive; those of gone ones are removed. */
function liveMarkers(dir) {
  const markers = [];
  for (const name of readdirSync(dir)) {
    const match = /^(shared|alone|waiting)\.(\d+)$/.exec(name);
    if (!match) continue;
    if (isAlive(Number(match[2]))) markers.push({ kind: match[1], pid: match[2] });
    else rmSync(join(dir, name), { force: true });
  }
  return markers;
}

/** Runs `step` holding the directory's mutex (a file made with O_EXCL; one left by a gone process is taken over after 5 s). */
function withMutex(dir, step) {
  const path = join(dir, "mutex");
  const started = Date.now();
  for (;;) {
    try {
      closeSync(openSync(path, "wx"));
      break;
    } catch {
      if (Date.now() - started > 5_000) rmSync(path, { force: true });
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
    }
  }
  try {
    return step();
  } finally {
    rmSync(path, { force: true });
  }
}

function isAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === "EPERM";
  }
}
