// Makes a job's workspace (an unpacked bundle) ready to run in. This is the
// one call site for the environment step: installing the workspace's
// dependencies (package.json, lockfile, the job's `packages`) will replace
// what it does today.
import { existsSync, readFileSync } from "node:fs";
import { symlink } from "node:fs/promises";
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
  const target = installationModules();
  if (!target || existsSync(link)) return;
  await symlink(target, link, "dir").catch((err: NodeJS.ErrnoException) => {
    if (err.code !== "EEXIST") throw err; // another attempt linked it first
  });
}

let cached: string | undefined | null = null;

/** The node_modules this Fluster resolves its dependencies from: the one holding it, or its own in a checkout. */
function installationModules(): string | undefined {
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
    const holder = dirname(dir);
    cached = basename(holder) === "node_modules" ? holder : existsSync(join(dir, "node_modules")) ? join(dir, "node_modules") : undefined;
    break;
  }
  return cached;
}
