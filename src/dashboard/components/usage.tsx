// A worker's resources: for each, used / total with a small bar and what is free.
import type { WorkerResources } from "../../rpc/gen/fluster/cluster/v1/types_pb.js";
import { workerUse } from "../format.js";

/** Props of {@link Usage}. */
export interface UsageProps {
  total: WorkerResources | undefined;
  used: WorkerResources | undefined;
}

export function Usage({ total, used }: UsageProps) {
  return (
    <ul class="usage">
      {workerUse(total, used).map((r) => (
        <li key={r.name} title={`${r.name}: ${r.used} used of ${r.total}, ${r.free} free`}>
          <span class="usage-name">{r.name}</span>
          <meter min={0} max={1} value={r.fraction} aria-label={`${r.name} used`} />
          <span>
            {r.used} / {r.total}
          </span>
          <span class="muted"> ({r.free} free)</span>
        </li>
      ))}
    </ul>
  );
}
