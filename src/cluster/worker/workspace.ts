// Makes a job's workspace (an unpacked bundle) ready to run in, before the
// environment step (environments.ts) installs what it still lacks.
import { existsSync, readFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { mkdir, readdir, rename, rm, symlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { JobSpec } from "../../rpc/gen/fluster/cluster/v1/types_pb.js";

/**
 * A bundle of the very project this worker runs from — same lockfile, byte
 * for byte (a LocalCluster started in your project, or this repository's
 * tests) — needs no install: its bare imports resolve from that project's
 * `node_modules`, linked into the bundle directory. Any other bundle is left
 * alone; the environment step installs its lockfile and links `fluster` in.
 * A bundle never carries a `node_modules` of its own.
 */
export async function prepareWorkspace(dir: string, _spec: JobSpec): Promise<void> {
  const link = join(dir, "node_modules");
  const installation = flusterInstallation();
  if (!installation || existsSync(link)) return;
  // An installed fluster lives in <project>/node_modules/fluster; a checkout of fluster is its own project.
  const installed = basename(dirname(installation)) === "node_modules";
  const project = installed ? dirname(dirname(installation)) : installation;
  if (!sameLockfile(dir, project)) return;
  const ignoreExisting = (err: NodeJS.ErrnoException) => {
    if (err.code !== "EEXIST" && err.code !== "ENOTEMPTY") throw err; // another attempt linked it first
  };
  if (installed) {
    await symlink(dirname(installation), link, "dir").catch(ignoreExisting);
    return;
  }
  // A checkout of Fluster: its dependencies, and Fluster itself beside them.
  const tmp = `${link}.tmp-${randomBytes(4).toString("hex")}`;
  await mkdir(tmp);
  const own = join(installation, "node_modules");
  for (const name of existsSync(own) ? await readdir(own) : []) await symlink(join(own, name), join(tmp, name));
  await symlink(installation, join(tmp, "fluster"), "dir").catch(ignoreExisting);
  await rename(tmp, link).catch(async (err: NodeJS.ErrnoException) => {
    await rm(tmp, { recursive: true, force: true });
    ignoreExisting(err);
  });
}

/** Whether the bundle's lockfile is the project's, byte for byte (neither may be missing). */
function sameLockfile(bundle: string, project: string): boolean {
  for (const name of ["npm-shrinkwrap.json", "package-lock.json"]) {
    const theirs = join(bundle, name);
    if (!existsSync(theirs)) continue;
    const ours = join(project, name);
    return existsSync(ours) && readFileSync(theirs).equals(readFileSync(ours));
  }
  return false;
}

let cached: string | undefined | null = null;

/** The root of the Fluster package this worker runs. */
export function flusterInstallation(): string | undefined {
  if (cached !== null) return cached;
  cached = undefined;
  for (let dir = dirname(fileURLToPath(import.meta.url)); dirname(dir) !== dir; dir = dirname(dir)) {
    const manifest = join(dir, "package.json");
    if (!existsSync(manifest)) continue;
    try {
      if ((JSON.parse(readFileSync(manifest, "utf8")) as { name?: unknown }).name !== "fluster") continue;
    } catch {
      continue;
    }
    cached = dir;
    break;
  }
  return cached;
}
