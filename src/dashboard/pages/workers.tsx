// The workers page: each worker's address, health, resources used and free,
// running attempts, attributes, and its last contact as "n s ago" on the
// controller's clock.
import { EmptyState, ErrorState, Loading } from "../components/states.js";
import { Labels } from "../components/labels.js";
import { StateBadge } from "../components/state-badge.js";
import { Age, Time } from "../components/time.js";
import { Usage } from "../components/usage.js";
import { useRpc } from "../use-rpc.js";

export function WorkersPage() {
  const { data, error } = useRpc("ListWorkers", async (client, signal) => (await client.listWorkers({}, { signal })).workers, []);
  return (
    <section>
      <h1>Workers</h1>
      {error && <ErrorState message={error} />}
      {data === undefined ? (
        !error && <Loading />
      ) : data.length === 0 ? (
        <EmptyState>
          no workers yet — start one with <code>npx fluster worker serve --controller {location.origin}</code>
        </EmptyState>
      ) : (
        <table>
          <thead>
            <tr>
              <th scope="col">Worker</th>
              <th scope="col">Health</th>
              <th scope="col">Resources (used / total)</th>
              <th scope="col">Running</th>
              <th scope="col">Attributes</th>
              <th scope="col">Last heartbeat</th>
              <th scope="col">Registered</th>
            </tr>
          </thead>
          <tbody>
            {[...data]
              .sort((a, b) => a.workerId.localeCompare(b.workerId))
              .map((w) => (
                <tr key={w.workerId} data-worker-id={w.workerId}>
                  <td>
                    <span class="mono">{w.workerId}</span>
                    <div class="muted mono small">{w.address}</div>
                  </td>
                  <td>
                    <StateBadge state={w.health || "unknown"} />
                    {w.healthReason && <div class="reason small">{w.healthReason}</div>}
                  </td>
                  <td>
                    <Usage total={w.resources} used={w.used} />
                  </td>
                  <td>{w.runningAttempts}</td>
                  <td>
                    <Labels labels={w.attributes} />
                  </td>
                  <td>
                    <Age at={w.lastSeen} />
                  </td>
                  <td>
                    <Time at={w.registeredAt} />
                  </td>
                </tr>
              ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
