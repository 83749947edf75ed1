// Remote functions: marking, local calls, resolution in this process and in real
// child processes (the way a worker will call them), and isMain.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import {
  ProgramOnImportError,
  RemoteResolutionError,
  importingByReference,
  isMain,
  isRemoteClass,
  isRemoteFunction,
  remote,
  remoteRef,
  resolveRemote,
  type RemoteFunction,
  type RemoteRef,
} from "../../src/core/remote.js";
import { parseOutcome, type RemoteCallOutcome, type RemoteCallRequest } from "../fixtures/remote/call-by-reference.js";
import { FlusterError, ValidationError } from "../../src/core/errors.js";
import { fail, square } from "../fixtures/remote/tasks.js";
import { rejectLater, slowDouble } from "../fixtures/remote/async-tasks.js";
import { runNode } from "../helpers/index.js";

const fixtures = fileURLToPath(new URL("../fixtures/remote/", import.meta.url));
const fixtureUrl = (file: string): string => pathToFileURL(join(fixtures, file)).href;
const bootstrap = fileURLToPath(new URL("../fixtures/remote/call-by-reference.ts", import.meta.url));
const tsxCli = (() => {
  const pkg = createRequire(import.meta.url).resolve("tsx/package.json");
  return join(dirname(pkg), "dist", "cli.mjs");
})();

/** Calls a reference in a fresh `node --import tsx` process through the bootstrap program. */
async function callInChild(request: RemoteCallRequest, via: "argv" | "stdin" = "argv"): Promise<RemoteCallOutcome & { code: number | null }> {
  const json = JSON.stringify(request);
  const result = await runNode(["--import", "tsx", bootstrap, ...(via === "argv" ? [json] : [])], via === "stdin" ? { input: json } : {});
  const outcome = parseOutcome(result.stdout);
  assert.ok(outcome, `child wrote no outcome (exit ${result.code}); stderr:\n${result.stderr}`);
  return { ...outcome, code: result.code };
}

function assertValidation(fn: () => unknown, field: string, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ValidationError, `expected ValidationError, got ${String(err)}`);
    assert.equal(err.field, field);
    assert.match(err.message, pattern);
    return true;
  });
}

async function rejectsResolution(ref: RemoteRef, patterns: RegExp[], options = {}): Promise<RemoteResolutionError> {
  let caught: unknown;
  await resolveRemote(ref, options).catch((err: unknown) => (caught = err));
  assert.ok(caught instanceof RemoteResolutionError, `expected RemoteResolutionError, got ${String(caught)}`);
  assert.ok(caught instanceof FlusterError);
  assert.equal(caught.code, "not_found");
  for (const pattern of patterns) assert.match(caught.message, pattern);
  return caught;
}

const literal = (s: string): RegExp => new RegExp(s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));

// Never called: tsc checks these lines, which is the point.
function compileTimeChecks(): void {
  const sq: (x: number) => number = square;
  const dbl: (x: number) => Promise<number> = slowDouble;
  const anyRemote: RemoteFunction = square;
  const exact: RemoteFunction<[x: number], number> = square;
  // @ts-expect-error square takes a number
  square("3");
  // @ts-expect-error square returns a number
  const wrong: string = square(3);
  void [sq, dbl, anyRemote, exact, wrong];
}
void compileTimeChecks;

