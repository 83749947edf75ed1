// The test bed itself, with today's Fluster on it: three hosts reach the
// controller and cannot see the client's folder; a worker per host registers
// with its own address; a job pinned to each host by a label runs there.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { Entrypoint } from "../../src/core/entrypoint.js";
import { collectLogs } from "../helpers/local-cluster.js";
import { HOST_INTERFACE, TestBed, type BedWorker } from "./bed.js";

describe("a bed of three hosts", { timeout: 60_000 }, () => {
  let bed: TestBed;
  let workers: BedWorker[] = [];
  before(async () => {
    bed = await TestBed.create({ hosts: 3 });
    await bed.startController();
    workers = await bed.startWorkers();
  });
  after(() => bed?.destroy());

  test("each host has its own name and address, reaches the controller and cannot see the client's folder", async () => {
    assert.ok(existsSync(join(bed.clientDir, "CLIENT_MARKER")), "the client sees its own folder");
    // Any HTTP answer proves the route; the controller answers `/` with its dashboard's page.
    const probe = [
      `const os = require("node:os"), fs = require("node:fs");`,
      `const addrs = (os.networkInterfaces()[${JSON.stringify(HOST_INTERFACE)}] ?? []).filter((a) => a.family === "IPv4").map((a) => a.address);`,
      `fetch(${JSON.stringify(`${bed.controller.url}/`)}).then((r) => r.status, (e) => String(e.cause ?? e)).then((controller) =>`,
      `  console.log(JSON.stringify({ hostname: os.hostname(), addrs, controller, client: fs.readdirSync(${JSON.stringify(bed.clientDir)}) })));`,
    ].join("\n");
    const seen = await Promise.all(bed.hosts.map((host) => bed.exec(host, [process.execPath, "-e", probe], { timeoutMs: 15_000 })));
    seen.forEach((result, i) => {
      const host = bed.host(i);
      assert.equal(result.code, 0, `probe in ${host.name}: ${result.stderr}`);
      const view = JSON.parse(result.stdout) as { hostname: string; addrs: string[]; controller: unknown; client: string[] };
      assert.deepEqual(view, { hostname: host.name, addrs: [host.address], controller: 200, client: [] }, `what ${host.name} sees`);
    });
  });

  test("a worker per host registers with the host's address: `fluster worker list --json` shows three healthy ones", async () => {
    const result = await bed.fluster(["worker", "list", "--json"]);
    assert.equal(result.code, 0, result.stderr);
    const listed = (JSON.parse(result.stdout) as { workerId: string; address: string; health: string; attributes: Record<string, string> }[])
      .map((w) => ({ workerId: w.workerId, address: w.address, health: w.health, host: w.attributes.host }))
      .sort((a, b) => String(a.host).localeCompare(String(b.host)));
    assert.deepEqual(
      listed,
      workers.map((w) => ({ workerId: w.workerId, address: w.address, health: "healthy", host: w.host.name })),
    );
    for (const w of workers) {
      assert.match(w.address, /^http:\/\/198\.1[89]\.\d+\.\d+:\d+$/);
      assert.ok(w.address.startsWith(`http://${w.host.address}:`), `${w.workerId} advertises ${w.address}, on ${w.host.name} (${w.host.address})`);
      assert.ok(w.workerId.startsWith(`${w.host.name}-`), `the worker id ${w.workerId} is made of the host's name`);
    }
  });

  test("a command job pinned to each host by its label runs on that host", async () => {
    const client = bed.client();
    const script = `echo "host=$(hostname) worker=$FLUSTER_WORKER_ID"; ip -4 -o addr show dev ${HOST_INTERFACE}`;
    const jobIds = await Promise.all(
      bed.hosts.map((host) =>
        client.launch({
          name: `where-${host.name}`,
          resources: { cpu: 0.1, memory: "32m" },
          entrypoint: Entrypoint.fromCommand(["sh", "-c", script]),
          constraints: [{ key: "host", op: "eq", value: host.name }],
        }),
      ),
    );
    const infos = await client.wait(jobIds, { timeoutSeconds: 30 });
    for (const [i, info] of infos.entries()) {
      const worker = workers[i] as BedWorker;
      assert.equal(info.status, "succeeded", `${info.name}: ${info.errorMessage ?? ""}`);
      assert.equal(info.tasks[0]?.workerId, worker.workerId);
      const logs = await collectLogs(client, info.jobId);
      assert.match(logs, new RegExp(`^host=${worker.host.name} worker=${worker.workerId}$`, "m"));
      assert.ok(logs.includes(`inet ${worker.host.address}/24`), `${info.name} printed its host's address ${worker.host.address}:\n${logs}`);
    }
  });
});
