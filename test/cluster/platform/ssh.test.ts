// The ssh platform for real: Debian's sshd runs in two hosts of the
// multi-host test bed, and the platform installs fluster there over ssh,
// starts a worker on each host, finds them again from a new instance (a
// restarted controller), refuses a third VM, and stops them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { ScaleGroup } from "../../../src/cluster/autoscaler/types.js";
import { parseClusterConfig } from "../../../src/cluster/platform/config.js";
import { createPlatform } from "../../../src/cluster/platform/registry.js";
import { checkSshSettings } from "../../../src/cluster/platform/ssh/settings.js";
import { AllocationError, workerLabels, type Platform, type PlatformContext, type VmRequest } from "../../../src/cluster/platform/types.js";
import { Entrypoint } from "../../../src/core/entrypoint.js";
import { createLogger } from "../../../src/core/logger.js";
import { collectLogs } from "../../helpers/local-cluster.js";
import { useBed, type BedHost, type TestBed } from "../../multihost/bed.js";

const SSHD = "/usr/sbin/sshd";

/** Keys made here: the hosts' key, and the client key root logs in with. */
function makeKeys(dir: string): { hostKey: string; clientKey: string; authorizedKeys: string } {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const hostKey = join(dir, "host_ed25519");
  const clientKey = join(dir, "client_ed25519");
  for (const file of [hostKey, clientKey]) execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "fluster-test", "-f", file], { stdio: "ignore" });
  const authorizedKeys = join(dir, "authorized_keys");
  writeFileSync(authorizedKeys, readFileSync(`${clientKey}.pub`), { mode: 0o600 });
  return { hostKey, clientKey, authorizedKeys };
}

