// The controller over TLS, as an operator sets it up: a self-signed
// certificate made with openssl, `fluster controller serve --tls-cert/--tls-key`,
// a worker (serving TLS itself) and the CLI that trust it through --tls-ca /
// FLUSTER_TLS_CA, and a job that calls the controller back with the CA its
// worker handed it. A
// client without the CA, and a plain-HTTP client, each get one clear line.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO_ROOT, cleanEnv, freePort, runNode, stopProcess, waitForLine } from "../helpers/index.js";

const bin = join(REPO_ROOT, "bin", "fluster.js");

/** A self-signed P-256 certificate for localhost and 127.0.0.1; undefined (with why) without openssl. */
function selfSignedCertificate(dir: string): { cert: string; key: string } | { skip: string } {
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  try {
    execFileSync(
      "openssl",
      ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", key, "-out", cert],
      { stdio: "pipe" },
    );
  } catch (err) {
    return { skip: `openssl could not make a certificate (${(err as Error).message}); .ci/run installs it` };
  }
  return { cert, key };
}

async function serve(args: string[], ready: RegExp, env: NodeJS.ProcessEnv = {}): Promise<{ child: ChildProcess; match: RegExpExecArray }> {
  const child = spawn(process.execPath, [bin, ...args], { cwd: REPO_ROOT, env: cleanEnv(env), stdio: ["ignore", "pipe", "inherit"] });
  return { child, match: await waitForLine(child, ready) };
}

const dir = mkdtempSync(join(tmpdir(), "fluster-tls-"));
const certificate = selfSignedCertificate(dir);
after(() => rmSync(dir, { recursive: true, force: true }));

test("over TLS a job runs end to end and calls back; a client without the CA, or speaking plain HTTP, is refused in one line", { timeout: 120_000, skip: "skip" in certificate ? certificate.skip : false }, async () => {
  if ("skip" in certificate) return;
  const children: ChildProcess[] = [];
  try {
    const port = await freePort();
    const controller = await serve(
      ["--tls-ca", certificate.cert, "controller", "serve", "--port", String(port), "--state-dir", join(dir, "state"), "--tls-cert", certificate.cert, "--tls-key", certificate.key],
      /fluster controller serving at (\S+)/,
    );
    children.push(controller.child);
    const url = controller.match[1] ?? "";
    assert.equal(url, `https://127.0.0.1:${port}`, "the controller advertises https://");
    // The worker serves TLS too (the controller verifies it with its --tls-ca), so logs and reconciles travel encrypted.
    const worker = await serve(
      ["--controller", url, "--tls-ca", certificate.cert, "worker", "serve", "--worker-id", "w-tls", "--work-dir", join(dir, "worker"), "--tls-cert", certificate.cert, "--tls-key", certificate.key],
      /fluster worker \S+ serving at (https?:\/\/[^\s,]+)/,
    );
    children.push(worker.child);
    assert.match(worker.match[1] ?? "", /^https:\/\/127\.0\.0\.1:\d+$/, "the worker registers an https:// address");

    // A job launched over TLS that calls the controller back with the CA its worker gave it.
    const workspace = mkdtempSync(join(dir, "ws-"));
    const callback = `const { currentCluster } = await import(${JSON.stringify(join(REPO_ROOT, "dist", "index.js"))});
      const cluster = await currentCluster();
      const jobs = await cluster.listJobs();
      console.log("called back over TLS:", jobs.length, "job(s); CA", process.env.FLUSTER_TLS_CA === ${JSON.stringify(certificate.cert)});
      await cluster.close();`;
    const run = await runNode([bin, "--controller", url, "job", "run", "--workspace", workspace, "--", "node", "--input-type=module", "-e", callback], {
      env: cleanEnv({ FLUSTER_TLS_CA: certificate.cert }),
      timeoutMs: 90_000,
    });
    assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
    assert.match(run.stdout, /called back over TLS: 1 job\(s\); CA true/, "the job's output came back through the controller from the TLS worker");

    // No CA: the certificate is refused, in one line saying what to do.
    const untrusted = await runNode([bin, "--controller", url, "job", "list"], { env: cleanEnv(), timeoutMs: 30_000 });
    assert.equal(untrusted.code, 1);
    assert.equal(
      untrusted.stderr.trim(),
      `fluster: the TLS certificate of ${url} is not trusted (self-signed certificate): pass the CA that signed it with --tls-ca FILE or FLUSTER_TLS_CA`,
    );
    // Plain HTTP to the TLS port.
    const plain = await runNode([bin, "--controller", `http://127.0.0.1:${port}`, "job", "list"], { env: cleanEnv(), timeoutMs: 30_000 });
    assert.equal(plain.code, 1);
    assert.equal(plain.stderr.trim(), `fluster: http://127.0.0.1:${port} serves TLS, not plain HTTP/2: use ${url}`);
    // A worker without the CA is turned away at once, in one line (no endless retrying).
    const lost = await runNode([bin, "--controller", url, "worker", "serve", "--work-dir", join(dir, "worker-untrusting")], { env: cleanEnv(), timeoutMs: 30_000 });
    assert.equal(lost.code, 1);
    assert.equal(
      lost.stderr.trim(),
      `fluster: the TLS certificate of the controller at ${url} is not trusted (self-signed certificate): pass the CA that signed it with --tls-ca FILE or FLUSTER_TLS_CA`,
    );
    // With the CA, the CLI reads fine.
    const listed = await runNode([bin, "--controller", url, "--tls-ca", certificate.cert, "job", "list", "--json"], { env: cleanEnv(), timeoutMs: 30_000 });
    assert.equal(listed.code, 0, listed.stderr);
    assert.equal((JSON.parse(listed.stdout) as unknown[]).length, 1);
  } finally {
    for (const child of children.reverse()) await stopProcess(child, "SIGTERM");
  }
});

test("TLS options are checked up front: a certificate without its key, or a file that is not PEM, is named; a refused start leaves nothing behind", async () => {
  const { startController } = await import("../../src/cluster/controller/server.js");
  const scratch = mkdtempSync(join(tmpdir(), "fluster-tls-options-"));
  const bundleDirs = () => readdirSync(tmpdir()).filter((name) => name.startsWith("fluster-bundles-")).sort();
  const before = bundleDirs();
  try {
    await assert.rejects(startController({ stateDir: ":memory:", tlsCert: join(scratch, "cert.pem") }), /tlsKey.*must be given with tlsCert/);
    const notPem = join(scratch, "not.pem");
    writeFileSync(notPem, "hello");
    await assert.rejects(startController({ stateDir: ":memory:", tlsCert: notPem, tlsKey: notPem }), new RegExp(`the TLS certificate \\(tlsCert\\) ${notPem.replace(/[.]/g, "\\.")} is not a PEM file`));
    await assert.rejects(startController({ stateDir: ":memory:", tlsCert: join(scratch, "missing.pem"), tlsKey: notPem }), /cannot read the TLS certificate \(tlsCert\) \S+missing\.pem: ENOENT/);
    // An in-memory controller that did not start leaves no temporary bundle directory.
    assert.deepEqual(bundleDirs(), before);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
});
