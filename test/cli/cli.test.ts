// The `fluster` command line: the real bin as a child process (help, version,
// one-line errors, exit codes), the command tree in-process, and the parsers.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CommanderError, InvalidArgumentError, type Command } from "commander";
import { FlusterError, ValidationError } from "../../src/core/errors.js";
import { CliError, errorLine, exitCodeOf } from "../../src/cli/output.js";
import { collectKeyValue, parseGpu, parseKeyValue, parseMemory, parsePort, parsePositiveInt, parseTpu } from "../../src/cli/parse.js";
import { COMMAND_PATHS, buildProgram, missingDashDash, notBuiltYet, type CommandActions, type CommandPath, type ReservationCreateOptions } from "../../src/cli/program.js";
import { reservationConfigFromOptions } from "../../src/cli/commands.js";
import { validateReservationConfig } from "../../src/core/reservation.js";
import * as readline from "node:readline";
import { StatusLine } from "../../src/cli/status-line.js";
import { PassThrough } from "node:stream";
import { REPO_ROOT, cleanEnv, runNode, type NodeResult } from "../helpers/index.js";

const bin = join(REPO_ROOT, "bin", "fluster.js");
const packageVersion = (JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as { version: string }).version;
const NOT_BUILT = (path: string) => `fluster: "${path}" has no action in this build of the command line`;

/** Runs the real bin with `node`, as `npx fluster` would on a machine with no cluster address. */
function runCli(args: string[], options: { cwd?: string; script?: string } = {}): Promise<NodeResult> {
  return runNode([options.script ?? bin, ...args], { cwd: options.cwd ?? REPO_ROOT, env: cleanEnv(), timeoutMs: 30_000 });
}

function stderrLines(result: NodeResult): string[] {
  return result.stderr.split("\n").filter((line) => line.length > 0);
}

/** Minimal argv that reaches each command's action. */
const MINIMAL_ARGS: Record<CommandPath, string[]> = {
  "cluster start": ["cluster", "start", "--local"],
  "controller serve": ["controller", "serve"],
  "controller backup": ["controller", "backup", "/tmp/fluster-backup.sqlite"],
  "worker serve": ["--controller", "http://127.0.0.1:7070", "worker", "serve"],
  "worker list": ["worker", "list"],
  "job run": ["job", "run", "--", "node", "-e", "1"],
  "job list": ["job", "list"],
  "job status": ["job", "status", "job-1"],
  "job logs": ["job", "logs", "job-1"],
  "job stop": ["job", "stop", "job-1"],
  "job results": ["job", "results", "job-1"],
  "group list": ["group", "list"],
  "group status": ["group", "status", "g-1"],
  "group stop": ["group", "stop", "g-1"],
  "reservation create": ["reservation", "create", "--min", "2"],
  "reservation list": ["reservation", "list"],
  "reservation status": ["reservation", "status", "reservation-1"],
  "reservation release": ["reservation", "release", "reservation-1"],
  "endpoint list": ["endpoint", "list"],
  "endpoint remove": ["endpoint", "remove", "calc"],
  "vm list": ["vm", "list"],
};

