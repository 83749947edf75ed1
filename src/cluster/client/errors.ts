// What a client says when it cannot talk to the controller: one table that
// turns transport failures (refused, TLS mismatch, wrong server, silence, a
// refused token) into one line that names the address and what to do.
import { connect as tlsConnect } from "node:tls";
import { Code, ConnectError } from "@connectrpc/connect";
import { FlusterError, type FlusterErrorCode } from "../../core/errors.js";
import { untrustedCertificateReason } from "../../rpc/transport.js";

/** Why a call never reached a working controller. */
export type ControllerFailureKind =
  | "refused"
  | "unresolved"
  | "unreachable"
  | "tls_to_plain"
  | "plain_to_tls"
  | "tls_untrusted"
  | "not_a_controller"
  | "a_worker"
  | "no_answer"
  | "token_missing"
  | "token_refused";

/** What the caller knows about the connection, for the message. */
export interface ControllerContext {
  /** The controller URL the client was given. */
  address: string;
  /** Where the bearer token came from, if one was sent. */
  tokenSource?: "option" | "FLUSTER_TOKEN";
  /** How long a first call waits for an answer, in seconds. */
  connectTimeoutSeconds?: number;
  /** What the server said to do about a refused token (it knows where its token file is). */
  tokenHint?: string;
  /** Why the server's certificate was refused (filled in by {@link controllerError}). */
  tlsReason?: string;
}


const START_ONE = "start one with `fluster cluster start --local`";
const TOKEN_FILE = "the token the controller wrote in its <state-dir>/token";

/** The message and code of each failure: the one place these words live. */
export function describeControllerFailure(kind: ControllerFailureKind, context: ControllerContext): { message: string; code: FlusterErrorCode } {
  const { address } = context;
  const other = (scheme: "http:" | "https:") => address.replace(/^https?:/, scheme);
  switch (kind) {
    case "refused":
      return { message: `no controller at ${address}: is it running? (${START_ONE})`, code: "unavailable" };
    case "unresolved":
      return { message: `cannot resolve the host of ${address}: check the controller URL`, code: "unavailable" };
    case "unreachable":
      return { message: `cannot reach ${address}: check the controller URL and the network`, code: "unavailable" };
    case "tls_to_plain":
      return { message: `${address} does not speak TLS: the controller serves plain HTTP, use ${other("http:")}`, code: "failed_precondition" };
    case "plain_to_tls":
      return { message: `${address} serves TLS, not plain HTTP/2: use ${other("https:")}`, code: "failed_precondition" };
    case "tls_untrusted":
      return {
        message: `the TLS certificate of ${address} is not trusted (${context.tlsReason ?? "verification failed"}): pass the CA that signed it with --tls-ca FILE or FLUSTER_TLS_CA`,
        code: "unavailable",
      };
    case "a_worker":
      return {
        message: `${address} is a Fluster worker, not a controller: use the controller's URL (the one \`fluster cluster start\` or \`fluster controller serve\` printed)`,
        code: "failed_precondition",
      };
    case "not_a_controller":
      return { message: `${address} is not a Fluster controller (it does not serve ControllerService): check the controller URL`, code: "failed_precondition" };
    case "no_answer":
      return { message: `${noAnswerPrefix(address)} ${context.connectTimeoutSeconds ?? "?"} s: is that a Fluster controller's URL? (${START_ONE})`, code: "deadline_exceeded" };
    case "token_missing":
      return { message: `the controller at ${address} requires a token: ${context.tokenHint ?? `set FLUSTER_TOKEN to ${TOKEN_FILE}`}`, code: "unauthenticated" };
    case "token_refused": {
      const given = context.tokenSource === "option" ? "the token given" : "the token in FLUSTER_TOKEN";
      return { message: `the controller at ${address} refused ${given}: ${context.tokenHint ?? `set FLUSTER_TOKEN to ${TOKEN_FILE}`}`, code: "unauthenticated" };
    }
  }
}

