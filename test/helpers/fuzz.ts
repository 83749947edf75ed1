// The RPC fuzzer's parts, shared by test/cluster/fuzz.test.ts and bench/fuzz.ts:
// a bed of real servers (a controller on a real state directory, and a worker
// daemon registered with a controller of its own, so that fuzzed launches
// never reach it), arbitraries of cases for every RPC of ControllerService and
// WorkerService — well-typed messages over HTTP/2 (binary) and HTTP/1.1
// (JSON), random bytes as binary protobuf, random JSON — and one function
// that sends a case and says how the server answered.
import fc from "fast-check";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { toBinary, toJsonString, type DescMessage, type DescMethod, type DescService, type Message } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import Database from "better-sqlite3";
import { startController, type ControllerServer } from "../../src/cluster/controller/server.js";
import { WorkerDaemon } from "../../src/cluster/worker/daemon.js";
import { ControllerService } from "../../src/rpc/gen/fluster/cluster/v1/controller_pb.js";
import { WorkerService } from "../../src/rpc/gen/fluster/worker/v1/worker_pb.js";
import { createRpcChannel, type RpcChannel } from "../../src/rpc/transport.js";
import { messageArbitrary, mostly, type FieldOverrides } from "./proto-arbitrary.js";
import { silentLogger } from "../../src/core/logger.js";

/** Fields whose random values would have side effects that slow a run or reach outside it. */
export const SAFE_OVERRIDES: FieldOverrides = {
  // RegisterWorker makes the controller call the address back: only ports nothing listens on.
  address: fc.constantFrom("http://127.0.0.1:1", "127.0.0.1:2", "", "not a url", "http://[::1]:3", "http://127.0.0.1:9/x"),
  // RunTask on the worker runs what it is given: nothing that installs or runs for real.
  "fluster.cluster.v1.CommandEntrypoint.argv": fc.constantFrom([], ["true"], ["false"], ["/nonexistent/fluster-fuzz"], [""]),
  "fluster.cluster.v1.FunctionEntrypoint.module": fc.constantFrom("", "/nonexistent/fluster-fuzz.js"),
  "fluster.cluster.v1.EnvironmentSpec.packages": fc.constant([]),
  "fluster.cluster.v1.EnvironmentSpec.extras": fc.constant([]),
  "fluster.cluster.v1.EnvironmentSpec.workspace": fc.constantFrom("", "/nonexistent/fluster-fuzz"),
  "fluster.cluster.v1.EnvironmentSpec.image": fc.constant(""),
  bundle_id: mostly(fc.constant("")),
  "fluster.cluster.v1.Entrypoint.kind": mostly(fc.constant({ case: "command", value: { argv: ["true"] } })),
  // Mostly valid values where validity takes many fields at once, so that
  // launches and registrations also succeed and the database gets writes.
  "fluster.cluster.v1.JobSpec.name": mostly(fc.constantFrom("fuzz", "fuzz.job-1", "a_b")),
  "fluster.cluster.v1.JobSpec.ports": mostly(fc.constantFrom([], ["http"])),
  "fluster.cluster.v1.JobSpec.constraints": mostly(fc.constant([])),
  "fluster.cluster.v1.JobSpec.max_retries_failure": mostly(fc.constantFrom(0, 2)),
  "fluster.cluster.v1.JobSpec.max_retries_preemption": mostly(fc.constantFrom(0, 100)),
  "fluster.cluster.v1.JobSpec.scheduling_timeout_seconds": mostly(fc.constantFrom(0, 30)),
  "fluster.cluster.v1.ResourceSpec.cpu": mostly(fc.constantFrom(0.1, 0.5, 1)),
  "fluster.cluster.v1.ResourceSpec.memory_bytes": mostly(fc.constantFrom(1n << 20n, 1n << 26n)),
  "fluster.cluster.v1.ResourceSpec.disk_bytes": mostly(fc.constant(0n)),
  "fluster.cluster.v1.ResourceSpec.replicas": mostly(fc.constantFrom(1, 2)),
  "fluster.cluster.v1.ResourceSpec.regions": mostly(fc.constant([])),
  "fluster.cluster.v1.ResourceSpec.zone": mostly(fc.constant("")),
  "fluster.cluster.v1.DeviceSpec.device": mostly(fc.constant({ case: "cpu", value: {} })),
  "fluster.cluster.v1.EnvironmentSpec.env_vars": mostly(fc.constantFrom({}, { FUZZ: "1" })),
  namespace: mostly(fc.constantFrom("", "default", "team-a")),
  parent_job_id: mostly(fc.constant("")),
  job_id: mostly(fc.constantFrom("", "missing-job")),
  attempt_id: mostly(fc.constantFrom("", "a-1")),
  ttl_seconds: mostly(fc.constantFrom(0, 30)),
  timeout_seconds: fc.constantFrom(0, 0, 0, 1, -1, Number.NaN, 1e300),
};

