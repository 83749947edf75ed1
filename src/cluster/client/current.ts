// currentCluster(): the cluster this program runs on — the one named by
// FLUSTER_CLUSTER_ADDRESS (set for every job), else a LocalCluster of its own.
import { Cluster, type ClusterOptions } from "./cluster.js";
import { LocalCluster, type LocalClusterOptions } from "./local-cluster.js";

let local: Promise<LocalCluster> | undefined;

/**
 * Inside a job (or with `FLUSTER_CLUSTER_ADDRESS` set) a client of that
 * cluster, in the job's namespace; otherwise a LocalCluster started on first
 * use and shut down when the process exits.
 */
export async function currentCluster(options: ClusterOptions & LocalClusterOptions = {}): Promise<Cluster> {
  const address = process.env.FLUSTER_CLUSTER_ADDRESS;
  if (address) return Cluster.connect(address, options);
  local ??= LocalCluster.start(options).then((cluster) => {
    const stop = () => void cluster.shutdown();
    process.once("beforeExit", stop);
    return cluster;
  });
  return local;
}
