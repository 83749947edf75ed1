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
  /**
   * Docker image to run the job's tasks in, e.g. `"python:3.12"` or
   * `"registry.example.com/team/trainer@sha256:…"`: the worker runs each
   * attempt in a container of it (host network, the task's cpu and memory as
   * limits, the workspace, environment and attempt directories mounted at
   * the same paths). The image must already be on the worker (workers do not
   * pull), and a function job's image needs `node` on its PATH.
   * @default none: the task runs as a process on the worker
   */
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
  if (e.image !== undefined) out.image = validateImageReference(e.image, `${field}.image`);
  if (e.envVars !== undefined) out.envVars = Object.freeze(validateEnvVars(e.envVars, `${field}.envVars`));
  return Object.freeze(out);
}

/**
 * Docker's reference grammar, in short: an optional registry host (with a
 * port), lowercase path components, then a `:tag` and/or an `@algo:digest`.
 */
const IMAGE_REFERENCE =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]+)?\/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@[a-z0-9]+(?:[+._-][a-z0-9]+)*:[0-9a-fA-F]{32,})?$/;

/** Checks a Docker image reference (`name[:tag][@digest]`); it becomes an argument of `docker run`, so nothing else passes. */
export function validateImageReference(image: unknown, field: string): string {
  const text = checkString(image, field, { nonEmpty: true });
  if (text.length > 512 || !IMAGE_REFERENCE.test(text)) {
    throw new ValidationError(field, `must be a Docker image reference like "node:20" or "registry.example.com/team/app@sha256:<digest>", got ${describeValue(text)}`);
  }
  return text;
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