/** The servers under test. */
export interface FuzzBed {
  readonly controllerUrl: string;
  readonly workerUrl: string;
  readonly stateDir: string;
  /** Calls each server once (ListJobs, HealthCheck); throws if one does not answer. */
  healthCheck(): Promise<void>;
  /** Stops everything, then runs `PRAGMA integrity_check` on the controller's database and returns its answer ("ok"). */
  shutdown(): Promise<string>;
}

export async function startFuzzBed(): Promise<FuzzBed> {
  const stateDir = mkdtempSync(join(tmpdir(), "fluster-fuzz-"));
  const quiet = silentLogger();
  let controller: ControllerServer | undefined;
  let workerHome: ControllerServer | undefined;
  let daemon: WorkerDaemon | undefined;
  try {
    controller = await startController({ stateDir: join(stateDir, "controller"), reconcileIntervalSeconds: 0.5, logger: quiet });
    workerHome = await startController({ stateDir: ":memory:", logger: quiet });
    daemon = new WorkerDaemon({ controllerUrl: workerHome.url, workerId: "fuzz-worker", workDir: join(stateDir, "worker"), cpu: 1, memory: 2 ** 30, killGraceSeconds: 1, logger: quiet });
    await daemon.start();
  } catch (err) {
    await daemon?.shutdown();
    await workerHome?.shutdown();
    await controller?.shutdown();
    rmSync(stateDir, { recursive: true, force: true });
    throw err;
  }
  const channels = [createRpcChannel(controller.url, { token: "" }), createRpcChannel(daemon.address, { token: "" })];
  const [controllerServer, worker, home] = [controller, daemon, workerHome];
  return {
    controllerUrl: controllerServer.url,
    workerUrl: worker.address,
    stateDir,
    async healthCheck() {
      await channels[0]!.client(ControllerService).listJobs({ limit: 1 }, { timeoutMs: 10_000 });
      await channels[1]!.client(WorkerService).healthCheck({}, { timeoutMs: 10_000 });
    },
    async shutdown() {
      for (const channel of channels) channel.close();
      await worker.shutdown();
      await home.shutdown();
      await controllerServer.shutdown();
      try {
        const db = new Database(join(stateDir, "controller", "controller.sqlite"), { readonly: true });
        try {
          return String(db.pragma("integrity_check", { simple: true }));
        } finally {
          db.close();
        }
      } finally {
        rmSync(stateDir, { recursive: true, force: true });
      }
    },
  };
}

/** Which server a case goes to. */
export type FuzzTarget = "controller" | "worker";

/** One request to send. */
export type FuzzCase =
  | { kind: "h2"; target: FuzzTarget; method: DescMethod; messages: Message[] }
  | { kind: "h1-json" | "h1-binary"; target: FuzzTarget; method: DescMethod; messages: Message[] }
  | { kind: "bytes"; target: FuzzTarget; method: DescMethod; bytes: Uint8Array }
  | { kind: "json"; target: FuzzTarget; method: DescMethod; json: string };

const SERVICES: ReadonlyArray<{ target: FuzzTarget; service: DescService }> = [
  { target: "controller", service: ControllerService },
  { target: "worker", service: WorkerService },
];

/** Every method of both services, with its server. */
export const FUZZ_METHODS: ReadonlyArray<{ target: FuzzTarget; method: DescMethod }> = SERVICES.flatMap(({ target, service }) => service.methods.map((method) => ({ target, method })));

const messageCache = new Map<DescMessage, fc.Arbitrary<Message>>();
function messagesOf(method: DescMethod): fc.Arbitrary<Message[]> {
  let arbitrary = messageCache.get(method.input);
  if (!arbitrary) {
    arbitrary = messageArbitrary(method.input, { overrides: SAFE_OVERRIDES });
    messageCache.set(method.input, arbitrary);
  }
  // A client stream sends 0 to 3 messages; any other call exactly one.
  return method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming" ? fc.array(arbitrary, { maxLength: 3 }) : arbitrary.map((m) => [m]);
}

