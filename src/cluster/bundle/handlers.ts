// The bundle RPCs of ControllerService, answered from the controller's bundle store.
import type { UploadBlobsRequest } from "../../rpc/gen/fluster/cluster/v1/controller_pb.js";
import type { BlobChunk, BundleFile as BundleFileProto } from "../../rpc/gen/fluster/cluster/v1/types_pb.js";
import type { BundleStore, Chunk } from "./blob-store.js";
import { bundleFileFromProto, bundleFileToProto } from "./upload.js";

export function bundleHandlers(store: BundleStore) {
  return {
    missingBlobs(req: { sha256: string[] }) {
      return { missing: store.missingBlobs(req.sha256) };
    },
    async uploadBlobs(requests: AsyncIterable<UploadBlobsRequest>) {
      const chunks = async function* (): AsyncGenerator<Chunk[]> {
        for await (const req of requests) yield req.chunks.map((c: BlobChunk) => ({ sha256: c.sha256, data: c.data, last: c.last }));
      };
      return { stored: await store.receive(chunks()) };
    },
    putBundle(req: { files: BundleFileProto[] }) {
      return { bundleId: store.putBundle(req.files.map(bundleFileFromProto)) };
    },
    getBundle(req: { bundleId: string }) {
      return { files: store.getBundle(req.bundleId).map(bundleFileToProto) };
    },
    async *getBlobs(req: { sha256: string[] }) {
      for await (const chunks of store.readBlobs(req.sha256)) yield { chunks };
    },
  };
}
