// The client's half of the bundle protocol: ask which blobs the controller
// lacks, stream only those (chunks of at most 1 MiB), then register the
// manifest. An unchanged workspace uploads nothing.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { FlusterError } from "../../core/errors.js";
import { ControllerService, UploadBlobsRequestSchema, type UploadBlobsRequest } from "../../rpc/gen/fluster/cluster/v1/controller_pb.js";
import { BlobChunkSchema, BundleFileSchema, type BlobChunk } from "../../rpc/gen/fluster/cluster/v1/types_pb.js";
import { CHUNK_BYTES, type BundleFile } from "./manifest.js";
import type { BlobSource, PackedWorkspace } from "./pack.js";

/**
 * Uploads what the controller lacks of `packed` and registers it; resolves to
 * the bundle id. `known` (kept by the caller per controller) holds blobs the
 * controller had at an earlier upload: only the others are asked about, so an
 * unchanged workspace costs one call (putBundle) instead of two. Should a
 * known blob be gone since (swept), putBundle refuses the manifest; then
 * `known` is forgotten and every blob is asked about again.
 */
export async function uploadBundle(client: Client<typeof ControllerService>, packed: PackedWorkspace, known?: Set<string>): Promise<string> {
  const hashes = [...packed.sources.keys()];
  const unknown = known ? hashes.filter((h) => !known.has(h)) : hashes;
  let bundleId: string;
  try {
    bundleId = await register(client, packed, unknown);
  } catch (err) {
    if (!known || unknown.length === hashes.length || ConnectError.from(err).code !== Code.FailedPrecondition) throw err;
    known.clear();
    bundleId = await register(client, packed, hashes);
  }
  for (const h of hashes) known?.add(h);
  return bundleId;
}

/** Uploads the blobs of `ask` the controller lacks, then registers the manifest. */
async function register(client: Client<typeof ControllerService>, packed: PackedWorkspace, ask: readonly string[]): Promise<string> {
  const { missing } = ask.length > 0 ? await client.missingBlobs({ sha256: [...ask] }) : { missing: [] };
  if (missing.length > 0) {
    const paths = new Map(packed.files.map((f) => [f.sha256, f.path]));
    await client.uploadBlobs(requests(missing, packed.sources, paths));
  }
  const { bundleId } = await client.putBundle({ files: packed.files.map(bundleFileToProto) });
  if (bundleId !== packed.bundleId) {
    throw new FlusterError(`the controller registered bundle ${bundleId}, but this client packed ${packed.bundleId}`, "internal");
  }
  return bundleId;
}

export function bundleFileToProto(f: BundleFile) {
  return create(BundleFileSchema, { path: f.path, sha256: f.sha256, size: BigInt(f.size), mode: f.mode });
}

export function bundleFileFromProto(f: { path: string; sha256: string; size: bigint; mode: number }): BundleFile {
  return { path: f.path, sha256: f.sha256, size: Number(f.size), mode: f.mode };
}

/** Messages of at most {@link CHUNK_BYTES} of data each; small blobs share one. */
async function* requests(hashes: readonly string[], sources: ReadonlyMap<string, BlobSource>, paths: ReadonlyMap<string, string>): AsyncGenerator<UploadBlobsRequest> {
  let batch: BlobChunk[] = [];
  let bytes = 0;
  for (const sha256 of hashes) {
    const source = sources.get(sha256);
    if (!source) throw new FlusterError(`the controller asked for blob ${sha256}, which this bundle does not hold`, "internal");
    for await (const chunk of chunksOf(sha256, source, paths.get(sha256) ?? sha256)) {
      if (bytes + chunk.data.length > CHUNK_BYTES && batch.length > 0) {
        yield create(UploadBlobsRequestSchema, { chunks: batch });
        batch = [];
        bytes = 0;
      }
      batch.push(chunk);
      bytes += chunk.data.length;
    }
  }
  if (batch.length > 0) yield create(UploadBlobsRequestSchema, { chunks: batch });
}

/**
 * Files up to this size are read whole, into a buffer of their own size, and
 * sent as views of it; a stream would allocate a {@link CHUNK_BYTES} buffer
 * for every read, twice per small file (2,000 small files: 4 GB of garbage).
 */
const READ_WHOLE_BYTES = 16 * 1024 * 1024;

/** A blob's chunks, its hash checked as it is read: a file changed since it was packed is an error here, not a corrupt bundle. */
async function* chunksOf(sha256: string, source: BlobSource, path: string): AsyncGenerator<BlobChunk> {
  if (source.kind === "text") {
    yield create(BlobChunkSchema, { sha256, data: Buffer.from(source.text), last: true });
    return;
  }
  const hash = createHash("sha256");
  const changed = () => new FlusterError(`${path} changed while it was being packed; launch again`, "failed_precondition");
  const { size } = await stat(source.path);
  if (size <= READ_WHOLE_BYTES) {
    const data = await readFile(source.path);
    if (hash.update(data).digest("hex") !== sha256) throw changed();
    for (let at = 0; at + CHUNK_BYTES < data.length; at += CHUNK_BYTES) yield create(BlobChunkSchema, { sha256, data: data.subarray(at, at + CHUNK_BYTES), last: false });
    const lastAt = data.length === 0 ? 0 : Math.floor((data.length - 1) / CHUNK_BYTES) * CHUNK_BYTES;
    yield create(BlobChunkSchema, { sha256, data: data.subarray(lastAt), last: true });
    return;
  }
  let pending: Buffer | undefined;
  for await (const data of createReadStream(source.path, { highWaterMark: CHUNK_BYTES })) {
    if (pending) yield create(BlobChunkSchema, { sha256, data: pending, last: false });
    pending = data as Buffer;
    hash.update(pending);
  }
  if (hash.digest("hex") !== sha256) throw changed();
  yield create(BlobChunkSchema, { sha256, data: pending ?? new Uint8Array(0), last: true });
}
