// Reads a page's data with unary RPCs, again whenever the live feed's revision
// changes (no polling), keeping the last answer on screen while re-reading.
// One call is in flight at a time; changes meanwhile fold into one more call.
import { useEffect, useRef, useState } from "preact/hooks";
import { describeFailure, isCanceled, refusalOf, type ControllerClient } from "./api.js";
import { useSession } from "./session.js";

/** A page's data as last read. */
export interface RpcData<T> {
  /** The last answer; undefined until the first one. */
  data: T | undefined;
  /** The last failure naming the RPC, cleared by the next answer. */
  error: string | undefined;
}

/**
 * Calls `load` on mount, when `deps` change and when the cluster's revision
 * changes. `rpc` names the call for error states ("ListJobs"). An answer to a
 * call made before `deps` last changed is dropped (a filter's old rows never
 * come back); a slow call is never overtaken by its successor, so a busy
 * cluster cannot keep a page from showing anything.
 */
export function useRpc<T>(rpc: string, load: (client: ControllerClient, signal: AbortSignal) => Promise<T>, deps: readonly unknown[]): RpcData<T> {
  const session = useSession();
  const [state, setState] = useState<RpcData<T>>({ data: undefined, error: undefined });
  const latest = useRef(load);
  latest.current = load;
  /** Bumped when deps change: answers asked with older deps are dropped. */
  const version = useRef(0);
  const flight = useRef({ running: false, again: false });
  const unmounted = useRef(new AbortController());
  useEffect(() => () => unmounted.current.abort(), []);

  const run = (): void => {
    const f = flight.current;
    if (f.running) {
      f.again = true;
      return;
    }
    f.running = true;
    const asked = version.current;
    const signal = unmounted.current.signal;
    latest
      .current(session.client, signal)
      .then(
        (data) => {
          if (asked === version.current) setState({ data, error: undefined });
        },
        (err: unknown) => {
          if (signal.aborted || isCanceled(err)) return;
          const refusal = refusalOf(err);
          if (refusal) session.refused(refusal);
          else if (asked === version.current) setState((last) => ({ data: last.data, error: describeFailure(rpc, err) }));
        },
      )
      .finally(() => {
        f.running = false;
        if (f.again && !signal.aborted) {
          f.again = false;
          run();
        }
      });
  };
  // Declared before the loading effect, so it runs first when deps change.
  useEffect(() => {
    version.current++;
  }, deps);
  useEffect(run, [session.client, session.revision, ...deps]);
  return state;
}
