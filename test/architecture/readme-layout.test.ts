// The README's repository layout table matches the folders: every path it
// names exists, every file it names is in its folder, and every source folder
// (and top-level folder) is in the table.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "../helpers/index.js";

/** Rows of the table under "## Repository layout": path → description. */
function layoutRows(): Map<string, string> {
  const readme = readFileSync(join(REPO_ROOT, "README.md"), "utf8");
  const section = readme.split("## Repository layout")[1]?.split("\n## ")[0] ?? "";
  const rows = new Map<string, string>();
  for (const match of section.matchAll(/^\| `([^`]+)` \| (.+) \|$/gm)) rows.set((match[1] as string).replace(/\/$/, ""), match[2] as string);
  return rows;
}

function folders(dir: string): string[] {
  return readdirSync(join(REPO_ROOT, dir), { withFileTypes: true })
    .filter((e) => e.isDirectory() && !e.name.startsWith("."))
    .flatMap((e) => [`${dir}/${e.name}`, ...folders(`${dir}/${e.name}`)]);
}

test("the README's layout table names existing folders and files, and every source folder", () => {
  const rows = layoutRows();
  assert.ok(rows.size >= 10, `found only ${rows.size} rows`);
  for (const [path, what] of rows) {
    assert.ok(existsSync(join(REPO_ROOT, path)), `${path} is in the table but not in the repository`);
    if (!statSync(join(REPO_ROOT, path)).isDirectory()) continue;
    for (const file of what.matchAll(/`([\w.-]+\.(?:ts|mjs|js))`/g)) {
      const name = file[1] as string;
      const found = existsSync(join(REPO_ROOT, path, name)) || [...rows.keys()].some((p) => p.startsWith(`${path}/`) && existsSync(join(REPO_ROOT, p, name)));
      assert.ok(found, `the table says ${path} holds ${name}, which is not there`);
    }
  }
  const sourceFolders = folders("src").filter((f) => !f.startsWith("src/rpc/gen"));
  const covered = (folder: string) => rows.has(folder) || [...rows.keys()].some((p) => p.startsWith(`${folder}/`));
  for (const folder of sourceFolders) assert.ok(covered(folder), `${folder} is missing from the README's layout table`);
  const tracked = ["src", "test", "bench", "examples", "proto", "scripts", "bin"];
  for (const top of tracked) assert.ok(covered(top), `${top}/ is missing from the README's layout table`);
});
