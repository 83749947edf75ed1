// The actor data plane end to end: calls on one long-lived CallStream per
// server keep their order, survive the death of one of two endpoints without
// running any call twice, leave the process free to exit, and the unary Call
// still serves tools (buf curl) and the stream still serves any Connect client.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ActorServer } from "../../src/actor/server.js";
import { FixedResolver } from "../../src/actor/resolver.js";
import { actorConnections } from "../../src/actor/connections.js";
import { CallInterruptedError } from "../../src/actor/errors.js";
import { FlusterError } from "../../src/core/errors.js";
import { decodeValue, encodeValue } from "../../src/rpc/codec.js";
import { ActorService } from "../../src/rpc/gen/fluster/actor/v1/actor_pb.js";
import { Calculator } from "../fixtures/actor/calculator.js";
import { REPO_ROOT } from "../helpers/paths.js";
import { runNode, stopProcess, waitForLine } from "../helpers/processes.js";
import { eventually } from "../helpers/eventually.js";

const run = promisify(execFile);
const servers: ActorServer[] = [];
const children: ChildProcess[] = [];
after(async () => {
  await Promise.all(children.map((c) => stopProcess(c, "SIGKILL")));
  await Promise.all(servers.map((s) => s.shutdown()));
});

async function serve(name: string, instance: object, options: { maxConcurrency?: number; maxRequestBytes?: number } = {}): Promise<ActorServer> {
  const server = new ActorServer(undefined, options.maxRequestBytes ? { maxRequestBytes: options.maxRequestBytes } : {});
  servers.push(server);
  await server.register(name, instance, options.maxConcurrency ? { maxConcurrency: options.maxConcurrency } : {});
  return server;
}

/** Starts test/fixtures/actor/recording-host.ts; resolves with its address and the file it records call ids in. */
async function recordingHost(dir: string, label: string): Promise<{ child: ChildProcess; address: string; file: string }> {
  const file = join(dir, `${label}.ids`);
  const child = spawn(process.execPath, ["--import", "tsx", "test/fixtures/actor/recording-host.ts"], {
    cwd: REPO_ROOT,
    env: { ...process.env, RECORD_FILE: file },
    stdio: ["ignore", "pipe", "inherit"],
  });
  children.push(child);
  const [, address] = await waitForLine(child, /serving (\S+)/);
  return { child, address: address as string, file };
}

const recordedIds = (file: string): number[] =>
  existsSync(file)
    ? readFileSync(file, "utf8")
        .split("\n")
        .filter(Boolean)
        .map(Number)
    : [];

