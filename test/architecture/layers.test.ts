// SPEC §2's layer rule, checked: a module under src/<layer>/ imports only from
// its own layer or lower ones, and no src/ module imports "fluster" by name.
// Also: only the command line draws on the terminal.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

/** Layers lowest first; cli and dashboard share the top. */
const LAYER_RANK: Readonly<Record<string, number>> = {
  core: 0,
  rpc: 1,
  cluster: 2,
  actor: 3,
  pool: 4,
  job: 5,
  zephyr: 6,
  cli: 7,
  dashboard: 7,
};
/** src/index.ts, the public face, re-exports from every layer: no layer may import it. */
const INDEX = "index";
const INDEX_RANK = 8;
/** Modules allowed to import from any layer. */
const IMPORTS_ANYTHING: ReadonlySet<string> = new Set(["cli", "dashboard", INDEX]);
const PACKAGE_NAME = "fluster";
const SOURCE_FILE = /\.(ts|mts|cts|tsx)$/;

interface LayerReport {
  /** Source files read. */
  filesVisited: number;
  /** One line per problem, sorted, e.g. `src/a/x.ts (cluster) imports src/actor/y.ts (actor)`. */
  violations: string[];
}

/** Checks every TypeScript file under `srcDir` (a folder named `src`) against the layer rule. */
function checkLayers(srcDir: string): LayerReport {
  const root = dirname(srcDir);
  const show = (file: string) => relative(root, file).split(sep).join("/");
  const files = readdirSync(srcDir, { recursive: true })
    .map((entry) => join(srcDir, String(entry)))
    .filter((file) => SOURCE_FILE.test(file) && statSync(file).isFile())
    .sort();
  const violations: string[] = [];

  for (const file of files) {
    const layer = layerOf(srcDir, file);
    if (layer === undefined) {
      violations.push(`${show(file)} is in no layer of SPEC §2 (${Object.keys(LAYER_RANK).join(", ")}, or src/index.ts)`);
      continue;
    }
    for (const specifier of moduleSpecifiers(file)) {
      if (specifier === PACKAGE_NAME || specifier.startsWith(`${PACKAGE_NAME}/`)) {
        violations.push(`${show(file)} (${layer}) imports the package by its own name ("${specifier}"); use a relative import`);
        continue;
      }
      if (!specifier.startsWith("./") && !specifier.startsWith("../")) continue; // node: builtins and dependencies
      const target = resolveSource(file, specifier);
      const targetLayer = layerOf(srcDir, target);
      // Targets outside src/ (package.json, say) are not layered; files in no layer are reported on their own.
      if (targetLayer === undefined || IMPORTS_ANYTHING.has(layer)) continue;
      if (rankOf(targetLayer) > rankOf(layer)) {
        violations.push(`${show(file)} (${layer}) imports ${show(target)} (${targetLayer})`);
      }
    }
  }
  return { filesVisited: files.length, violations: violations.sort() };
}

/** The layer a path under `srcDir` belongs to: its first folder, or "index" for src/index.ts. */
function layerOf(srcDir: string, file: string): string | undefined {
  const parts = relative(srcDir, file).split(sep);
  if (parts[0] === ".." || parts[0] === undefined) return undefined;
  if (parts.length === 1) return /^index\.(ts|js)$/.test(parts[0]) ? INDEX : undefined;
  return parts[0] in LAYER_RANK ? parts[0] : undefined;
}

function rankOf(layer: string): number {
  return layer === INDEX ? INDEX_RANK : (LAYER_RANK[layer] ?? INDEX_RANK);
}

/** The file a relative specifier names: `./x.js` is `./x.ts` on disk; folders mean their index.ts. */
function resolveSource(fromFile: string, specifier: string): string {
  const path = resolve(dirname(fromFile), specifier);
  const asTs = path.replace(/\.js$/, ".ts").replace(/\.mjs$/, ".mts").replace(/\.cjs$/, ".cts").replace(/\.jsx$/, ".tsx");
  const candidates = [asTs, path, `${path}.ts`, join(path, "index.ts")];
  return candidates.find((c) => existsSync(c) && statSync(c).isFile()) ?? asTs;
}

/**
 * Every module specifier a file names in a string literal, from a real parse:
 * `import … from`, `import "…"`, `export … from`, `import("…")`,
 * `import x = require("…")`, `require("…")` and `typeof import("…")` types.
 * Type-only imports count too: a type from a higher layer is a dependency on it.
 */
