// The jobs page: every namespace's jobs, newest first, filtered by state and
// name prefix; each row links to the job's page.
import { useState } from "preact/hooks";
import { JobState } from "../../rpc/gen/fluster/cluster/v1/types_pb.js";
import { StateBadge } from "../components/state-badge.js";
import { EmptyState, ErrorState, Loading } from "../components/states.js";
import { Duration } from "../components/time.js";
import { enumName, formatResources } from "../format.js";
import { jobHref } from "../route.js";
import { taskSummary } from "../summaries.js";
import { useRpc } from "../use-rpc.js";

/** The states a user filters by, in lifecycle order. */
const FILTER_STATES = [JobState.PENDING, JobState.BUILDING, JobState.RUNNING, JobState.SUCCEEDED, JobState.FAILED, JobState.KILLED, JobState.UNSCHEDULABLE];
/** Rows listed at most. */
const LIMIT = 500;

export function JobsPage() {
  const [state, setState] = useState<JobState | undefined>(undefined);
  const [prefix, setPrefix] = useState("");
  const { data, error } = useRpc(
    "ListJobs",
    async (client, signal) => (await client.listJobs({ allNamespaces: true, prefix, states: state === undefined ? [] : [state], limit: LIMIT }, { signal })).jobs,
    [state, prefix],
  );
  const filtered = state !== undefined || prefix !== "";
  return (
    <section>
      <h1>Jobs</h1>
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <label>
          State{" "}
          <select value={state === undefined ? "" : String(state)} onChange={(e) => setState(e.currentTarget.value === "" ? undefined : (Number(e.currentTarget.value) as JobState))}>
            <option value="">all</option>
            {FILTER_STATES.map((s) => (
              <option key={s} value={String(s)}>
                {enumName(JobState, s)}
              </option>
            ))}
          </select>
        </label>
        <label>
          Name prefix <input type="search" value={prefix} placeholder="e.g. train-" onInput={(e) => setPrefix(e.currentTarget.value)} />
        </label>
      </form>
      {error && <ErrorState message={error} />}
      {data === undefined ? (
        !error && <Loading />
      ) : data.length === 0 ? (
        <EmptyState>
          {filtered ? (
            "no jobs match these filters"
          ) : (
            <>
              no jobs yet — launch one with <code>npx fluster job run -- echo hi</code>
            </>
          )}
        </EmptyState>
      ) : (
        <table>
          <thead>
            <tr>
              <th scope="col">Job</th>
              <th scope="col">Namespace</th>
              <th scope="col">State</th>
              <th scope="col">Tasks</th>
              <th scope="col">Duration</th>
              <th scope="col">Resources</th>
              <th scope="col">Pending reason / error</th>
            </tr>
          </thead>
          <tbody>
            {data.map((job) => (
              <tr key={job.jobId} data-job-id={job.jobId}>
                <td>
                  <a href={jobHref(job.jobId)}>{job.name || job.jobId}</a>
                  <div class="muted mono small">{job.jobId}</div>
                </td>
                <td>{job.namespace}</td>
                <td>
                  <StateBadge state={enumName(JobState, job.state)} />
                </td>
                <td>{taskSummary(job)}</td>
                <td>
                  <Duration start={job.startedAt} end={job.finishedAt} />
                </td>
                <td>{formatResources(job.spec?.resources)}</td>
                <td class={job.pendingReason ? "reason" : "reason failure"}>{job.pendingReason || job.errorMessage}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
