// The `platforms.ssh` section of a cluster config: the hosts the ssh platform
// may start workers on, and how it logs in and where it installs fluster there.
import { ValidationError, describeValue } from "../../../core/errors.js";
import { checkOneOf, checkPlainObject, checkPort, checkString } from "../../../core/validate.js";

/** How `ssh` treats a host key it has not seen (its `StrictHostKeyChecking`). */
export const HOST_KEY_CHECKING = ["accept-new", "yes", "no"] as const;
export type HostKeyChecking = (typeof HOST_KEY_CHECKING)[number];

/** One machine the ssh platform may use: one VM, one worker at a time. */
export interface SshHost {
  /** The name or address `ssh` connects to. */
  host: string;
  /** The login user. @default ssh's own (the local user, or `~/.ssh/config`'s) */
  user?: string;
  /** The SSH port. @default ssh's own (22, or `~/.ssh/config`'s) */
  port?: number;
  /** The private key to log in with. @default the section's `identityFile`, else ssh's own */
  identityFile?: string;
  /** The address the controller and other hosts reach its worker at. @default `host` */
  advertiseHost?: string;
}

/** Settings of the ssh platform. */
export interface SshSettings {
  /** The hosts, at least one; a scale group of this platform has at most this many VMs up. */
  hosts: SshHost[];
  /** The private key for every host that names none. @default ssh's own (`~/.ssh/id_*`, the agent) */
  identityFile?: string;
  /** The node command on the hosts (Node ≥ 20). @default "node" */
  node: string;
  /** Where on the hosts the fluster package is installed, one folder per build. @default "~/.cache/fluster/install" */
  installDir: string;
  /** Where on the hosts the workers keep their work dirs, logs and `vm.json`. @default "~/.cache/fluster/vms" */
  workDir: string;
  /** The known_hosts file here that holds the hosts' keys. @default `<controller state dir>/platforms/ssh/known_hosts` */
  knownHostsFile?: string;
  /** Whether a host whose key is not in `knownHostsFile` is refused (`yes`), trusted once and remembered (`accept-new`), or always trusted (`no`). @default "accept-new" */
  strictHostKeyChecking: HostKeyChecking;
}

const KEYS = ["hosts", "identityFile", "node", "installDir", "workDir", "knownHostsFile", "strictHostKeyChecking"];
const HOST_KEYS = ["host", "user", "port", "identityFile", "advertiseHost"];
/** A host name or address ssh takes as one argument: no spaces, no leading dash (an option), no `@` (the user is its own key). */
const HOST_NAME = /^[A-Za-z0-9_.:[\]%-]+$/;
const USER_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

/** Checks `platforms.ssh`; throws a ValidationError naming the key. */
export function checkSshSettings(section: Readonly<Record<string, unknown>>, field: string): SshSettings {
  for (const key of Object.keys(section)) if (!KEYS.includes(key)) throw new ValidationError(`${field}.${key}`, `is not a known key (known: ${KEYS.join(", ")})`);
  const list = section.hosts;
  if (list === undefined) throw new ValidationError(`${field}.hosts`, "is required: the ssh platform needs at least one host");
  if (!Array.isArray(list) || list.length === 0) throw new ValidationError(`${field}.hosts`, `must be a list of at least one host, got ${describeValue(list)}`);
  const hosts = list.map((entry, i) => checkHost(entry, `${field}.hosts[${i}]`));
  const seen = new Map<string, number>();
  hosts.forEach((host, i) => {
    const key = `${host.user ?? ""}@${host.host}:${host.port ?? ""}`;
    const first = seen.get(key);
    if (first !== undefined) throw new ValidationError(`${field}.hosts[${i}].host`, `repeats ${field}.hosts[${first}] (${host.host}): each host runs one worker`);
    seen.set(key, i);
  });
  const optionalPath = (key: string): string | undefined => (section[key] === undefined ? undefined : checkString(section[key], `${field}.${key}`, { nonEmpty: true }));
  const identityFile = optionalPath("identityFile");
  const knownHostsFile = optionalPath("knownHostsFile");
  return {
    hosts,
    ...(identityFile !== undefined ? { identityFile } : {}),
    node: optionalPath("node") ?? "node",
    installDir: optionalPath("installDir") ?? "~/.cache/fluster/install",
    workDir: optionalPath("workDir") ?? "~/.cache/fluster/vms",
    ...(knownHostsFile !== undefined ? { knownHostsFile } : {}),
    strictHostKeyChecking: section.strictHostKeyChecking === undefined ? "accept-new" : checkOneOf(section.strictHostKeyChecking, `${field}.strictHostKeyChecking`, HOST_KEY_CHECKING),
  };
}

function checkHost(value: unknown, field: string): SshHost {
  // A bare string is a host with ssh's defaults: `hosts: [a.example.com, b.example.com]`.
  const entry = typeof value === "string" ? { host: value } : checkPlainObject(value, field);
  for (const key of Object.keys(entry)) if (!HOST_KEYS.includes(key)) throw new ValidationError(`${field}.${key}`, `is not a known key (known: ${HOST_KEYS.join(", ")})`);
  if (entry.host === undefined) throw new ValidationError(`${field}.host`, "is required");
  const host = checkString(entry.host, `${field}.host`, { nonEmpty: true });
  if (!HOST_NAME.test(host) || host.startsWith("-")) throw new ValidationError(`${field}.host`, `must be a host name or address (put the user in \`user\`, the port in \`port\`), got ${describeValue(host)}`);
  const out: SshHost = { host };
  if (entry.user !== undefined) {
    const user = checkString(entry.user, `${field}.user`, { nonEmpty: true });
    if (!USER_NAME.test(user)) throw new ValidationError(`${field}.user`, `must be a login name, got ${describeValue(user)}`);
    out.user = user;
  }
  if (entry.port !== undefined) {
    const port = checkPort(entry.port, `${field}.port`);
    if (port === 0) throw new ValidationError(`${field}.port`, "must be a port from 1 to 65535, got 0");
    out.port = port;
  }
  if (entry.identityFile !== undefined) out.identityFile = checkString(entry.identityFile, `${field}.identityFile`, { nonEmpty: true });
  if (entry.advertiseHost !== undefined) {
    const advertise = checkString(entry.advertiseHost, `${field}.advertiseHost`, { nonEmpty: true });
    if (!HOST_NAME.test(advertise)) throw new ValidationError(`${field}.advertiseHost`, `must be a host name or address, got ${describeValue(advertise)}`);
    out.advertiseHost = advertise;
  }
  return out;
}
