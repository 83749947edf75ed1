// The mechanics every example shares — flags, its cluster, the jobs it launched,
// Ctrl-C and exit codes — so that each main.ts tells only its own story.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  LocalCluster,
  LocalClusterProcess,
  currentCluster,
  isFinished,
  type Cluster,
  type ClusterOptions,
  type JobId,
  type JobGroupConfig,
  type JobInfo,
  type JobRequest,
  type LocalClusterOptions,
  type ReservationConfig,
  type ReservationId,
} from "fluster";

/** An example program, as runMain() runs it. */
export interface Example<Flags> {
  /** Printed by `--help`. */
  usage: string;
  /** Reads the command line: "help" for `--help`; throws on a bad flag. */
  parseFlags(argv: string[]): Flags | "help";
  /** The example's story; what it returns is the exit status. */
  main(flags: Flags, run: ExampleRun): Promise<number>;
  /** What Ctrl-C stops, said after "interrupted (SIGINT): ", e.g. "stopping the training job". */
  onInterrupt: string;
  /** Starts every line the driver itself prints, e.g. "rl: ". @default "" */
  prefix?: string;
}

/**
 * Runs an example as a program. Exit status: main's result; 1 when main
 * throws (one `error: …` line); 2 for bad flags (one line); 130 on Ctrl-C or
 * SIGTERM, which stop the run at once (a second Ctrl-C exits without waiting).
 * On every way out the run's jobs, cluster and temporary files are released
 * first (ExampleRun.stop).
 */
export function runMain<Flags>(example: Example<Flags>): void {
  const prefix = example.prefix ?? "";
  let flags: Flags | "help";
  try {
    flags = example.parseFlags(process.argv.slice(2));
  } catch (err) {
    console.error(`${prefix}error: ${errorMessage(err)} (see --help)`);
    process.exitCode = 2;
    return;
  }
  if (flags === "help") {
    console.log(example.usage);
    return;
  }

  const run = new ExampleRun((line) => console.log(`${prefix}${line}`));
  let interrupted = false;
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      interrupted = true;
      console.error(`${prefix}interrupted (${signal}): ${example.onInterrupt}`);
      process.once(signal, () => process.exit(130)); // a second Ctrl-C exits at once
      void run.stop().finally(() => process.exit(130));
    });
  }
  example
    .main(flags, run)
    .catch((err: unknown) => {
      // After Ctrl-C, main fails because its cluster went away: not news.
      if (!interrupted) console.error(`${prefix}error: ${errorMessage(err)}`);
      return 1;
    })
    .then(async (code) => {
      await run.stop(code === 0 && !interrupted);
      // Exit explicitly: the run is released, and nothing else should keep the process alive.
      process.exit(interrupted ? 130 : code);
    });
}

/**
 * What one run of an example started — its cluster, its jobs, a temporary
 * directory — so that stop() can release exactly that, once, on every way out.
 */
export class ExampleRun {
  private cluster: Promise<Cluster> | undefined;
  private readonly roles = new Map<JobId, string>();
  private readonly logPumps: Promise<void>[] = [];
  private readonly reservations: ReservationId[] = [];
  private tempDir: string | undefined;
  private stopped: Promise<void> | undefined;

  /** `log` prints one line of the driver's own output. */
  constructor(readonly log: (line: string) => void) {}

  /** True once stop() has begun (after Ctrl-C, or when main is done): the run launches nothing more. */
  get stopping(): boolean {
    return this.stopped !== undefined;
  }

  /** The jobs this run launched, in launch order. */
  get jobIds(): JobId[] {
    return [...this.roles.keys()];
  }

  /**
   * currentCluster(): the cluster named by FLUSTER_CLUSTER_ADDRESS, else a
   * LocalCluster started for this run, which stop() shuts down. Says which.
   */
  async connect(options: ClusterOptions & LocalClusterOptions = {}): Promise<Cluster> {
    if (!process.env.FLUSTER_CLUSTER_ADDRESS) this.log("starting a local cluster");
    this.cluster = currentCluster(options);
    const cluster = await this.cluster;
    const workers = cluster instanceof LocalClusterProcess ? cluster.workerCount : cluster instanceof LocalCluster ? cluster.workers.length : undefined;
    const local = workers !== undefined;
    const namespace = options.namespace === undefined ? "" : `${local ? ";" : ","} namespace ${cluster.namespace}`;
    this.log(
      local
        ? `cluster: LocalCluster at ${cluster.address} (${workers} workers), started by this program${namespace}`
        : `cluster: ${cluster.address}${namespace}`,
    );
    return cluster;
  }

  /**
   * Launches a job of this run on its cluster. `role` names it in messages
   * (default: the job's name); with `followLogs` its output is copied to
   * stdout as `  [role] line`.
   */
  async launch(request: JobRequest, options: { role?: string; followLogs?: boolean; reservationId?: ReservationId } = {}): Promise<JobId> {
    const role = options.role ?? request.name;
    if (this.stopping || !this.cluster) throw new Error(`not launching ${role}: the run ${this.stopping ? "is stopping" : "has no cluster yet"}`);
    const cluster = await this.cluster;
    const jobId = await cluster.launch(request, options.reservationId ? { reservationId: options.reservationId } : {});
    this.roles.set(jobId, role);
    // stop() may have begun while this launch was in flight: the new job must not outlive the run.
    if (this.stopping) {
      await cluster.terminate(jobId, "driver stopped");
      throw new Error(`${role} launched while the run was stopping`);
    }
    if (options.followLogs) this.logPumps.push(pumpLogs(cluster, jobId, role));
    return jobId;
  }

