// Where and with what a job runs: its workspace, packages and environment.
import { ValidationError, describeValue } from "./errors.js";
import { checkPlainObject, checkString, checkStringArray } from "./validate.js";

/** The environment a job's process runs in. */
export interface EnvironmentConfig {
  /** Directory the job runs in and imports its code from. @default the launching process's working directory */
  workspace?: string;
  /**
   * npm package specs installed on the worker before the job starts, over the
   * workspace's own dependencies, e.g. `["lodash@4"]`. @default []
   */
  packages?: readonly string[];
  /** Extra environment variables. @default {} */
  envVars?: Readonly<Record<string, string>>;
  /** Optional feature groups the job needs (platform specific). Not supported yet: must be empty. @default [] */
  extras?: readonly string[];
  /** Container image, for platforms that run containers. Not supported yet: a job that sets it is refused. */
  image?: string;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Validates an EnvironmentConfig (seed 000 Task 4) and returns a frozen copy. */
export function validateEnvironment(env: unknown, field = "environment"): EnvironmentConfig {
  const e = checkPlainObject(env ?? {}, field) as Record<string, unknown>;
  const out: EnvironmentConfig = {};
  if (e.workspace !== undefined) out.workspace = checkString(e.workspace, `${field}.workspace`, { nonEmpty: true });
  if (e.packages !== undefined) out.packages = Object.freeze(checkStringArray(e.packages, `${field}.packages`));
  if (e.extras !== undefined) {
    const extras = checkStringArray(e.extras, `${field}.extras`);
    // Refused rather than ignored: a job that needs a feature group must not run without it.
    if (extras.length > 0) {
      throw new ValidationError(`${field}.extras`, `are not supported yet: feature groups come with the platforms work; remove them (got ${describeValue(extras)})`);
    }
    out.extras = Object.freeze(extras);
  }
  if (e.image !== undefined) {
    const image = checkString(e.image, `${field}.image`, { nonEmpty: true });
    throw new ValidationError(`${field}.image`, `is not supported yet: container images come with the Docker runtime (the platforms work); remove it (got ${describeValue(image)})`);
  }
  if (e.envVars !== undefined) out.envVars = Object.freeze(validateEnvVars(e.envVars, `${field}.envVars`));
  return Object.freeze(out);
}

/** Checks environment variables: names like `MY_VAR`, string values. */
export function validateEnvVars(vars: unknown, field: string): Record<string, string> {
  if (vars instanceof Map) {
    throw new ValidationError(field, "must be a plain object, got Map");
  }
  const record = checkPlainObject(vars, field);
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(record)) {
    if (!ENV_NAME.test(key)) {
      throw new ValidationError(`${field} key`, `must be a variable name (letters, digits, _; not starting with a digit), got ${describeValue(key)}`);
    }
    if (typeof value !== "string") {
      throw new ValidationError(`${field}.${key}`, `must be a string, got ${describeValue(value)}`);
    }
    out[key] = value;
  }
  return out;
}
