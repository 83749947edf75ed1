// How `fluster` reports: machine-readable JSON on stdout, and every error as
// exactly one line on stderr followed by a non-zero exit (SPEC §4).
import { CommanderError } from "commander";
import { FlusterError } from "../core/errors.js";

/** An error for the person at the terminal: its message is shown as is, and the process exits with `exitCode`. */
export class CliError extends Error {
  override name = "CliError";
  /** Process exit status. @default 1 */
  readonly exitCode: number;

  constructor(message: string, exitCode = 1) {
    super(message);
    this.exitCode = exitCode;
  }
}

/** Writes `value` as indented JSON and a newline to stdout (`--json`). */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/**
 * Renders an error as one line: `fluster: <message>` with newlines folded into
 * spaces. Errors Fluster throws on purpose read well as they are; any other
 * keeps its class name (`TypeError: …`), often the only clue to a bug. Set
 * FLUSTER_DEBUG=1 to see the stack as well.
 */
export function errorLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const expected = err instanceof CliError || err instanceof FlusterError;
  const shown = err instanceof Error && !expected && err.name !== "Error" ? `${err.name}: ${message}` : message;
  return `fluster: ${oneLine(shown)}`;
}

/** Folds any run of whitespace containing a newline into a single space. */
export function oneLine(text: string): string {
  return text.trim().replace(/\s*\n\s*/g, " ");
}

/** The exit status for a thrown error: its own when it carries one, else 1. */
export function exitCodeOf(err: unknown): number {
  if (err instanceof CliError || err instanceof CommanderError) return err.exitCode;
  return 1;
}

/** Prints `message` as one line on stderr and exits with `exitCode` (non-zero). */
export function fail(message: string, exitCode = 1): never {
  process.stderr.write(`${oneLine(message)}\n`);
  process.exit(exitCode === 0 ? 1 : exitCode);
}

/**
 * Ends the process for an error thrown while running a command. Commander has
 * already printed its own errors (and help or version, which exit 0), so those
 * only set the status; anything else is printed with {@link errorLine}.
 */
export function exitWithError(err: unknown): never {
  if (err instanceof CommanderError) process.exit(err.exitCode);
  if (process.env.FLUSTER_DEBUG && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
  fail(errorLine(err), exitCodeOf(err));
}
