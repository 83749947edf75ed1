// The back of the FAKE S3 (see s3-fake.ts): s3rver on 127.0.0.1, an ephemeral
// port, data under the directory given. A child process of its own because
// s3rver's list continuation tokens use DES, which Node's OpenSSL 3 offers
// only with --openssl-legacy-provider. Prints the port, then serves until
// killed or until its stdin closes (its parent is gone: no process is left behind).
"use strict";
const S3rver = require("s3rver");

const [directory, ...buckets] = process.argv.slice(2);
const server = new S3rver({
  address: "127.0.0.1",
  port: 0,
  silent: true,
  directory,
  allowMismatchedSignatures: true,
  configureBuckets: buckets.map((name) => ({ name, configs: [] })),
});
server.run().then(
  (address) => process.stdout.write(`${address.port}\n`),
  (err) => {
    process.stderr.write(`fake s3 backend: ${err.stack ?? err}\n`);
    process.exit(1);
  },
);
const stop = () => server.close().then(() => process.exit(0));
process.on("SIGTERM", stop);
process.stdin.on("end", stop);
process.stdin.resume();
