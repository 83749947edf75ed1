// The `docker run` command line of an attempt in a container, and how a
// task's variables are split between the env file and `-e NAME`: pure
// functions, checked without Docker.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { containerName, dockerClientEnv, dockerRunArgs, flusterMounts, splitContainerEnv, workerDirKey } from "../../src/cluster/worker/container.js";
import { REPO_ROOT } from "../helpers/index.js";

describe("docker run arguments of an attempt", () => {
  const base = {
    attemptId: "job-1/task-0/attempt-2",
    argv: ["node", "--import", "file:///opt/tsx.mjs", "/opt/fluster/bootstrap.js"],
    cwd: "/work/ws",
    envFile: "/work/attempts/a/container.env",
    container: {
      image: "registry.example.com/team/app:v1",
      workerId: "host-1-8001",
      attemptsDir: "/work/attempts",
      cpu: 1.5,
      memoryBytes: 256 * 2 ** 20,
      mounts: [{ path: "/work/ws" }, { path: "/opt/fluster", readOnly: true }, { path: "/work/attempts/a" }, { path: "/work/ws", readOnly: true }],
      user: "1000:1000",
    },
  };

  test("names, labels, host network, limits without extra swap, mounts at the same paths, the program as entrypoint", () => {
    const name = containerName(base.attemptId);
    assert.deepEqual(dockerRunArgs({ ...base, envNames: ["MULTILINE"] }), [
      "run",
      "--name", name,
      "--label", "fluster.worker=host-1-8001",
      "--label", `fluster.worker-dir=${workerDirKey("/work/attempts")}`,
      "--label", "fluster.attempt=job-1/task-0/attempt-2",
      "--network", "host", "--init", "--pull", "never", "--log-driver", "none",
      "--cpus", "1.5",
      "--memory", "268435456b", "--memory-swap", "268435456b",
      "--user", "1000:1000",
      // A path given twice is mounted once, writable since one of them was.
      "--mount", "type=bind,source=/work/ws,target=/work/ws",
      "--mount", "type=bind,source=/opt/fluster,target=/opt/fluster,readonly",
      "--mount", "type=bind,source=/work/attempts/a,target=/work/attempts/a",
      "--env-file", "/work/attempts/a/container.env",
      "-e", "MULTILINE",
      "-w", "/work/ws",
      "--entrypoint", "node",
      "registry.example.com/team/app:v1",
      "--import", "file:///opt/tsx.mjs", "/opt/fluster/bootstrap.js",
    ]);
  });

  test("no limits where the task asks for none; the daemon's own user by default", () => {
    const args = dockerRunArgs({ ...base, container: { ...base.container, cpu: 0, memoryBytes: 0, user: undefined } });
    for (const flag of ["--cpus", "--memory", "--memory-swap"]) assert.ok(!args.includes(flag), flag);
    assert.equal(args[args.indexOf("--user") + 1], `${process.getuid?.()}:${process.getgid?.()}`);
  });

  test("container names are Docker-safe, distinct and stable", () => {
    assert.equal(containerName("a1b2c3"), "fluster-attempt-a1b2c3");
    const unsafe = containerName("job-1/task-0/attempt-2");
    assert.match(unsafe, /^fluster-attempt-job-1-task-0-attempt-2-[0-9a-f]{8}$/);
    assert.equal(containerName("job-1/task-0/attempt-2"), unsafe);
    assert.notEqual(containerName("job-1:task-0/attempt-2"), unsafe);
  });

  test("values go to the env file, or by name when the file cannot hold them, never onto the command line", () => {
    const { fileText, byName } = splitContainerEnv({ TOKEN: "s3cr3t=x y", PEM: "-----BEGIN-----\nabc\n-----END-----", EMPTY: "" });
    assert.equal(fileText, "TOKEN=s3cr3t=x y\nEMPTY=\n");
    assert.deepEqual(byName, { PEM: "-----BEGIN-----\nabc\n-----END-----" });
    const args = dockerRunArgs({ ...base, envNames: Object.keys(byName) });
    assert.ok(!args.some((a) => a.includes("s3cr3t") || a.includes("BEGIN")));
    const client = dockerClientEnv("att-1", byName);
    assert.equal(client.PEM, byName.PEM);
    assert.equal(client.FLUSTER_ATTEMPT_ID, "att-1");
    assert.equal(client.TOKEN, undefined);
  });

  test("the fluster package is mounted read-only, with the node_modules it links to", () => {
    const mounts = flusterMounts();
    assert.deepEqual(mounts[0], { path: REPO_ROOT.replace(/\/$/, ""), readOnly: true });
    assert.ok(mounts.every((m) => m.readOnly === true));
  });
});
