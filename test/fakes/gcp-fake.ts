// A FAKE of Google Cloud's Compute Engine v1 and Cloud TPU v2 REST APIs, for
// testing the gcp platform on one machine without a Google Cloud project.
//
// The contract it keeps (the subset the platform uses, with Google's JSON
// shapes): instances insert/get/delete/list/aggregatedList with a
// `labels.<key> = "<value>"` / `name = "<value>"` filter, zone operations
// that are RUNNING and turn DONE after a delay, errors in operations'
// `error.errors[].code` (QUOTA_EXCEEDED, ZONE_RESOURCE_POOL_EXHAUSTED) and in
// HTTP answers (`{ error: { code, message, status, errors: [{ reason }] } }`:
// 400 invalid, 404 notFound, 409 alreadyExists, 401 without a bearer token);
// a Security Token Service token exchange (`/sts/v1/token`, for an
// `external_account` credentials file whose `token_url` points here);
// TPU nodes create (`?nodeId=`)/get/delete/list with long-running operations
// (`done`, `error: { code: 8, message }`), states CREATING → READY →
// PREEMPTED, and one `networkEndpoints[]` entry per host of the accelerator
// type. A booted instance, and each host of a booted node, runs its
// `startup-script` metadata with bash on THIS machine, as a process group with
// its own HOME, and reads the metadata server's paths (`instance/attributes/*`,
// `agent-worker-number`, `instance/network-interfaces/0/ip`, always
// 127.0.0.1) from this server at `$FLUSTER_METADATA_URL`. Deleting or
// preempting kills those processes.
//
// What it leaves out: real auth (any bearer token is accepted), projects,
// quotas and capacity (faults are set by the test), machine images and disks
// (the "VM" shares this machine's disk and software), networking (every host
// is 127.0.0.1), paging (one page), instance stop/start, TPU queued
// resources, and every field the platform does not read.
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, mkdirSync, openSync, readFileSync, readdirSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { tpuTopology } from "../../src/core/tpu.js";

/** The access tokens the fake's token exchange (`/sts/v1/token`) gives start with this, followed by the subject token. */
export const STS_TOKEN_PREFIX = "fake-sts-";

/** Options of {@link GcpFake}. */
export interface GcpFakeOptions {
  /** Each fake VM host gets a HOME directory under it, with its startup script's output in `startup.log`. */
  dir: string;
  /** How long create and delete operations run before they are done. @default 300 */
  operationDelayMs?: number;
}

/** A failure the next creations meet, as Google reports it. */
export type GcpFakeFault = "quota" | "stockout";

interface FakeInstance {
  zone: string;
  body: Record<string, unknown> & { name: string; status: string; labels?: Record<string, string>; metadata?: { items?: Array<{ key: string; value: string }> } };
}

interface FakeNode {
  zone: string;
  body: Record<string, unknown> & { name: string; state: string; acceleratorType: string; labels?: Record<string, string>; metadata?: Record<string, string>; networkEndpoints?: unknown[] };
}

/** A request the fake answered, for tests to inspect. */
export interface GcpFakeRequest {
  method: string;
  path: string;
  authorization: string | undefined;
}

export class GcpFake {
  /** Base URL of the server (`http://127.0.0.1:<port>`). */
  readonly url: string;
  /** Give as `platforms.gcp.computeEndpoint`. */
  readonly computeEndpoint: string;
  /** Give as `platforms.gcp.tpuEndpoint`. */
  readonly tpuEndpoint: string;
  /** Every API request, in order. */
  readonly requests: GcpFakeRequest[] = [];
  /** Set: creations fail with it (in their operation) until it is cleared. */
  fault: GcpFakeFault | undefined;
  /** Extra time a create operation takes (slow creation). @default 0 */
  slowCreationMs = 0;
  /** How long create and delete operations run. */
  operationDelayMs: number;

  private readonly server: Server;
  private readonly dir: string;
  private readonly instances = new Map<string, FakeInstance>();
  private readonly nodes = new Map<string, FakeNode>();
  private readonly operations = new Map<string, Record<string, unknown>>();
  private readonly processes = new Map<string, ChildProcess[]>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private nextId = 1;

