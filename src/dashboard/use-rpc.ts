// Reads a page's data with unary RPCs, again whenever the live feed's revision
// changes (no polling), keeping the last answer on screen while re-reading.
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
 * changes. `rpc` names the call for error states ("ListJobs").
 */
export function useRpc<T>(rpc: string, load: (client: ControllerClient, signal: AbortSignal) => Promise<T>, deps: readonly unknown[]): RpcData<T> {
  const session = useSession();
  const [state, setState] = useState<RpcData<T>>({ data: undefined, error: undefined });
  const sequence = useRef(0);
  const unmounted = useRef(new AbortController());
  useEffect(() => () => unmounted.current.abort(), []);
  useEffect(() => {
    const call = ++sequence.current;
    load(session.client, unmounted.current.signal).then(
      (data) => {
        if (call === sequence.current) setState({ data, error: undefined });
      },
      (err: unknown) => {
        if (call !== sequence.current || isCanceled(err)) return;
        const refusal = refusalOf(err);
        if (refusal) session.refused(refusal);
        else setState((last) => ({ data: last.data, error: describeFailure(rpc, err) }));
      },
    );
    // eslint-disable-next-line react-hooks/exhaustive-deps -- load is re-created each render; deps say when it changes
  }, [session.client, session.revision, ...deps]);
  return state;
}
