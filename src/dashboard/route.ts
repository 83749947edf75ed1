// Hash routes of the dashboard (`#/jobs`, `#/jobs/<jobId>`, `#/workers`, …),
// parsed by a pure function (use-route.ts follows the location's hash).

/** A page of the dashboard and its argument. */
export type Route =
  | { page: "jobs" }
  | { page: "job"; jobId: string }
  | { page: "workers" }
  | { page: "endpoints" }
  | { page: "groups" }
  | { page: "reservations" }
  | { page: "not-found"; path: string };

/** The route of a location hash; an empty hash is the jobs page. */
export function parseRoute(hash: string): Route {
  const path = hash.replace(/^#/, "").replace(/\/+$/, "") || "/jobs";
  const parts = path.split("/").filter(Boolean);
  const [first, second, ...rest] = parts;
  if (rest.length > 0) return { page: "not-found", path };
  switch (first) {
    case "jobs":
      return second === undefined ? { page: "jobs" } : { page: "job", jobId: decodeURIComponent(second) };
    case "workers":
    case "endpoints":
    case "groups":
    case "reservations":
      return second === undefined ? { page: first } : { page: "not-found", path };
    default:
      return { page: "not-found", path };
  }
}

/** The hash that opens a job's page. */
export function jobHref(jobId: string): string {
  return `#/jobs/${encodeURIComponent(jobId)}`;
}
