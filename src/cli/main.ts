// Entry point of the `fluster` command (bin/fluster.js imports it): importing
// this module parses process.argv and runs the chosen command.
import { actions } from "./commands.js";
import { exitWithError } from "./output.js";
import { buildProgram } from "./program.js";

// `fluster job list | head` closes stdout early; that is not an error.
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code === "EPIPE") process.exit(process.exitCode ?? 0);
  exitWithError(err);
});

try {
  await buildProgram(actions).parseAsync(process.argv);
  // Commands that wait (servers, job run) return when done; the rest must not
  // linger on idle connections.
  process.exit(process.exitCode ?? 0);
} catch (err) {
  exitWithError(err);
}