describe("remote()", () => {
  test("a local call runs in-process and returns the same value; sync stays sync", async () => {
    const result = square(7);
    assert.equal(result, 49);
    assert.equal(typeof result, "number");
    const pending = slowDouble(4);
    assert.ok(pending instanceof Promise);
    assert.equal(await pending, 8);
    assert.throws(() => fail("local boom"), { name: "RangeError", message: "local boom" });
    await assert.rejects(rejectLater("later"), { name: "TypeError", message: "later" });
  });

  test("carries its reference and brand, keeping the function's name and length", () => {
    assert.deepEqual({ ...remoteRef(square) }, { module: fixtureUrl("tasks.ts"), name: "square" });
    assert.equal(square.ref, remoteRef(square));
    assert.equal(square.name, "square");
    assert.equal(square.length, 1);
    assert.ok(isRemoteFunction(square));
    assert.ok(!isRemoteFunction(function square(x: number) { return x * x; }));
    assert.ok(!isRemoteFunction({ ref: square.ref }));
    assertValidation(() => remoteRef((x: number) => x), "fn", /must be a remote function/);
  });

  test("accepts an absolute path and drops a query string from the module URL", () => {
    const byPath = remote(join(fixtures, "virtual-path.ts"), function fromPath() { return 1; });
    assert.equal(byPath.ref.module, fixtureUrl("virtual-path.ts"));
    const byQuery = remote(`${fixtureUrl("virtual-query.ts")}?v=2#x`, function fromQuery() { return 2; });
    assert.equal(byQuery.ref.module, fixtureUrl("virtual-query.ts"));
  });

  test("rejects anonymous functions, anonymous classes and non-functions", () => {
    assertValidation(() => remote(import.meta.url, (x: number) => x), "fn", /named `function name\(\) \{\}`/);
    assertValidation(() => remote(import.meta.url, function () { return 1; }), "fn", /must have a name/);
    assertValidation(() => remote(import.meta.url, (() => class {})()), "cls", /must be a named class/);
    assertValidation(() => remote(import.meta.url, 42 as unknown as () => void), "fn", /must be a function, got 42/);
  });

  test("marks a class: constructible as usual, with a ref, resolvable by reference", async () => {
    class Counter {
      constructor(public count: number) {}
      incr(by: number): number {
        return (this.count += by);
      }
    }
    const Marked = remote(import.meta.url, Counter);
    const counter = new Marked(2);
    assert.equal(counter.incr(3), 5);
    assert.ok(counter instanceof Counter, "instances are instances of the original class");
    assert.deepEqual(Marked.ref, { module: import.meta.url, name: "Counter" });
    assert.equal(Marked.name, "Counter");
    assert.ok(isRemoteClass(Marked));
    assert.ok(!isRemoteClass(Counter), "the original class is not mutated");
    assert.ok(!isRemoteFunction(Marked), "a class is not a remote function");
    assert.equal(await resolveRemote(Marked.ref), Marked);
  });

  test("rejects a module URL that is not a file: URL or absolute path", () => {
    for (const bad of ["tasks.ts", "./tasks.ts", "https://example.com/tasks.ts", "data:text/javascript,1", "", "file://remote-host/x.ts"]) {
      assertValidation(() => remote(bad, function named() { return 0; }), "moduleUrl", /must be a file: URL/);
    }
    assertValidation(() => remote(undefined as unknown as string, function named() { return 0; }), "moduleUrl", /got undefined/);
  });

  test("rejects two remote functions with the same name in one module", () => {
    const moduleUrl = pathToFileURL(join(tmpdir(), "fluster-dup-test.ts")).href;
    remote(moduleUrl, function twice(x: number) { return x + 1; });
    assertValidation(
      () => remote(moduleUrl, function twice(x: number) { return x + 2; }),
      "fn",
      /second remote function named "twice" in .*fluster-dup-test\.ts.*unique within a module/,
    );
    // Same name in another module is fine: the module is part of the key.
    remote(`${moduleUrl}.other.ts`, function twice(x: number) { return x + 2; });
  });

  test("tolerates the same module being evaluated again", async () => {
    // A second evaluation under another query re-registers identical source, which must not throw.
    const again = (await import(`${fixtureUrl("tasks.ts")}?again=1`)) as { square: typeof square };
    assert.equal(again.square(5), 25);
    assert.equal(await resolveRemote(square.ref), square);
  });
});

