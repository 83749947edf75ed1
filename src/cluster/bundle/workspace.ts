// Which directory a job's bundle packs by default: the caller's npm project.
import { existsSync, realpathSync } from "node:fs";
import { dirname, join, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The workspace a launch packs when the job names none: the npm project
 * (nearest directory with a `package.json`) above the remote function's
 * module, for a function entrypoint; else above the program's entry module
 * (`process.argv[1]`); else the current directory's project, else the
 * current directory. Modules under `node_modules` or of Fluster itself (a
 * library's function, such as WorkerPool's executor) say nothing about the
 * caller's project and are passed over. Inside a job, its own workspace (`FLUSTER_WORKSPACE`) is
 * the project root of everything under it.
 */
export function defaultWorkspace(functionModule?: string): string {
  const candidates: string[] = [];
  if (functionModule?.startsWith("file:")) candidates.push(fileURLToPath(functionModule));
  const entry = process.argv[1];
  if (entry) candidates.push(resolve(entry));
  for (const candidate of candidates) {
    const path = realPath(candidate);
    if (path.split(sep).includes("node_modules") || isInside(path, FLUSTER_ROOT)) continue;
    const root = projectRoot(dirname(path));
    if (root) return root;
  }
  const cwd = realPath(process.cwd());
  return projectRoot(cwd) ?? cwd;
}

/** The nearest directory at or above `dir` with a package.json; the job's workspace bounds the search inside a job. */
export function projectRoot(dir: string): string | undefined {
  const jobWorkspace = process.env.FLUSTER_WORKSPACE;
  if (jobWorkspace && (dir === jobWorkspace || dir.startsWith(jobWorkspace + sep))) return jobWorkspace;
  for (let current = dir; ; current = dirname(current)) {
    if (existsSync(join(current, "package.json"))) return current;
    if (dirname(current) === current) return undefined;
  }
}

/** Fluster's own package (a checkout, or linked into a project): its modules are never the caller's project. */
const FLUSTER_ROOT = realPath(fileURLToPath(new URL("../../../", import.meta.url)));

function isInside(path: string, dir: string): boolean {
  return path.startsWith(dir.endsWith(sep) ? dir : dir + sep);
}

function realPath(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}
