// The dashboard's shell: the header with navigation, the controller's address
// and the live feed's state; the page of the current hash route; and the
// sign-in view, shown instead of every page while the controller refuses us.
import { useEffect, useMemo, useState } from "preact/hooks";
import { createControllerClient, storedToken, storeToken, type Refusal } from "./api.js";
import { SignIn } from "./components/sign-in.js";
import { followCluster } from "./live.js";
import { EndpointsPage } from "./pages/endpoints.js";
import { GroupsPage } from "./pages/groups.js";
import { JobPage } from "./pages/job.js";
import { JobsPage } from "./pages/jobs.js";
import { ReservationsPage } from "./pages/reservations.js";
import { WorkersPage } from "./pages/workers.js";
import type { Route } from "./route.js";
import { useRoute } from "./use-route.js";
import { SessionContext, type Session } from "./session.js";

/** The navigation: label and hash of each list page. */
const NAV: ReadonlyArray<{ label: string; href: string; pages: ReadonlyArray<Route["page"]> }> = [
  { label: "Jobs", href: "#/jobs", pages: ["jobs", "job"] },
  { label: "Workers", href: "#/workers", pages: ["workers"] },
  { label: "Endpoints", href: "#/endpoints", pages: ["endpoints"] },
  { label: "Groups", href: "#/groups", pages: ["groups"] },
  { label: "Reservations", href: "#/reservations", pages: ["reservations"] },
];

/** The live feed's state, shown in the header. */
type FeedState = "connecting" | "live" | "reconnecting";

export function App() {
  const route = useRoute();
  // A new epoch (sign in, sign out) starts a fresh client, feed and pages.
  const [epoch, setEpoch] = useState(0);
  const [refusal, setRefusal] = useState<Refusal | undefined>(undefined);
  const [feed, setFeed] = useState<{ state: FeedState; revision: bigint | undefined; now: Date }>({ state: "connecting", revision: undefined, now: new Date() });
  const client = useMemo(() => createControllerClient(), [epoch]);

  const refused = (r: Refusal) => {
    // A token that was refused is forgotten: the next try starts clean.
    if (r.reason === "wrong") storeToken(undefined);
    setRefusal(r);
  };

  useEffect(() => {
    if (refusal) return;
    const abort = new AbortController();
    setFeed({ state: "connecting", revision: undefined, now: new Date() });
    void followCluster(
      client,
      {
        onMessage: (revision, now) => setFeed({ state: "live", revision, now }),
        onDisconnected: () => setFeed((last) => ({ ...last, state: "reconnecting" })),
        onRefused: refused,
      },
      abort.signal,
    );
    return () => abort.abort();
  }, [client, refusal]);

  const signIn = (token: string) => {
    storeToken(token);
    setRefusal(undefined);
    setEpoch((n) => n + 1);
  };
  const signOut = () => {
    storeToken(undefined);
    setEpoch((n) => n + 1);
  };

  const session: Session = { client, revision: feed.revision, now: feed.now, connected: feed.state === "live", refused };
  return (
    <>
      <header class="top">
        <a class="brand" href="#/jobs">
          Fluster
        </a>
        {!refusal && (
          <nav aria-label="pages">
            {NAV.map((item) => (
              <a key={item.href} href={item.href} aria-current={item.pages.includes(route.page) ? "page" : undefined}>
                {item.label}
              </a>
            ))}
          </nav>
        )}
        <span class="spacer" />
        {!refusal && <FeedIndicator state={feed.state} />}
        <span class="muted mono" title="the controller this dashboard reads">
          {location.host}
        </span>
        {!refusal && storedToken() !== undefined && (
          <a
            href="#"
            onClick={(e) => {
              e.preventDefault();
              signOut();
            }}
          >
            sign out
          </a>
        )}
      </header>
      <main>
        {refusal ? (
          <SignIn refusal={refusal} onSubmit={signIn} />
        ) : (
          <SessionContext.Provider value={session}>
            <Page key={epoch} route={route} />
          </SessionContext.Provider>
        )}
      </main>
    </>
  );
}

function FeedIndicator({ state }: { state: FeedState }) {
  const text = state === "live" ? "live" : state === "connecting" ? "connecting…" : "reconnecting…";
  return (
    <span class={`feed feed-${state}`} role="status" data-testid="feed">
      {text}
    </span>
  );
}

function Page({ route }: { route: Route }) {
  switch (route.page) {
    case "jobs":
      return <JobsPage />;
    case "job":
      return <JobPage key={route.jobId} jobId={route.jobId} />;
    case "workers":
      return <WorkersPage />;
    case "endpoints":
      return <EndpointsPage />;
    case "groups":
      return <GroupsPage />;
    case "reservations":
      return <ReservationsPage />;
    case "not-found":
      return (
        <section>
          <h1>Not found</h1>
          <p>
            There is no page at <code>#{route.path}</code>. <a href="#/jobs">Back to the jobs</a>.
          </p>
        </section>
      );
  }
}
