// Shared by the benchmark's servers: tell the parent (over the IPC channel)
// where to connect, answer its questions about CPU time used, and close
// cleanly when it asks (SIGTERM) or goes away (the channel disconnects).
// A process serving several endpoints (bench/servers/scale-server.ts) lists
// them, by kind, in `endpoints`.
export function announce(url: string, close: () => Promise<void>, endpoints: Record<string, string[]> = {}): void {
  let closing = false;
  const stop = () => {
    if (closing) return;
    closing = true;
    // A close that hangs must not leave the process behind.
    setTimeout(() => process.exit(0), 2_000).unref();
    void close().finally(() => process.exit(0));
  };
  process.once("SIGTERM", stop);
  process.once("disconnect", stop);
  process.on("message", (message) => {
    if (message === "cpu-usage") process.send?.({ cpuUsage: process.cpuUsage() });
  });
  process.send?.({ ready: url, endpoints });
}