/**
 * The kind of a failed call, or undefined when the controller answered it
 * (a job not found, a bad request: its own message says it). A 404 from a
 * server that is not a controller is "not_a_controller"; the client may then
 * ask whether it is a worker. Whether a server that never answered plain
 * HTTP/2 speaks TLS only a probe tells ({@link speaksTls}).
 */
export function classifyControllerFailure(err: unknown, context: ControllerContext): ControllerFailureKind | undefined {
  if (messageChain(err).includes(noAnswerPrefix(context.address))) return "no_answer";
  const nodeCode = systemErrorCode(err);
  if (nodeCode === "ECONNREFUSED") return "refused";
  if (nodeCode === "ENOTFOUND" || nodeCode === "EAI_AGAIN") return "unresolved";
  if (nodeCode === "EHOSTUNREACH" || nodeCode === "ENETUNREACH" || nodeCode === "ETIMEDOUT") return "unreachable";
  if (nodeCode === "ERR_SSL_WRONG_VERSION_NUMBER" || /wrong version number/i.test(messageChain(err))) return "tls_to_plain";
  if (untrustedCertificateReason(err) !== undefined) return "tls_untrusted";
  const connect = connectErrorIn(err);
  if (!connect) return undefined;
  // A refusal of its own (a credential of an attempt that ended) keeps the controller's message.
  if (connect.code === Code.Unauthenticated && /bearer token/.test(connect.rawMessage)) return context.tokenSource ? "token_refused" : "token_missing";
  if (connect.code === Code.Unimplemented && /^HTTP 404\b/.test(connect.rawMessage)) return "not_a_controller";
  return undefined;
}

/** The failure as a FlusterError with the table's message (keeping the original as its cause), or the error itself when it is not a connection failure. */
export function controllerError(err: unknown, kind: ControllerFailureKind | undefined, context: ControllerContext): unknown {
  if (!kind) return err;
  // The server ends a token refusal with where its token is ("missing bearer token: set FLUSTER_TOKEN to the contents of …").
  const tokenHint = /bearer token: (.+)$/.exec(connectErrorIn(err)?.rawMessage ?? "")?.[1];
  const tlsReason = kind === "tls_untrusted" ? untrustedCertificateReason(err) : undefined;
  const { message, code } = describeControllerFailure(kind, { ...context, ...(tokenHint && !context.tokenHint ? { tokenHint } : {}), ...(tlsReason ? { tlsReason } : {}) });
  return new FlusterError(message, code, { cause: err });
}

/**
 * Whether the server at `address` completes a TLS handshake: asked when a
 * plain HTTP/2 client got nowhere with a server that never answered it.
 * The wait is generous, since it is only spent on a failure.
 */
export function speaksTls(address: string, timeoutMs = 5_000): Promise<boolean> {
  const url = new URL(address);
  return new Promise((resolve) => {
    const socket = tlsConnect({ host: url.hostname, port: Number(url.port || 80), rejectUnauthorized: false, ALPNProtocols: ["h2", "http/1.1"] });
    const done = (answer: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once("secureConnect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/** How the transport's first-answer deadline starts its message (rpc/transport.ts). */
function noAnswerPrefix(address: string): string {
  return `no answer from ${address} within`;
}

/** The first `code` like "ECONNREFUSED" or "ERR_SSL_…" along the cause chain. */
function systemErrorCode(err: unknown): string | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 6; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && /^[A-Z][A-Z0-9_]+$/.test(code)) return code;
  }
  return undefined;
}

function connectErrorIn(err: unknown): ConnectError | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 6; e = e.cause, depth++) if (e instanceof ConnectError) return e;
  return undefined;
}

function messageChain(err: unknown): string {
  const parts: string[] = [];
  for (let e = err, depth = 0; e instanceof Error && depth < 6; e = e.cause, depth++) parts.push(e.message);
  return parts.join(" | ");
}
