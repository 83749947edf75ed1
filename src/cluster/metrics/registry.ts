// The registry each server's /metrics reads: a registry of its own (several
// controllers and workers may share a process) holding the process's default
// metrics (process_*, nodejs_*) beside the server's fluster_* ones.
import { Registry, collectDefaultMetrics, type Metric } from "prom-client";

/**
 * The default metrics describe the process, not a server, and collecting them
 * starts observers that are never stopped (a GC observer, an event-loop delay
 * monitor): they are collected once per process, into a registry of their own
 * (never prom-client's global one), and shared by every server's registry.
 */
let processMetrics: Metric[] | undefined;

function sharedProcessMetrics(): Metric[] {
  if (!processMetrics) {
    const registry = new Registry();
    collectDefaultMetrics({ register: registry });
    // Typed as plain objects, they are the metric instances (Registry.merge relies on it too).
    processMetrics = registry.getMetricsAsArray() as unknown as Metric[];
  }
  return processMetrics;
}

/** A new registry for one server, holding the process's default metrics. */
export function createMetricsRegistry(): Registry {
  const registry = new Registry();
  for (const metric of sharedProcessMetrics()) registry.registerMetric(metric);
  return registry;
}
