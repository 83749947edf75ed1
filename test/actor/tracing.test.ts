// Actor calls under OpenTelemetry: calls share one CallStream, so each call
// carries its caller's trace context in its request; the actor's method runs
// in a server span, the child of the caller's client span, so the calls it
// makes nest under it, as they do for unary RPCs (test/rpc/tracing.test.ts).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { context, propagation, trace, SpanKind, SpanStatusCode } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { ActorServer } from "../../src/actor/server.js";
import { FixedResolver } from "../../src/actor/resolver.js";
import { ActorError } from "../../src/actor/errors.js";

const CALL = "fluster.actor.v1.ActorService/Call";

describe("actor call tracing", () => {
  const exporter = new InMemorySpanExporter();
  const servers: ActorServer[] = [];
  let outerAddress = "";

  before(async () => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
    const inner = new ActorServer(undefined);
    const outer = new ActorServer(undefined);
    servers.push(inner, outer);
    await inner.register("inner", { double: (n: number) => n * 2 });
    const innerPool = new FixedResolver({ inner: inner.address }).lookup<{ double(n: number): number }>("inner");
    await outer.register("outer", {
      // A method that calls another actor: with tracing on, that call is a child of this method's span.
      async quadruple(n: number) {
        return 2 * (await innerPool.call().double(n));
      },
      fail() {
        throw new RangeError("out of range");
      },
    });
    outerAddress = outer.address;
  });
  after(async () => {
    await Promise.all(servers.map((s) => s.shutdown()));
    trace.disable();
    propagation.disable();
    context.disable();
  });

  const calls = (): ReadableSpan[] => exporter.getFinishedSpans().filter((s) => s.name === CALL);
  const parentOf = (span: ReadableSpan): string | undefined => span.parentSpanContext?.spanId;
  const pool = () => new FixedResolver({ outer: outerAddress }).lookup<{ quadruple(n: number): Promise<number>; fail(): never }>("outer");

  test("the caller's span, the actor's server span and the calls it makes form one trace", async () => {
    exporter.reset();
    const rootId = await trace.getTracer("test").startActiveSpan("root", async (span) => {
      assert.equal(await pool().call().quadruple(5), 20);
      span.end();
      return span.spanContext().spanId;
    });
    const spans = calls();
    assert.equal(spans.length, 4, spans.map((s) => `${SpanKind[s.kind]} ${String(s.attributes["fluster.actor"])}`).join(", "));
    assert.equal(new Set(spans.map((s) => s.spanContext().traceId)).size, 1, "one trace");
    const outerClient = spans.find((s) => s.kind === SpanKind.CLIENT && s.attributes["fluster.actor"] === "outer");
    assert.ok(outerClient);
    assert.equal(parentOf(outerClient), rootId, "the call's span is a child of the caller's");
    assert.equal(outerClient.attributes["fluster.actor.method"], "quadruple");
    const outerServer = spans.find((s) => s.kind === SpanKind.SERVER && s.attributes["fluster.actor"] === "outer");
    assert.equal(outerServer && parentOf(outerServer), outerClient.spanContext().spanId, "the actor's span is the call's child");
    const innerClient = spans.find((s) => s.kind === SpanKind.CLIENT && s.attributes["fluster.actor"] === "inner");
    assert.equal(innerClient && parentOf(innerClient), outerServer?.spanContext().spanId, "a call the method makes nests under the method's span");
    const innerServer = spans.find((s) => s.kind === SpanKind.SERVER && s.attributes["fluster.actor"] === "inner");
    assert.equal(innerServer && parentOf(innerServer), innerClient?.spanContext().spanId);
    for (const span of spans) assert.equal(span.status.code, SpanStatusCode.UNSET);
  });

  test("a method that throws marks both spans as errors", async () => {
    exporter.reset();
    await assert.rejects(pool().call().fail(), (err: unknown) => err instanceof ActorError && err.remoteName === "RangeError");
    const spans = calls();
    assert.deepEqual(spans.map((s) => SpanKind[s.kind]).sort(), ["CLIENT", "SERVER"]);
    for (const span of spans) {
      assert.equal(span.status.code, SpanStatusCode.ERROR);
      assert.match(span.status.message ?? "", /out of range/);
    }
  });
});