/** Starts sshd in `host`, listening on its address; resolves once it accepts connections. */
async function startSshd(bed: TestBed, host: BedHost, keys: { hostKey: string; authorizedKeys: string }): Promise<void> {
  const config = join(bed.dir, `sshd-${host.name}.conf`);
  writeFileSync(
    config,
    [
      `ListenAddress ${host.address}:22`,
      `HostKey ${keys.hostKey}`,
      `AuthorizedKeysFile ${keys.authorizedKeys}`,
      "PermitRootLogin prohibit-password",
      "PubkeyAuthentication yes",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "UsePAM no",
      // The keys live in the bed's folder under /tmp, which sshd's StrictModes would refuse.
      "StrictModes no",
      "PidFile none",
      "LogLevel ERROR",
      "",
    ].join("\n"),
  );
  const sshd = bed.spawn(host, [SSHD, "-D", "-e", "-f", config]);
  let stderr = "";
  sshd.stderr?.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (sshd.exitCode !== null) throw new Error(`sshd in ${host.name} exited (${sshd.exitCode}): ${stderr}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: host.address, port: 22 });
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`sshd in ${host.name} did not listen within 10 s: ${stderr}`);
    await sleep(100);
  }
}

/** Whether `pid` is still the worker of `vmId` (not gone, not a zombie). */
function workerRuns(pid: number, vmId: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").includes(`--worker-id ${vmId} `);
  } catch {
    return false;
  }
}

interface ListedWorker {
  workerId: string;
  address: string;
  health: string;
  attributes: Record<string, string>;
}

async function listWorkers(bed: TestBed): Promise<ListedWorker[]> {
  const result = await bed.fluster(["worker", "list", "--json"]);
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout) as ListedWorker[];
}

// 73 s in a full CI run on a slow 2-core machine (two hosts, sshd, a bundle installed on each): the limit leaves room for a loaded one.
test("the ssh platform starts, finds and stops workers on two hosts running sshd", { timeout: 240_000 }, async (t) => {
  if (!existsSync(SSHD)) throw new Error(`${SSHD} is missing: apt-get install -y openssh-server (.ci/run installs it)`);
  const bed = await useBed(t, { hosts: 2 });
  const keys = makeKeys(join(bed.dir, "keys"));
  mkdirSync("/run/sshd", { recursive: true, mode: 0o755 }); // sshd's privilege separation folder
  await Promise.all(bed.hosts.map((host) => startSshd(bed, host, keys)));
  const controller = await bed.startController({ workerLostGraceSeconds: 2, reconcileIntervalSeconds: 0.5 });

  // Settings as a cluster config file gives them; the hosts share this machine's disk, so each gets the bed's folders.
  const remote = join(bed.dir, "remote");
  const config = parseClusterConfig(
    JSON.stringify({
      platforms: {
        ssh: {
          hosts: bed.hosts.map((host) => ({ host: host.address, user: "root" })),
          identityFile: keys.clientKey,
          node: process.execPath,
          installDir: join(remote, "install"),
          workDir: join(remote, "vms"),
        },
      },
    }),
  );
  const settings = config.platforms.ssh ?? assert.fail("no ssh settings");
  const context: PlatformContext = { clusterName: "ssh-test", stateDir: join(bed.dir, "platform-ssh"), logger: createLogger({ component: "controller", level: "error" }) };
  const platforms: Platform[] = [];
  const newPlatform = async () => {
    const platform = await createPlatform("ssh", settings, context);
    platforms.push(platform);
    return platform;
  };
  t.after(() => Promise.all(platforms.map((p) => p.close())));
  const platform = await newPlatform();

  const group: ScaleGroup = {
    name: "ssh-hosts",
    platform: "ssh",
    shape: { resources: { cpu: 1, memory: 512 * 1024 ** 2, disk: 0, deviceType: "cpu", deviceVariant: "", deviceCount: 0 }, preemptible: false, labels: { pool: "ssh" } },
    minVms: 0,
    maxVms: 3,
    idleTimeoutSeconds: 300,
  };
  const request = (vmId: string): VmRequest => ({ vmId, group, worker: { controllerUrl: controller.url, token: controller.token, labels: workerLabels(vmId, group) } });

  const vmIds = ["ssh-a", "ssh-b"];
  // One after the other: the second finds the package the first installed on the shared disk, and copies nothing.
  const allocated = [];
  for (const vmId of vmIds) allocated.push(await platform.allocate(request(vmId)));
  const hostOf = new Map(allocated.map((vm) => [vm.vmId, bed.hosts.find((h) => h.address === vm.hosts[0]?.address) ?? assert.fail(`${vm.vmId} is on ${vm.hosts[0]?.address}`)]));
  assert.deepEqual(new Set([...hostOf.values()].map((h) => h.name)), new Set(["h1", "h2"]), "one VM per host");
  assert.deepEqual(allocated.map((vm) => vm.hosts[0]?.workerId), vmIds);
  const ready = await Promise.all(vmIds.map((vmId) => platform.waitReady(vmId, 30_000)));
  assert.deepEqual(ready.map((vm) => vm.state), ["running", "running"]);
  assert.deepEqual(await platform.allocate(request("ssh-a")).then((vm) => vm.state), "running", "allocating an existing VM again returns it");

  // Each host's key was accepted on first use into the platform's own known_hosts.
  const knownHosts = join(context.stateDir, "known_hosts");
  for (const host of bed.hosts) {
    // `ssh-keygen -F` finds a host in a known_hosts file, hashed names too (Debian's ssh hashes them).
    const found = execFileSync("ssh-keygen", ["-F", host.address, "-f", knownHosts], { encoding: "utf8" });
    assert.ok(found.includes(readFileSync(`${keys.hostKey}.pub`, "utf8").split(" ")[1] as string), `${host.name}'s key is known:\n${found}`);
  }

  // Installed once (the hosts share this disk): one complete folder, no partial ones.
  const installs = readdirSync(join(remote, "install"));
  assert.equal(installs.length, 1, `install folders: ${installs.join(", ")}`);
  assert.ok(existsSync(join(remote, "install", installs[0] as string, ".fluster-installed")));

  // The workers registered with their VM ids, their host's address and the shape's labels.
  const workers = (await listWorkers(bed)).filter((w) => vmIds.includes(w.workerId)).sort((a, b) => a.workerId.localeCompare(b.workerId));
  assert.deepEqual(
    workers.map((w) => [w.workerId, w.health, w.attributes["fluster-vm"], w.attributes.pool]),
    vmIds.map((vmId) => [vmId, "healthy", vmId, "ssh"]),
  );
  for (const w of workers) assert.ok(w.address.startsWith(`http://${hostOf.get(w.workerId)?.address}:`), `${w.workerId} advertises ${w.address}`);

  // vm.json on the host names the worker's pid; the token is in no argv.
  const pids = new Map(
    vmIds.map((vmId) => {
      const file = JSON.parse(readFileSync(join(remote, "vms", "ssh-test", vmId, "vm.json"), "utf8")) as { vmId: string; group: string; pid: number };
      assert.equal(file.vmId, vmId);
      assert.equal(file.group, "ssh-hosts");
      assert.ok(workerRuns(file.pid, vmId), `${vmId}'s worker is pid ${file.pid}`);
      assert.ok(!readFileSync(`/proc/${file.pid}/cmdline`, "utf8").includes(controller.token), "the token is not in the worker's argv");
      return [vmId, file.pid] as const;
    }),
  );

  // A command job pinned to each VM runs on its host.
  const client = bed.client();
  // A workspace without npm dependencies: nothing to install on the hosts.
  const workspace = join(bed.dir, "job");
  mkdirSync(workspace);
  writeFileSync(join(workspace, "README"), "a command job\n");
  const jobIds = await Promise.all(
    vmIds.map((vmId) =>
      client.launch({
        name: `on-${vmId}`,
        resources: { cpu: 0.1, memory: "32m" },
        entrypoint: Entrypoint.fromCommand(["sh", "-c", 'echo "host=$(hostname) worker=$FLUSTER_WORKER_ID"']),
        environment: { workspace },
        constraints: [{ key: "fluster-vm", op: "eq", value: vmId }],
      }),
    ),
  );
  const infos = await client.wait(jobIds, { timeoutSeconds: 30 });
  for (const [i, info] of infos.entries()) {
    const vmId = vmIds[i] as string;
    assert.equal(info.status, "succeeded", `${info.name}: ${info.errorMessage ?? ""}`);
    assert.equal(info.tasks[0]?.workerId, vmId);
    assert.match(await collectLogs(client, info.jobId), new RegExp(`^host=${hostOf.get(vmId)?.name} worker=${vmId}$`, "m"));
  }

  // A new instance (a restarted controller) knows nothing but what the hosts tell it.
  const restarted = await newPlatform();
  const listed = (await restarted.listVms()).sort((a, b) => a.vmId.localeCompare(b.vmId));
  assert.deepEqual(
    listed.map((vm) => [vm.vmId, vm.group, vm.state, vm.hosts[0]?.workerId, vm.hosts[0]?.address]),
    vmIds.map((vmId) => [vmId, "ssh-hosts", "running", vmId, hostOf.get(vmId)?.address]),
  );
  assert.equal((await restarted.getStatus("ssh-b"))?.state, "running");

  // Both hosts are taken: a third VM is refused, saying so.
  const refused = await restarted.allocate(request("ssh-c")).then(
    () => assert.fail("a third VM was allocated on two hosts"),
    (err: unknown) => err,
  );
  assert.ok(refused instanceof AllocationError, String(refused));
  assert.equal(refused.failure, "stockout");
  assert.match(refused.message, /^all 2 ssh hosts are in use \(.*runs ssh-[ab].*runs ssh-[ab]\)$/);

  // Released from the new instance: the workers stop on their hosts and the controller loses them.
  await Promise.all(vmIds.map((vmId) => restarted.release(vmId)));
  for (const vmId of vmIds) {
    assert.ok(!workerRuns(pids.get(vmId) as number, vmId), `${vmId}'s worker process is gone`);
    assert.ok(!existsSync(join(remote, "vms", "ssh-test", vmId)), `${vmId}'s folder is removed`);
  }
  assert.deepEqual(await restarted.listVms(), []);
  assert.deepEqual(await platform.listVms(), [], "the first instance sees them gone too");
  assert.equal(await platform.getStatus("ssh-a"), undefined);
  await restarted.release("never-made"); // an unknown VM: resolves
  const deadline = Date.now() + 15_000;
  for (;;) {
    const left = (await listWorkers(bed)).filter((w) => vmIds.includes(w.workerId) && w.health === "healthy");
    if (left.length === 0) break;
    if (Date.now() > deadline) assert.fail(`the controller still has healthy workers ${left.map((w) => w.workerId).join(", ")}`);
    await sleep(250);
  }

  // Hosts that do not let it in say so, each by name with ssh's own words.
  const strangerKey = join(bed.dir, "keys", "stranger_ed25519");
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", strangerKey], { stdio: "ignore" });
  const locked = checkSshSettings(
    { hosts: [{ host: bed.hosts[0]?.address, user: "root", identityFile: strangerKey }, { host: bed.bridgeAddress, port: 2 }], node: process.execPath, installDir: join(remote, "install"), workDir: join(remote, "vms") },
    "platforms.ssh",
  );
  const lockedOut = await createPlatform("ssh", locked, { ...context, stateDir: join(bed.dir, "platform-locked") });
  platforms.push(lockedOut);
  const denied = await lockedOut.allocate(request("ssh-d")).then(
    () => assert.fail("allocated on hosts that refuse the key"),
    (err: unknown) => err,
  );
  assert.ok(denied instanceof AllocationError, String(denied));
  assert.equal(denied.failure, "error");
  assert.match(denied.message, /^none of the 2 ssh hosts answered \(/);
  assert.match(denied.message, new RegExp(`root@${bed.hosts[0]?.address.replace(/\./g, "\\.")} unreachable: .*Permission denied \\(publickey\\)`));
  assert.match(denied.message, new RegExp(`${bed.bridgeAddress.replace(/\./g, "\\.")}:2 unreachable: .*port 2: Connection refused`));

  // The hosts are free again.
  const again = await restarted.allocate(request("ssh-c"));
  assert.equal((await restarted.waitReady("ssh-c", 30_000)).state, "running");
  await restarted.release(again.vmId);
});
