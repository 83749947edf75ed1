// How Fluster starts its own modules in new node processes. Installed, Fluster
// runs from dist/ (built JavaScript), so its processes need no loader; from a
// checkout (tests, development) it runs from src/ through tsx. Processes that
// import *user* modules by reference get tsx either way, since user code may
// be TypeScript.
import { fileURLToPath } from "node:url";

/**
 * tsx's ESM loader as an absolute file URL for `node --import`, resolved from
 * Fluster's own dependencies: a bare `--import tsx` would be resolved from the
 * child's working directory (a job's workspace), which need not have tsx.
 */
export const TSX_LOADER: string = import.meta.resolve("tsx");

/**
 * The `node` arguments that run Fluster's module `specifier` (relative to
 * `from`, an `import.meta.url`, and written without an extension): the file
 * with `from`'s own extension, so `.ts` under src/ and `.js` under dist/, after
 * `--import` of tsx's loader when that file is TypeScript or, with
 * `importsUserCode`, when the process imports user modules.
 */
export function nodeEntryArgs(from: string, specifier: string, options: { importsUserCode?: boolean } = {}): string[] {
  const extension = /\.[cm]?[jt]s$/.exec(new URL(from).pathname)?.[0] ?? ".js";
  const file = fileURLToPath(new URL(`${specifier}${extension}`, from));
  return extension.endsWith("ts") || options.importsUserCode ? ["--import", TSX_LOADER, file] : [file];
}