/** Well-typed cases: a random method and random messages of its input type, over HTTP/2 or HTTP/1.1. */
export function wellTypedCase(kinds: ReadonlyArray<"h2" | "h1-json" | "h1-binary"> = ["h2", "h1-json", "h1-binary"]): fc.Arbitrary<FuzzCase> {
  return fc.constantFrom(...FUZZ_METHODS).chain(({ target, method }) =>
    fc.tuple(fc.constantFrom(...kinds), messagesOf(method)).map(([kind, messages]): FuzzCase => ({ kind, target, method, messages })),
  );
}

/** Ill-typed cases: random bytes as binary protobuf, or random JSON, to a random method over HTTP/1.1. */
export function illTypedCase(): fc.Arbitrary<FuzzCase> {
  return fc.constantFrom(...FUZZ_METHODS).chain(({ target, method }) =>
    fc.oneof(
      fc.uint8Array({ maxLength: 200 }).map((bytes): FuzzCase => ({ kind: "bytes", target, method, bytes })),
      fc.oneof(fc.json({ maxDepth: 3 }), fc.string({ maxLength: 40 })).map((json): FuzzCase => ({ kind: "json", target, method, json })),
    ),
  );
}

/** How the server answered: a success, or a Connect error code (as in the wire's JSON, e.g. "invalid_argument"). */
export type FuzzOutcome = { ok: true } | { ok: false; code: string; message: string };

/** Codes that mean the server broke, not the request. */
const SERVER_FAULTS = new Set(["internal", "unknown", "data_loss"]);
const KNOWN_CODES = new Set(
  Object.values(Code)
    .filter((v): v is Code => typeof v === "number")
    .map(codeName),
);

/** True when the answer is a success or a known Connect error that blames the request. */
export function acceptable(outcome: FuzzOutcome): boolean {
  return outcome.ok || (KNOWN_CODES.has(outcome.code) && !SERVER_FAULTS.has(outcome.code));
}

function codeName(code: Code): string {
  return Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}

/** How long a stream is read before the case lets go of it (a stream may rightly stay open). */
const STREAM_MS = 250;
/** Messages of a server stream read at most. */
const STREAM_MESSAGES = 1;
/** A unary call taking longer than this is a hung server. */
const CALL_TIMEOUT_MS = 15_000;

/** Sends cases to a bed; `close()` drops its connections. */
export interface FuzzSender {
  send(c: FuzzCase): Promise<FuzzOutcome>;
  close(): void;
}

export function createFuzzSender(bed: FuzzBed): FuzzSender {
  const urls: Record<FuzzTarget, string> = { controller: bed.controllerUrl, worker: bed.workerUrl };
  const channels: Record<FuzzTarget, RpcChannel> = {
    controller: createRpcChannel(bed.controllerUrl, { token: "" }),
    worker: createRpcChannel(bed.workerUrl, { token: "" }),
  };
  return {
    send: (c) => (c.kind === "h2" ? sendH2(channels[c.target], c.method, c.messages) : sendH1(urls[c.target], c)),
    close() {
      for (const channel of Object.values(channels)) channel.close();
    },
  };
}

type AnyMethod = (request: unknown, options: { signal: AbortSignal; timeoutMs?: number }) => unknown;

async function sendH2(channel: RpcChannel, method: DescMethod, messages: Message[]): Promise<FuzzOutcome> {
  const client = channel.client(method.parent) as unknown as Record<string, AnyMethod>;
  const call = client[method.localName]!;
  const stop = new AbortController();
  const timer = setTimeout(() => stop.abort(), method.methodKind === "unary" || method.methodKind === "client_streaming" ? CALL_TIMEOUT_MS : STREAM_MS);
  try {
    if (method.methodKind === "unary") {
      await call(messages[0], { signal: stop.signal });
    } else if (method.methodKind === "client_streaming") {
      await call(iterate(messages), { signal: stop.signal });
    } else {
      const input = method.methodKind === "server_streaming" ? messages[0] : iterate(messages);
      let read = 0;
      for await (const _ of call(input, { signal: stop.signal }) as AsyncIterable<unknown>) {
        void _;
        if (++read >= STREAM_MESSAGES) break;
      }
    }
    return { ok: true };
  } catch (err) {
    const error = ConnectError.from(err);
    // A stream this case let go of, not an answer.
    if (stop.signal.aborted && method.methodKind !== "unary" && method.methodKind !== "client_streaming" && error.code === Code.Canceled) return { ok: true };
    return { ok: false, code: codeName(error.code), message: error.rawMessage };
  } finally {
    clearTimeout(timer);
  }
}

