// The cluster config file: a real YAML file on disk is read into scale groups
// with sizes, devices and defaults resolved, and every mistake is refused
// with the key where it is.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEFAULT_IDLE_TIMEOUT_SECONDS, loadClusterConfig, parseClusterConfig } from "../../../src/cluster/platform/config.js";
import { DEFAULT_COMPUTE_ENDPOINT, DEFAULT_SOURCE_IMAGE, DEFAULT_TPU_ENDPOINT } from "../../../src/cluster/platform/gcp/settings.js";
import { FlusterError, ValidationError } from "../../../src/core/errors.js";

const GiB = 1024 ** 3;

const EXAMPLE = `
# Cheapest first: the autoscaler tries groups in this order.
scaleGroups:
  - name: cpu-small
    platform: local
    shape: { cpu: 4, memory: 16g, disk: 100g, region: us-east1, zone: us-east1-b, labels: { tier: ssd, rack: 7 } }
    maxVms: 4
  - name: h100
    platform: gcp
    shape:
      cpu: 96
      memory: 1Ti
      gpu: { variant: H100, count: 8 }
      preemptible: true
    minVms: 1
    maxVms: 2
    idleTimeoutSeconds: 60
  - name: tpu-v5e
    platform: gcp
    shape: { cpu: 112, memory: 192g, tpu: { variant: v5litepod-16 } }
    maxVms: 8
platforms:
  gcp: { project: my-project, zone: us-central2-b }
`;

/** The error `text` is refused with. */
function refusal(text: string): Error {
  try {
    parseClusterConfig(text, "cluster.yaml");
  } catch (err) {
    return err as Error;
  }
  assert.fail(`accepted:\n${text}`);
}

