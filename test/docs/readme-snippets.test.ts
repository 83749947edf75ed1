// README code is tested code. Every TypeScript block of the README files is
// tried as a reader would use it (test/docs/snippets.ts says how, block by
// block): a program is saved into an empty npm project that has `fluster`
// and `tsx` installed, run with `node --import tsx`, and must exit 0 within
// its time limit having printed what its comments promise, leaving no process
// and no temporary directory behind; every project is type-checked with
// `tsc --strict`; an excerpt must appear verbatim in the file it quotes.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO_ROOT, cleanEnv, killAll, runNode, survivors } from "../helpers/index.js";
import { DOCUMENTS, PLANS, snippetsOf, type Snippet, type SnippetPlan } from "./snippets.js";

const snippets = DOCUMENTS.flatMap(snippetsOf);
const byKey = new Map(snippets.map((s) => [s.key, s]));
const TSX = join(REPO_ROOT, "node_modules/tsx/dist/esm/index.mjs");

let root: string;
before(() => {
  root = mkdtempSync(join(tmpdir(), "readme-snippets-"));
});
after(() => rmSync(root, { recursive: true, force: true }));

/** An empty npm project as a reader makes one: fluster, tsx and @types/node installed (linked), ESM. */
function makeProject(name: string, files: { saveAs: string; code: string }[]): string {
  const dir = join(root, name);
  mkdirSync(join(dir, "node_modules", "@types"), { recursive: true });
  symlinkSync(REPO_ROOT, join(dir, "node_modules", "fluster"));
  symlinkSync(join(REPO_ROOT, "node_modules", "tsx"), join(dir, "node_modules", "tsx"));
  symlinkSync(join(REPO_ROOT, "node_modules", "@types", "node"), join(dir, "node_modules", "@types", "node"));
  writeFileSync(join(dir, "package.json"), `${JSON.stringify({ name: `readme-${name}`, private: true, type: "module" }, null, 2)}\n`);
  for (const file of files) {
    assert.ok(!readdirSync(dir).includes(file.saveAs), `${name}: two snippets are saved as ${file.saveAs}`);
    writeFileSync(join(dir, file.saveAs), file.code);
  }
  return dir;
}

function snippet(key: string): Snippet {
  const found = byKey.get(key);
  assert.ok(found, `test/docs/snippets.ts names "${key}", which no README block is (was its heading renamed?)`);
  return found;
}

const programs = Object.entries(PLANS).filter((entry): entry is [string, Extract<SnippetPlan, { kind: "program" }>] => entry[1].kind === "program");

describe("README snippets", () => {
  test("every TypeScript block of the READMEs has a plan, and every plan a block", () => {
    assert.ok(snippets.length >= 9, `found only ${snippets.length} TypeScript blocks`);
    const unplanned = snippets.filter((s) => !(s.key in PLANS)).map((s) => `${s.key} (${s.document}:${s.line})`);
    assert.deepEqual(unplanned, [], "blocks no test tries: add them to test/docs/snippets.ts");
    for (const key of Object.keys(PLANS)) snippet(key);
  });

  test("every module snippet is imported by a program snippet", () => {
    const used = new Set(programs.flatMap(([, plan]) => plan.with ?? []));
    for (const [key, plan] of Object.entries(PLANS)) {
      if (plan.kind === "module") assert.ok(used.has(key), `${key} is a module no program snippet uses`);
    }
  });

  for (const [key, plan] of Object.entries(PLANS)) {
    if (plan.kind !== "excerpt") continue;
    test(`${key} is verbatim in ${plan.of}`, () => {
      const source = readFileSync(join(REPO_ROOT, plan.of), "utf8");
      assert.ok(source.includes(snippet(key).code.trimEnd()), `the block at ${snippet(key).document}:${snippet(key).line} no longer matches ${plan.of}`);
    });
  }

  const projects: string[] = [];
  programs.forEach(([key, plan], index) => {
    test(`${key} runs as printed`, async (t) => {
      const files = [{ saveAs: plan.saveAs, code: snippet(key).code }, ...(plan.with ?? []).map((k) => ({ saveAs: (PLANS[k] as { saveAs: string }).saveAs, code: snippet(k).code }))];
      const dir = makeProject(`p${index}`, files);
      projects.push(dir);
      plan.setup?.(dir);
      // Its own temporary directory, to see that the program leaves nothing in it.
      const tmp = join(dir, ".tmp");
      mkdirSync(tmp);
      const marker = randomUUID();
      const result = await runNode(["--import", TSX, plan.saveAs], {
        cwd: dir,
        env: cleanEnv({ TMPDIR: tmp, README_SNIPPET_RUN: marker }),
        timeoutMs: plan.timeoutMs ?? 60_000,
      });
      const leftovers = await survivors([`README_SNIPPET_RUN=${marker}`]);
      t.after(() => killAll(leftovers));
      const shown = `stdout:\n${result.stdout}\nstderr:\n${result.stderr}`;
      assert.equal(result.code, 0, `the program ended with code ${result.code} (a hang ends with a signal after ${(plan.timeoutMs ?? 60_000) / 1000} s)\n${shown}`);
      for (const pattern of plan.prints) assert.match(result.stdout, pattern, shown);
      assert.deepEqual(leftovers, [], "processes of the program are still running after it exited");
      const litter = readdirSync(tmp).filter((name) => name.startsWith("fluster"));
      assert.deepEqual(litter, [], `the program left ${litter.join(", ")} in its temporary directory`);
    });
  });

  test("every program snippet type-checks with tsc --strict", async () => {
    assert.ok(projects.length === programs.length, "the program snippets ran first");
    mkdirSync(join(root, "node_modules", "@types"), { recursive: true });
    symlinkSync(join(REPO_ROOT, "node_modules", "@types", "node"), join(root, "node_modules", "@types", "node"));
    writeFileSync(
      join(root, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: { strict: true, module: "nodenext", moduleResolution: "nodenext", target: "es2022", noEmit: true, skipLibCheck: true, types: ["node"] },
        include: projects.map((dir) => `${dir}/*.ts`),
      }),
    );
    const tsc = join(REPO_ROOT, "node_modules/typescript/bin/tsc");
    const result = await runNode([tsc, "-p", join(root, "tsconfig.json")], { cwd: root, timeoutMs: 120_000 });
    const names = programs.map(([key], i) => `  p${i}: ${key}`).join("\n");
    assert.equal(result.code, 0, `tsc found errors in README snippets:\n${result.stdout}${result.stderr}\nprojects:\n${names}`);
  });
});
