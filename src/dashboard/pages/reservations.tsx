// The reservations page: capacity held for a namespace's jobs, with what is
// held, used and still pending, and why it ended or waits.
import { useState } from "preact/hooks";
import { ReservationState } from "../../rpc/gen/fluster/cluster/v1/controller_pb.js";
import { JobLinks } from "../components/job-links.js";
import { StateBadge } from "../components/state-badge.js";
import { EmptyState, ErrorState, Loading } from "../components/states.js";
import { Time } from "../components/time.js";
import { enumName, formatResources } from "../format.js";
import { useRpc } from "../use-rpc.js";

export function ReservationsPage() {
  const [includeEnded, setIncludeEnded] = useState(false);
  const { data, error } = useRpc(
    "ListReservations",
    async (client, signal) => (await client.listReservations({ allNamespaces: true, includeEnded }, { signal })).reservations,
    [includeEnded],
  );
  return (
    <section>
      <h1>Reservations</h1>
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <label>
          <input type="checkbox" checked={includeEnded} onChange={(e) => setIncludeEnded(e.currentTarget.checked)} /> include expired and released
        </label>
      </form>
      {error && <ErrorState message={error} />}
      {data === undefined ? (
        !error && <Loading />
      ) : data.length === 0 ? (
        <EmptyState>no {includeEnded ? "" : "active "}reservations — a reservation holds capacity for the jobs launched into it</EmptyState>
      ) : (
        <table>
          <thead>
            <tr>
              <th scope="col">Reservation</th>
              <th scope="col">Namespace</th>
              <th scope="col">State</th>
              <th scope="col">Minimum</th>
              <th scope="col">Replicas used / held</th>
              <th scope="col">Pending</th>
              <th scope="col">Jobs</th>
              <th scope="col">Expires</th>
              <th scope="col">Message</th>
            </tr>
          </thead>
          <tbody>
            {data.map((r) => (
              <tr key={r.reservationId}>
                <td class="mono">{r.reservationId}</td>
                <td>{r.namespace}</td>
                <td>
                  <StateBadge state={enumName(ReservationState, r.state)} />
                </td>
                <td>{formatResources(r.spec?.minResources)}</td>
                <td>
                  {r.usedReplicas} used / {r.heldReplicas} held
                  {r.heldWorkerIds.length > 0 && <div class="muted small mono">on {r.heldWorkerIds.join(", ")}</div>}
                </td>
                <td>{r.pendingResources && (r.pendingResources.replicas ?? 0) > 0 ? formatResources(r.pendingResources) : "—"}</td>
                <td>
                  <JobLinks jobIds={r.jobIds} />
                </td>
                <td>{r.expiresAt ? <Time at={r.expiresAt} /> : "never"}</td>
                <td class="reason">{r.message}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
