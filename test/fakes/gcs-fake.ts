// A FAKE of Google Cloud Storage's JSON API, for testing GCS reads and
// writes on one machine without a Google Cloud project. Point the
// @google-cloud/storage client at it with STORAGE_EMULATOR_HOST (or
// `apiEndpoint`); it serves on 127.0.0.1 and keeps objects in memory.
//
// The contract it keeps (the subset that client uses, with Google's shapes):
// bucket get; object metadata get (`size` as a string, `crc32c`, `md5Hash`,
// `generation`); media download (`alt=media`) with `Range` (206, 416 past
// the end) and the `x-goog-hash` and `x-goog-stored-content-encoding`
// headers the client validates; list with `prefix`, `maxResults` and
// `pageToken`/`nextPageToken`; delete; simple and multipart
// (`multipart/related`) uploads; the resumable upload protocol — POST
// `uploadType=resumable` answers a session URL in `Location`, PUTs carry
// `Content-Range: bytes a-b/total|*` (or `bytes */*` to ask), answered 308
// with `Range: bytes=0-n` until the last byte, then 200 with the metadata;
// nothing is visible before that. Errors are `{ error: { code, message,
// errors: [{ reason }] } }`. The fault mode answers chosen requests with
// 429/503 instead (see http-faults.ts) and counts them.
//
// What it leaves out: auth (no token is needed or checked), generations
// and preconditions, ACLs, object metadata updates, compose/copy/rewrite,
// customer encryption keys, delimiter listings.
import { createHash, randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { CRC32C } from "@google-cloud/storage";
import { FaultInjector } from "./http-faults.js";

interface StoredObject {
  readonly data: Buffer;
  readonly generation: string;
  readonly contentType: string;
  readonly crc32c: string;
  readonly md5Hash: string;
}

interface UploadSession {
  readonly bucket: string;
  readonly name: string;
  readonly contentType: string;
  readonly parts: Buffer[];
  received: number;
}

export interface FakeGcsOptions {
  /** Buckets that exist. */
  buckets: readonly string[];
  /** Objects per list page. @default 1000 */
  pageSize?: number;
}

export class FakeGcs {
  /** The API endpoint, `http://127.0.0.1:PORT`. */
  readonly endpoint: string;
  /** bucket → name → object */
  private readonly buckets = new Map<string, Map<string, StoredObject>>();
  private readonly sessions = new Map<string, UploadSession>();
  /** The fault mode: `faults.set({ every: 9, status: 503 })`, `faults.served`, `faults.requests` (see FaultInjector). */
  readonly faults = new FaultInjector();
  private readonly pageSize: number;
  private generation = 1;

  private constructor(
    private readonly server: Server,
    options: FakeGcsOptions,
  ) {
    this.endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    this.pageSize = options.pageSize ?? 1000;
    for (const name of options.buckets) this.buckets.set(name, new Map());
  }

  static async start(options: FakeGcsOptions): Promise<FakeGcs> {
    let fake: FakeGcs | undefined;
    const server = createServer((req, res) => {
      fake!.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) sendError(res, 500, String(err), "internalError");
        else res.destroy();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    fake = new FakeGcs(server, options);
    return fake;
  }

  /** The environment that points the client (in this process and in workers) here. */
  env(): Record<string, string> {
    return { STORAGE_EMULATOR_HOST: this.endpoint };
  }

  /** Resumable upload sessions begun and not finished. */
  get openUploads(): number {
    return this.sessions.size;
  }

  /** The names of a bucket's objects, sorted. */
  names(bucket: string): string[] {
    return [...(this.buckets.get(bucket)?.keys() ?? [])].sort();
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req);
    const fault = this.faults.next();
    if (fault !== undefined) return sendError(res, fault, "fake fault: try again later", fault === 429 ? "rateLimitExceeded" : "backendError");
    const url = new URL(req.url ?? "/", this.endpoint);
    // The JSON API under /storage/v1 (apiEndpoint) or at the root (STORAGE_EMULATOR_HOST is the API's base URL);
    // uploads under /upload/storage/v1 either way.
    const upload = url.pathname.startsWith("/upload/storage/v1/");
    const rest = upload ? url.pathname.slice("/upload/storage/v1".length) : url.pathname.replace(/^\/storage\/v1(?=\/)/, "");
    const path = rest.split("/").map(decodeURIComponent); // ["", "b", bucket, "o", name...]
    if (path[1] !== "b" || path[2] === undefined || path[2] === "") return sendError(res, 404, `no route for ${req.method} ${url.pathname}`, "notFound");
    const bucketName = path[2];
    const bucket = this.buckets.get(bucketName);
    if (!bucket) return sendError(res, 404, `The specified bucket does not exist.`, "notFound");
    if (path.length === 3) return sendJson(res, 200, { kind: "storage#bucket", name: bucketName, id: bucketName });
    if (path[3] !== "o") return sendError(res, 404, `no route for ${url.pathname}`, "notFound");
    const name = path.slice(4).join("/");

    if (upload) return this.upload(req, res, url, bucketName, bucket, body);
    if (name === "") {
      if (req.method !== "GET") return sendError(res, 405, "method not allowed", "invalid");
      return this.list(res, url, bucketName, bucket);
    }
    const object = bucket.get(name);
    if (req.method === "DELETE") {
      if (!bucket.delete(name)) return sendError(res, 404, `No such object: ${bucketName}/${name}`, "notFound");
      res.writeHead(204).end();
      return;
    }
    if (req.method !== "GET") return sendError(res, 405, "method not allowed", "invalid");
    if (!object) return sendError(res, 404, `No such object: ${bucketName}/${name}`, "notFound");
    if (url.searchParams.get("alt") !== "media") return sendJson(res, 200, this.metadata(bucketName, name, object));
    return this.download(req, res, object);
  }

  private list(res: ServerResponse, url: URL, bucketName: string, bucket: Map<string, StoredObject>): void {
    const prefix = url.searchParams.get("prefix") ?? "";
    const pageSize = Math.min(Number(url.searchParams.get("maxResults") ?? this.pageSize) || this.pageSize, this.pageSize);
    const after = url.searchParams.get("pageToken");
    const names = [...bucket.keys()].filter((n) => n.startsWith(prefix) && (after === null || n > Buffer.from(after, "base64url").toString())).sort();
    const page = names.slice(0, pageSize);
    sendJson(res, 200, {
      kind: "storage#objects",
      items: page.map((n) => this.metadata(bucketName, n, bucket.get(n) as StoredObject)),
      ...(names.length > pageSize ? { nextPageToken: Buffer.from(page[page.length - 1] as string).toString("base64url") } : {}),
    });
  }

  private download(req: IncomingMessage, res: ServerResponse, object: StoredObject): void {
    const headers = {
      "content-type": object.contentType,
      "x-goog-hash": `crc32c=${object.crc32c},md5=${object.md5Hash}`,
      "x-goog-stored-content-encoding": "identity",
      "x-goog-generation": object.generation,
    };
    const range = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? "");
    if (!range) {
      res.writeHead(200, { ...headers, "content-length": object.data.length }).end(object.data);
      return;
    }
    const size = object.data.length;
    let start: number;
    let end: number;
    if (range[1] === "") {
      start = Math.max(0, size - Number(range[2]));
      end = size - 1;
    } else {
      start = Number(range[1]);
      end = range[2] === "" ? size - 1 : Math.min(Number(range[2]), size - 1);
    }
    if (start >= size) return sendError(res, 416, "The requested range cannot be satisfied.", "requestedRangeNotSatisfiable");
    res.writeHead(206, { ...headers, "content-length": end - start + 1, "content-range": `bytes ${start}-${end}/${size}` }).end(object.data.subarray(start, end + 1));
  }

  private upload(req: IncomingMessage, res: ServerResponse, url: URL, bucketName: string, bucket: Map<string, StoredObject>, body: Buffer): void {
    const kind = url.searchParams.get("uploadType");
    if (req.method === "POST" && kind === "resumable") {
      const meta = body.length > 0 ? (JSON.parse(body.toString()) as { name?: string; contentType?: string }) : {};
      const name = url.searchParams.get("name") ?? meta.name;
      if (!name) return sendError(res, 400, "an object name is required", "required");
      const id = randomUUID();
      const contentType = (req.headers["x-upload-content-type"] as string | undefined) ?? meta.contentType ?? "application/octet-stream";
      this.sessions.set(id, { bucket: bucketName, name, contentType, parts: [], received: 0 });
      res.writeHead(200, { location: `${this.endpoint}/upload/storage/v1/b/${encodeURIComponent(bucketName)}/o?uploadType=resumable&upload_id=${id}` }).end();
      return;
    }
    if (req.method === "PUT" && kind === "resumable") return this.resumablePut(req, res, url, bucket, body);
    if (req.method === "POST" && kind === "media") {
      const name = url.searchParams.get("name");
      if (!name) return sendError(res, 400, "an object name is required", "required");
      return sendJson(res, 200, this.store(bucketName, bucket, name, body, req.headers["content-type"] ?? "application/octet-stream"));
    }
    if (req.method === "POST" && kind === "multipart") {
      const boundary = /boundary=("?)([^";]+)\1/.exec(req.headers["content-type"] ?? "")?.[2];
      if (!boundary) return sendError(res, 400, "a multipart/related body with a boundary is required", "invalid");
      const [metaPart, dataPart] = multipartParts(body, boundary);
      if (!metaPart || !dataPart) return sendError(res, 400, "a multipart upload has a metadata part and a media part", "invalid");
      const meta = JSON.parse(metaPart.body.toString()) as { name?: string; contentType?: string };
      const name = url.searchParams.get("name") ?? meta.name;
      if (!name) return sendError(res, 400, "an object name is required", "required");
      return sendJson(res, 200, this.store(bucketName, bucket, name, dataPart.body, meta.contentType ?? dataPart.contentType ?? "application/octet-stream"));
    }
    sendError(res, 400, `unsupported upload ${req.method} uploadType=${kind}`, "invalid");
  }

  private resumablePut(req: IncomingMessage, res: ServerResponse, url: URL, bucket: Map<string, StoredObject>, body: Buffer): void {
    const id = url.searchParams.get("upload_id") ?? "";
    const session = this.sessions.get(id);
    if (!session) return sendError(res, 404, `no upload session ${id}`, "notFound");
    const header = req.headers["content-range"] ?? `bytes 0-${body.length - 1}/${body.length}`;
    const match = /^bytes (?:(\d+)-(\d+)|\*)\/(\d+|\*)$/.exec(header);
    if (!match) return sendError(res, 400, `bad Content-Range ${header}`, "invalid");
    const total = match[3] === "*" ? undefined : Number(match[3]);
    if (match[1] !== undefined) {
      const start = Number(match[1]);
      if (start > session.received) return sendError(res, 400, `Content-Range starts at ${start}; only ${session.received} bytes were received`, "invalid");
      // Bytes already held (a resent chunk) are skipped.
      const fresh = body.subarray(session.received - start);
      session.parts.push(fresh);
      session.received += fresh.length;
    } else if (body.length > 0) {
      // "bytes */*" with data: a single-request upload of unknown length.
      session.parts.push(body);
      session.received += body.length;
    }
    if (total !== undefined && session.received >= total) {
      this.sessions.delete(id);
      const data = Buffer.concat(session.parts);
      return sendJson(res, 200, this.store(session.bucket, bucket, session.name, data, session.contentType));
    }
    res.writeHead(308, session.received > 0 ? { range: `bytes=0-${session.received - 1}` } : {}).end();
  }

  private store(bucketName: string, bucket: Map<string, StoredObject>, name: string, data: Buffer, contentType: string): Record<string, unknown> {
    const crc = new CRC32C();
    crc.update(data);
    const object: StoredObject = {
      data,
      generation: String(this.generation++),
      contentType,
      crc32c: crc.toString(),
      md5Hash: createHash("md5").update(data).digest("base64"),
    };
    bucket.set(name, object);
    return this.metadata(bucketName, name, object);
  }

  private metadata(bucket: string, name: string, object: StoredObject): Record<string, unknown> {
    return {
      kind: "storage#object",
      id: `${bucket}/${name}/${object.generation}`,
      bucket,
      name,
      size: String(object.data.length),
      generation: object.generation,
      contentType: object.contentType,
      crc32c: object.crc32c,
      md5Hash: object.md5Hash,
    };
  }
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const text = JSON.stringify(value);
  res.writeHead(status, { "content-type": "application/json; charset=UTF-8", "content-length": Buffer.byteLength(text) }).end(text);
}

function sendError(res: ServerResponse, status: number, message: string, reason: string): void {
  sendJson(res, status, { error: { code: status, message, errors: [{ domain: "global", reason, message }] } });
}

/** The parts of a multipart/related body: each part's Content-Type and bytes. */
function multipartParts(body: Buffer, boundary: string): { contentType: string | undefined; body: Buffer }[] {
  const delimiter = Buffer.from(`--${boundary}`);
  const parts: { contentType: string | undefined; body: Buffer }[] = [];
  let at = body.indexOf(delimiter);
  while (at !== -1) {
    const start = at + delimiter.length;
    if (body.subarray(start, start + 2).toString() === "--") break;
    const next = body.indexOf(delimiter, start);
    if (next === -1) break;
    const part = body.subarray(start, next);
    const split = part.indexOf("\r\n\r\n");
    const head = part.subarray(0, split).toString();
    // The part's bytes run to the CRLF before the next delimiter.
    parts.push({ contentType: /content-type:\s*([^\r\n]+)/i.exec(head)?.[1], body: part.subarray(split + 4, part.length - 2) });
    at = next;
  }
  return parts;
}