describe("cluster config file", () => {
  test("a file on disk becomes scale groups: sizes in bytes, devices resolved, defaults filled in", () => {
    const dir = mkdtempSync(join(tmpdir(), "fluster-config-"));
    const path = join(dir, "cluster.yaml");
    writeFileSync(path, EXAMPLE);
    const { scaleGroups } = loadClusterConfig(path);
    assert.deepEqual(
      scaleGroups.map((g) => g.name),
      ["cpu-small", "h100", "tpu-v5e"],
      "in the file's order",
    );
    const [small, h100, tpu] = scaleGroups;
    assert.deepEqual(small, {
      name: "cpu-small",
      platform: "local",
      shape: {
        resources: { cpu: 4, memory: 16 * GiB, disk: 100 * GiB, deviceType: "cpu", deviceVariant: "", deviceCount: 0 },
        preemptible: false,
        region: "us-east1",
        zone: "us-east1-b",
        labels: { tier: "ssd", rack: "7" },
      },
      minVms: 0,
      maxVms: 4,
      idleTimeoutSeconds: DEFAULT_IDLE_TIMEOUT_SECONDS,
    });
    assert.deepEqual(h100?.shape.resources, { cpu: 96, memory: 1024 * GiB, disk: 0, deviceType: "gpu", deviceVariant: "H100", deviceCount: 8 });
    assert.equal(h100?.shape.preemptible, true);
    assert.deepEqual([h100?.minVms, h100?.maxVms, h100?.idleTimeoutSeconds], [1, 2, 60]);
    // One VM is one host of a v5litepod-16 slice: 4 chips.
    assert.deepEqual(tpu?.shape.resources, { cpu: 112, memory: 192 * GiB, disk: 0, deviceType: "tpu", deviceVariant: "v5litepod-16", deviceCount: 4 });
  });

  test("an empty file has no scale groups", () => {
    assert.deepEqual(parseClusterConfig(""), { scaleGroups: [], platforms: {} });
    assert.deepEqual(parseClusterConfig("scaleGroups: []"), { scaleGroups: [], platforms: {} });
  });

  test("each mistake is refused with the key where it is", () => {
    const cases: Array<[string, RegExp]> = [
      ["scaleGroup: []", /^scaleGroup is not a known key \(known: scaleGroups, platforms\)/],
      ["scaleGroups: { a: 1 }", /^scaleGroups must be a list of scale groups/],
      ["scaleGroups:\n  - { name: a, platform: aws, shape: { cpu: 1, memory: 1g }, maxVms: 1 }", /^scaleGroups\[0\]\.platform must be one of local, docker, ssh, gcp, got "aws"/],
      ["scaleGroups:\n  - { name: a, platform: local, shape: { cpu: 1, memory: 1g } }", /^scaleGroups\[0\]\.maxVms is required/],
      ["scaleGroups:\n  - { name: a, platform: local, shape: { cpu: 1, memory: 1g }, minVms: 3, maxVms: 2 }", /^scaleGroups\[0\]\.minVms must not exceed maxVms \(2\), got 3/],
      ["scaleGroups:\n  - { name: a, platform: local, shape: { cpu: 1, memory: lots }, maxVms: 1 }", /^scaleGroups\[0\]\.shape\.memory must be a size such as/],
      ["scaleGroups:\n  - { name: a, platform: local, shape: { cpu: 1, memory: 1g, gpus: 2 }, maxVms: 1 }", /^scaleGroups\[0\]\.shape\.gpus is not a known key/],
      ["scaleGroups:\n  - { name: a, platform: local, shape: { cpu: 1, memory: 1g, tpu: { variant: v5litepod-3 } }, maxVms: 1 }", /^scaleGroups\[0\]\.shape\.tpu\.variant is not a known TPU variant/],
      ["scaleGroups:\n  - { name: a, platform: local, shape: { cpu: 1, memory: 1g, gpu: { variant: auto } }, maxVms: 1 }", /^scaleGroups\[0\]\.shape\.gpu\.variant must name the GPU model/],
      ["scaleGroups:\n  - { name: a, platform: local, shape: { cpu: 1, memory: 1g, labels: { zone: b } }, maxVms: 1 }", /^scaleGroups\[0\]\.shape\.labels\.zone is set by the shape itself/],
      ["scaleGroups:\n  - { name: a, platform: local, shape: { cpu: 1 }, maxVms: 1 }", /^scaleGroups\[0\]\.shape\.memory is required/],
      [
        "scaleGroups:\n  - { name: a, platform: local, shape: { cpu: 1, memory: 1g }, maxVms: 1 }\n  - { name: a, platform: local, shape: { cpu: 1, memory: 1g }, maxVms: 1 }",
        /^scaleGroups\[1\]\.name repeats the name "a" of scaleGroups\[0\]/,
      ],
    ];
    for (const [text, expected] of cases) {
      const err = refusal(text);
      assert.ok(err instanceof ValidationError, `${text}: ${String(err)}`);
      assert.match(err.message, expected);
      assert.match(err.message, /\(in cluster\.yaml\)$/, "names the file");
    }
  });

  test("the gcp section: required project and zone, defaults for the APIs and the image, mistakes named under platforms.gcp", () => {
    const groups = "scaleGroups:\n  - { name: cpu, platform: gcp, shape: { cpu: 2, memory: 4g }, maxVms: 1 }\n";
    const { platforms } = parseClusterConfig(`${groups}platforms:\n  gcp: { project: my-project, zone: us-central1-a }\n`);
    assert.deepEqual(platforms.gcp, {
      project: "my-project",
      zone: "us-central1-a",
      sourceImage: DEFAULT_SOURCE_IMAGE,
      flusterCommand: "fluster",
      machineTypes: {},
      computeEndpoint: DEFAULT_COMPUTE_ENDPOINT,
      tpuEndpoint: DEFAULT_TPU_ENDPOINT,
      pollIntervalSeconds: 2,
    });
    const full = parseClusterConfig(
      `${groups}platforms:
  gcp:
    project: my-project
    zone: us-central2-b
    network: fluster-net
    subnetwork: fluster-subnet
    serviceAccount: workers@my-project.iam.gserviceaccount.com
    sourceImage: projects/my-project/global/images/fluster-worker
    startupScript: "apt-get install -y nodejs"
    flusterCommand: node /opt/fluster/bin/fluster.js
    tpuRuntimeVersion: v2-alpha-tpuv5-lite
    machineTypes: { cpu: n2-standard-2 }
    computeEndpoint: http://127.0.0.1:9/compute/v1/
    tpuEndpoint: http://127.0.0.1:9/tpu/v2
    accessToken: t0ken
    pollIntervalSeconds: 0.1
`,
    ).platforms.gcp as Record<string, unknown>;
    assert.equal(full.computeEndpoint, "http://127.0.0.1:9/compute/v1", "a trailing slash is dropped");
    assert.deepEqual(full.machineTypes, { cpu: "n2-standard-2" });
    assert.equal(full.serviceAccount, "workers@my-project.iam.gserviceaccount.com");
    assert.equal(full.accessToken, "t0ken");
    const cases: Array<[string, RegExp]> = [
      ["{}", /^platforms\.gcp\.project is required/],
      ["{ project: my-project }", /^platforms\.gcp\.zone is required/],
      ["{ project: my-project, zone: z, region: r }", /^platforms\.gcp\.region is not a known key \(known: project, zone/],
      ["{ project: My_Project, zone: z }", /^platforms\.gcp\.project must be a project id/],
      ["{ project: my-project, zone: z, computeEndpoint: ftp://x }", /^platforms\.gcp\.computeEndpoint must be an http\(s\) URL/],
      ["{ project: my-project, zone: z, machineTypes: { cpu: 3 } }", /^platforms\.gcp\.machineTypes\.cpu must be a string/],
      ["{ project: my-project, zone: z, pollIntervalSeconds: 0 }", /^platforms\.gcp\.pollIntervalSeconds must be/],
      ["{ project: my-project, zone: z, accessToken: a, credentialsFile: /k.json }", /^platforms\.gcp\.accessToken and credentialsFile may not both be set/],
    ];
    for (const [section, expected] of cases) {
      const err = refusal(`${groups}platforms:\n  gcp: ${section}\n`);
      assert.ok(err instanceof ValidationError, `${section}: ${String(err)}`);
      assert.match(err.message, expected);
    }
    assert.match(refusal(groups).message, /^platforms\.gcp\.project is required/, "a gcp group needs the section");
  });

  test("platforms.ssh: hosts with ssh's defaults or their own user, port and key; the rest defaulted", () => {
    const { platforms } = parseClusterConfig(`
scaleGroups:
  - { name: hosts, platform: ssh, shape: { cpu: 8, memory: 32g }, maxVms: 3 }
platforms:
  ssh:
    identityFile: ~/.ssh/fluster_ed25519
    hosts:
      - gpu1.example.com
      - { host: 10.1.2.3, user: ubuntu, port: 2222, identityFile: /keys/other, advertiseHost: gpu2.internal }
      - { host: "fe80::1%eth0" }
`);
    assert.deepEqual(platforms.ssh, {
      hosts: [{ host: "gpu1.example.com" }, { host: "10.1.2.3", user: "ubuntu", port: 2222, identityFile: "/keys/other", advertiseHost: "gpu2.internal" }, { host: "fe80::1%eth0" }],
      identityFile: "~/.ssh/fluster_ed25519",
      node: "node",
      installDir: "~/.cache/fluster/install",
      workDir: "~/.cache/fluster/vms",
      strictHostKeyChecking: "accept-new",
    });
    const custom = parseClusterConfig("platforms:\n  ssh: { hosts: [a], node: /opt/node/bin/node, installDir: /srv/fluster, workDir: /srv/vms, knownHostsFile: /etc/fluster/known_hosts, strictHostKeyChecking: 'yes' }");
    assert.deepEqual(custom.platforms.ssh, { hosts: [{ host: "a" }], node: "/opt/node/bin/node", installDir: "/srv/fluster", workDir: "/srv/vms", knownHostsFile: "/etc/fluster/known_hosts", strictHostKeyChecking: "yes" });
  });

  test("each mistake in platforms.ssh is refused with the key where it is", () => {
    const cases: Array<[string, RegExp]> = [
      ["platforms:\n  ssh: {}", /^platforms\.ssh\.hosts is required: the ssh platform needs at least one host/],
      ["platforms:\n  ssh: { hosts: [] }", /^platforms\.ssh\.hosts must be a list of at least one host/],
      ["platforms:\n  ssh: { hosts: [a], password: x }", /^platforms\.ssh\.password is not a known key \(known: hosts, identityFile, node/],
      ["platforms:\n  ssh: { hosts: [a, { user: root }] }", /^platforms\.ssh\.hosts\[1\]\.host is required/],
      ["platforms:\n  ssh: { hosts: [a, 'root@b'] }", /^platforms\.ssh\.hosts\[1\]\.host must be a host name or address \(put the user in `user`/],
      ["platforms:\n  ssh: { hosts: ['-oProxyCommand=x'] }", /^platforms\.ssh\.hosts\[0\]\.host must be a host name or address/],
      ["platforms:\n  ssh: { hosts: [{ host: a, port: 70000 }] }", /^platforms\.ssh\.hosts\[0\]\.port must be at most 65535/],
      ["platforms:\n  ssh: { hosts: [{ host: a, user: 'x y' }] }", /^platforms\.ssh\.hosts\[0\]\.user must be a login name/],
      ["platforms:\n  ssh: { hosts: [{ host: a, key: k }] }", /^platforms\.ssh\.hosts\[0\]\.key is not a known key \(known: host, user, port, identityFile, advertiseHost\)/],
      ["platforms:\n  ssh: { hosts: [a, b, a] }", /^platforms\.ssh\.hosts\[2\]\.host repeats platforms\.ssh\.hosts\[0\] \(a\): each host runs one worker/],
      ["platforms:\n  ssh: { hosts: [a], strictHostKeyChecking: maybe }", /^platforms\.ssh\.strictHostKeyChecking must be one of "accept-new", "yes", "no", got "maybe"/],
      ["platforms:\n  ssh: { hosts: [a], node: '' }", /^platforms\.ssh\.node must not be empty/],
      ["scaleGroups:\n  - { name: a, platform: ssh, shape: { cpu: 1, memory: 1g }, maxVms: 1 }", /^platforms\.ssh\.hosts is required/],
    ];
    for (const [text, expected] of cases) {
      const err = refusal(text);
      assert.ok(err instanceof ValidationError, `${text}: ${String(err)}`);
      assert.match(err.message, expected, text);
      assert.match(err.message, /\(in cluster\.yaml\)$/, "names the file");
    }
  });

  test("platforms.docker: image, docker command and extra run flags; a docker group without the section gets the defaults", () => {
    const group = "scaleGroups:\n  - { name: d, platform: docker, shape: { cpu: 1, memory: 512m }, maxVms: 2 }\n";
    assert.deepEqual(parseClusterConfig(group).platforms, { docker: {} });
    const config = parseClusterConfig(`${group}platforms:\n  docker:\n    image: my-worker:1\n    docker: /usr/bin/docker\n    extraRunArgs: [--ulimit, nofile=4096:4096]\n`);
    assert.deepEqual(config.platforms, { docker: { image: "my-worker:1", docker: "/usr/bin/docker", extraRunArgs: ["--ulimit", "nofile=4096:4096"] } });
    const cases: Array<[string, RegExp]> = [
      ["platforms:\n  docker: { registry: gcr.io }", /^platforms\.docker\.registry is not a known key \(known: image, docker, extraRunArgs\)/],
      ["platforms:\n  docker: { image: '' }", /^platforms\.docker\.image must not be empty/],
      ["platforms:\n  docker: { docker: 7 }", /^platforms\.docker\.docker must be a string, got 7/],
      ["platforms:\n  docker: { extraRunArgs: --privileged }", /^platforms\.docker\.extraRunArgs must be an array of strings/],
      ["platforms:\n  docker: { extraRunArgs: [--ulimit, nofile=1, --network=bridge] }", /^platforms\.docker\.extraRunArgs\[2\] may not set --network: the docker platform sets it itself/],
      ["platforms:\n  docker: [image]", /^platforms\.docker must be an object/],
    ];
    for (const [text, expected] of cases) {
      const err = refusal(text);
      assert.ok(err instanceof ValidationError, `${text}: ${String(err)}`);
      assert.match(err.message, expected);
    }
  });

  test("a YAML syntax error names the file, line and column; a missing file names its path", () => {
    const err = refusal("scaleGroups:\n  - name: a\n    name: b\n");
    assert.ok(err instanceof FlusterError);
    assert.match(err.message, /^cluster\.yaml:3:5: Map keys must be unique/);
    assert.throws(() => loadClusterConfig("/nonexistent/cluster.yaml"), /cannot read the cluster config \/nonexistent\/cluster\.yaml/);
  });
});