  private constructor(server: Server, options: GcpFakeOptions) {
    this.server = server;
    this.dir = options.dir;
    this.operationDelayMs = options.operationDelayMs ?? 300;
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    this.computeEndpoint = `${this.url}/compute/v1`;
    this.tpuEndpoint = `${this.url}/tpu/v2`;
    server.on("request", (req, res) => {
      this.handle(req, res).catch((err: unknown) => send(res, 500, { error: { code: 500, message: String(err), status: "INTERNAL" } }));
    });
  }

  /** Starts the fake on a free loopback port. */
  static async start(options: GcpFakeOptions): Promise<GcpFake> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", resolve);
    });
    return new GcpFake(server, options);
  }

  /** An instance's resource as the API shows it, or undefined. */
  instance(name: string): Record<string, unknown> | undefined {
    return [...this.instances.values()].find((i) => i.body.name === name)?.body;
  }

  /** A TPU node's resource as the API shows it, or undefined. */
  node(id: string): Record<string, unknown> | undefined {
    return this.nodes.get(id)?.body;
  }

  /** The processes a VM's startup script(s) run, host by host (pids of their bash). */
  hostPids(name: string): number[] {
    return (this.processes.get(name) ?? []).map((child) => child.pid ?? -1);
  }

  /**
   * Takes a VM back as Compute Engine or Cloud TPU does: its processes die
   * at once and the instance becomes TERMINATED (the node PREEMPTED), or,
   * with `deleted` (a spot VM whose termination action is DELETE), it is gone.
   */
  preempt(name: string, options: { deleted?: boolean } = {}): void {
    this.killHosts(name, "SIGKILL");
    for (const [key, instance] of this.instances) {
      if (instance.body.name !== name) continue;
      if (options.deleted) this.instances.delete(key);
      else instance.body.status = "TERMINATED";
    }
    const node = this.nodes.get(name);
    if (node && options.deleted) this.nodes.delete(name);
    else if (node) node.body.state = "PREEMPTED";
  }

  /** Stops the server and every process a fake VM runs. */
  async close(): Promise<void> {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    for (const name of [...this.processes.keys()]) this.killHosts(name, "SIGKILL");
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // ------------------------------------------------------------------ routing

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", this.url);
    const path = url.pathname;
    if (path.startsWith("/metadata/")) return this.metadata(req, res, path);
    if (path === "/sts/v1/token" && req.method === "POST") return this.exchangeToken(req, res);
    const authorization = req.headers.authorization;
    this.requests.push({ method: req.method ?? "", path: `${path}${url.search}`, authorization });
    if (!authorization?.startsWith("Bearer ") || authorization.length <= "Bearer ".length) {
      return send(res, 401, { error: { code: 401, message: "Request is missing required authentication credential.", status: "UNAUTHENTICATED", errors: [{ reason: "required", domain: "global", message: "Login Required." }] } });
    }
    const body = req.method === "POST" ? (JSON.parse((await readBody(req)) || "{}") as Record<string, unknown>) : {};
    let m: RegExpExecArray | null;
    if ((m = /^\/compute\/v1\/projects\/([^/]+)\/zones\/([^/]+)\/instances$/.exec(path))) {
      if (req.method === "POST") return this.insertInstance(res, m[1] as string, m[2] as string, body);
      if (req.method === "GET") {
        const items = this.filtered(url.searchParams.get("filter"), res, m[2]);
        return items ? send(res, 200, { kind: "compute#instanceList", items }) : undefined;
      }
    }
    if ((m = /^\/compute\/v1\/projects\/([^/]+)\/aggregated\/instances$/.exec(path)) && req.method === "GET") {
      const found = this.filtered(url.searchParams.get("filter"), res);
      if (!found) return;
      const items: Record<string, { instances: unknown[] }> = {};
      for (const instance of found) (items[`zones/${lastPart(String(instance.zone))}`] ??= { instances: [] }).instances.push(instance);
      return send(res, 200, { kind: "compute#instanceAggregatedList", items });
    }
    if ((m = /^\/compute\/v1\/projects\/([^/]+)\/zones\/([^/]+)\/instances\/([^/]+)$/.exec(path))) {
      const key = `${m[2]}/${m[3]}`;
      const instance = this.instances.get(key);
      if (!instance) return computeError(res, 404, "notFound", `The resource 'projects/${m[1]}/zones/${m[2]}/instances/${m[3]}' was not found`);
      if (req.method === "GET") return send(res, 200, instance.body);
      if (req.method === "DELETE") return this.deleteInstance(res, m[1] as string, key, instance);
    }
    if ((m = /^\/compute\/v1\/projects\/([^/]+)\/zones\/([^/]+)\/operations\/([^/]+)$/.exec(path)) && req.method === "GET") {
      const op = this.operations.get(`compute/${m[3]}`);
      return op ? send(res, 200, op) : computeError(res, 404, "notFound", `The resource 'projects/${m[1]}/zones/${m[2]}/operations/${m[3]}' was not found`);
    }
    if ((m = /^\/tpu\/v2\/projects\/([^/]+)\/locations\/([^/]+)\/nodes$/.exec(path))) {
      if (req.method === "POST") return this.createNode(res, m[1] as string, m[2] as string, url.searchParams.get("nodeId"), body);
      if (req.method === "GET") {
        const nodes = [...this.nodes.values()].filter((n) => n.zone === m?.[2]).map((n) => n.body);
        return send(res, 200, nodes.length > 0 ? { nodes } : {});
      }
    }
    if ((m = /^\/tpu\/v2\/projects\/([^/]+)\/locations\/([^/]+)\/nodes\/([^/]+)$/.exec(path))) {
      const node = this.nodes.get(m[3] as string);
      if (!node || node.zone !== m[2]) return rpcError(res, 404, "NOT_FOUND", `Resource 'projects/${m[1]}/locations/${m[2]}/nodes/${m[3]}' was not found`);
      if (req.method === "GET") return send(res, 200, node.body);
      if (req.method === "DELETE") return this.deleteNode(res, m[1] as string, m[3] as string, node);
    }
    if ((m = /^\/tpu\/v2\/(projects\/[^/]+\/locations\/[^/]+\/operations\/[^/]+)$/.exec(path)) && req.method === "GET") {
      const op = this.operations.get(`tpu/${m[1]}`);
      return op ? send(res, 200, op) : rpcError(res, 404, "NOT_FOUND", `Operation ${m[1]} not found`);
    }
    return rpcError(res, 404, "NOT_FOUND", `the gcp fake does not serve ${req.method} ${path}`);
  }

  // ------------------------------------------------------------------ Compute Engine

  private insertInstance(res: ServerResponse, project: string, zone: string, body: Record<string, unknown>): void {
    const name = String(body.name ?? "");
    if (!/^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/.test(name)) return computeError(res, 400, "invalid", `Invalid value for field 'resource.name': '${name}'. Must be a match of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'`);
    const machineType = String(body.machineType ?? "");
    const type = lastPart(machineType);
    if (!machineType.startsWith(`zones/${zone}/machineTypes/`) || !/^(custom-\d+-\d+|(e2|n1|n2|n2d|c2|c3|a2|a3|g2)-[a-z]+-\d+g?)$/.test(type)) {
      return computeError(res, 400, "invalid", `Invalid value for field 'resource.machineType': '${machineType}'. Machine type with name '${type}' does not exist in zone '${zone}'.`);
    }
    const key = `${zone}/${name}`;
    if (this.instances.has(key)) return computeError(res, 409, "alreadyExists", `The resource 'projects/${project}/zones/${zone}/instances/${name}' already exists`);
    const fault = this.fault;
    const op = this.computeOperation(project, zone, "insert", name);
    if (!fault) {
      const zoneUrl = `${this.computeEndpoint}/projects/${project}/zones/${zone}`;
      this.instances.set(key, {
        zone,
        body: {
          ...body,
          kind: "compute#instance",
          id: String(this.nextId++),
          name,
          zone: zoneUrl,
          machineType: `${zoneUrl}/machineTypes/${type}`,
          status: "PROVISIONING",
          networkInterfaces: [{ name: "nic0", networkIP: "127.0.0.1" }],
          selfLink: `${zoneUrl}/instances/${name}`,
          creationTimestamp: new Date().toISOString(),
        } as FakeInstance["body"],
      });
    }
    this.later(this.operationDelayMs + this.slowCreationMs, () => {
      if (fault === "quota") op.error = { errors: [{ code: "QUOTA_EXCEEDED", message: `Quota 'CPUS' exceeded.  Limit: 8.0 in region ${zone.replace(/-[a-z]$/, "")}.` }] };
      else if (fault === "stockout") op.error = { errors: [{ code: "ZONE_RESOURCE_POOL_EXHAUSTED", message: `The zone 'projects/${project}/zones/${zone}' does not have enough resources available to fulfill the request.  Try a different zone, or try again later.` }] };
      else {
        const instance = this.instances.get(key);
        if (instance?.body.status === "PROVISIONING") {
          instance.body.status = "RUNNING";
          this.boot(name, "instance", 1, metadataItems(instance.body.metadata?.items));
        }
      }
      finishCompute(op);
    });
    send(res, 200, op);
  }

  private deleteInstance(res: ServerResponse, project: string, key: string, instance: FakeInstance): void {
    const name = instance.body.name;
    const op = this.computeOperation(project, instance.zone, "delete", name);
    instance.body.status = "STOPPING";
    this.killHosts(name, "SIGTERM");
    this.later(this.operationDelayMs, () => {
      this.killHosts(name, "SIGKILL");
      if (this.instances.get(key) === instance) this.instances.delete(key);
      finishCompute(op);
    });
    send(res, 200, op);
  }

  private computeOperation(project: string, zone: string, type: string, target: string): Record<string, unknown> {
    const name = `operation-${Date.now()}-${this.nextId++}`;
    const op: Record<string, unknown> = {
      kind: "compute#operation",
      id: String(this.nextId++),
      name,
      zone: `${this.computeEndpoint}/projects/${project}/zones/${zone}`,
      operationType: type,
      targetLink: `${this.computeEndpoint}/projects/${project}/zones/${zone}/instances/${target}`,
      status: "RUNNING",
      progress: 0,
      insertTime: new Date().toISOString(),
      selfLink: `${this.computeEndpoint}/projects/${project}/zones/${zone}/operations/${name}`,
    };
    this.operations.set(`compute/${name}`, op);
    return op;
  }

  /** Instances the list filter matches (`labels.k = "v"`, `name = "v"`, joined by AND or spaces); undefined after answering 400. */
  private filtered(filter: string | null, res: ServerResponse, zone?: string): Array<FakeInstance["body"]> | undefined {
    const terms: Array<[string, string]> = [];
    if (filter) {
      const rest = filter.replace(/\(?\s*(labels\.[a-z0-9_-]+|name)\s*=\s*"?([^"\s)]*)"?\s*\)?/g, (_all, field: string, value: string) => {
        terms.push([field, value]);
        return "";
      });
      if (rest.replace(/AND/g, "").trim() !== "") {
        computeError(res, 400, "invalid", `Invalid value for field 'filter': '${filter}'. Invalid list filter expression.`);
        return undefined;
      }
    }
    return [...this.instances.values()]
      .filter((i) => zone === undefined || i.zone === zone)
      .map((i) => i.body)
      .filter((body) => terms.every(([field, value]) => (field === "name" ? body.name === value : body.labels?.[field.slice("labels.".length)] === value)));
  }

  // ------------------------------------------------------------------ Cloud TPU

  private createNode(res: ServerResponse, project: string, zone: string, nodeId: string | null, body: Record<string, unknown>): void {
    if (!nodeId || !/^[a-z]([-a-z0-9]*[a-z0-9])?$/.test(nodeId)) return rpcError(res, 400, "INVALID_ARGUMENT", `Invalid node id: ${JSON.stringify(nodeId)}`);
    const acceleratorType = String(body.acceleratorType ?? "");
    let hostCount: number;
    try {
      hostCount = tpuTopology(acceleratorType).hostCount;
    } catch {
      return rpcError(res, 400, "INVALID_ARGUMENT", `Accelerator type "${acceleratorType}" is not available in zone "${zone}".`);
    }
    if (this.nodes.has(nodeId)) return rpcError(res, 409, "ALREADY_EXISTS", `Resource 'projects/${project}/locations/${zone}/nodes/${nodeId}' already exists`);
    const nodeName = `projects/${project}/locations/${zone}/nodes/${nodeId}`;
    const fault = this.fault;
    const node: FakeNode = { zone, body: { ...body, name: nodeName, acceleratorType, state: "CREATING", health: "HEALTHY", createTime: new Date().toISOString() } as FakeNode["body"] };
    if (!fault) this.nodes.set(nodeId, node);
    const op = this.tpuOperation(project, zone, "create", nodeName);
    this.later(this.operationDelayMs + this.slowCreationMs, () => {
      if (fault === "quota") op.error = { code: 8, message: `Quota limit 'TPUV5sLitepodPerProjectPerZoneForTPUAPI' has been exceeded. Limit: 8 in zone ${zone}.` };
      else if (fault === "stockout") op.error = { code: 8, message: `There is no more capacity in the zone "${zone}"; you can try in another zone where Cloud TPU Nodes are offered (see https://cloud.google.com/tpu/docs/regions) [EID: 0x1]` };
      else if (this.nodes.get(nodeId) === node && node.body.state === "CREATING") {
        node.body.state = "READY";
        node.body.networkEndpoints = Array.from({ length: hostCount }, () => ({ ipAddress: "127.0.0.1", port: 8470 }));
        op.response = { "@type": "type.googleapis.com/google.cloud.tpu.v2.Node", ...node.body };
        this.boot(nodeId, "node", hostCount, node.body.metadata ?? {});
      }
      op.done = true;
    });
    send(res, 200, op);
  }

  private deleteNode(res: ServerResponse, project: string, nodeId: string, node: FakeNode): void {
    const op = this.tpuOperation(project, node.zone, "delete", node.body.name);
    node.body.state = "DELETING";
    this.killHosts(nodeId, "SIGTERM");
    this.later(this.operationDelayMs, () => {
      this.killHosts(nodeId, "SIGKILL");
      if (this.nodes.get(nodeId) === node) this.nodes.delete(nodeId);
      op.done = true;
      op.response = { "@type": "type.googleapis.com/google.protobuf.Empty" };
    });
    send(res, 200, op);
  }

  private tpuOperation(project: string, zone: string, verb: string, target: string): Record<string, unknown> {
    const name = `projects/${project}/locations/${zone}/operations/operation-${Date.now()}-${this.nextId++}`;
    const op: Record<string, unknown> = {
      name,
      metadata: { "@type": "type.googleapis.com/google.cloud.tpu.v2.OperationMetadata", createTime: new Date().toISOString(), target, verb, apiVersion: "v2" },
      done: false,
    };
    this.operations.set(`tpu/${name}`, op);
    return op;
  }

  // ------------------------------------------------------------------ the "VMs"

  /** Runs the startup script once per host, each in a process group of its own with a fresh HOME. */
  private boot(name: string, kind: "instance" | "node", hostCount: number, metadata: Record<string, string>): void {
    const script = metadata["startup-script"];
    if (script === undefined) return;
    const children: ChildProcess[] = [];
    for (let host = 0; host < hostCount; host++) {
      const home = join(this.dir, `${kind}-${name}-${host}`);
      mkdirSync(home, { recursive: true });
      const log = openSync(join(home, "startup.log"), "a");
      try {
        const child = spawn("bash", ["-c", script], {
          cwd: home,
          detached: true,
          stdio: ["ignore", log, log],
          // A fresh machine: none of the test process's variables.
          env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home, LANG: "C.UTF-8", FLUSTER_METADATA_URL: `${this.url}/metadata/${kind}/${name}/${host}/computeMetadata/v1` },
        });
        child.on("error", () => {});
        children.push(child);
      } finally {
        closeSync(log);
      }
    }
    this.processes.set(name, children);
  }

  /**
   * Google's Security Token Service: trades any subject token (an
   * `external_account` credentials file's) for an access token, as
   * Workload Identity Federation does.
   */
  private async exchangeToken(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const form = new URLSearchParams(await readBody(req));
    this.requests.push({ method: "POST", path: "/sts/v1/token", authorization: undefined });
    if (form.get("grant_type") !== "urn:ietf:params:oauth:grant-type:token-exchange" || !form.get("subject_token")) {
      return send(res, 400, { error: "invalid_request", error_description: "expected a token exchange with a subject_token" });
    }
    send(res, 200, { access_token: `${STS_TOKEN_PREFIX}${form.get("subject_token")}`, issued_token_type: "urn:ietf:params:oauth:token-type:access_token", token_type: "Bearer", expires_in: 3600 });
  }

  /** Answers the metadata server's paths for one host. */
  private metadata(req: IncomingMessage, res: ServerResponse, path: string): void {
    const m = /^\/metadata\/(instance|node)\/([^/]+)\/(\d+)\/computeMetadata\/v1\/(.*)$/.exec(path);
    if (req.headers["metadata-flavor"] !== "Google") return sendText(res, 403, "Missing Metadata-Flavor:Google header.");
    if (!m) return sendText(res, 404, "not found");
    const [, kind, name, host, item] = m as unknown as [string, string, string, string, string];
    let metadata: Record<string, string> | undefined;
    if (kind === "instance") {
      const instance = [...this.instances.values()].find((i) => i.body.name === name);
      metadata = instance ? metadataItems(instance.body.metadata?.items) : undefined;
    } else {
      const node = this.nodes.get(name);
      metadata = node ? { ...(node.body.metadata ?? {}), "agent-worker-number": host } : undefined;
    }
    if (!metadata) return sendText(res, 404, "not found");
    if (item === "instance/network-interfaces/0/ip") return sendText(res, 200, "127.0.0.1");
    const attribute = /^instance\/attributes\/(.+)$/.exec(item)?.[1];
    const value = attribute !== undefined ? metadata[attribute] : undefined;
    return value === undefined ? sendText(res, 404, "not found") : sendText(res, 200, value);
  }

  /** Kills a VM's processes: every host's process group and every process descended from it (a task in a group of its own too). */
  private killHosts(name: string, signal: NodeJS.Signals): void {
    const children = this.processes.get(name) ?? [];
    const roots = children.map((c) => c.pid).filter((pid): pid is number => pid !== undefined);
    for (const pid of [...roots, ...descendantsOf(roots)]) {
      for (const target of [-pid, pid]) {
        try {
          process.kill(target, signal);
        } catch {
          // not a group leader, or gone
        }
      }
    }
    if (signal === "SIGKILL") this.processes.delete(name);
  }

  private later(ms: number, run: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      run();
    }, ms);
    this.timers.add(timer);
  }
}

