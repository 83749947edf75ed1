// Docker for the docker platform's tests and benchmark: the engine must be
// there (the tests fail, saying so, rather than skip), and every container of
// a test's cluster is removed when it ends.
import { execFileSync } from "node:child_process";
import type { MachineShape, ScaleGroup } from "../../src/cluster/autoscaler/types.js";
import { CLUSTER_LABEL } from "../../src/cluster/platform/docker/platform.js";

/** `docker <args>`, its stdout; throws with docker's stderr. */
export function docker(args: readonly string[]): string {
  return execFileSync("docker", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

/** Fails, saying why, when there is no Docker engine to talk to. */
export function requireDocker(): void {
  try {
    docker(["info", "--format", "{{.ServerVersion}}"]);
  } catch (err) {
    const detail = (err as { stderr?: string }).stderr?.trim() || (err as Error).message;
    throw new Error(`these tests need a running Docker engine (\`docker info\` failed: ${detail}); .ci/run installs docker.io and starts dockerd`);
  }
}

/** Ids of every container, running or not, of the cluster `clusterName`. */
export function clusterContainers(clusterName: string): string[] {
  return docker(["ps", "--all", "--quiet", "--filter", `label=${CLUSTER_LABEL}=${clusterName}`]).split("\n").filter((id) => id !== "");
}

/** Removes every container of the cluster `clusterName` (best effort: for cleanup). */
export function removeClusterContainers(clusterName: string): void {
  try {
    const ids = clusterContainers(clusterName);
    if (ids.length > 0) docker(["rm", "--force", ...ids]);
  } catch {
    // the engine went away: nothing left to remove
  }
}

/** A cluster name no other run uses (containers are named and labelled by it). */
export function testClusterName(prefix: string): string {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}`;
}

/** A docker scale group of VMs of `shape` (one CPU and 512 MiB unless given). */
export function dockerGroup(name: string, shape: Partial<MachineShape> = {}, resources: Partial<MachineShape["resources"]> = {}): ScaleGroup {
  return {
    name,
    platform: "docker",
    shape: { resources: { cpu: 1, memory: 512 * 1024 ** 2, disk: 0, deviceType: "cpu", deviceVariant: "", deviceCount: 0, ...resources }, preemptible: false, ...shape },
    minVms: 0,
    maxVms: 4,
    idleTimeoutSeconds: 300,
  };
}
