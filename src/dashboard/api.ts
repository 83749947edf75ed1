// The dashboard's one Connect client of ControllerService (the same API as the
// CLI), the bearer token it sends (kept in sessionStorage), and how a failed
// call is told apart: refused for want of a token, or failed for another reason.
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { ControllerService } from "../rpc/gen/fluster/cluster/v1/controller_pb.js";

/** The client the pages call. */
export type ControllerClient = Client<typeof ControllerService>;

/** Where the token lives: for this tab only, gone when it closes. */
const TOKEN_KEY = "fluster.token";

/** The token signed in with, or undefined. */
export function storedToken(): string | undefined {
  return sessionStorage.getItem(TOKEN_KEY) ?? undefined;
}

/** Keeps `token` for the next calls; undefined forgets it (sign out). */
export function storeToken(token: string | undefined): void {
  if (token === undefined) sessionStorage.removeItem(TOKEN_KEY);
  else sessionStorage.setItem(TOKEN_KEY, token);
}

/** Sends `Authorization: Bearer <token>` on every call while a token is stored. */
const bearerInterceptor: Interceptor = (next) => (req) => {
  const token = storedToken();
  if (token !== undefined) req.header.set("Authorization", `Bearer ${token}`);
  return next(req);
};

/** A client of the controller that served this page (binary Connect protocol over fetch). */
export function createControllerClient(baseUrl: string = location.origin): ControllerClient {
  const transport = createConnectTransport({ baseUrl, useBinaryFormat: true, interceptors: [bearerInterceptor] });
  return createClient(ControllerService, transport);
}

/** Why the controller refused a call for want of a (right) token. */
export interface Refusal {
  /** "missing": no token was sent; "wrong": the token sent is not accepted. */
  reason: "missing" | "wrong";
  /** The controller's hint on where the token is (e.g. its token file). */
  hint: string;
}

/** The refusal in `err` when it is a Code.Unauthenticated error, else undefined. */
export function refusalOf(err: unknown): Refusal | undefined {
  const error = ConnectError.from(err);
  if (error.code !== Code.Unauthenticated) return undefined;
  // The controller says "<missing|wrong> bearer token: <hint>".
  const match = /^(missing|wrong) bearer token: (.*)$/s.exec(error.rawMessage);
  if (match) return { reason: match[1] === "wrong" ? "wrong" : "missing", hint: match[2] ?? "" };
  return { reason: storedToken() === undefined ? "missing" : "wrong", hint: error.rawMessage };
}

/** Whether `err` is the abort of a call this page ended itself. */
export function isCanceled(err: unknown): boolean {
  return ConnectError.from(err).code === Code.Canceled;
}

/** A failed call's message for an error state: the RPC that failed and why. */
export function describeFailure(rpc: string, err: unknown): string {
  const error = ConnectError.from(err);
  return `${rpc} failed (${Code[error.code] ?? error.code}): ${error.rawMessage}`;
}
