// What a job runs: a command line, or a remote function called with arguments.
import { ValidationError, describeValue } from "./errors.js";
import { isRemoteFunction, remoteRef, type RemoteFunction, type RemoteRef } from "./remote.js";

/** Runs `argv` as a process (no shell): `argv[0]` is the program. */
export interface CommandEntrypoint {
  readonly kind: "command";
  readonly argv: readonly string[];
}

/** Imports `ref.module` on the worker and calls `ref.name(...args)`. */
export interface FunctionEntrypoint {
  readonly kind: "function";
  readonly ref: RemoteRef;
  /** Arguments, encoded with the value codec when the job is launched. */
  readonly args: readonly unknown[];
}

export type Entrypoint = CommandEntrypoint | FunctionEntrypoint;

export const Entrypoint = {
  /** A command run as given, e.g. `["node", "train.js", "--steps", "10"]`. */
  fromCommand(argv: readonly string[]): CommandEntrypoint {
    if (!Array.isArray(argv) || argv.length === 0) {
      throw new ValidationError("entrypoint.argv", `must be a non-empty array of strings, got ${describeValue(argv)}`);
    }
    argv.forEach((arg, i) => {
      if (typeof arg !== "string") throw new ValidationError(`entrypoint.argv[${i}]`, `must be a string, got ${describeValue(arg)}`);
    });
    if (argv[0]?.trim() === "") throw new ValidationError("entrypoint.argv[0]", "must name a program, got an empty string");
    return Object.freeze({ kind: "command", argv: Object.freeze([...argv]) });
  },

  /** A remote function (see `remote()`) called with `args` in the job's process. */
  fromFunction<A extends unknown[], R>(fn: RemoteFunction<A, R>, ...args: A): FunctionEntrypoint {
    if (!isRemoteFunction(fn)) {
      throw new ValidationError(
        "entrypoint.fn",
        `must be a remote function: wrap it as \`export const f = remote(import.meta.url, function f() {...})\`, got ${describeValue(fn)}`,
      );
    }
    return Object.freeze({ kind: "function", ref: remoteRef(fn), args: Object.freeze([...args]) });
  },
} as const;

/** Checks an entrypoint received from elsewhere (e.g. decoded from the wire). */
export function validateEntrypoint(entrypoint: unknown, field = "entrypoint"): Entrypoint {
  if (entrypoint === null || typeof entrypoint !== "object") {
    throw new ValidationError(field, `must be built with Entrypoint.fromCommand or Entrypoint.fromFunction, got ${describeValue(entrypoint)}`);
  }
  const e = entrypoint as Record<string, unknown>;
  if (e.kind === "command") return Entrypoint.fromCommand(e.argv as string[]);
  if (e.kind === "function") {
    const ref = e.ref as Partial<RemoteRef> | undefined;
    if (!ref || typeof ref.module !== "string" || typeof ref.name !== "string" || ref.module === "" || ref.name === "") {
      throw new ValidationError(`${field}.ref`, `must name a module and a function, got ${describeValue(ref)}`);
    }
    if (!Array.isArray(e.args)) throw new ValidationError(`${field}.args`, `must be an array, got ${describeValue(e.args)}`);
    return Object.freeze({ kind: "function", ref: { module: ref.module, name: ref.name }, args: e.args });
  }
  throw new ValidationError(`${field}.kind`, `must be "command" or "function", got ${describeValue(e.kind)}`);
}