  /**
   * Launches jobs of this run as one job group: placed all together or not
   * at all (see `Cluster.launchGroup`). Each entry's `role` and `followLogs`
   * work as in {@link launch}. Returns the job ids in the order given.
   */
  async launchGroup(
    entries: ReadonlyArray<{ request: JobRequest; role?: string; followLogs?: boolean }>,
    group: JobGroupConfig,
  ): Promise<JobId[]> {
    if (this.stopping || !this.cluster) throw new Error(`not launching group ${group.name}: the run ${this.stopping ? "is stopping" : "has no cluster yet"}`);
    const cluster = await this.cluster;
    const jobIds = await cluster.launchGroup(entries.map((e) => e.request), group);
    jobIds.forEach((jobId, i) => this.roles.set(jobId, entries[i]?.role ?? entries[i]?.request.name ?? jobId));
    if (this.stopping) {
      await Promise.allSettled(jobIds.map((id) => cluster.terminate(id, "driver stopped")));
      throw new Error(`group ${group.name} launched while the run was stopping`);
    }
    entries.forEach((entry, i) => {
      const jobId = jobIds[i];
      if (entry.followLogs && jobId) this.logPumps.push(pumpLogs(cluster, jobId, this.roles.get(jobId) ?? jobId));
    });
    return jobIds;
  }

  /** Creates a reservation for this run; stop() releases it. */
  async reserve(config: ReservationConfig): Promise<ReservationId> {
    if (this.stopping || !this.cluster) throw new Error(`not reserving: the run ${this.stopping ? "is stopping" : "has no cluster yet"}`);
    const reservationId = await (await this.cluster).createReservation(config);
    this.reservations.push(reservationId);
    return reservationId;
  }

  /** The launched jobs as `role (job id), …`. */
  describeJobs(): string {
    return [...this.roles].map(([id, role]) => `${role} (${id})`).join(", ");
  }

  /** How a job of this run ended, e.g. `slice-1 job slice-1-… ended killed: …`. */
  describeEnd(info: JobInfo): string {
    const role = this.roles.get(info.jobId) ?? info.name;
    return `${role} job ${info.jobId} ended ${info.status}${info.errorMessage ? `: ${info.errorMessage}` : ""}`;
  }

  /**
   * `work`, or an error once `seconds` have passed: "the run did not finish
   * within Ns", with why any of the run's jobs still waits to be placed.
   */
  async within<T>(seconds: number, work: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<"timed out">((resolve) => (timer = setTimeout(() => resolve("timed out"), seconds * 1000)));
    try {
      const result = await Promise.race([work, timedOut]);
      if (result !== "timed out") return result;
    } finally {
      clearTimeout(timer);
    }
    throw new Error(`the run did not finish within ${seconds}s${await this.explainPending()}`);
  }

  /** Waits (at most 3 s) for the last log lines of ended jobs, so that they print before a summary. */
  async drainLogs(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled(this.logPumps), new Promise((r) => (timer = setTimeout(r, 3000)))]);
    clearTimeout(timer);
  }

  /** A temporary directory of this run; stop() removes it unless the run succeeded (then it holds results). */
  makeTempDir(prefix: string): string {
    return (this.tempDir ??= mkdtempSync(join(tmpdir(), prefix)));
  }

  /**
   * Releases what this run started, once; never throws. Its jobs still
   * running are terminated (a job left running holds its resources for
   * nothing) and its reservations released; then a LocalCluster it started is shut down, with its worker
   * processes and files, or the connection to another cluster closed; then
   * its temporary directory goes, unless `succeeded`.
   */
  stop(succeeded = false): Promise<void> {
    return (this.stopped ??= (async () => {
      const cluster = await this.cluster?.catch(() => undefined);
      if (cluster) {
        await Promise.allSettled(
          this.jobIds.map(async (id) => {
            if (!isFinished((await cluster.poll(id)).status)) await cluster.terminate(id, "driver stopped");
          }),
        );
        // Held capacity goes back to the cluster at once, not when the TTL runs out.
        await Promise.allSettled(this.reservations.map((id) => cluster.releaseReservation(id)));
        await (cluster instanceof LocalCluster || cluster instanceof LocalClusterProcess ? cluster.shutdown() : cluster.close()).catch(() => undefined);
      }
      if (!succeeded && this.tempDir) rmSync(this.tempDir, { recursive: true, force: true });
    })());
  }

  /** Why the run's jobs still wait to be placed, e.g. `; slice-0 pending: no worker has a tpu`. */
  private async explainPending(): Promise<string> {
    const cluster = await this.cluster?.catch(() => undefined);
    if (!cluster) return "";
    const infos = await Promise.all(this.jobIds.map((id) => cluster.poll(id).catch(() => undefined)));
    return infos
      .filter((info): info is JobInfo => info?.status === "pending")
      .map((info) => `; ${this.roles.get(info.jobId)} pending${info.pendingReason ? `: ${info.pendingReason}` : ""}`)
      .join("");
  }
}

/** Reads a flag's value as a whole number ≥ `min`; the error names the flag and the value. */
export function wholeNumber(flag: string, text: string, min: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) throw new Error(`${flag} must be a whole number ≥ ${min}, got ${JSON.stringify(text)}`);
  return n;
}

/** Copies a job's output to stdout line by line, prefixed with its role, until the job ends. */
async function pumpLogs(cluster: Cluster, jobId: JobId, role: string): Promise<void> {
  const partial = { stdout: "", stderr: "" };
  try {
    for await (const chunk of cluster.logs(jobId, { follow: true })) {
      const lines = (partial[chunk.stream] + chunk.data).split("\n");
      partial[chunk.stream] = lines.pop() ?? "";
      for (const line of lines) console.log(`  [${role}] ${line}`);
    }
  } catch {
    // The cluster went away during cleanup: nothing more to show.
  }
  for (const rest of Object.values(partial)) if (rest) console.log(`  [${role}] ${rest}`);
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
