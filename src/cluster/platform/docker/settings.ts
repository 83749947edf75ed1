// The `platforms.docker` section of a cluster config: which image the docker
// platform's containers run, which `docker` command it drives, and extra
// `docker run` flags.
import { ValidationError } from "../../../core/errors.js";
import { checkString, checkStringArray } from "../../../core/validate.js";

/** Settings of the docker platform. */
export interface DockerSettings {
  /**
   * The image every VM's container runs; it must hold node and the fluster
   * package at `/opt/fluster` (what `ensureWorkerImage` builds), and is never
   * pulled. @default the worker image, built on demand from this machine's node and fluster
   */
  image?: string;
  /** The `docker` command (a name on PATH or a path). @default "docker" */
  docker?: string;
  /**
   * More `docker run` flags for every VM's container (`--ulimit`, `-v`,
   * `--log-opt`), placed before the image. Networking, the name, labels and
   * resource limits are the platform's own and may not be set here. @default none
   */
  extraRunArgs?: string[];
}

const KEYS = ["image", "docker", "extraRunArgs"];
/** `docker run` flags the platform sets itself: host networking is a rule, the rest make the container a VM it can find again. */
const OWN_FLAGS = ["--network", "--net", "--name", "--label", "-l", "--cpus", "--memory", "-m", "--memory-swap", "--rm", "-d", "--detach", "--restart", "--pull", "--init"];

/** Checks `platforms.docker`; throws a ValidationError naming the key. */
export function checkDockerSettings(section: Readonly<Record<string, unknown>>, field: string): DockerSettings {
  for (const key of Object.keys(section)) if (!KEYS.includes(key)) throw new ValidationError(`${field}.${key}`, `is not a known key (known: ${KEYS.join(", ")})`);
  const settings: DockerSettings = {};
  if (section.image !== undefined) settings.image = checkString(section.image, `${field}.image`, { nonEmpty: true });
  if (section.docker !== undefined) settings.docker = checkString(section.docker, `${field}.docker`, { nonEmpty: true });
  if (section.extraRunArgs !== undefined) {
    const args = checkStringArray(section.extraRunArgs, `${field}.extraRunArgs`);
    args.forEach((arg, i) => {
      const flag = arg.split("=")[0] as string;
      if (OWN_FLAGS.includes(flag)) throw new ValidationError(`${field}.extraRunArgs[${i}]`, `may not set ${flag}: the docker platform sets it itself`);
    });
    settings.extraRunArgs = args;
  }
  return settings;
}
