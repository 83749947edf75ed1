// Where the repository is, for tests that run its programs.
import { fileURLToPath } from "node:url";

/** The repository root (ends with a slash): the working directory of the programs tests run. */
export const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
