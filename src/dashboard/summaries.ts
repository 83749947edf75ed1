// One-line summaries the pages show: a job's tasks, what a job runs, and
// endpoints grouped by namespace. Pure, so they are tested without a browser.
import { TaskState, type Endpoint, type Job, type JobSpec } from "../rpc/gen/fluster/cluster/v1/types_pb.js";

/** "2/3 succeeded", or "1/3 running, 2 succeeded" while some run. */
export function taskSummary(job: Job): string {
  const total = job.tasks.length;
  const succeeded = job.tasks.filter((t) => t.state === TaskState.SUCCEEDED).length;
  const running = job.tasks.filter((t) => t.state === TaskState.RUNNING).length;
  if (running === 0) return `${succeeded}/${total} succeeded`;
  return succeeded > 0 ? `${running}/${total} running, ${succeeded} succeeded` : `${running}/${total} running`;
}

/** What a job runs: its command line, or its remote function. */
export function entrypointSummary(spec: JobSpec | undefined): string {
  const kind = spec?.entrypoint?.kind;
  switch (kind?.case) {
    case "command":
      return kind.value.argv.map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : JSON.stringify(arg))).join(" ");
    case "function":
      return `${kind.value.name}() from ${kind.value.module}`;
    default:
      return "—";
  }
}

/** Endpoints by namespace, namespaces and names in order. */
export function byNamespace(endpoints: readonly Endpoint[]): [string, Endpoint[]][] {
  const groups = new Map<string, Endpoint[]>();
  for (const e of endpoints) groups.set(e.namespace, [...(groups.get(e.namespace) ?? []), e]);
  return [...groups.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([ns, list]) => [ns, list.sort((a, b) => a.name.localeCompare(b.name) || a.address.localeCompare(b.address))]);
}