describe("actor data plane", () => {
  test("10,000 calls from 8 interleaving callers run in the order they were made", async () => {
    const seen: number[] = [];
    const server = await serve("ordered", {
      record(seq: number): number {
        seen.push(seq);
        return seq;
      },
    });
    const total = 10_000;
    let next = 0;
    // Eight pools, as eight parts of a program would have: they share the process's one connection.
    const callers = Array.from({ length: 8 }, async (_, caller) => {
      const pool = new FixedResolver({ ordered: server.address }).lookup<{ record(seq: number): number }>("ordered");
      let rounds = 0;
      while (next < total && rounds++ < total) {
        // A burst of 1-40 calls not awaited one by one, then a pause of a turn or two.
        const burst: Promise<number>[] = [];
        const size = 1 + ((caller * 7 + rounds * 13) % 40);
        for (let i = 0; i < size && next < total; i++) burst.push(pool.call().record(next++));
        if (rounds % 3 === 0) await new Promise((r) => setImmediate(r));
        const answers = await Promise.all(burst);
        for (let i = 1; i < answers.length; i++) assert.ok((answers[i] as number) > (answers[i - 1] as number));
      }
    });
    await Promise.all(callers);
    assert.equal(seen.length, total, "every call ran once");
    for (let i = 0; i < total; i++) if (seen[i] !== i) assert.fail(`call ${i} ran in position ${seen.indexOf(i)} (position ${i} ran call ${seen[i]})`);
  });

  test("SIGKILL of one of two endpoints with 1,000 calls in flight: each call succeeds once or fails as interrupted; none runs twice", async () => {
    const dir = mkdtempSync(join(tmpdir(), "fluster-data-plane-"));
    const [a, b] = await Promise.all([recordingHost(dir, "a"), recordingHost(dir, "b")]);
    const pool = new FixedResolver({ svc: [a.address, b.address] }).lookup<{ work(id: number, ms: number): number }>("svc");
    const outcomes = Array.from({ length: 1_000 }, (_, id) =>
      pool
        .call()
        .work(id, 1_500)
        .then(
          (pid) => ({ id, ok: true as const, pid }),
          (err: unknown) => ({ id, ok: false as const, err }),
        ),
    );
    // Kill A while its share of the calls is running.
    await eventually(() => recordedIds(a.file).length >= 100, { what: "A to start its calls", timeoutMs: 30_000 });
    a.child.kill("SIGKILL");
    const settled = await Promise.all(outcomes);
    // Calls made after the death: those sent towards A are refused and go to B.
    const later = await Promise.all(Array.from({ length: 20 }, (_, i) => pool.call().work(1_000 + i, 1)));
    assert.ok(later.every((pid) => pid === b.child.pid), "calls after the death all ran on B");

    const ran = [...recordedIds(a.file), ...recordedIds(b.file)];
    const counts = new Map<number, number>();
    for (const id of ran) counts.set(id, (counts.get(id) ?? 0) + 1);
    const twice = [...counts].filter(([, n]) => n > 1).map(([id]) => id);
    assert.deepEqual(twice, [], "no call ran twice");
    let interrupted = 0;
    for (const outcome of settled) {
      if (outcome.ok) {
        assert.equal(counts.get(outcome.id), 1, `call ${outcome.id} succeeded, so it ran exactly once`);
        assert.equal(outcome.pid, b.child.pid, "only B could answer");
      } else {
        assert.ok(outcome.err instanceof CallInterruptedError, `call ${outcome.id} failed with ${String(outcome.err)}`);
        assert.equal(outcome.err.code, "unavailable");
        assert.equal(outcome.err.mayHaveRun, true);
        interrupted++;
      }
    }
    assert.ok(interrupted >= 100, `the calls running on A were interrupted (${interrupted})`);
    assert.equal(settled.filter((o) => o.ok).length, 1_000 - interrupted);
    pool.close();
  });

  test("a program that made an actor call ends by itself; pool.close() lets its connection go", async () => {
    const server = await serve("calculator", new Calculator());
    const result = await runNode(["--import", "tsx", "test/fixtures/actor/one-call.ts"], { env: { ...process.env, ACTOR_ADDRESS: server.address }, timeoutMs: 30_000 });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.trim(), "5");

    const before = actorConnections.size;
    const pool = new FixedResolver({ calculator: server.address }).lookup<Calculator>("calculator");
    assert.equal(await pool.call().add(1, 1), 2);
    assert.equal(actorConnections.size, before + 1, "one connection for the new server");
    pool.close();
    await eventually(() => actorConnections.size === before, { what: "the closed pool's connection to go", timeoutMs: 5_000 });
    // A closed pool opens a connection again when used.
    assert.equal(await pool.call().add(2, 2), 4);
    pool.close();
  });

  test("a call larger than the server's limit fails alone, naming maxRequestBytes; the stream goes on", async () => {
    const server = await serve("small", new Calculator(), { maxRequestBytes: 64 * 1024 });
    const pool = new FixedResolver({ small: server.address }).lookup<Calculator>("small");
    const big = "x".repeat(100 * 1024);
    const [tooBig, fine] = await Promise.allSettled([pool.call().slowEcho(big, 1), pool.call().add(1, 2)]);
    assert.equal(tooBig.status, "rejected");
    assert.ok(tooBig.reason instanceof FlusterError);
    assert.equal(tooBig.reason.code, "resource_exhausted");
    assert.match(tooBig.reason.message, /at most 65536 bytes \(its maxRequestBytes\)/);
    assert.deepEqual(fine, { status: "fulfilled", value: 3 });
    pool.close();
  });

  test("a call whose caller gave up while it waited for its actor's slot never runs; a running one runs on", async () => {
    const ran: string[] = [];
    const server = await serve("queue", {
      async work(label: string, ms: number): Promise<string> {
        ran.push(label);
        await new Promise((r) => setTimeout(r, ms));
        return label;
      },
    });
    const pool = new FixedResolver({ queue: server.address }).lookup<{ work(label: string, ms: number): Promise<string> }>("queue");
    // One at a time (the default): "first" holds the slot while the others wait behind it.
    const first = pool.call({ timeoutSeconds: 0.1 }).work("first", 400);
    const timedOut = pool.call({ timeoutSeconds: 0.1 }).work("timed out", 1);
    const controller = new AbortController();
    const aborted = pool.call({ signal: controller.signal }).work("aborted", 1);
    const kept = pool.call().work("kept", 1);
    setTimeout(() => controller.abort(), 50);
    const [firstOutcome, timedOutOutcome, abortedOutcome, keptOutcome] = await Promise.allSettled([first, timedOut, aborted, kept]);
    const reasonOf = (outcome: PromiseSettledResult<string> | undefined) => (outcome?.status === "rejected" ? (outcome.reason as { name?: string; code?: string }) : undefined);
    assert.equal(reasonOf(firstOutcome)?.code, "deadline_exceeded");
    assert.equal(reasonOf(timedOutOutcome)?.code, "deadline_exceeded");
    assert.equal(reasonOf(abortedOutcome)?.name, "AbortError");
    assert.deepEqual(keptOutcome, { status: "fulfilled", value: "kept" });
    assert.deepEqual(ran, ["first", "kept"], "the calls given up on while they waited never ran; the running one was not stopped");
    pool.close();
  });

  test("unary Call still serves buf curl, and CallStream serves a stock Connect client", async () => {
    const server = await serve("calc", new Calculator());
    const args = Buffer.from(encodeValue([2, 3])).toString("base64");
    const { stdout } = await run(
      "npx",
      ["buf", "curl", "--protocol", "connect", "--http2-prior-knowledge", "--schema", "proto", "--data", JSON.stringify({ actor: "calc", method: "add", args }), `${server.address}/fluster.actor.v1.ActorService/Call`],
      { cwd: REPO_ROOT, timeout: 60_000 },
    );
    const answer = JSON.parse(stdout) as { value: string };
    assert.equal(decodeValue(Buffer.from(answer.value, "base64")), 5);

    // connect-node's own bidi client speaks to the stream route: the wire is Connect's.
    const client = createClient(ActorService, createConnectTransport({ baseUrl: server.address, httpVersion: "2", useBinaryFormat: true }));
    async function* requests() {
      yield { callId: 7n, call: { actor: "calc", method: "add", args: encodeValue([20, 22]) } };
      yield { callId: 8n, call: { actor: "nobody", method: "add", args: encodeValue([1, 1]) } };
    }
    const answers = [];
    for await (const res of client.callStream(requests())) answers.push(res);
    answers.sort((x, y) => Number(x.callId - y.callId));
    assert.equal(answers.length, 2);
    const [ok, refused] = answers;
    assert.equal(ok?.outcome.case, "response");
    assert.equal(ok?.outcome.case === "response" && ok.outcome.value.result.case === "value" ? decodeValue(ok.outcome.value.result.value) : undefined, 42);
    assert.equal(refused?.outcome.case, "refusal");
    assert.deepEqual(refused?.outcome.case === "refusal" ? [refused.outcome.value.code, /no actor "nobody" here/.test(refused.outcome.value.message)] : [], ["not_found", true]);
  });
});
