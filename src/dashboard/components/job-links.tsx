// A list of job ids, each a link to its job's page (a group's jobs, a reservation's).
import { jobHref } from "../route.js";

/** Props of {@link JobLinks}. */
export interface JobLinksProps {
  jobIds: readonly string[];
}

export function JobLinks({ jobIds }: JobLinksProps) {
  if (jobIds.length === 0) return <span class="muted">—</span>;
  return (
    <ul class="plain">
      {jobIds.map((id) => (
        <li key={id}>
          <a class="mono" href={jobHref(id)}>
            {id}
          </a>
        </li>
      ))}
    </ul>
  );
}
