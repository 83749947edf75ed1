// currentCluster(): the cluster this program runs on — the one named by
// FLUSTER_CLUSTER_ADDRESS (set for every job), else a LocalCluster of its own.
import { Cluster, type ClusterOptions } from "./cluster.js";
import type { LocalClusterOptions } from "./local-cluster.js";
import { LocalClusterProcess } from "./local-cluster-process.js";

let local: Promise<LocalClusterProcess> | undefined;

/**
 * Inside a job (or with `FLUSTER_CLUSTER_ADDRESS` set) a client of that
 * cluster, in the job's namespace; otherwise a LocalCluster started on first
 * use in a child process ({@link LocalClusterProcess}) that lives as long as
 * this program: it does not keep the program running, and it goes, with its
 * workers, jobs and temporary files, when the program ends (also on a
 * signal or SIGKILL). Later calls return the same one.
 */
export async function currentCluster(options: ClusterOptions & LocalClusterOptions = {}): Promise<Cluster> {
  const address = process.env.FLUSTER_CLUSTER_ADDRESS;
  if (address) return Cluster.connect(address, options);
  if (!local) {
    const starting = LocalClusterProcess.start(options);
    // A failed start is not remembered: the next call tries again.
    starting.catch(() => {
      if (local === starting) local = undefined;
    });
    local = starting;
  }
  return local;
}
