// What every page shares: the client, the live feed's latest revision and
// controller time, and the way to report that the controller refused the token.
import { createContext } from "preact";
import { useContext } from "preact/hooks";
import type { ControllerClient, Refusal } from "./api.js";

/** The signed-in view of the controller. */
export interface Session {
  readonly client: ControllerClient;
  /** The state revision last streamed; undefined before the first message. */
  readonly revision: bigint | undefined;
  /** The controller's clock at the last message (ages are measured against it, never the browser's clock). */
  readonly now: Date;
  /** Whether the live feed is connected. */
  readonly connected: boolean;
  /** Reports a refused call: the app then shows the sign-in view instead of any data. */
  refused(refusal: Refusal): void;
}

/** Provided by the app around the page; undefined outside it. */
export const SessionContext = createContext<Session | undefined>(undefined);

/** The session of the enclosing app. */
export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error("useSession() outside the dashboard's SessionContext");
  return session;
}
