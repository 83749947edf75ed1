// OpenTelemetry through the RPC transport, over real loopback sockets: nothing
// happens until a tracer provider is registered; then every call has a client
// span, its context travels in the request headers, and the server's span is
// its child and is active in the handler (so the handler's own calls nest).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { context, propagation, trace, SpanKind, SpanStatusCode } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { WorkerService } from "../../src/rpc/gen/fluster/worker/v1/worker_pb.js";
import { createRpcChannel, startRpcServer, type RpcChannel, type RpcServer } from "../../src/rpc/transport.js";
import { FlusterError } from "../../src/core/errors.js";
import { tracingActive } from "../../src/rpc/tracing.js";

const HEALTH = "fluster.worker.v1.WorkerService/HealthCheck";
const STATUS = "fluster.worker.v1.WorkerService/GetTaskStatus";
const LOGS = "fluster.worker.v1.WorkerService/StreamLogs";

describe("rpc tracing", () => {
  /** The traceparent header each HealthCheck arrived with. */
  const seenTraceparents: Array<string | null> = [];
  /** The span active in the handler of each HealthCheck. */
  const activeInHandler: Array<string | undefined> = [];
  let inner: RpcServer;
  let outer: RpcServer;
  let innerChannel: RpcChannel;
  let channel: RpcChannel;
  const exporter = new InMemorySpanExporter();

  before(async () => {
    inner = await startRpcServer({
      routes: (router) => router.service(WorkerService, { healthCheck: () => ({ healthy: true, workerId: "inner" }) }),
    });
    innerChannel = createRpcChannel(inner.url);
    outer = await startRpcServer({
      routes: (router) =>
        router.service(WorkerService, {
          async healthCheck(_req, ctx) {
            seenTraceparents.push(ctx.requestHeader.get("traceparent"));
            activeInHandler.push(trace.getActiveSpan()?.spanContext().spanId);
            // A call the handler makes: with tracing on, its spans are children of this handler's.
            await innerChannel.client(WorkerService).healthCheck({});
            return { healthy: true, workerId: "outer" };
          },
          getTaskStatus(req) {
            throw new FlusterError(`no attempt ${req.attemptId}`, "not_found");
          },
          async *streamLogs() {
            yield { entries: [{ data: "one\n" }] };
            yield { entries: [{ data: "two\n" }] };
          },
        }),
    });
    channel = createRpcChannel(outer.url);
  });
  after(async () => {
    channel.close();
    innerChannel.close();
    await outer.shutdown();
    await inner.shutdown();
  });

  test("without a tracer provider, calls carry no trace context", async () => {
    assert.equal(tracingActive(), false);
    await channel.client(WorkerService).healthCheck({});
    assert.equal(seenTraceparents.at(-1), null);
    assert.equal(activeInHandler.at(-1), undefined);
  });

  describe("with a tracer provider registered", () => {
    before(() => {
      context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
      propagation.setGlobalPropagator(new W3CTraceContextPropagator());
      trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
    });
    after(() => {
      trace.disable();
      propagation.disable();
      context.disable();
    });

    const spansNamed = (name: string): ReadableSpan[] => exporter.getFinishedSpans().filter((s) => s.name === name);
    const parentOf = (span: ReadableSpan): string | undefined => span.parentSpanContext?.spanId;

    test("a call's client span is the parent of its server span, and the handler's calls nest under it", async () => {
      assert.equal(tracingActive(), true);
      exporter.reset();
      const root = trace.getTracer("test");
      const rootSpanId = await root.startActiveSpan("root", async (span) => {
        await channel.client(WorkerService).healthCheck({});
        span.end();
        return span.spanContext().spanId;
      });
      const spans = spansNamed(HEALTH);
      // Outer client, outer server, inner client (made in the handler), inner server.
      assert.equal(spans.length, 4, spans.map((s) => `${s.name} ${SpanKind[s.kind]}`).join(", "));
      const traceIds = new Set(spans.map((s) => s.spanContext().traceId));
      assert.equal(traceIds.size, 1, "one trace");
      const client = spans.find((s) => s.kind === SpanKind.CLIENT && parentOf(s) === rootSpanId);
      assert.ok(client, "the outer client span is a child of the caller's span");
      const server = spans.find((s) => s.kind === SpanKind.SERVER && parentOf(s) === client.spanContext().spanId);
      assert.ok(server, "the server span is a child of the client span");
      assert.equal(activeInHandler.at(-1), server.spanContext().spanId, "the server span is active in the handler");
      assert.match(seenTraceparents.at(-1) ?? "", new RegExp(`^00-${client.spanContext().traceId}-${client.spanContext().spanId}-0[01]$`));
      const innerClient = spans.find((s) => s.kind === SpanKind.CLIENT && parentOf(s) === server.spanContext().spanId);
      assert.ok(innerClient, "a call made by the handler is a child of the handler's span");
      assert.ok(spans.some((s) => s.kind === SpanKind.SERVER && parentOf(s) === innerClient.spanContext().spanId));
      assert.equal(server.attributes["rpc.system"], "connect_rpc");
      assert.equal(server.attributes["rpc.service"], "fluster.worker.v1.WorkerService");
      assert.equal(server.attributes["rpc.method"], "HealthCheck");
    });

    test("a failed call marks both spans as errors with its code", async () => {
      exporter.reset();
      await assert.rejects(channel.client(WorkerService).getTaskStatus({ attemptId: "a-1" }), /no attempt a-1/);
      const spans = spansNamed(STATUS);
      assert.deepEqual(spans.map((s) => SpanKind[s.kind]).sort(), ["CLIENT", "SERVER"]);
      for (const span of spans) {
        assert.equal(span.status.code, SpanStatusCode.ERROR);
        assert.equal(span.attributes["rpc.connect_rpc.error_code"], "not_found");
        assert.match(span.status.message ?? "", /no attempt a-1/);
      }
    });

    test("a streaming call's spans end when the stream ends", async () => {
      exporter.reset();
      const stream = channel.client(WorkerService).streamLogs({ attemptId: "a-1" });
      const lines: string[] = [];
      for await (const res of stream) {
        lines.push(...res.entries.map((e) => e.data));
        // Mid-stream, neither span has ended.
        if (lines.length === 1) assert.equal(spansNamed(LOGS).filter((s) => s.kind === SpanKind.CLIENT).length, 0);
      }
      assert.deepEqual(lines, ["one\n", "two\n"]);
      const spans = spansNamed(LOGS);
      assert.deepEqual(spans.map((s) => SpanKind[s.kind]).sort(), ["CLIENT", "SERVER"]);
      assert.ok(spans.every((s) => s.status.code !== SpanStatusCode.ERROR));
    });
  });
});
