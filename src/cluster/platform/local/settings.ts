// The `platforms.local` section of a cluster config: where the local
// platform's worker processes keep their files.
import { ValidationError } from "../../../core/errors.js";
import { checkString } from "../../../core/validate.js";

/** Settings of the local platform. */
export interface LocalSettings {
  /** Where worker processes keep their work dirs, logs and pid files. @default `<controller state dir>/platforms/local` */
  workDir?: string;
}

const KEYS = ["workDir"];

/** Checks `platforms.local`; throws a ValidationError naming the key. */
export function checkLocalSettings(section: Readonly<Record<string, unknown>>, field: string): LocalSettings {
  for (const key of Object.keys(section)) if (!KEYS.includes(key)) throw new ValidationError(`${field}.${key}`, `is not a known key (known: ${KEYS.join(", ")})`);
  return section.workDir === undefined ? {} : { workDir: checkString(section.workDir, `${field}.workDir`, { nonEmpty: true }) };
}
