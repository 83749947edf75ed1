// Zephyr's storage paths and store selection, without a store: which scheme
// a path names (an unknown one is an error), object URLs' bucket and key,
// joining, the S3 client settings read from the environment, and stores
// rebuilt by configureStorage.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { ValidationError } from "../../src/core/errors.js";
import { absolutePath, configureStorage, joinPath, parentPath, parseObjectUrl, schemeOf, storeFor } from "../../src/zephyr/fs/index.js";
import { s3ClientConfig } from "../../src/zephyr/fs/s3.js";

describe("schemeOf", () => {
  test("local paths and file:// URLs are file; s3:// and gs:// are theirs, in any case", () => {
    assert.equal(schemeOf("data/x.jsonl"), "file");
    assert.equal(schemeOf("/abs/x.jsonl"), "file");
    assert.equal(schemeOf("C:relative"), "file");
    assert.equal(schemeOf(pathToFileURL("/tmp/x").href), "file");
    assert.equal(schemeOf("s3://bucket/key"), "s3");
    assert.equal(schemeOf("GS://bucket/key"), "gs");
  });

  test("an unknown scheme is a ValidationError naming it and the schemes there are", () => {
    assert.throws(
      () => schemeOf("azure://container/blob"),
      (err: unknown) => err instanceof ValidationError && err.message.includes('"azure://"') && err.message.includes("s3://") && err.message.includes("gs://"),
    );
  });
});

describe("object URLs", () => {
  test("parseObjectUrl splits bucket and key", () => {
    assert.deepEqual(parseObjectUrl("s3://b/a/b/c.gz"), { scheme: "s3", bucket: "b", key: "a/b/c.gz" });
    assert.deepEqual(parseObjectUrl("gs://b"), { scheme: "gs", bucket: "b", key: "" });
    assert.throws(() => parseObjectUrl("s3:///key"), ValidationError);
    assert.throws(() => parseObjectUrl("/local/path"), ValidationError);
  });

  test("joinPath joins with one / for object URLs and by the local rules otherwise", () => {
    assert.equal(joinPath("s3://b/tmp", "run-1", "stage-0"), "s3://b/tmp/run-1/stage-0");
    assert.equal(joinPath("gs://b/tmp/", "/run-1/", "x.chunk"), "gs://b/tmp/run-1/x.chunk");
    assert.equal(joinPath("gs://b", "x"), "gs://b/x");
    assert.equal(joinPath("rel", "x"), join(resolve("rel"), "x"));
    assert.equal(parentPath("s3://b/a/x.chunk"), "s3://b/a");
  });

  test("absolutePath resolves local paths and file:// URLs, and keeps object URLs", () => {
    assert.equal(absolutePath("x.jsonl", "/work"), "/work/x.jsonl");
    assert.equal(absolutePath(pathToFileURL("/tmp/a b.jsonl").href), "/tmp/a b.jsonl");
    assert.equal(absolutePath("s3://b/k"), "s3://b/k");
  });
});

describe("S3 settings from the environment", () => {
  test("region defaults to us-east-1; an endpoint forces path style and plain checksums", () => {
    assert.deepEqual(s3ClientConfig({}, {}), { region: "us-east-1", maxAttempts: 5, forcePathStyle: false });
    const minio = s3ClientConfig({}, { AWS_REGION: "eu-west-1", AWS_ENDPOINT_URL_S3: "http://127.0.0.1:9000", AWS_ENDPOINT_URL: "http://ignored" });
    assert.equal(minio.region, "eu-west-1");
    assert.equal(minio.endpoint, "http://127.0.0.1:9000");
    assert.equal(minio.forcePathStyle, true);
    assert.equal(minio.requestChecksumCalculation, "WHEN_REQUIRED");
    assert.equal(s3ClientConfig({}, { AWS_ENDPOINT_URL: "http://h:1" }).endpoint, "http://h:1");
  });

  test("FLUSTER_S3_FORCE_PATH_STYLE and options win over the defaults", () => {
    assert.equal(s3ClientConfig({}, { FLUSTER_S3_FORCE_PATH_STYLE: "1" }).forcePathStyle, true);
    assert.equal(s3ClientConfig({}, { AWS_ENDPOINT_URL_S3: "http://h:1", FLUSTER_S3_FORCE_PATH_STYLE: "false" }).forcePathStyle, false);
    const given = s3ClientConfig({ region: "ap-south-1", maxAttempts: 2, partSize: 6 << 20 }, { AWS_REGION: "eu-west-1" });
    assert.equal(given.region, "ap-south-1");
    assert.equal(given.maxAttempts, 2);
    assert.equal("partSize" in given, false, "Zephyr's own options do not reach the SDK");
  });
});

describe("storeFor", () => {
  test("one store per scheme, rebuilt after configureStorage; bad settings fail when the store is made", () => {
    const local = storeFor("/tmp/x");
    assert.equal(local.scheme, "file");
    assert.equal(storeFor(pathToFileURL("/tmp/y").href), local);
    const s3 = storeFor("s3://b/k");
    assert.equal(storeFor("s3://other/k"), s3);
    configureStorage({ s3: { region: "eu-west-1" } });
    assert.notEqual(storeFor("s3://b/k"), s3);
    configureStorage({ s3: { partSize: 1024 } });
    assert.throws(() => storeFor("s3://b/k"), /partSize must be .* 5 MiB/);
    configureStorage({ s3: {}, gcs: { chunkSize: 1000 } });
    assert.equal(storeFor("s3://b/k").scheme, "s3");
    assert.throws(() => storeFor("gs://b/k"), /chunkSize must be a positive multiple of 256 KiB/);
    configureStorage({ gcs: {} });
    assert.equal(storeFor("gs://b/k").scheme, "gs");
    assert.throws(() => storeFor("ftp://host/x"), ValidationError);
  });
});
