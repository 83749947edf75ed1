// A job's page: its status, spec, tasks with every attempt, its error, a live
// log tail, and a button to stop it while it runs.
import { useState } from "preact/hooks";
import { JobState, Priority, TaskState, type Job } from "../../rpc/gen/fluster/cluster/v1/types_pb.js";
import { describeFailure, refusalOf } from "../api.js";
import { LogTail } from "../components/log-tail.js";
import { StateBadge } from "../components/state-badge.js";
import { ErrorState, Loading } from "../components/states.js";
import { Duration, Time } from "../components/time.js";
import { enumName, formatResources } from "../format.js";
import { useSession } from "../session.js";
import { entrypointSummary } from "../summaries.js";
import { useRpc } from "../use-rpc.js";

/** States in which a job can still be stopped. */
const UNFINISHED = new Set([JobState.PENDING, JobState.BUILDING, JobState.RUNNING, JobState.UNSCHEDULABLE]);

/** Props of {@link JobPage}. */
export interface JobPageProps {
  jobId: string;
}

export function JobPage({ jobId }: JobPageProps) {
  const { data: job, error } = useRpc("GetJobStatus", async (client, signal) => (await client.getJobStatus({ jobId }, { signal })).job, [jobId]);
  return (
    <section>
      <p class="crumbs">
        <a href="#/jobs">Jobs</a> / <span class="mono">{jobId}</span>
      </p>
      {error && <ErrorState message={error} />}
      {job === undefined ? !error && <Loading /> : <JobDetails job={job} />}
      <LogTail jobId={jobId} />
    </section>
  );
}

function JobDetails({ job }: { job: Job }) {
  const spec = job.spec;
  const state = enumName(JobState, job.state);
  return (
    <>
      <div class="section-head">
        <h1>{job.name || job.jobId}</h1>
        <StateBadge state={state} />
        {UNFINISHED.has(job.state) && <StopButton jobId={job.jobId} />}
      </div>
      {job.errorMessage && (
        <p class="error" data-testid="job-error">
          {job.exitCode !== undefined && <strong>exit code {job.exitCode}: </strong>}
          {job.errorMessage}
        </p>
      )}
      {job.pendingReason && <p class="reason">pending: {job.pendingReason}</p>}
      <dl class="facts">
        <dt>Job id</dt>
        <dd class="mono">{job.jobId}</dd>
        <dt>Namespace</dt>
        <dd>{job.namespace}</dd>
        <dt>Runs</dt>
        <dd class="mono">{entrypointSummary(spec)}</dd>
        <dt>Resources</dt>
        <dd>{formatResources(spec?.resources)}</dd>
        <dt>Replicas</dt>
        <dd>{job.tasks.length}</dd>
        <dt>Priority</dt>
        <dd>{spec ? enumName(Priority, spec.priority) : "—"}</dd>
        {spec?.coscheduled && (
          <>
            <dt>Gang</dt>
            <dd>coscheduled</dd>
          </>
        )}
        {job.parentJobId && (
          <>
            <dt>Parent</dt>
            <dd>
              <a href={`#/jobs/${encodeURIComponent(job.parentJobId)}`}>{job.parentJobId}</a>
            </dd>
          </>
        )}
        {job.groupId && (
          <>
            <dt>Group</dt>
            <dd class="mono">{job.groupId}</dd>
          </>
        )}
        {job.reservationId && (
          <>
            <dt>Reservation</dt>
            <dd class="mono">{job.reservationId}</dd>
          </>
        )}
        <dt>Submitted</dt>
        <dd>
          <Time at={job.submittedAt} />
        </dd>
        <dt>Duration</dt>
        <dd>
          <Duration start={job.startedAt} end={job.finishedAt} />
        </dd>
        {job.exitCode !== undefined && (
          <>
            <dt>Exit code</dt>
            <dd>{job.exitCode}</dd>
          </>
        )}
      </dl>
      <h2>Tasks</h2>
      <table class="tasks">
        <thead>
          <tr>
            <th scope="col">Task / attempt</th>
            <th scope="col">State</th>
            <th scope="col">Worker</th>
            <th scope="col">Exit code</th>
            <th scope="col">Error</th>
            <th scope="col">Started</th>
            <th scope="col">Finished</th>
            <th scope="col">Duration</th>
          </tr>
        </thead>
        {job.tasks.map((task) => (
          <tbody key={task.taskIndex}>
            <tr class="task-row">
              <th scope="row">
                task {task.taskIndex}
                {(task.failureCount > 0 || task.preemptionCount > 0) && (
                  <span class="muted small">
                    {" "}
                    ({task.failureCount} failures, {task.preemptionCount} preemptions)
                  </span>
                )}
              </th>
              <td>
                <StateBadge state={enumName(TaskState, task.state)} />
              </td>
              <td class="mono">{task.workerId || "—"}</td>
              <td>{task.exitCode ?? "—"}</td>
              <td class="reason failure">{task.errorMessage}</td>
              <td>
                <Time at={task.startedAt} />
              </td>
              <td>
                <Time at={task.finishedAt} />
              </td>
              <td>
                <Duration start={task.startedAt} end={task.finishedAt} />
              </td>
            </tr>
            {task.attempts.map((a) => (
              <tr key={a.attemptId} class="attempt-row">
                <td class="mono small">↳ {a.attemptId}</td>
                <td>
                  <StateBadge state={enumName(TaskState, a.state)} />
                </td>
                <td class="mono">{a.workerId || "—"}</td>
                <td>{a.exitCode ?? "—"}</td>
                <td class="reason failure">{a.errorMessage}</td>
                <td>
                  <Time at={a.startedAt} />
                </td>
                <td>
                  <Time at={a.finishedAt} />
                </td>
                <td>
                  <Duration start={a.startedAt} end={a.finishedAt} />
                </td>
              </tr>
            ))}
          </tbody>
        ))}
      </table>
    </>
  );
}

/** Stops the job (TerminateJob) after the user confirms. */
function StopButton({ jobId }: { jobId: string }) {
  const session = useSession();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>(undefined);
  const stop = async () => {
    if (!confirm(`Stop job ${jobId}?`)) return;
    setBusy(true);
    setError(undefined);
    try {
      await session.client.terminateJob({ jobId, reason: "stopped from the dashboard" });
    } catch (err) {
      const refusal = refusalOf(err);
      if (refusal) return session.refused(refusal);
      setError(describeFailure("TerminateJob", err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <button type="button" class="danger" disabled={busy} onClick={() => void stop()}>
        {busy ? "stopping…" : "stop job"}
      </button>
      {error && <ErrorState message={error} />}
    </>
  );
}
