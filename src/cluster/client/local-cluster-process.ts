// currentCluster()'s own LocalCluster runs in a child process of the program
// (local-cluster-main.ts) rather than in the program itself, so that it never
// holds the program open: the program keeps only client connections (idle
// ones do not hold Node's event loop), and ends when its own work is done.
// The child watches the program through its stdin and, once the program is
// gone (however it ended, SIGKILL included), shuts the cluster down and
// removes its temporary directory.
import { spawn, type ChildProcess } from "node:child_process";
import type { Socket } from "node:net";
import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import { FlusterError } from "../../core/errors.js";
import { nodeEntryArgs } from "../../core/node-entry.js";
import { refuseWhileImportingByReference } from "../../core/remote.js";
import { Cluster, type ClusterOptions } from "./cluster.js";
import { compileLocalClusterOptions, type LocalClusterOptions } from "./local-cluster.js";

const MAIN_ARGS = nodeEntryArgs(import.meta.url, "./local-cluster-main");

/** The line (on fd 3) with which the child says its cluster is up. */
export const LOCAL_CLUSTER_READY = "fluster-local-cluster-ready";

/** LocalClusterOptions as JSON: worker labels are computed up front, one set per worker. */
interface LocalClusterOptionsJson extends Omit<LocalClusterOptions, "workerLabels" | "namespace" | "token" | "logger"> {
  labels?: Record<string, string>[];
}

function localClusterOptionsToJson(options: LocalClusterOptions): string {
  // A logger cannot cross to the child: its controller logs on stderr by logLevel and logFormat.
  const { workerLabels, namespace: _namespace, token: _token, logger: _logger, ...rest } = options;
  const json: LocalClusterOptionsJson = { ...rest };
  if (workerLabels) json.labels = Array.from({ length: options.workers ?? 2 }, (_, i) => workerLabels(i));
  return JSON.stringify(json);
}

/** The child's side of {@link localClusterOptionsToJson}. */
export function localClusterOptionsFromJson(text: string): LocalClusterOptions {
  const { labels, ...rest } = JSON.parse(text) as LocalClusterOptionsJson;
  return { ...rest, ...(labels ? { workerLabels: (i: number) => labels[i] ?? {} } : {}) };
}

/**
 * A LocalCluster in a child process that lives as long as this program: what
 * `currentCluster()` starts without FLUSTER_CLUSTER_ADDRESS. It is a client
 * of that cluster; it does not keep the program running, and the cluster (its
 * workers, their jobs, its temporary directory) goes when the program ends —
 * normally, on a signal, or SIGKILLed. `shutdown()` stops it earlier.
 */
export class LocalClusterProcess extends Cluster {
  /** Worker daemons the cluster started with. */
  readonly workerCount: number;
  private readonly child: ChildProcess;
  private stopped: Promise<void> | undefined;

  private constructor(child: ChildProcess, url: string, workerCount: number, options: ClusterOptions) {
    super(url, options);
    this.child = child;
    this.workerCount = workerCount;
  }

  /** Starts the child and its cluster; resolves once every worker has registered. */
  static async start(options: LocalClusterOptions = {}): Promise<LocalClusterProcess> {
    // A module that starts a cluster as it loads would start one in every worker process that imports it.
    refuseWhileImportingByReference("currentCluster() was called without FLUSTER_CLUSTER_ADDRESS (it starts a LocalCluster then)");
    compileLocalClusterOptions(options);
    const child = spawn(process.execPath, [...MAIN_ARGS, localClusterOptionsToJson(options)], {
      // Its own process group: Ctrl-C in a terminal reaches the program, which decides; the cluster ends when the program does.
      detached: true,
      stdio: ["pipe", "inherit", "inherit", "pipe"],
    });
    const readyPipe = child.stdio[3] as Readable;
    let ready: { url: string; token: string | null; workers: number };
    try {
      ready = await new Promise((resolve, reject) => {
        const onExit = (code: number | null, signal: string | null) =>
          reject(new FlusterError(`the local cluster exited before it was ready (code ${code}, signal ${signal}); its error is above`, "unavailable"));
        child.once("exit", onExit);
        child.once("error", reject);
        createInterface({ input: readyPipe }).on("line", (line) => {
          if (!line.startsWith(`${LOCAL_CLUSTER_READY} `)) return;
          child.off("exit", onExit);
          resolve(JSON.parse(line.slice(LOCAL_CLUSTER_READY.length + 1)) as { url: string; token: string | null; workers: number });
        });
      });
    } finally {
      readyPipe.destroy();
    }
    // Nothing of the child holds this program open; its stdin stays open (unref'd) until this program ends, which is how the child knows.
    (child.stdin as Socket).unref();
    child.unref();
    const clientOptions: ClusterOptions = {
      ...(options.namespace !== undefined ? { namespace: options.namespace } : {}),
      ...(ready.token !== null ? { token: ready.token } : options.token !== undefined ? { token: options.token } : {}),
    };
    return new LocalClusterProcess(child, ready.url, ready.workers, clientOptions);
  }

  /** The child's process id. */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Stops the cluster now (workers, their jobs, temporary files) and closes this client; resolves when the child has exited. */
  shutdown(): Promise<void> {
    return (this.stopped ??= (async () => {
      await this.close();
      const child = this.child;
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.ref();
      await new Promise<void>((resolve) => {
        const escalate = setTimeout(() => child.kill("SIGKILL"), 30_000);
        child.once("exit", () => {
          clearTimeout(escalate);
          resolve();
        });
        child.kill("SIGTERM");
      });
    })());
  }
}
