// Shared by the benchmark's servers: tell the parent (over the IPC channel)
// where to connect, answer its questions about CPU time used, and close
// cleanly when it asks (SIGTERM) or goes away (the channel disconnects).
export function announce(url: string, close: () => Promise<void>): void {
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
  process.send?.({ ready: url });
}
