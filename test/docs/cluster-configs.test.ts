// Cluster configs in the documentation are checked configs: every YAML block
// of the README and docs/platforms.md, and every file under
// examples/clusters/, is read by the same loader `controller serve --config`
// uses, and the README's copy of an example file is that file, verbatim.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { loadClusterConfig, parseClusterConfig } from "../../src/cluster/platform/config.js";
import { REPO_ROOT } from "../helpers/index.js";

const DOCUMENTS = ["README.md", "docs/platforms.md"];

function yamlBlocks(document: string): Array<{ line: number; text: string }> {
  const text = readFileSync(join(REPO_ROOT, document), "utf8");
  const blocks: Array<{ line: number; text: string }> = [];
  for (const match of text.matchAll(/^```yaml\n([\s\S]*?)^```$/gm)) {
    blocks.push({ line: text.slice(0, match.index).split("\n").length, text: match[1] as string });
  }
  return blocks;
}

test("every YAML block of the README and docs/platforms.md is a valid cluster config", () => {
  let count = 0;
  for (const document of DOCUMENTS) {
    for (const block of yamlBlocks(document)) {
      count++;
      assert.doesNotThrow(() => parseClusterConfig(block.text, `${document}:${block.line}`), `${document}:${block.line}`);
    }
  }
  assert.ok(count >= 5, `found only ${count} YAML blocks`);
});

test("every example cluster config loads, and the README's copy of one is the file itself", () => {
  const dir = join(REPO_ROOT, "examples", "clusters");
  const files = readdirSync(dir).filter((f) => f.endsWith(".yaml"));
  assert.ok(files.length >= 2);
  for (const file of files) {
    const config = loadClusterConfig(join(dir, file));
    assert.ok(config.scaleGroups.length > 0, `${file} has scale groups`);
  }
  const quoted = yamlBlocks("README.md").filter((b) => b.text.startsWith("# examples/clusters/"));
  assert.ok(quoted.length >= 1);
  for (const block of quoted) {
    const file = /^# (examples\/clusters\/\S+)/.exec(block.text)?.[1] as string;
    assert.equal(block.text, readFileSync(join(REPO_ROOT, file), "utf8"), `README.md:${block.line} quotes ${file} exactly`);
  }
});
