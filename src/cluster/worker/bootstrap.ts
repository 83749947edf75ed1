// The program a worker runs for a function entrypoint: resolve the remote
// function by reference, call it with the decoded arguments, and leave the
// encoded return value (or error) where the worker daemon reads it.
import { readFileSync, writeFileSync } from "node:fs";
import { resolveRemote } from "../../core/remote.js";
import { decodeValue, encodeValue } from "../../rpc/codec.js";

async function main(): Promise<void> {
  const module = process.env.FLUSTER_ENTRYPOINT_MODULE;
  const name = process.env.FLUSTER_ENTRYPOINT_NAME;
  const argsPath = process.env.FLUSTER_ENTRYPOINT_ARGS;
  const resultPath = process.env.FLUSTER_RESULT_PATH;
  if (!module || !name || !argsPath || !resultPath) {
    throw new Error("fluster bootstrap: FLUSTER_ENTRYPOINT_MODULE, _NAME, _ARGS and FLUSTER_RESULT_PATH must be set");
  }
  const args = decodeValue(readFileSync(argsPath));
  if (!Array.isArray(args)) throw new Error("fluster bootstrap: the encoded arguments are not an array");
  const fn = (await resolveRemote({ module, name })) as (...a: unknown[]) => unknown;
  const value = await fn(...args);
  writeFileSync(resultPath, encodeValue(value));
}

main().then(
  () => {
    // A function that leaves handles open (servers, timers) is done when it
    // returns; the job ends with it.
    process.exit(0);
  },
  (err: unknown) => {
    const error = err instanceof Error ? err : new Error(String(err));
    process.stderr.write(`${error.stack ?? `${error.name}: ${error.message}`}\n`);
    try {
      const resultPath = process.env.FLUSTER_RESULT_PATH;
      if (resultPath) writeFileSync(`${resultPath}.error`, encodeValue(error));
    } catch {
      // The stack on stderr is enough to diagnose.
    }
    process.exit(1);
  },
);
