// A program a child process runs to call one remote function by reference:
// `node --import tsx remote-bootstrap.ts '<request JSON>'` (or the request on stdin).
// The call itself (runRemoteCall) is separate from the I/O, which a real codec will replace.
import { text } from "node:stream/consumers";
import { isMain, resolveRemote, type RemoteRef, type ResolveRemoteOptions } from "./remote.js";

/** What to call: a reference, its arguments, and where the workspace moved to. */
export interface RemoteCallRequest {
  readonly ref: RemoteRef;
  readonly args: readonly unknown[];
  readonly rebase?: ResolveRemoteOptions["rebase"];
}

/** A thrown value, flattened to what survives JSON. */
export interface RemoteCallFailure {
  readonly name: string;
  readonly message: string;
  readonly code?: string;
  readonly stack?: string;
}

export type RemoteCallOutcome = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly error: RemoteCallFailure };

/** Marks the outcome line, so whatever the called function prints on stdout cannot be mistaken for it. */
export const OUTCOME_PREFIX = "@@fluster-outcome@@ ";

/** Resolves and calls the function; never throws: resolution and call failures both become an outcome. */
export async function runRemoteCall(request: RemoteCallRequest): Promise<RemoteCallOutcome> {
  try {
    const fn = await resolveRemote(request.ref, request.rebase ? { rebase: request.rebase } : {});
    const value: unknown = await fn(...request.args);
    return { ok: true, value };
  } catch (err) {
    return { ok: false, error: describeFailure(err) };
  }
}

/** Reads the outcome back from a bootstrap child's stdout; undefined when the child died before writing one. */
export function parseOutcome(stdout: string): RemoteCallOutcome | undefined {
  const line = stdout
    .split("\n")
    .reverse()
    .find((l) => l.startsWith(OUTCOME_PREFIX));
  return line === undefined ? undefined : (JSON.parse(line.slice(OUTCOME_PREFIX.length)) as RemoteCallOutcome);
}

function describeFailure(err: unknown): RemoteCallFailure {
  if (!(err instanceof Error)) return { name: "Error", message: String(err) };
  const code = (err as { code?: unknown }).code;
  return {
    name: err.name,
    message: err.message,
    ...(typeof code === "string" ? { code } : {}),
    ...(err.stack !== undefined ? { stack: err.stack } : {}),
  };
}

async function main(): Promise<void> {
  const raw = process.argv[2] ?? (await text(process.stdin));
  let outcome: RemoteCallOutcome;
  try {
    outcome = await runRemoteCall(JSON.parse(raw) as RemoteCallRequest);
  } catch (err) {
    outcome = { ok: false, error: describeFailure(err) };
  }
  // Exit once the outcome is flushed: the function has returned, so timers or
  // sockets it left open must not keep the task alive.
  let line: string;
  try {
    line = JSON.stringify(outcome);
  } catch (err) {
    outcome = { ok: false, error: describeFailure(err) };
    line = JSON.stringify(outcome);
  }
  const exitCode = outcome.ok ? 0 : 1;
  process.stdout.write(`\n${OUTCOME_PREFIX}${line}\n`, () => process.exit(exitCode));
}

if (isMain(import.meta)) await main();
