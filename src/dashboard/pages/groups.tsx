// The job groups page: groups of jobs placed all together or not at all, with
// their rolled-up state, jobs and pending reason or error.
import { JobState } from "../../rpc/gen/fluster/cluster/v1/types_pb.js";
import { JobLinks } from "../components/job-links.js";
import { StateBadge } from "../components/state-badge.js";
import { EmptyState, ErrorState, Loading } from "../components/states.js";
import { Duration, Time } from "../components/time.js";
import { enumName } from "../format.js";
import { useRpc } from "../use-rpc.js";

export function GroupsPage() {
  const { data, error } = useRpc("ListJobGroups", async (client, signal) => (await client.listJobGroups({ allNamespaces: true }, { signal })).groups, []);
  return (
    <section>
      <h1>Job groups</h1>
      {error && <ErrorState message={error} />}
      {data === undefined ? (
        !error && <Loading />
      ) : data.length === 0 ? (
        <EmptyState>no job groups yet — a group launches jobs that are placed together or not at all</EmptyState>
      ) : (
        <table>
          <thead>
            <tr>
              <th scope="col">Group</th>
              <th scope="col">Namespace</th>
              <th scope="col">State</th>
              <th scope="col">Jobs</th>
              <th scope="col">Placement</th>
              <th scope="col">Created</th>
              <th scope="col">Duration</th>
              <th scope="col">Pending reason / error</th>
            </tr>
          </thead>
          <tbody>
            {data.map((g) => (
              <tr key={g.groupId}>
                <td>
                  {g.spec?.name || g.groupId}
                  <div class="muted mono small">{g.groupId}</div>
                </td>
                <td>{g.namespace}</td>
                <td>
                  <StateBadge state={enumName(JobState, g.state)} />
                </td>
                <td>
                  <JobLinks jobIds={g.jobIds} />
                </td>
                <td>{[g.spec?.sameRegion ? "same region" : "", g.spec?.sameZone ? "same zone" : "", g.reservationId ? `reservation ${g.reservationId}` : ""].filter(Boolean).join(", ") || "—"}</td>
                <td>
                  <Time at={g.createdAt} />
                </td>
                <td>
                  <Duration start={g.createdAt} end={g.finishedAt} />
                </td>
                <td class={g.pendingReason ? "reason" : "reason failure"}>{g.pendingReason || g.errorMessage}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