function moduleSpecifiers(file: string): string[] {
  const source = ts.createSourceFile(file, readFileSync(file, "utf8"), ts.ScriptTarget.Latest, true);
  const found: string[] = [];
  const literal = (node: ts.Node | undefined) => {
    if (node && (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node))) found.push(node.text);
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) {
      literal(node.moduleSpecifier);
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      literal(node.moduleReference.expression);
    } else if (ts.isCallExpression(node)) {
      const callee = node.expression;
      if (callee.kind === ts.SyntaxKind.ImportKeyword || (ts.isIdentifier(callee) && callee.text === "require")) literal(node.arguments[0]);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      literal(node.argument.literal);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

describe("layer rule (SPEC §2)", () => {
  test("the checker reports each kind of violation in a known example, and nothing else", () => {
    const dir = mkdtempSync(join(tmpdir(), "fluster-layers-"));
    const src = join(dir, "src");
    const write = (path: string, text: string) => {
      mkdirSync(dirname(join(src, path)), { recursive: true });
      writeFileSync(join(src, path), text);
    };
    try {
      write("core/types.ts", [
        `import type { A } from "../actor/a.js";`,
        `import { readFileSync } from "node:fs";`,
        `// import { z } from "../zephyr/z.js";  (a comment, not an import)`,
        `export const text = 'import("../zephyr/z.js")';`,
        `export type T = A;`,
      ].join("\n"));
      write("rpc/r.ts", `import fluster from "fluster";\nexport { remote } from "fluster/core";\nimport { text } from "../core/types.js";\n`);
      write("cluster/controller/server.ts", [
        `import { a } from "../../actor/a.js";`,
        `export { b } from "../../pool/b.js";`,
        `export const j = await import("../../job/j.js");`,
        `export const c = await import("../../core/types.js");`,
      ].join("\n"));
      write("cluster/client/ok.ts", `import { j } from "../controller/server.js";\nimport "../../rpc/r.js";\nimport { text } from "../../core/index.js";\n`);
      write("core/index.ts", `export const text = "";\n`);
      write("actor/a.ts", `import { j } from "../cluster/client/ok.js";\nexport const a = 1;\nexport type A = number;\n`);
      write("pool/b.ts", `import z = require("../zephyr/z.js");\nexport const b = 2;\n`);
      write("job/j.ts", `import { a } from "../index.js";\n`);
      write("zephyr/z.ts", `export let d: typeof import("../dashboard/d.js") | undefined;\nconst x = require("../cli/main.js");\n`);
      write("cli/main.ts", `import "../dashboard/d.js";\nimport "../zephyr/z.js";\nimport "../index.js";\nimport pkg from "../../package.json" with { type: "json" };\n`);
      write("dashboard/d.ts", `import "../cli/main.js";\n`);
      write("index.ts", `export * from "./zephyr/z.js";\nexport * from "./cli/main.js";\n`);
      write("util/helpers.ts", `export const h = 1;\n`);

      const report = checkLayers(src);
      assert.equal(report.filesVisited, 13);
      assert.deepEqual(report.violations, [
        "src/cluster/controller/server.ts (cluster) imports src/actor/a.ts (actor)",
        "src/cluster/controller/server.ts (cluster) imports src/job/j.ts (job)",
        "src/cluster/controller/server.ts (cluster) imports src/pool/b.ts (pool)",
        "src/core/types.ts (core) imports src/actor/a.ts (actor)",
        "src/job/j.ts (job) imports src/index.ts (index)",
        "src/pool/b.ts (pool) imports src/zephyr/z.ts (zephyr)",
        `src/rpc/r.ts (rpc) imports the package by its own name ("fluster"); use a relative import`,
        `src/rpc/r.ts (rpc) imports the package by its own name ("fluster/core"); use a relative import`,
        "src/util/helpers.ts is in no layer of SPEC §2 (core, rpc, cluster, actor, pool, job, zephyr, cli, dashboard, or src/index.ts)",
        "src/zephyr/z.ts (zephyr) imports src/cli/main.ts (cli)",
        "src/zephyr/z.ts (zephyr) imports src/dashboard/d.ts (dashboard)",
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("no module in src/ imports a higher layer or the package by name", () => {
    const src = fileURLToPath(new URL("../../src", import.meta.url));
    const report = checkLayers(src);
    assert.ok(report.filesVisited > 0, `no source files found under ${src}`);
    if (report.violations.length > 0) {
      assert.fail(`${report.violations.length} layer violation(s) in ${report.filesVisited} files:\n  ${report.violations.join("\n  ")}`);
    }
  });

  test("only src/cli imports a terminal-drawing library: the library reports progress through callbacks and never draws", () => {
    const src = fileURLToPath(new URL("../../src", import.meta.url));
    const drawing = new Set(["ora"]);
    const files = readdirSync(src, { recursive: true }).map((entry) => join(src, String(entry))).filter((file) => SOURCE_FILE.test(file));
    const cliImports = files.filter((file) => layerOf(src, file) === "cli").flatMap(moduleSpecifiers);
    assert.ok(cliImports.includes("ora"), "the command line draws its spinners with ora (the check would otherwise prove nothing)");
    const offenders = files.filter((file) => layerOf(src, file) !== "cli" && moduleSpecifiers(file).some((s) => drawing.has(s)));
    assert.deepEqual(offenders.map((f) => relative(src, f)), []);
  });
});
