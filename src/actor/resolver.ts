// Resolvers turn an actor name into a pool of endpoints: ClusterResolver asks
// the cluster's registry (in the client's namespace); FixedResolver uses
// addresses given up front.
import { once } from "node:events";
import type { Cluster, EndpointInfo } from "../cluster/client/cluster.js";
import { ValidationError } from "../core/errors.js";
import { normalizeBaseUrl } from "../rpc/transport.js";
import { actorConnections } from "./connections.js";
import { ActorPool, type ActorEndpoint } from "./pool.js";

/** An endpoint with the name of the actor it serves, as {@link Resolver.listActors} lists it. */
export interface ListedActor extends ActorEndpoint {
  /** The actor name the endpoint is registered under. */
  name: string;
}

/** Finds actors by name. */
export interface Resolver {
  /** A pool of every endpoint registered under `name`; it re-resolves as endpoints come and go. */
  lookup<T extends object>(name: string): ActorPool<T>;
  /**
   * The endpoints serving the actors whose name starts with `prefix` (""
   * for all), one entry per endpoint (a name served twice is listed twice).
   */
  listActors(prefix?: string): Promise<ListedActor[]>;
}

/** Cluster clients whose close already lets go of their pools' connections. */
const hookedClusters = new WeakSet<Cluster>();

/** Resolves names through the cluster's endpoint registry. */
export class ClusterResolver implements Resolver {
  constructor(private readonly cluster: Cluster) {
    // Closing the cluster client lets go of the connections its pools opened (once per client, however many resolvers).
    if (!hookedClusters.has(cluster)) {
      hookedClusters.add(cluster);
      cluster.onClose(() => actorConnections.releaseGroup(cluster));
    }
  }

  lookup<T extends object>(name: string): ActorPool<T> {
    if (typeof name !== "string" || name === "") throw new ValidationError("name", "must be a non-empty actor name");
    const cluster = this.cluster;
    const toActor = (e: EndpointInfo): ActorEndpoint => ({ address: e.address, endpointId: e.endpointId, metadata: e.metadata });
    return new ActorPool<T>(
      name,
      {
        resolve: async () => (await cluster.lookupEndpoints(name)).map(toActor),
        watch: async function* (signal) {
          for await (const endpoints of cluster.watchEndpoints(name, { signal })) yield endpoints.map(toActor);
        },
        // Actor servers in the namespace's jobs accept its namespace credential (cluster with auth).
        credential: () => cluster.namespaceCredential(),
      },
      { namespace: cluster.namespace, connectionGroup: cluster },
    );
  }

  /** The registry's endpoints whose name starts with `prefix`, in the cluster client's namespace only. */
  async listActors(prefix = ""): Promise<ListedActor[]> {
    if (typeof prefix !== "string") throw new ValidationError("prefix", "must be a string (\"\" lists every actor)");
    const endpoints = await this.cluster.listEndpoints(prefix);
    return endpoints.map((e) => ({ name: e.name, address: e.address, endpointId: e.endpointId, metadata: e.metadata }));
  }
}

/** Resolves names to fixed addresses: `new FixedResolver({ calculator: "http://host:port" })`. */
export class FixedResolver implements Resolver {
  private readonly table: ReadonlyMap<string, readonly string[]>;

  constructor(addresses: Readonly<Record<string, string | readonly string[]>>) {
    const table = new Map<string, string[]>();
    for (const [name, value] of Object.entries(addresses)) {
      const list = typeof value === "string" ? [value] : [...value];
      table.set(name, list.map((address) => normalizeBaseUrl(address)));
    }
    this.table = table;
  }

  lookup<T extends object>(name: string): ActorPool<T> {
    const addresses = this.table.get(name);
    if (!addresses) {
      throw new ValidationError("name", `${JSON.stringify(name)} is not in this FixedResolver (it knows ${[...this.table.keys()].join(", ") || "nothing"})`);
    }
    const endpoints = () => addresses.map((address) => ({ address, endpointId: address, metadata: {} }));
    return new ActorPool<T>(name, {
      resolve: async () => endpoints(),
      // A fixed table never changes: one snapshot, then wait for the end.
      watch: async function* (signal) {
        yield endpoints();
        if (!signal.aborted) await once(signal, "abort");
      },
    });
  }

  /** The table's addresses whose name starts with `prefix`, in the order they were given. */
  async listActors(prefix = ""): Promise<ListedActor[]> {
    if (typeof prefix !== "string") throw new ValidationError("prefix", "must be a string (\"\" lists every actor)");
    const listed: ListedActor[] = [];
    for (const [name, addresses] of this.table) {
      if (name.startsWith(prefix)) for (const address of addresses) listed.push({ name, address, endpointId: address, metadata: {} });
    }
    return listed;
  }
}
