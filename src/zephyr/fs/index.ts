// Zephyr's storage: the store for a path. Local paths and file:// URLs go to
// the local disk, s3:// and gs:// to their object stores (created on first
// use, configured by the environment or by `configureStorage`); any other
// scheme is an error. Also input globs, over local folders and object prefixes.
import { stat } from "node:fs/promises";
import { resolve } from "node:path";
import picomatch from "picomatch";
import { glob, isDynamicPattern } from "tinyglobby";
import { ValidationError } from "../../core/errors.js";
import { GcsStore, type GcsStoreOptions } from "./gcs.js";
import { LocalStore } from "./local.js";
import { absolutePath, isObjectUrl, parseObjectUrl, schemeOf } from "./paths.js";
import { S3Store, type S3StoreOptions } from "./s3.js";
import type { ObjectStore, Scheme } from "./types.js";

export { absolutePath, isObjectUrl, joinPath, parentPath, parseObjectUrl, schemeOf } from "./paths.js";
export type { ByteRange, ObjectInfo, ObjectSink, ObjectStore, Scheme, WriteOptions } from "./types.js";
export type { GcsStoreOptions } from "./gcs.js";
export type { S3StoreOptions } from "./s3.js";

/** Settings of the object stores, for `configureStorage`. */
export interface StorageConfig {
  /** S3 client settings; what is left out comes from the AWS environment. */
  s3?: S3StoreOptions;
  /** GCS client settings; what is left out comes from the environment (STORAGE_EMULATOR_HOST, credentials). */
  gcs?: GcsStoreOptions;
}

const local = new LocalStore();
const stores = new Map<Scheme, ObjectStore>([["file", local]]);
const config: StorageConfig = {};

/**
 * Sets the S3 and/or GCS client settings of this process; a store given
 * settings here is rebuilt with them on its next use. Settings made here stay
 * in this process: workers in other threads and processes read the
 * environment, so settings they need belong there (AWS_ENDPOINT_URL_S3,
 * STORAGE_EMULATOR_HOST, …). Call it before running pipelines.
 *
 * ```ts
 * configureStorage({ s3: { endpoint: "http://minio:9000", region: "eu-west-1" } });
 * ```
 */
export function configureStorage(settings: StorageConfig): void {
  if (typeof settings !== "object" || settings === null) throw new ValidationError("configureStorage", "takes an object such as { s3: { region: \"eu-west-1\" } }");
  if (settings.s3 !== undefined) {
    config.s3 = settings.s3;
    stores.delete("s3");
  }
  if (settings.gcs !== undefined) {
    config.gcs = settings.gcs;
    stores.delete("gs");
  }
}

/** The store that holds `path`; throws a ValidationError for an unknown scheme. */
export function storeFor(path: string): ObjectStore {
  const scheme = schemeOf(path);
  let store = stores.get(scheme);
  if (!store) {
    store = scheme === "s3" ? new S3Store(config.s3) : new GcsStore(config.gcs);
    stores.set(scheme, store);
  }
  return store;
}

/** Where a glob's first special character is: the key before it is a literal prefix to list. */
const GLOB_CHAR = /[*?[\]{}()!+@\\]/;

/**
 * The paths matching a glob, sorted: absolute local paths (a relative
 * pattern resolves against `cwd`; dot files are skipped), or object URLs
 * (`s3://bucket/data/*.jsonl.gz`: the objects under the literal prefix before
 * the first glob character, filtered with picomatch, where `*` stays within
 * one "/" level and `**` crosses them). A pattern without glob characters
 * matches the file or object it names. No match throws a ValidationError
 * naming the pattern.
 */
export async function globPaths(pattern: string, cwd: string = process.cwd()): Promise<string[]> {
  let paths: string[];
  let where: string;
  if (isObjectUrl(pattern)) {
    const { scheme, bucket, key } = parseObjectUrl(pattern);
    const store = storeFor(pattern);
    where = `in ${scheme}://${bucket}`;
    const literal = GLOB_CHAR.exec(key);
    if (!literal) {
      paths = (await store.size(pattern)) !== undefined ? [pattern] : [];
    } else {
      const matches = picomatch(key);
      const base = `${scheme}://${bucket}/`;
      paths = (await store.list(base + key.slice(0, literal.index))).map((o) => o.path).filter((path) => matches(path.slice(base.length)));
    }
  } else {
    const base = resolve(cwd);
    where = `(cwd ${base})`;
    const local = absolutePath(pattern, base);
    if (!isDynamicPattern(pattern)) {
      const info = await stat(local).catch(() => undefined);
      paths = info?.isFile() ? [local] : [];
    } else {
      // tinyglobby takes paths, not file:// URLs.
      paths = await glob(/^file:/i.test(pattern) ? local : pattern, { cwd: base, absolute: true, onlyFiles: true, expandDirectories: false });
    }
  }
  if (paths.length === 0) throw new ValidationError("pattern", `${JSON.stringify(pattern)} matched no files ${where}`);
  return paths.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}
