// The test files that take the machine alone (scripts/test-slot.mjs holds
// the lock; scripts/run-tests.mjs starts them first, one after another, so
// no shared file is left running by itself while one of them waits).

/** Test files (relative to the repository, `/` separated) that run alone. */
export const ALONE = [
  /^test\/multihost\//,
  /^test\/cluster\/chaos\.test\.ts$/,
  /^test\/cluster\/hung-worker\.test\.ts$/,
  /^test\/cluster\/worker-lease\.test\.ts$/,
  /^test\/cluster\/lease-supervisor\.test\.ts$/,
  /^test\/cluster\/task-image\.test\.ts$/,
];

/** Whether the test file at `path` (relative to the repository or absolute) runs alone. */
export function runsAlone(path) {
  const relative = path.replace(/\\/g, "/").replace(/^.*?(?=test\/)/, "");
  return ALONE.some((pattern) => pattern.test(relative));
}