async function* iterate(messages: Message[]): AsyncIterable<Message> {
  yield* messages;
}

async function sendH1(url: string, c: Exclude<FuzzCase, { kind: "h2" }>): Promise<FuzzOutcome> {
  const stream = c.method.methodKind !== "unary";
  let binary: boolean;
  let payloads: Uint8Array[];
  switch (c.kind) {
    case "bytes":
      binary = true;
      payloads = [c.bytes];
      break;
    case "json":
      binary = false;
      payloads = [Buffer.from(c.json)];
      break;
    default: {
      binary = c.kind === "h1-binary";
      try {
        payloads = c.messages.map((m) => (binary ? toBinary(c.method.input, m) : Buffer.from(toJsonString(c.method.input, m))));
      } catch {
        // Some values have no JSON form (a timestamp out of range): send them binary.
        binary = true;
        payloads = c.messages.map((m) => toBinary(c.method.input, m));
      }
    }
  }
  const contentType = stream ? `application/connect+${binary ? "proto" : "json"}` : binary ? "application/proto" : "application/json";
  const body = stream ? Buffer.concat(payloads.map(envelope)) : (payloads[0] ?? new Uint8Array());
  const stop = new AbortController();
  const timer = setTimeout(() => stop.abort(), stream ? STREAM_MS : CALL_TIMEOUT_MS);
  try {
    const res = await fetch(`${url}/${c.method.parent.typeName}/${c.method.name}`, { method: "POST", headers: { "content-type": contentType }, body, signal: stop.signal });
    const bytes = Buffer.from(await res.arrayBuffer());
    if (!stream) return res.status === 200 ? { ok: true } : errorOf(bytes.toString("utf8"), res.status);
    if (res.status !== 200) return errorOf(bytes.toString("utf8"), res.status);
    return endOfStream(bytes);
  } catch (err) {
    if (stop.signal.aborted && stream) return { ok: true };
    return { ok: false, code: "unknown", message: `no answer: ${(err as Error).message}` };
  } finally {
    clearTimeout(timer);
  }
}

function envelope(data: Uint8Array): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt32BE(data.byteLength, 1);
  return Buffer.concat([header, data]);
}

function errorOf(text: string, status: number): FuzzOutcome {
  try {
    const parsed = JSON.parse(text) as { code?: unknown; message?: unknown };
    return { ok: false, code: String(parsed.code), message: String(parsed.message ?? "") };
  } catch {
    return { ok: false, code: "unknown", message: `HTTP ${status}: ${text.slice(0, 200)}` };
  }
}

/** The error of a Connect stream's end-of-stream envelope, if any. */
function endOfStream(bytes: Buffer): FuzzOutcome {
  for (let at = 0; at + 5 <= bytes.length; ) {
    const flags = bytes[at]!;
    const length = bytes.readUInt32BE(at + 1);
    if (flags & 0b10) {
      const end = JSON.parse(bytes.subarray(at + 5, at + 5 + length).toString("utf8")) as { error?: { code?: string; message?: string } };
      return end.error ? { ok: false, code: String(end.error.code), message: String(end.error.message ?? "") } : { ok: true };
    }
    at += 5 + length;
  }
  return { ok: true };
}

/** One line describing a case, for a failure report. */
export function describeCase(c: FuzzCase): string {
  const what =
    c.kind === "bytes"
      ? `${c.bytes.byteLength} random bytes`
      : c.kind === "json"
        ? `JSON ${c.json.slice(0, 200)}`
        : c.messages.map((m) => safeJson(c.method.input, m)).join(", ");
  return `${c.target} ${c.method.name} over ${c.kind}: ${what}`;
}

function safeJson(schema: DescMessage, message: Message): string {
  try {
    return toJsonString(schema, message).slice(0, 400);
  } catch {
    return "(no JSON form)";
  }
}
