// A FAKE S3 for tests: s3rver (a real S3 protocol server, in a child process,
// see s3-fake-backend.cjs) behind an HTTP proxy on 127.0.0.1 that can answer
// requests with 503 SlowDown / 429 instead of forwarding them (the fault
// mode), and counts them. The contract is s3rver's: objects, ranges,
// multipart uploads, ListObjectsV2 with continuation tokens, DeleteObjects;
// signatures are not checked, and there is one region.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { Agent, createServer, request, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { FaultInjector } from "./http-faults.js";

const BACKEND = fileURLToPath(new URL("./s3-fake-backend.cjs", import.meta.url));

export class FakeS3 {
  /** The proxy's URL: the S3 endpoint to configure. */
  readonly endpoint: string;
  /** The fault mode: `faults.set({ every: 9, status: 503 })`, `faults.served`, `faults.requests` (see FaultInjector). */
  readonly faults = new FaultInjector();

  private constructor(
    private readonly front: Server,
    private readonly backend: ChildProcess,
    private readonly dir: string,
    private readonly agent: Agent,
  ) {
    this.endpoint = `http://127.0.0.1:${(front.address() as AddressInfo).port}`;
  }

  /** Starts the fake with the given buckets. */
  static async start(buckets: readonly string[]): Promise<FakeS3> {
    const dir = mkdtempSync(join(tmpdir(), "fluster-fake-s3-"));
    const backend = spawn(process.execPath, ["--openssl-legacy-provider", BACKEND, dir, ...buckets], { stdio: ["pipe", "pipe", "inherit"] });
    const port = await new Promise<number>((resolve, reject) => {
      let out = "";
      backend.stdout!.on("data", (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes("\n")) resolve(Number(out.trim()));
      });
      backend.once("exit", (code) => reject(new Error(`the fake S3 backend exited (${code}) before it listened`)));
    });
    const agent = new Agent({ keepAlive: true });
    let fake: FakeS3 | undefined;
    const front = createServer((req, res) => fake!.handle(req, res, port));
    await new Promise<void>((resolve) => front.listen(0, "127.0.0.1", resolve));
    fake = new FakeS3(front, backend, dir, agent);
    return fake;
  }

  /** The environment that points the AWS SDK (in this process and in workers) here. */
  env(): Record<string, string> {
    return { AWS_ENDPOINT_URL_S3: this.endpoint, AWS_ACCESS_KEY_ID: "S3RVER", AWS_SECRET_ACCESS_KEY: "S3RVER", AWS_REGION: "us-east-1" };
  }

  async stop(): Promise<void> {
    this.front.closeAllConnections();
    await new Promise<void>((resolve) => this.front.close(() => resolve()));
    this.agent.destroy();
    if (this.backend.exitCode === null) {
      const exited = new Promise((resolve) => this.backend.once("exit", resolve));
      this.backend.kill("SIGTERM");
      await exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  private handle(req: IncomingMessage, res: ServerResponse, port: number): void {
    const fault = this.faults.next();
    if (fault !== undefined) {
      // Read the body first: a client still sending it would see a reset, not the status.
      req.resume();
      req.on("end", () => {
        const code = fault === 503 ? "SlowDown" : fault === 429 ? "TooManyRequests" : "InternalError";
        res.writeHead(fault, { "content-type": "application/xml" });
        res.end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>Please reduce your request rate (fake fault).</Message></Error>`);
      });
      return;
    }
    const upstream = request({ host: "127.0.0.1", port, method: req.method, path: req.url, headers: req.headers, agent: this.agent }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on("error", (err) => {
      if (!res.headersSent) res.writeHead(502);
      res.end(String(err));
    });
    req.pipe(upstream);
  }
}