function finishCompute(op: Record<string, unknown>): void {
  op.status = "DONE";
  op.progress = 100;
  op.endTime = new Date().toISOString();
}

function metadataItems(items: Array<{ key: string; value: string }> | undefined): Record<string, string> {
  return Object.fromEntries((items ?? []).map((item) => [item.key, item.value]));
}

/** Every process below `roots` in the process tree, from /proc. */
function descendantsOf(roots: readonly number[]): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(entry));
      children.set(ppid, list);
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const queue = [...roots];
  while (queue.length > 0) {
    for (const child of children.get(queue.shift() as number) ?? []) {
      out.push(child);
      queue.push(child);
    }
  }
  return out;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json; charset=UTF-8" });
  res.end(JSON.stringify(body));
}

function sendText(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { "content-type": "text/plain", "metadata-flavor": "Google" });
  res.end(text);
}

/** Compute Engine's error format. */
function computeError(res: ServerResponse, status: number, reason: string, message: string): void {
  send(res, status, { error: { code: status, message, errors: [{ message, domain: "global", reason }] } });
}

/** The google.rpc error format of the TPU API. */
function rpcError(res: ServerResponse, status: number, code: string, message: string): void {
  send(res, status, { error: { code: status, message, status: code } });
}

function lastPart(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}
