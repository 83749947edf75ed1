// Docker images built without a registry: a root filesystem holding this
// machine's `node` and the shared libraries it links, a shell and a few core
// tools, and (for worker images) the installed fluster package with its
// production dependencies, fed to `docker import`. An image is tagged by a
// hash of what went into it, so it is built once per node binary and fluster
// build, and found again by its tag.
import { execFile, execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { FlusterError } from "../../../core/errors.js";
import { FLUSTER_PACKAGE_DIR, productionDependencies } from "../package-files.js";

const run = promisify(execFile);

export { FLUSTER_PACKAGE_DIR, productionDependencies } from "../package-files.js";
/** Where a worker image holds the fluster package. */
export const IMAGE_PACKAGE_DIR = "/opt/fluster";
/** Where a worker image holds npm: beside its node, where workers look for it first. */
const IMAGE_NPM_DIR = "/usr/local/lib/node_modules/npm";

/** The npm package beside this machine's node (as node's installers lay it out), if there is one. */
function hostNpmDir(): string | undefined {
  const binDir = dirname(process.execPath);
  for (const dir of [join(binDir, "..", "lib", "node_modules", "npm"), join(binDir, "node_modules", "npm")]) {
    if (existsSync(join(dir, "bin", "npm-cli.js"))) return dir;
  }
  return undefined;
}

/** The machine's CA certificates: an image trusts what this machine trusts (a TLS-inspecting proxy's CA, a private registry's). */
const CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt";

/** Tools copied into every image with their libraries, besides node: what command jobs commonly run. */
const TOOLS = ["sh", "dash", "bash", "cat", "echo", "env", "ls", "mkdir", "rm", "sleep", "true", "false", "printf", "head", "tail", "grep", "id", "pwd", "test", "kill", "wc", "tee"];

/** Options of {@link ensureNodeImage} and {@link ensureWorkerImage}. */
export interface ImageOptions {
  /** The `docker` command. @default "docker" */
  docker?: string;
  /** Repository part of the tag. @default "fluster-node" or "fluster-worker" */
  repository?: string;
}

/**
 * An image with this machine's node (as `/usr/local/bin/node`), its
 * libraries, `/bin/sh` and common tools: the smallest image a task of
 * `environment.image` can run in. Returns its tag; builds it when no image
 * has it yet.
 */
export async function ensureNodeImage(options: ImageOptions = {}): Promise<string> {
  return ensureImage({ ...options, repository: options.repository ?? "fluster-node" }, false);
}

/**
 * A node image plus the fluster package at `/opt/fluster` (its `dist/`,
 * `bin/`, `proto/` and production dependencies) and this machine's npm (for
 * jobs' dependencies; native ones need a toolchain the image lacks, so they
 * need an image of your own): what a docker platform VM
 * runs `fluster worker serve` from. Returns its tag; builds it when missing.
 * Needs a built `dist/` (`npm run build`).
 */
export async function ensureWorkerImage(options: ImageOptions = {}): Promise<string> {
  if (!existsSync(join(FLUSTER_PACKAGE_DIR, "dist", "cli", "main.js"))) {
    throw new FlusterError(`the fluster package at ${FLUSTER_PACKAGE_DIR} has no built dist/; run \`npm run build\` first`, "failed_precondition");
  }
  return ensureImage({ ...options, repository: options.repository ?? "fluster-worker" }, true);
}

async function ensureImage(options: ImageOptions & { repository: string }, withPackage: boolean): Promise<string> {
  const docker = options.docker ?? "docker";
  const files = hostFiles();
  // Worker images also get npm (a pure JavaScript package beside node), so workers install jobs' dependencies.
  const npm = withPackage ? hostNpmDir() : undefined;
  const packageFiles = withPackage ? [...packageTree(), ...(npm ? [{ from: npm, to: IMAGE_NPM_DIR }] : [])] : [];
  const hash = createHash("sha256");
  for (const file of [...files, ...packageFiles.map((f) => f.from)]) {
    const stat = statSync(file);
    hash.update(`${file}\0${stat.size}\0${stat.mtimeMs}\n`);
  }
  const tag = `${options.repository}:${hash.digest("hex").slice(0, 16)}`;
  if (await imageExists(docker, tag)) return tag;
  const root = mkdtempSync(join(tmpdir(), "fluster-image-"));
  try {
    for (const file of files) copyInto(root, file, file);
    mkdirSync(join(root, "usr/local/bin"), { recursive: true });
    cpSync(process.execPath, join(root, "usr/local/bin/node"));
    for (const dir of ["tmp", "root", "etc", "work"]) mkdirSync(join(root, dir), { recursive: true, mode: 0o1777 });
    // /bin/sh is what node's `shell: true` and many scripts name.
    if (!existsSync(join(root, "bin"))) symlinkSync("usr/bin", join(root, "bin"));
    cpSync("/etc/passwd", join(root, "etc/passwd"));
    cpSync("/etc/group", join(root, "etc/group"));
    for (const { from, to } of packageFiles) copyInto(root, from, to);
    if (npm) symlinkSync("../lib/node_modules/npm/bin/npm-cli.js", join(root, "usr/local/bin/npm"));
    await importRootfs(docker, root, tag, withPackage);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  return tag;
}

/** The tools, node's and their libraries' files on this machine, sorted (symlinks resolved). */
function hostFiles(): string[] {
  const files = new Set<string>();
  const binaries = [process.execPath];
  for (const tool of TOOLS) {
    for (const dir of ["/usr/bin", "/bin"]) {
      const path = join(dir, tool);
      if (existsSync(path)) {
        binaries.push(path);
        files.add(path);
        break;
      }
    }
  }
  for (const binary of binaries) for (const lib of linkedLibraries(binary)) files.add(lib);
  if (existsSync(CA_BUNDLE)) files.add(CA_BUNDLE);
  return [...files].sort();
}

/** The shared libraries `ldd` lists for `binary`, with the loader. */
function linkedLibraries(binary: string): string[] {
  let out: string;
  try {
    // Synchronous: a handful of calls, once per image build.
    out = execFileSync("ldd", [binary], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
  } catch {
    return []; // static, or not an ELF file
  }
  return [...out.matchAll(/(\/[^\s]+)/g)].map((m) => m[1] as string).filter((p) => existsSync(p));
}

/**
 * The fluster package's files for `/opt/fluster`: package.json, bin/, dist/,
 * proto/, and every production dependency found as node resolves it from
 * the package (nested `node_modules` kept where they are).
 */
function packageTree(): Array<{ from: string; to: string }> {
  const out: Array<{ from: string; to: string }> = [];
  for (const entry of ["package.json", "bin", "dist", "proto"]) {
    const from = join(FLUSTER_PACKAGE_DIR, entry);
    if (existsSync(from)) out.push({ from, to: join(IMAGE_PACKAGE_DIR, entry) });
  }
  for (const dir of productionDependencies(FLUSTER_PACKAGE_DIR)) {
    const relative = dir.slice(FLUSTER_PACKAGE_DIR.length);
    out.push({ from: dir, to: join(IMAGE_PACKAGE_DIR, relative) });
  }
  return out;
}

/** Copies `from` (a file or a directory, links followed) to `to` under `root`. */
function copyInto(root: string, from: string, to: string): void {
  const target = join(root, to);
  mkdirSync(dirname(target), { recursive: true });
  cpSync(from, target, { recursive: true, dereference: true });
}

async function imageExists(docker: string, tag: string): Promise<boolean> {
  try {
    await run(docker, ["image", "inspect", "--format", "{{.Id}}", tag]);
    return true;
  } catch {
    return false;
  }
}

/** `tar -c root | docker import - tag`, with the environment a shell and node expect. */
async function importRootfs(docker: string, root: string, tag: string, withPackage: boolean): Promise<void> {
  const path = withPackage ? `/usr/local/bin:/usr/bin:/bin:${IMAGE_PACKAGE_DIR}/bin` : "/usr/local/bin:/usr/bin:/bin";
  const changes = [`ENV PATH=${path}`, "ENV HOME=/root", "WORKDIR /work"];
  if (existsSync(join(root, CA_BUNDLE))) changes.push(`ENV NODE_EXTRA_CA_CERTS=${CA_BUNDLE}`, `ENV SSL_CERT_FILE=${CA_BUNDLE}`);
  const tar = spawn("tar", ["-C", root, "-c", "."], { stdio: ["ignore", "pipe", "pipe"] });
  const importer = spawn(docker, ["import", ...changes.flatMap((c) => ["--change", c]), "-", tag], { stdio: ["pipe", "pipe", "pipe"] });
  tar.stdout.pipe(importer.stdin);
  // A `docker import` that ends early (no daemon, a full disk) stops reading:
  // tar would wait on the pipe forever, so it goes too. Its exit codes say why.
  importer.stdin.on("error", () => undefined);
  importer.once("close", () => {
    if (tar.exitCode === null && tar.signalCode === null) tar.kill();
  });
  let errors = "";
  tar.stderr.on("data", (chunk: Buffer) => (errors += chunk.toString()));
  importer.stderr.on("data", (chunk: Buffer) => (errors += chunk.toString()));
  const [tarCode, importCode] = await Promise.all([exitCode(tar), exitCode(importer)]);
  if (tarCode !== 0 || importCode !== 0) {
    throw new FlusterError(`building the image ${tag} failed (tar exit ${tarCode}, docker import exit ${importCode}): ${errors.trim()}`, "internal");
  }
}

function exitCode(child: ReturnType<typeof spawn>): Promise<number | null> {
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => resolve(code));
  });
}