describe("resolveRemote in this process", () => {
  test("resolves an exported function to the same function", async () => {
    const fn = await resolveRemote(remoteRef(square));
    assert.equal(fn, square);
    assert.equal(fn(6), 36);
    assert.equal(await (await resolveRemote(slowDouble.ref))(5), 10);
  });

  test("resolves a module-level remote function that is not exported", async () => {
    const fn = await resolveRemote({ module: fixtureUrl("tasks.ts"), name: "hiddenGreeting" });
    assert.equal(fn("worker"), "hello, worker");
  });

  test("imports .mjs and .mts modules it has not seen yet", async () => {
    const shout = await resolveRemote({ module: fixtureUrl("plain.mjs"), name: "shout" });
    assert.equal(shout("hi"), "HI!");
    const joinFn = await resolveRemote({ module: fixtureUrl("typed.mts"), name: "join" });
    assert.equal(joinFn(["a", "b"], "-"), "a-b");
  });

  test("a missing module fails naming the module, the function and the cause", async () => {
    const module = fixtureUrl("no-such-module.ts");
    const err = await rejectsResolution({ module, name: "square" }, [literal(module), /"square"/, /importing the module failed/]);
    assert.ok(err.cause instanceof Error);
    assert.match(err.message, literal((err.cause as Error).message));
    assert.deepEqual({ ...err.ref }, { module, name: "square" });
  });

  test("a module that throws on import fails with the thrown message as cause", async () => {
    const module = fixtureUrl("throws-on-import.ts");
    const err = await rejectsResolution({ module, name: "anything" }, [literal(module), /"anything"/, /fixture exploded while importing/]);
    assert.equal((err.cause as Error).message, "fixture exploded while importing");
  });

  test("while a module is imported by reference, its top level knows which reference; its functions, called later, do not", async () => {
    const ref = { module: fixtureUrl("imported-by-reference.ts"), name: "probe" };
    const probe = await resolveRemote(ref);
    assert.equal(probe(), undefined);
    assert.equal(importingByReference(), undefined);
    const { seenAtImport } = (await import(ref.module)) as { seenAtImport: RemoteRef | undefined };
    assert.deepEqual(seenAtImport, ref);
  });

  test("a module that starts a program as it loads fails with ProgramOnImportError, unwrapped, showing the isMain guard", async () => {
    const ref = { module: fixtureUrl("program-at-import.ts"), name: "task" };
    await assert.rejects(resolveRemote(ref), (err: unknown) => {
      assert.ok(err instanceof ProgramOnImportError, String(err));
      assert.equal(err.code, "failed_precondition");
      assert.deepEqual(err.ref, ref);
      assert.match(err.message, /^the test program started while this process was importing \S+program-at-import\.ts to find "task" by reference/);
      assert.match(err.message, /if \(isMain\(import\.meta\)\) \{/);
      return true;
    });
  });

  test("a missing function fails naming both and listing what the module defines", async () => {
    await rejectsResolution({ module: fixtureUrl("tasks.ts"), name: "cube" }, [
      literal(fixtureUrl("tasks.ts")),
      /"cube"/,
      /it defines: fail, hiddenGreeting, square$/,
    ]);
    await rejectsResolution({ module: fixtureUrl("no-remotes.ts"), name: "square" }, [/no remote function "square"; it defines no remote functions/]);
  });

  test("rebase rewrites the workspace prefix, on whole path segments only", async () => {
    const elsewhere = "/nonexistent/workspace";
    const ref = { module: pathToFileURL(join(elsewhere, "tasks.ts")).href, name: "square" };
    const fn = await resolveRemote(ref, { rebase: { from: elsewhere, to: fixtures } });
    assert.equal(fn, square);
    const viaUrls = await resolveRemote(ref, { rebase: { from: pathToFileURL(elsewhere).href + "/", to: pathToFileURL(fixtures).href } });
    assert.equal(viaUrls, square);
    // "/nonexistent/work" is not a parent of "/nonexistent/workspace/tasks.ts", so nothing is rewritten.
    await rejectsResolution(ref, [/nonexistent\/workspace\/tasks\.ts/], { rebase: { from: "/nonexistent/work", to: fixtures } });
    await assert.rejects(resolveRemote(ref, { rebase: { from: "relative/dir", to: fixtures } }), ValidationError);
  });

  test("fluster's own functions referenced at another install of fluster resolve from this one", async () => {
    // A client whose fluster is elsewhere (a container's worker has it at /opt/fluster) names WorkerPool's executor there.
    const { hostTaskExecutor } = await import("../../src/pool/executor.js");
    for (const module of ["file:///nowhere/node_modules/fluster/dist/pool/executor.js", "file:///home/someone/src/fluster/src/pool/executor.ts"]) {
      assert.equal(await resolveRemote({ module, name: "hostTaskExecutor" }), hostTaskExecutor, module);
    }
    // A module of that path that is not fluster's still fails, naming what it asked for.
    await rejectsResolution({ module: "file:///nowhere/dist/no-such/module.js", name: "f" }, [/nowhere\/dist\/no-such\/module\.js/]);
  });

  test("rejects a malformed reference", async () => {
    await assert.rejects(resolveRemote({ module: "tasks.ts", name: "square" }), { name: "ValidationError", message: /ref\.module/ });
    await assert.rejects(resolveRemote({ module: fixtureUrl("tasks.ts"), name: "" }), { name: "ValidationError", message: /ref\.name/ });
    await assert.rejects(resolveRemote(null as unknown as RemoteRef), { name: "ValidationError", message: /^ref / });
  });
});

describe("symlinked paths", () => {
  let dir = "";
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "fluster-remote-"));
    symlinkSync(fixtures, join(dir, "linked-fixtures"), "dir");
    symlinkSync(join(fixtures, "tasks.ts"), join(dir, "tasks-link.ts"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("a module reached through a symlinked directory resolves to the real module's function", async () => {
    const fn = await resolveRemote({ module: pathToFileURL(join(dir, "linked-fixtures", "tasks.ts")).href, name: "hiddenGreeting" });
    assert.equal(fn("link"), "hello, link");
  });

  test("isMain is true when the entry point is a symlink to the module", async () => {
    const result = await runNode(["--import", "tsx", join(dir, "tasks-link.ts")]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /MAIN-MARKER tasks 9/);
  });
});

describe("resolveRemote in a real child process", { concurrency: true }, () => {
  const tasks = fixtureUrl("tasks.ts");

  test("calls a sync function and returns its result", async () => {
    const outcome = await callInChild({ ref: remoteRef(square), args: [7] });
    assert.deepEqual(outcome, { ok: true, value: 49, code: 0 });
  });

  test("awaits an async function", async () => {
    const outcome = await callInChild({ ref: remoteRef(slowDouble), args: [21] }, "stdin");
    assert.deepEqual(outcome, { ok: true, value: 42, code: 0 });
  });

  test("reports a thrown error's name and message, sync and async", async () => {
    const sync = await callInChild({ ref: remoteRef(fail), args: ["boom"] });
    assert.equal(sync.code, 1);
    assert.ok(!sync.ok);
    assert.equal(sync.error.name, "RangeError");
    assert.equal(sync.error.message, "boom");
    assert.match(sync.error.stack ?? "", /tasks\.ts/);
    const rejected = await callInChild({ ref: remoteRef(rejectLater), args: ["nope"] });
    assert.ok(!rejected.ok);
    assert.deepEqual([rejected.error.name, rejected.error.message], ["TypeError", "nope"]);
  });

  test("resolves a non-exported function and a rebased workspace", async () => {
    const hidden = await callInChild({ ref: { module: tasks, name: "hiddenGreeting" }, args: ["child"] });
    assert.deepEqual(hidden, { ok: true, value: "hello, child", code: 0 });
    const rebased = await callInChild({
      ref: { module: "file:///launch-host/ws/tasks.ts", name: "square" },
      args: [12],
      rebase: { from: "file:///launch-host/ws", to: pathToFileURL(fixtures).href },
    });
    assert.deepEqual(rebased, { ok: true, value: 144, code: 0 });
  });

  test("an unresolvable reference fails the call naming the module and function", async () => {
    const missingModule = await callInChild({ ref: { module: fixtureUrl("gone.ts"), name: "square" }, args: [] });
    assert.ok(!missingModule.ok);
    assert.equal(missingModule.error.name, "RemoteResolutionError");
    assert.equal(missingModule.error.code, "not_found");
    assert.match(missingModule.error.message, /gone\.ts/);
    assert.match(missingModule.error.message, /"square"/);
    const missingFn = await callInChild({ ref: { module: tasks, name: "cube" }, args: [] });
    assert.ok(!missingFn.ok);
    assert.match(missingFn.error.message, /"cube".*it defines: fail, hiddenGreeting, square/);
  });
});

describe("isMain", { concurrency: true }, () => {
  test("a module run directly runs its main block", async () => {
    const result = await runNode(["--import", "tsx", join(fixtures, "tasks.ts")]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.trim(), "MAIN-MARKER tasks 9");
  });

  test("the same module imported by another does not", async () => {
    const result = await runNode(["--import", "tsx", join(fixtures, "importer.ts")]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.trim(), "IMPORTER 16");
  });

  test("works under the tsx CLI and when the entry point omits its extension", async () => {
    const viaCli = await runNode([tsxCli, join(fixtures, "tasks.ts")]);
    assert.equal(viaCli.code, 0, viaCli.stderr);
    assert.match(viaCli.stdout, /MAIN-MARKER tasks 9/);
    const noExtension = await runNode(["--import", "tsx", join(fixtures, "tasks")]);
    assert.equal(noExtension.code, 0, noExtension.stderr);
    assert.match(noExtension.stdout, /MAIN-MARKER tasks 9/);
  });

  test("is false for a module that is not the entry point", () => {
    assert.equal(isMain({ url: fixtureUrl("tasks.ts") } as ImportMeta), false);
    assert.equal(isMain({ url: "data:text/javascript,1" } as ImportMeta), false);
  });

  test("is false in a worker thread, though its argv names the entry point", async () => {
    const entry = process.argv[1];
    assert.ok(entry !== undefined);
    assert.equal(isMain({ url: pathToFileURL(entry).href } as ImportMeta), true);
    const worker = new Worker(new URL("../fixtures/remote/is-main-worker.mjs", import.meta.url));
    try {
      const [answer] = (await once(worker, "message")) as [boolean];
      assert.equal(answer, false);
    } finally {
      await worker.terminate();
    }
  });
});
