// LocalCluster fixtures: a real controller in this process and worker daemons
// as child processes, shut down when the tests that use them are done.
import { after, before, type TestContext } from "node:test";
import { LocalCluster, type LocalClusterOptions } from "../../src/cluster/client/local-cluster.js";
import type { Cluster } from "../../src/cluster/client/cluster.js";

/** A LocalCluster shared by the tests of one describe(). */
export interface LocalClusterFixture {
  /** The running cluster; there from the suite's before() hooks on. */
  readonly cluster: LocalCluster;
}

/**
 * Starts a LocalCluster before the tests of the enclosing describe() and
 * shuts it down after them. node:test runs after() hooks in the order they
 * were registered: register the after() of anything built on the cluster
 * (a pool, a job context) before calling this, so that it closes first.
 */
export function useLocalCluster(options: LocalClusterOptions = {}): LocalClusterFixture {
  let started: LocalCluster | undefined;
  before(async () => {
    started = await LocalCluster.start(options);
  });
  after(async () => {
    await started?.shutdown();
  });
  return {
    get cluster(): LocalCluster {
      if (!started) throw new Error("the LocalCluster fixture is used before its suite's before() hook ran");
      return started;
    },
  };
}

/** Starts a LocalCluster for one test; it is shut down when the test ends. */
export async function startLocalCluster(t: TestContext, options: LocalClusterOptions = {}): Promise<LocalCluster> {
  const cluster = await LocalCluster.start(options);
  t.after(() => cluster.shutdown());
  return cluster;
}

/** Everything a job has written so far (stdout and stderr, all tasks), as one string. */
export async function collectLogs(cluster: Cluster, jobId: string): Promise<string> {
  let text = "";
  for await (const line of cluster.logs(jobId)) text += line.data;
  return text;
}
