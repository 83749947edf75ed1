// The rendezvous variables a task gets from where its job's tasks were
// placed: TPU_WORKER_ID/TPU_WORKER_HOSTNAMES, MEGASCALE_* and a coordinator
// address for jax.distributed. Pure: the controller passes the placement in.

/**
 * Coordinator ports come from this range, below the workers' range for
 * `FLUSTER_PORT_<NAME>` (20000–32767) and below Linux's ephemeral ports: an
 * even port for `FLUSTER_COORDINATOR_ADDRESS`, the odd one above it for
 * `MEGASCALE_COORDINATOR_ADDRESS`.
 */
export const COORDINATOR_PORTS = { first: 15_000, last: 19_999 } as const;

/** Where a job's tasks run, as the variables of one of them are computed from it. */
export interface RendezvousInput {
  /** The task whose variables these are. */
  taskIndex: number;
  /** Tasks of the job. */
  numTasks: number;
  /** Per task index, the advertised host of the worker its current attempt runs on; undefined for a task with none. */
  hosts: readonly (string | undefined)[];
  /** For a TPU job: hosts per slice (1 for a single-host slice). @default not a TPU job */
  tpuHostsPerSlice?: number;
  /** Task 0's current attempt: its id picks the coordinator port, so a new attempt of task 0 gets a new port. @default no coordinator */
  coordinatorAttemptId?: string;
}

/**
 * The variables of one task:
 * - every job of more than one task, once task 0 is placed:
 *   `FLUSTER_COORDINATOR_ADDRESS` (`host:port` on task 0's worker, for
 *   `jax.distributed.initialize` and the like);
 * - a TPU job: `TPU_WORKER_ID` (the host index in its slice,
 *   `taskIndex mod hosts`) and `TPU_WORKER_HOSTNAMES` (its slice's hosts,
 *   comma-separated, in host order);
 * - a TPU job over several slices (multislice): `MEGASCALE_COORDINATOR_ADDRESS`
 *   (host 0 of slice 0, with a port), `MEGASCALE_NUM_SLICES`, `MEGASCALE_SLICE_ID`.
 * A variable whose hosts are not all known yet is left out.
 */
export function rendezvousVariables(input: RendezvousInput): Record<string, string> {
  const { taskIndex, numTasks, hosts, tpuHostsPerSlice, coordinatorAttemptId } = input;
  const env: Record<string, string> = {};
  const first = hosts[0];
  const port = coordinatorAttemptId !== undefined ? coordinatorPort(coordinatorAttemptId) : undefined;
  if (numTasks > 1 && first !== undefined && port !== undefined) env.FLUSTER_COORDINATOR_ADDRESS = hostPort(first, port);
  if (tpuHostsPerSlice === undefined) return env;
  const perSlice = Math.max(1, tpuHostsPerSlice);
  const sliceId = Math.floor(taskIndex / perSlice);
  env.TPU_WORKER_ID = String(taskIndex % perSlice);
  const sliceHosts = hosts.slice(sliceId * perSlice, sliceId * perSlice + perSlice);
  if (sliceHosts.length === perSlice && sliceHosts.every((h) => h !== undefined)) env.TPU_WORKER_HOSTNAMES = sliceHosts.join(",");
  const slices = Math.ceil(numTasks / perSlice);
  if (slices > 1) {
    env.MEGASCALE_NUM_SLICES = String(slices);
    env.MEGASCALE_SLICE_ID = String(sliceId);
    if (first !== undefined && port !== undefined) env.MEGASCALE_COORDINATOR_ADDRESS = hostPort(first, port + 1);
  }
  return env;
}

/** The coordinator port of an attempt of task 0: even, in {@link COORDINATOR_PORTS}, from a hash of the attempt id. */
export function coordinatorPort(attemptId: string): number {
  // FNV-1a: any attempt id spreads evenly over the range.
  let hash = 0x811c9dc5;
  for (let i = 0; i < attemptId.length; i++) {
    hash ^= attemptId.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  const pairs = Math.floor((COORDINATOR_PORTS.last - COORDINATOR_PORTS.first + 1) / 2);
  return COORDINATOR_PORTS.first + 2 * (hash % pairs);
}

/** The host of a worker's address (`http://10.0.0.2:7070` → `10.0.0.2`; IPv6 without brackets). */
export function hostOfAddress(address: string): string | undefined {
  try {
    const host = new URL(address).hostname;
    return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host || undefined;
  } catch {
    return undefined;
  }
}

function hostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}
