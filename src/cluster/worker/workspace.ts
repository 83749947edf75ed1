// Makes a job's workspace (an unpacked bundle) ready to run in. This is the
// one call site for the environment step: installing the workspace's
// dependencies (package.json, lockfile, the job's `packages`) will replace
// what it does today.
import { existsSync, readFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { mkdir, readdir, rename, rm, symlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { JobSpec } from "../../rpc/gen/fluster/cluster/v1/types_pb.js";

/**
 * Until dependencies are installed per workspace, a bundle's bare imports
 * (`fluster`, and whatever else the worker's installation holds) resolve
 * from the `node_modules` of this worker's own Fluster installation, linked
 * into the bundle directory. A bundle never carries a `node_modules` of its own.
 */
export async function prepareWorkspace(dir: string, _spec: JobSpec): Promise<void> {
  const link = join(dir, "node_modules");
  const installation = flusterInstallation();
  if (!installation || existsSync(link)) return;
  const ignoreExisting = (err: NodeJS.ErrnoException) => {
    if (err.code !== "EEXIST" && err.code !== "ENOTEMPTY") throw err; // another attempt linked it first
  };
  if (basename(dirname(installation)) === "node_modules") {
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
