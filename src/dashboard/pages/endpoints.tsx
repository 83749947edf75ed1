// The endpoints page: the name → address registry of every namespace, one
// table per namespace, with the owning job and the metadata.
import { Labels } from "../components/labels.js";
import { EmptyState, ErrorState, Loading } from "../components/states.js";
import { Age, Time } from "../components/time.js";
import { jobHref } from "../route.js";
import { byNamespace } from "../summaries.js";
import { useRpc } from "../use-rpc.js";

export function EndpointsPage() {
  const { data, error } = useRpc("ListEndpoints", async (client, signal) => (await client.listEndpoints({ allNamespaces: true }, { signal })).endpoints, []);
  return (
    <section>
      <h1>Endpoints</h1>
      {error && <ErrorState message={error} />}
      {data === undefined ? (
        !error && <Loading />
      ) : data.length === 0 ? (
        <EmptyState>no endpoints registered — actor servers and jobs register theirs here</EmptyState>
      ) : (
        byNamespace(data).map(([namespace, endpoints]) => (
          <section key={namespace} aria-label={`namespace ${namespace}`}>
            <h2>
              Namespace <span class="mono">{namespace}</span>
            </h2>
            <table>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Address</th>
                  <th scope="col">Job</th>
                  <th scope="col">Metadata</th>
                  <th scope="col">Registered</th>
                  <th scope="col">Expires</th>
                </tr>
              </thead>
              <tbody>
                {endpoints.map((e) => (
                  <tr key={e.endpointId}>
                    <td>{e.name}</td>
                    <td class="mono">{e.address}</td>
                    <td class="mono">{e.jobId ? <a href={jobHref(e.jobId)}>{e.jobId}</a> : "—"}</td>
                    <td>
                      <Labels labels={e.metadata} />
                    </td>
                    <td>
                      <Age at={e.registeredAt} />
                    </td>
                    <td>{e.expiresAt ? <Time at={e.expiresAt} /> : "never"}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </section>
        ))
      )}
    </section>
  );
}
