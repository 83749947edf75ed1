// The parent side of bench/servers/: start a server script in its own child
// process, learn its URL and CPU time over the IPC channel, stop them all.
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

export interface Server {
  url: string;
  /** The endpoints it serves, by kind, when it serves several (see ready.ts). */
  endpoints: Record<string, string[]>;
  child: ChildProcess;
}
const children: ChildProcess[] = [];

/** Starts `script` (under bench/servers/) with `args`; resolves once it announces where it serves. */
export function startServer(script: string, args: readonly string[] = []): Promise<Server> {
  const profile = process.env.BENCH_CPU_PROF_DIR ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_CPU_PROF_DIR}`] : [];
  // The IPC channel carries the ready message and CPU readings; when this
  // process dies it disconnects, and the server exits.
  const child = spawn(process.execPath, [...profile, "--import", "tsx", fileURLToPath(new URL(`./${script}`, import.meta.url)), ...args], {
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  children.push(child);
  return new Promise<Server>((resolve, reject) => {
    child.once("error", reject);
    child.once("exit", (code) => reject(new Error(`${script} exited with ${code} before it was ready`)));
    child.on("message", (message: { ready?: string; endpoints?: Record<string, string[]> }) => {
      if (message.ready !== undefined) resolve({ url: message.ready, endpoints: message.endpoints ?? {}, child });
    });
  });
}

/** CPU time (user + system) the server process has used, in µs. */
export function serverCpuUs(server: Server): Promise<number> {
  return new Promise((resolve) => {
    const onMessage = (message: { cpuUsage?: NodeJS.CpuUsage }) => {
      if (!message.cpuUsage) return;
      server.child.off("message", onMessage);
      resolve(message.cpuUsage.user + message.cpuUsage.system);
    };
    server.child.on("message", onMessage);
    server.child.send("cpu-usage");
  });
}

export async function stopServers(): Promise<void> {
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          const force = setTimeout(() => child.kill("SIGKILL"), 3_000);
          child.once("exit", () => {
            clearTimeout(force);
            resolve();
          });
          child.kill("SIGTERM");
        }),
    ),
  );
}