describe("bin/fluster.js", { concurrency: true }, () => {
  test("is an executable node script", () => {
    assert.ok((statSync(bin).mode & 0o111) !== 0, "bin/fluster.js is not executable");
    assert.equal(readFileSync(bin, "utf8").split("\n")[0], "#!/usr/bin/env node");
  });

  test("--help lists every command of the tree with its options", async () => {
    const result = await runCli(["--help"]);
    assert.equal(result.code, 0, result.stderr);
    for (const path of COMMAND_PATHS) assert.match(result.stdout, new RegExp(`^  fluster ${path} `, "m"), `help lacks "${path}"`);
    for (const flag of ["--workers", "--state-dir", "--port", "--label", "--gpu", "--tpu", "--replicas", "-e <K=V>", "--no-wait", "--schedule-timeout", "--follow", "--prefix", "--json", "--controller", "FLUSTER_CLUSTER_ADDRESS"]) {
      assert.ok(result.stdout.includes(flag), `help lacks ${flag}`);
    }
  });

  test("--version and -V print the package version", async () => {
    for (const flag of ["--version", "-V"]) {
      const result = await runCli([flag]);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout.trim(), packageVersion);
    }
  });

  test("an unknown command is one error line and a non-zero exit", async () => {
    const result = await runCli(["frobnicate"]);
    assert.notEqual(result.code, 0);
    assert.equal(result.stdout, "");
    assert.deepEqual(stderrLines(result), ["fluster: unknown command 'frobnicate' (see 'fluster --help')"]);
  });

  test("a bad --workers value is one error line naming the option and the value", async () => {
    const result = await runCli(["cluster", "start", "--local", "--workers", "abc"]);
    assert.notEqual(result.code, 0);
    const lines = stderrLines(result);
    assert.equal(lines.length, 1, result.stderr);
    assert.match(lines[0] ?? "", /^fluster: option '--workers <n>' argument 'abc' is invalid\. Expected a whole number ≥ 0\./);
  });

  test("other usage errors are one line each", async () => {
    const cases: Array<[string[], RegExp]> = [
      [["job", "run", "-e", "NOVALUE", "--", "x"], /'-e, --env <K=V>' argument 'NOVALUE' is invalid/],
      [["job", "run", "--gpu", "H100:0", "--", "x"], /'--gpu <variant\[:count\]>' argument 'H100:0' is invalid/],
      [["job", "run", "--gpu", "H100", "--tpu", "v4-8", "--", "x"], /cannot be used with option '--tpu/],
      [["job", "run"], /missing required argument 'command'/],
      [["job", "list", "--bogus"], /unknown option '--bogus'/],
      [["worker", "serve"], /worker serve needs --controller <url>/],
      [["worker", "serve", "--controller", "http://c:1", "--tpu", "v5litepod-12"], /'--tpu <variant>' argument 'v5litepod-12' is invalid\. It is not a known TPU variant/],
      [["worker", "serve", "--controller", "http://c:1", "--gpu", "H100:0"], /'--gpu <variant\[:count\]>' argument 'H100:0' is invalid/],
      [["worker", "serve", "--controller", "http://c:1", "--gpu", "H100", "--tpu", "v4-8"], /cannot be used with option '--tpu/],
      [["cluster", "start"], /cluster start needs --local/],
      // A command with options of its own needs `--`, or fluster takes them (`-e 1`, `--version`).
      [["job", "run", "node", "-e", "1"], /^fluster: put `--` before the command: fluster job run -- node -e 1 \(see 'fluster job run --help'\)$/],
      [["job", "run", "--cpu", "2", "node", "--version"], /^fluster: put `--` before the command: fluster job run --cpu 2 -- node --version /],
    ];
    await Promise.all(
      cases.map(async ([args, pattern]) => {
        const result = await runCli(args);
        assert.equal(result.code, 1, `fluster ${args.join(" ")}: ${result.stderr}`);
        const lines = stderrLines(result);
        assert.equal(lines.length, 1, `fluster ${args.join(" ")}: ${result.stderr}`);
        assert.match(lines[0] ?? "", pattern);
      }),
    );
  });

  test("a cluster command without a controller address says how to get one, in one line", async () => {
    const result = await runCli(["job", "run", "--cpu", "2", "--gpu", "H100:8", "-e", "A=1", "--", "node", "-e", "1"]);
    assert.equal(result.code, 1);
    const lines = stderrLines(result);
    assert.equal(lines.length, 1, result.stderr);
    assert.match(lines[0] ?? "", /no controller address: pass --controller URL or set FLUSTER_CLUSTER_ADDRESS/);
  });

  test("runs from another directory through a symlink, as npm's .bin link does", async () => {
    const dir = mkdtempSync(join(tmpdir(), "fluster-bin-"));
    try {
      symlinkSync(bin, join(dir, "fluster"));
      const result = await runCli(["--version"], { cwd: dir, script: join(dir, "fluster") });
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout.trim(), packageVersion);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** Builds the program with output captured, parses `args`, and returns what happened. */
async function parse(args: string[], actions: Partial<CommandActions> = {}): Promise<{ error?: unknown; out: string; err: string }> {
  let out = "";
  let err = "";
  const program = buildProgram(actions, { writeOut: (s) => (out += s), writeErr: (s) => (err += s) });
  try {
    await program.parseAsync(args, { from: "user" });
    return { out, err };
  } catch (error) {
    return { error, out, err };
  }
}

describe("command tree", () => {
  test("every leaf command is in COMMAND_PATHS, and every command has a one-line description", () => {
    const program = buildProgram();
    const leaves: string[] = [];
    const visit = (command: Command, path: string[]): void => {
      for (const sub of command.commands.filter((c) => c.name() !== "help")) {
        const description = sub.description();
        assert.ok(description.length > 0 && !description.includes("\n"), `"${[...path, sub.name()].join(" ")}" needs a one-line description`);
        if (sub.commands.length === 0) leaves.push([...path, sub.name()].join(" "));
        visit(sub, [...path, sub.name()]);
      }
    };
    visit(program, []);
    assert.deepEqual(leaves, [...COMMAND_PATHS]);
  });

  test("each leaf's usage line names every option it accepts", () => {
    const program = buildProgram();
    for (const path of COMMAND_PATHS) {
      const command = path.split(" ").reduce<Command>((c, name) => c.commands.find((s) => s.name() === name) ?? assert.fail(name), program);
      for (const option of command.options) {
        const flag = option.short && !option.long?.startsWith("--no-") && option.short !== "-h" ? option.short : option.long;
        if (flag === "--help") continue;
        assert.ok(command.usage().includes(`${flag}`), `usage of "${path}" lacks ${flag}: ${command.usage()}`);
      }
    }
  });

  test("without actions, every command rejects with notBuiltYet's exit-2 error", async () => {
    for (const path of COMMAND_PATHS) {
      const { error } = await parse(MINIMAL_ARGS[path]);
      assert.ok(error instanceof CliError, `${path}: ${String(error)}`);
      assert.equal(error.exitCode, 2);
      assert.equal(errorLine(error), NOT_BUILT(path));
    }
    assert.throws(() => notBuiltYet("job list"), (e: unknown) => e instanceof CliError && e.exitCode === 2);
  });

  test("job run passes the command and parsed options to its action", async () => {
    const calls: unknown[] = [];
    const { error } = await parse(
      ["--controller", "http://c:1", "job", "run", "--cpu", "2", "--memory", "8g", "--gpu", "H100:8", "--replicas", "3",
        "-e", "A=1", "--env", "B=x=y", "-e", "A=2", "--no-wait", "--json", "--", "node", "train.js", "--lr", "3"],
      { "job run": (command, options) => void calls.push({ command, options }) },
    );
    assert.equal(error, undefined);
    assert.deepEqual(calls, [
      {
        command: ["node", "train.js", "--lr", "3"],
        options: { controller: "http://c:1", cpu: 2, memory: "8g", gpu: { variant: "H100", count: 8 }, replicas: 3, env: { A: "2", B: "x=y" }, wait: false, json: true },
      },
    ]);
  });

  test("reservation create passes its flags to its action, and turns them into a ReservationConfig", async () => {
    const calls: ReservationCreateOptions[] = [];
    const { error } = await parse(
      ["reservation", "create", "--cpu", "2", "--memory", "1g", "--min", "2", "--max", "4", "--ttl", "60", "--priority", "3", "--no-preemptible"],
      { "reservation create": (options) => void calls.push(options) },
    );
    assert.equal(error, undefined);
    assert.deepEqual(calls, [{ cpu: 2, memory: "1g", min: 2, max: 4, ttl: 60, priority: 3, preemptible: false }]);
    const config = validateReservationConfig(reservationConfigFromOptions(calls[0] as ReservationCreateOptions));
    assert.deepEqual(
      { cpu: config.minResources.cpu, memory: config.minResources.memory, min: config.minResources.replicas, max: config.maxResources.replicas, ttl: config.ttlSeconds, preemptible: config.preemptible },
      { cpu: 2, memory: 1024 ** 3, min: 2, max: 4, ttl: 60, preemptible: false },
    );
    const tpu = validateReservationConfig(reservationConfigFromOptions({ tpu: "v5litepod-16", min: 1, max: 2, preemptible: true }));
    assert.equal(tpu.minResources.replicas, 4, "a v5litepod-16 slice is 4 hosts, each a slot");
    assert.equal(tpu.maxResources.replicas, 8);
    const { error: bad } = await parse(["reservation", "create", "--min", "0"], { "reservation create": () => undefined });
    assert.ok(bad instanceof CommanderError, "--min 0 is refused by the parser");
    assert.throws(() => validateReservationConfig(reservationConfigFromOptions({ min: 3, max: 2, preemptible: true })), /replicas/);
  });

  test("job run defaults: wait, no env, no resources", async () => {
    const calls: unknown[] = [];
    await parse(["job", "run", "--", "true"], { "job run": (_command, options) => void calls.push(options) });
    assert.deepEqual(calls, [{ env: {}, wait: true }]);
  });

  test("--controller comes from FLUSTER_CLUSTER_ADDRESS unless given, before or after the command", async () => {
    const saved = process.env.FLUSTER_CLUSTER_ADDRESS;
    try {
      process.env.FLUSTER_CLUSTER_ADDRESS = "http://from-env:1";
      const seen: Array<string | undefined> = [];
      const actions: Partial<CommandActions> = { "job list": (o) => void seen.push(o.controller) };
      await parse(["job", "list"], actions);
      await parse(["--controller", "http://flag:2", "job", "list"], actions);
      await parse(["job", "list", "--controller", "http://after:3"], actions);
      delete process.env.FLUSTER_CLUSTER_ADDRESS;
      await parse(["job", "list"], actions);
      assert.deepEqual(seen, ["http://from-env:1", "http://flag:2", "http://after:3", undefined]);
    } finally {
      if (saved === undefined) delete process.env.FLUSTER_CLUSTER_ADDRESS;
      else process.env.FLUSTER_CLUSTER_ADDRESS = saved;
    }
  });

  test("worker serve collects labels and requires a controller", async () => {
    const calls: unknown[] = [];
    const actions: Partial<CommandActions> = { "worker serve": (o) => void calls.push(o) };
    await parse(["worker", "serve", "--controller", "http://c:1", "--cpu", "4", "--memory", "16g", "--label", "zone=a", "--label", "pool=tpu"], actions);
    await parse(["worker", "serve", "--controller", "http://c:1", "--host", "0.0.0.0", "--advertise-host", "10.0.0.7"], actions);
    await parse(["worker", "serve", "--controller", "http://c:1", "--npm-cache", "/root/.npm"], actions);
    await parse(["worker", "serve", "--controller", "http://c:1", "--npm-offline"], actions);
    await parse(["worker", "serve", "--controller", "http://c:1", "--gpu", "H100:2"], actions);
    await parse(["worker", "serve", "--controller", "http://c:1", "--tpu", "v5litepod-16"], actions);
    assert.deepEqual(calls, [
      { controller: "http://c:1", cpu: 4, memory: "16g", label: { zone: "a", pool: "tpu" } },
      { controller: "http://c:1", host: "0.0.0.0", advertiseHost: "10.0.0.7", label: {} },
      { controller: "http://c:1", npmCache: "/root/.npm", label: {} },
      { controller: "http://c:1", npmOffline: true, label: {} },
      { controller: "http://c:1", gpu: { variant: "H100", count: 2 }, label: {} },
      { controller: "http://c:1", tpu: "v5litepod-16", label: {} },
    ]);
    const saved = process.env.FLUSTER_CLUSTER_ADDRESS;
    delete process.env.FLUSTER_CLUSTER_ADDRESS;
    try {
      const { error, err } = await parse(["worker", "serve"], actions);
      assert.ok(error instanceof CommanderError);
      assert.equal(err, "fluster: worker serve needs --controller <url> (or FLUSTER_CLUSTER_ADDRESS) (see 'fluster worker serve --help')\n");
    } finally {
      if (saved !== undefined) process.env.FLUSTER_CLUSTER_ADDRESS = saved;
    }
  });

  test("id commands, --follow, --prefix and --port reach their actions", async () => {
    const calls: unknown[] = [];
    const record = (name: string) => (...args: unknown[]) => void calls.push([name, ...args]);
    const actions: Partial<CommandActions> = {
      "job status": record("status"),
      "job logs": record("logs"),
      "job stop": record("stop"),
      "job results": record("results"),
      "endpoint list": record("endpoints"),
      "controller serve": record("controller"),
      "cluster start": record("cluster"),
    };
    await parse(["job", "status", "j1", "--json"], actions);
    await parse(["job", "logs", "j2", "--follow"], actions);
    await parse(["job", "stop", "j3"], actions);
    await parse(["job", "results", "j4", "--json", "--timeout", "2.5"], actions);
    await parse(["endpoint", "list", "--prefix", "calc"], actions);
    await parse(["controller", "serve", "--port", "7070", "--state-dir", "/tmp/s"], actions);
    await parse(["controller", "serve", "--max-request-size", "16m", "--max-replicas", "50", "--max-endpoints-per-job", "5", "--lost-worker-retention", "3600"], actions);
    await parse(["cluster", "start", "--local", "--workers", "3"], actions);
    assert.deepEqual(calls, [
      ["status", "j1", { json: true }],
      ["logs", "j2", { follow: true }],
      ["stop", "j3", {}],
      ["results", "j4", { json: true, timeout: 2.5 }],
      ["endpoints", { prefix: "calc" }],
      ["controller", { port: 7070, stateDir: "/tmp/s" }],
      ["controller", { maxRequestSize: "16m", maxReplicas: 50, maxEndpointsPerJob: 5, lostWorkerRetention: 3600 }],
      ["cluster", { local: true, workers: 3 }],
    ]);
  });

  test("an action's numeric result becomes the exit status", async () => {
    const saved = process.exitCode;
    try {
      await parse(["job", "list"], { "job list": () => 3 });
      assert.equal(process.exitCode, 3);
    } finally {
      process.exitCode = saved;
    }
  });
});

describe("job run without `--`", () => {
  const fixed = (args: string[]) => {
    const program = buildProgram();
    const run = program.commands.find((c) => c.name() === "job")?.commands.find((c) => c.name() === "run");
    assert.ok(run);
    return missingDashDash(args, program, run);
  };

  test("is refused only when the command has options of its own, with the line to type instead", () => {
    assert.equal(fixed(["job", "run", "node", "-e", "1"]), "fluster job run -- node -e 1");
    assert.equal(fixed(["--controller", "http://c:1", "job", "run", "-e", "A=1", "--no-wait", "python", "t.py", "--lr=3"]), "fluster --controller http://c:1 job run -e A=1 --no-wait -- python t.py --lr=3");
    assert.equal(fixed(["job", "run", "--name=x", "node", "-e", "console.log('a b')"]), "fluster job run --name=x -- node -e 'console.log('\\''a b'\\'')'");
    assert.equal(fixed(["job", "run", "--", "node", "-e", "1"]), undefined, "with --");
    assert.equal(fixed(["job", "run", "node", "train.js"]), undefined, "no options to confuse");
    assert.equal(fixed(["job", "run", "--bogus", "node", "-e", "1"]), undefined, "an unknown option is commander's to report");
    assert.equal(fixed(["job", "list", "-e"]), undefined);
  });
});

describe("status-line.ts", () => {
  const sink = (isTTY: boolean) => {
    const written: string[] = [];
    // A terminal's cursor methods, as tty.WriteStream has them (ora draws with them).
    const stream: PassThrough & { isTTY: boolean; columns: number } = Object.assign(new PassThrough(), {
      isTTY,
      columns: 30,
      cursorTo: (x: number) => readline.cursorTo(stream, x),
      clearLine: (dir: -1 | 0 | 1) => readline.clearLine(stream, dir),
      moveCursor: (dx: number, dy: number) => readline.moveCursor(stream, dx, dy),
    });
    stream.on("data", (chunk: Buffer) => written.push(chunk.toString()));
    return { stream, written: () => written.join("") };
  };

  test("on a terminal: an ora spinner showing the text and the seconds waited, cleared by stop()", async () => {
    const { stream, written } = sink(true);
    const line = new StatusLine(stream);
    line.update("job-1: pending — no worker has a gpu");
    line.stop();
    await new Promise((r) => setImmediate(r));
    const text = written();
    assert.ok(text.includes("job-1: pending — no worker has a gpu (0s)"), JSON.stringify(text));
    assert.ok(!text.includes("\n"), "never a new line");
  });

  test("a terminal without a width (script without a size) gets plain lines, not a spinner", async () => {
    const written: string[] = [];
    const stream = Object.assign(new PassThrough(), { isTTY: true, columns: 0 });
    stream.on("data", (chunk: Buffer) => written.push(chunk.toString()));
    const line = new StatusLine(stream);
    line.update("pending: a");
    line.stop();
    await new Promise((r) => setImmediate(r));
    assert.equal(written.join(""), "pending: a\n");
  });

  test("in a pipe: each new text once, as a plain line", async () => {
    const { stream, written } = sink(false);
    const line = new StatusLine(stream);
    line.update("pending: a");
    line.update("pending: a");
    line.update("pending: b");
    line.stop();
    await new Promise((r) => setImmediate(r));
    assert.equal(written(), "pending: a\npending: b\n");
  });
});

describe("parse.ts", () => {
  const invalid = (fn: () => unknown, message?: RegExp) =>
    assert.throws(fn, (e: unknown) => e instanceof InvalidArgumentError && (message === undefined || message.test(e.message)));

  test("parsePositiveInt", () => {
    assert.equal(parsePositiveInt("1"), 1);
    assert.equal(parsePositiveInt("42"), 42);
    assert.equal(parsePositiveInt(" 7 "), 7);
    for (const bad of ["0", "-1", "1.5", "abc", "", "1e3", "0x10", "9007199254740993"]) invalid(() => parsePositiveInt(bad), /positive integer/);
  });

  test("parsePort", () => {
    assert.equal(parsePort("8080"), 8080);
    assert.equal(parsePort("65535"), 65535);
    for (const bad of ["0", "65536", "http", "80.5"]) invalid(() => parsePort(bad), /1 to 65535/);
  });

  test("parseKeyValue splits at the first =", () => {
    assert.deepEqual(parseKeyValue("a=b"), ["a", "b"]);
    assert.deepEqual(parseKeyValue("a="), ["a", ""]);
    assert.deepEqual(parseKeyValue("URL=x?y=1"), ["URL", "x?y=1"]);
    for (const bad of ["ab", "=b", "", "a b=c"]) invalid(() => parseKeyValue(bad), /KEY=VALUE/);
  });

  test("collectKeyValue builds a record without mutating the previous one", () => {
    const first = collectKeyValue("a=1");
    const second = collectKeyValue("b=2", first);
    const third = collectKeyValue("a=3", second);
    assert.deepEqual(first, { a: "1" });
    assert.deepEqual(second, { a: "1", b: "2" });
    assert.deepEqual(third, { a: "3", b: "2" });
  });

  test("parseGpu", () => {
    assert.deepEqual(parseGpu("H100:8"), { variant: "H100", count: 8 });
    assert.deepEqual(parseGpu("A100"), { variant: "A100", count: 1 });
    assert.deepEqual(parseGpu("auto:2"), { variant: "auto", count: 2 });
    for (const bad of ["", ":8", " :8", "H100:", "H100:0", "H100:x", "H100:1.5"]) invalid(() => parseGpu(bad), /VARIANT/);
  });

  test("parseMemory checks the size and keeps the text", () => {
    assert.equal(parseMemory("8g"), "8g");
    assert.equal(parseMemory("512MiB"), "512MiB");
    for (const bad of ["lots", "-1g", ""]) invalid(() => parseMemory(bad), /size such as/);
  });

  test("parseTpu checks the topology table", () => {
    assert.equal(parseTpu("v5litepod-16"), "v5litepod-16");
    invalid(() => parseTpu("v9-8"), /not a known TPU variant/);
  });
});

describe("output.ts", () => {
  test("errorLine gives one line, with the class name only for unexpected errors", () => {
    assert.equal(errorLine(new CliError("no\n  such job")), "fluster: no such job");
    assert.equal(errorLine(new ValidationError("cpu", "must be positive")), "fluster: cpu must be positive");
    assert.equal(errorLine(new FlusterError("controller unavailable", "unavailable")), "fluster: controller unavailable");
    assert.equal(errorLine(new TypeError("x is undefined")), "fluster: TypeError: x is undefined");
    assert.equal(errorLine(new Error("plain")), "fluster: plain");
    assert.equal(errorLine("a string"), "fluster: a string");
  });

  test("exitCodeOf", () => {
    assert.equal(exitCodeOf(new CliError("x", 2)), 2);
    assert.equal(exitCodeOf(new CommanderError(0, "commander.helpDisplayed", "(outputHelp)")), 0);
    assert.equal(exitCodeOf(new Error("x")), 1);
  });
});
