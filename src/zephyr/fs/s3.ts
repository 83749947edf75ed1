// Amazon S3 (and S3-compatible stores: MinIO, R2, Ceph) as an ObjectStore.
// Reads are ranged GETs streamed from the response body; streaming writes are
// multipart uploads (lib-storage's Upload), which S3 makes visible only when
// they complete. Configured by the standard AWS environment, so workers on
// other machines get the same settings, or by `configureStorage({ s3 })`.
// The SDK loads on first use: a pipeline that never touches s3:// never pays for it.
import type { Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import type { S3Client, S3ClientConfig } from "@aws-sdk/client-s3";
import { FlusterError } from "../../core/errors.js";
import { parseObjectUrl } from "./paths.js";
import { countingSink } from "./sink.js";
import type { ByteRange, ObjectInfo, ObjectSink, ObjectStore } from "./types.js";

/**
 * How Zephyr talks to S3: the SDK's own client options (region, endpoint,
 * credentials, forcePathStyle, maxAttempts, …) and the multipart part size.
 * Every field left out comes from the environment (see {@link s3ClientConfig}).
 */
export interface S3StoreOptions extends S3ClientConfig {
  /** Bytes per multipart part of a streaming write (S3's minimum is 5 MiB). @default 8 MiB */
  partSize?: number;
  /** Parts of one streaming write uploaded at once. @default 4 */
  partConcurrency?: number;
}

/** Attempts per request, the first included, with the SDK's standard exponential backoff and jitter. */
const DEFAULT_MAX_ATTEMPTS = 5;
const DEFAULT_PART_SIZE = 8 << 20;
const MIN_PART_SIZE = 5 << 20;
const DEFAULT_PART_CONCURRENCY = 4;
/** Keys per DeleteObjects request (S3's limit). */
const DELETE_BATCH = 1000;

/**
 * The client configuration: `options` first, then the environment —
 * AWS_REGION (or AWS_DEFAULT_REGION; default us-east-1), AWS_ENDPOINT_URL_S3
 * or AWS_ENDPOINT_URL for an S3-compatible store (path-style addressing is
 * then forced; FLUSTER_S3_FORCE_PATH_STYLE=1/0 decides otherwise), and the
 * SDK's usual credential chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,
 * profiles, instance roles).
 */
export function s3ClientConfig(options: S3StoreOptions = {}, env: NodeJS.ProcessEnv = process.env): S3ClientConfig {
  const { partSize: _partSize, partConcurrency: _partConcurrency, ...client } = options;
  const endpoint = client.endpoint ?? env.AWS_ENDPOINT_URL_S3 ?? env.AWS_ENDPOINT_URL;
  const pathStyleEnv = env.FLUSTER_S3_FORCE_PATH_STYLE;
  const forcePathStyle = client.forcePathStyle ?? (pathStyleEnv !== undefined && pathStyleEnv !== "" ? /^(1|true|yes)$/i.test(pathStyleEnv) : endpoint !== undefined);
  return {
    region: env.AWS_REGION || env.AWS_DEFAULT_REGION || "us-east-1",
    maxAttempts: DEFAULT_MAX_ATTEMPTS,
    // S3-compatible stores often reject the SDK's newer default checksum trailers; AWS itself needs none where not required.
    ...(endpoint !== undefined ? { requestChecksumCalculation: "WHEN_REQUIRED" as const, responseChecksumValidation: "WHEN_REQUIRED" as const } : {}),
    ...client,
    ...(endpoint !== undefined ? { endpoint } : {}),
    forcePathStyle,
  };
}

/** What the SDK's errors carry that tells them apart. */
interface AwsError {
  name?: string;
  message?: string;
  code?: string;
  $metadata?: { httpStatusCode?: number };
}

function statusOf(err: unknown): number | undefined {
  return (err as AwsError | undefined)?.$metadata?.httpStatusCode;
}

function isNotFound(err: unknown): boolean {
  const e = err as AwsError;
  return e?.name === "NoSuchKey" || e?.name === "NotFound" || statusOf(err) === 404;
}

/** A FlusterError for a failed S3 request (after the SDK's own retries), naming the URL. */
export function s3Error(action: string, url: string, err: unknown): FlusterError {
  if (err instanceof FlusterError) return err;
  const e = (err ?? {}) as AwsError;
  const status = statusOf(err);
  const what = `${e.name ?? "Error"}${e.message && e.message !== e.name ? `: ${e.message}` : ""}`;
  if (e.name === "NoSuchBucket") return new FlusterError(`${url}: the bucket does not exist`, "not_found", { cause: err });
  if (isNotFound(err)) return new FlusterError(`${url} does not exist`, "not_found", { cause: err });
  if (status === 403 || e.name === "AccessDenied") return new FlusterError(`${action} ${url}: permission denied (${what})`, "permission_denied", { cause: err });
  if (e.name === "CredentialsProviderError") {
    return new FlusterError(`${action} ${url}: no AWS credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile or a role): ${e.message ?? ""}`, "unauthenticated", { cause: err });
  }
  if (e.name === "AbortError") return new FlusterError(`${action} ${url} was aborted`, "cancelled", { cause: err });
  // Throttling, 5xx and network failures are what the SDK retries; reaching here means they outlived the retries.
  if (status === undefined || status === 429 || status >= 500 || e.name === "SlowDown" || e.name === "ThrottlingException") {
    return new FlusterError(`${action} ${url} failed after retries: ${what}`, "unavailable", { cause: err });
  }
  return new FlusterError(`${action} ${url} failed: ${what} (HTTP ${status})`, "internal", { cause: err });
}

/** The SDK's modules and a client made with them. */
interface S3Sdk {
  readonly s3: typeof import("@aws-sdk/client-s3");
  readonly Upload: typeof import("@aws-sdk/lib-storage").Upload;
  readonly client: S3Client;
}

/** An S3 bucket (or an S3-compatible store's) as an ObjectStore; paths are `s3://bucket/key`. */
export class S3Store implements ObjectStore {
  readonly scheme = "s3" as const;
  private readonly partSize: number;
  private readonly partConcurrency: number;
  private readonly options: S3StoreOptions;
  private loaded: Promise<S3Sdk> | undefined;

  constructor(options: S3StoreOptions = {}) {
    this.partSize = options.partSize ?? DEFAULT_PART_SIZE;
    if (!Number.isInteger(this.partSize) || this.partSize < MIN_PART_SIZE) {
      throw new FlusterError(`s3 partSize must be a whole number of bytes ≥ 5 MiB (S3's minimum part), got ${String(options.partSize)}`, "invalid_argument");
    }
    this.partConcurrency = options.partConcurrency ?? DEFAULT_PART_CONCURRENCY;
    this.options = options;
  }

  private sdk(): Promise<S3Sdk> {
    this.loaded ??= Promise.all([import("@aws-sdk/client-s3"), import("@aws-sdk/lib-storage")]).then(([s3, storage]) => ({
      s3,
      Upload: storage.Upload,
      client: new s3.S3Client(s3ClientConfig(this.options)),
    }));
    return this.loaded;
  }

  async size(path: string): Promise<number | undefined> {
    const { bucket, key } = parseObjectUrl(path);
    const { s3, client } = await this.sdk();
    try {
      const head = await client.send(new s3.HeadObjectCommand({ Bucket: bucket, Key: key }));
      return head.ContentLength ?? 0;
    } catch (err) {
      if (isNotFound(err) && (err as AwsError).name !== "NoSuchBucket") return undefined;
      throw s3Error("reading", path, err);
    }
  }

  async *read(path: string, range: ByteRange = {}): AsyncIterable<Uint8Array> {
    const { bucket, key } = parseObjectUrl(path);
    const start = range.start ?? 0;
    if (range.end !== undefined && range.end <= start) return;
    const header = range.start === undefined && range.end === undefined ? undefined : `bytes=${start}-${range.end !== undefined ? range.end - 1 : ""}`;
    const { s3, client } = await this.sdk();
    let body: Readable;
    try {
      const response = await client.send(new s3.GetObjectCommand({ Bucket: bucket, Key: key, ...(header ? { Range: header } : {}) }));
      body = response.Body as Readable;
    } catch (err) {
      // A range that starts at or past the end reads as nothing, as it does on a local file.
      if (statusOf(err) === 416) return;
      throw s3Error("reading", path, err);
    }
    try {
      for await (const chunk of body) yield chunk as Uint8Array;
    } catch (err) {
      throw s3Error("reading", path, err);
    } finally {
      body.destroy();
    }
  }

  readRange(path: string, start: number, end: number): Promise<Uint8Array> {
    return buffer(this.read(path, { start, end }));
  }

  async *readRanges(path: string, ranges: ReadonlyArray<{ readonly start: number; readonly end: number }>): AsyncIterable<Uint8Array> {
    for (const { start, end } of ranges) yield await this.readRange(path, start, end);
  }

  async readAll(path: string): Promise<Uint8Array> {
    const { bucket, key } = parseObjectUrl(path);
    const { s3, client } = await this.sdk();
    try {
      const response = await client.send(new s3.GetObjectCommand({ Bucket: bucket, Key: key }));
      return await response.Body!.transformToByteArray();
    } catch (err) {
      throw s3Error("reading", path, err);
    }
  }

  async writeAll(path: string, data: Uint8Array): Promise<void> {
    const sink = await this.openWrite(path);
    sink.stream.end(data);
    await sink.commit();
  }

  async openWrite(path: string): Promise<ObjectSink> {
    const { bucket, key } = parseObjectUrl(path);
    if (key === "" || key.endsWith("/")) throw new FlusterError(`cannot write ${path}: it names no object (a key ending in a file name is needed)`, "invalid_argument");
    const { Upload, client } = await this.sdk();
    return countingSink(path, (stream) => {
      const upload = new Upload({
        client,
        params: { Bucket: bucket, Key: key, Body: stream },
        partSize: this.partSize,
        queueSize: this.partConcurrency,
        leavePartsOnError: false,
      });
      return {
        done: upload.done().then(
          () => undefined,
          (err: unknown) => {
            throw s3Error("writing", path, err);
          },
        ),
        abort: () => upload.abort(),
      };
    });
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    const { bucket, key } = parseObjectUrl(prefix);
    const { s3, client } = await this.sdk();
    const out: ObjectInfo[] = [];
    let token: string | undefined;
    do {
      let page;
      try {
        page = await client.send(new s3.ListObjectsV2Command({ Bucket: bucket, Prefix: key, ...(token ? { ContinuationToken: token } : {}) }));
      } catch (err) {
        throw s3Error("listing", prefix, err);
      }
      for (const object of page.Contents ?? []) {
        if (object.Key !== undefined) out.push({ path: `s3://${bucket}/${object.Key}`, size: object.Size ?? 0 });
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }

  async remove(path: string): Promise<void> {
    const { bucket, key } = parseObjectUrl(path);
    const { s3, client } = await this.sdk();
    try {
      await client.send(new s3.DeleteObjectCommand({ Bucket: bucket, Key: key }));
    } catch (err) {
      if (isNotFound(err) && (err as AwsError).name !== "NoSuchBucket") return;
      throw s3Error("removing", path, err);
    }
  }

  async removeTree(prefix: string): Promise<void> {
    const { bucket } = parseObjectUrl(prefix);
    const objects = await this.list(prefix.endsWith("/") ? prefix : `${prefix}/`);
    const { s3, client } = await this.sdk();
    for (let i = 0; i < objects.length; i += DELETE_BATCH) {
      const keys = objects.slice(i, i + DELETE_BATCH).map((o) => ({ Key: parseObjectUrl(o.path).key }));
      let errors;
      try {
        ({ Errors: errors } = await client.send(new s3.DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys, Quiet: true } })));
      } catch (err) {
        throw s3Error("removing", prefix, err);
      }
      const first = errors?.find((e) => e.Code !== "NoSuchKey");
      if (first) throw new FlusterError(`removing s3://${bucket}/${first.Key ?? "?"} failed: ${first.Code ?? "error"}: ${first.Message ?? ""}`, first.Code === "AccessDenied" ? "permission_denied" : "unavailable");
    }
  }
}
