// The address a worker gives the controller and its tasks: what it was told
// (--advertise-host), else the address it binds, else — bound to a wildcard —
// this machine's primary address, chosen by a rule that is the same on every run.
import { readFileSync } from "node:fs";
import { networkInterfaces, type NetworkInterfaceInfo } from "node:os";
import { isLoopbackAddress } from "../../rpc/loopback.js";

/** `os.networkInterfaces()`'s shape: addresses by interface name, in the kernel's order. */
export type InterfaceTable = Readonly<Record<string, readonly NetworkInterfaceInfo[] | undefined>>;

/** What the machine looks like, injectable for tests. */
export interface HostNetwork {
  interfaces: InterfaceTable;
  /** The text of `/proc/net/route` ("" where there is none, e.g. macOS). */
  routeTable: string;
}

/** The advertised host and, when it is a guess others may not reach, a warning to log. */
export interface AdvertiseChoice {
  host: string;
  /** Where it came from, for the log: "--advertise-host", "the bind address", "default route via eth0", … */
  source: string;
  warning?: string;
}

/** True for addresses that bind every interface. */
export function isWildcardHost(host: string): boolean {
  return host === "0.0.0.0" || host === "::" || host === "[::]";
}

/** True for addresses only this machine reaches: an IP in 127.0.0.0/8 or ::1, or `localhost` (a name merely starting with "127." is not). */
export function isLoopbackHost(host: string): boolean {
  return host.toLowerCase() === "localhost" || isLoopbackAddress(host);
}

/**
 * The interface of the IPv4 default route in `/proc/net/route` (destination
 * and mask 0, route up; the lowest metric when there are several), if any.
 */
export function defaultRouteInterface(routeTable: string): string | undefined {
  let best: { iface: string; metric: number } | undefined;
  for (const line of routeTable.split("\n").slice(1)) {
    const [iface, destination, , flags, , , metric, mask] = line.trim().split(/\s+/);
    if (!iface || destination !== "00000000" || mask !== "00000000") continue;
    if ((Number.parseInt(flags ?? "0", 16) & 0x1) === 0) continue; // RTF_UP
    const m = Number.parseInt(metric ?? "0", 10);
    if (!best || m < best.metric) best = { iface, metric: Number.isFinite(m) ? m : 0 };
  }
  return best?.iface;
}

// `internal` is the kernel's loopback flag, so a table may stand a 127.0.0.x address in for another host.
const isUsableIpv4 = (a: NetworkInterfaceInfo) => a.family === "IPv4" && !a.internal;
const isLinkLocalIpv4 = (a: NetworkInterfaceInfo) => a.address.startsWith("169.254.");
const isGlobalIpv6 = (a: NetworkInterfaceInfo) => a.family === "IPv6" && !a.internal && !/^fe[89ab]/i.test(a.address);

/**
 * This machine's primary address, in order of preference:
 * 1. the first IPv4 address of the default route's interface;
 * 2. the first non-internal (not loopback), non-link-local IPv4 address, interfaces in the kernel's order;
 * 3. the first link-local IPv4 address (169.254/16);
 * 4. the first global IPv6 address.
 * Undefined when the machine has only loopback addresses.
 */
export function primaryAddress(network: HostNetwork): { host: string; source: string } | undefined {
  const entries = Object.entries(network.interfaces).map(([name, addrs]) => ({ name, addrs: addrs ?? [] }));
  const viaRoute = defaultRouteInterface(network.routeTable);
  if (viaRoute) {
    const address = entries.find((e) => e.name === viaRoute)?.addrs.find(isUsableIpv4);
    if (address) return { host: address.address, source: `the default route's interface ${viaRoute}` };
  }
  const rules: Array<[(a: NetworkInterfaceInfo) => boolean, string]> = [
    [(a) => isUsableIpv4(a) && !isLinkLocalIpv4(a), "IPv4 address"],
    [isUsableIpv4, "link-local IPv4 address"],
    [isGlobalIpv6, "IPv6 address"],
  ];
  for (const [fits, what] of rules) {
    for (const { name, addrs } of entries) {
      const address = addrs.find(fits);
      if (address) return { host: address.address, source: `the first ${what}, on ${name}` };
    }
  }
  return undefined;
}

/** The machine as the rule sees it: `os.networkInterfaces()` and `/proc/net/route` where readable. */
export function hostNetwork(): HostNetwork {
  let routeTable = "";
  try {
    routeTable = readFileSync("/proc/net/route", "utf8");
  } catch {
    // Not Linux, or no procfs: the first-address rules decide.
  }
  return { interfaces: networkInterfaces(), routeTable };
}

/**
 * What a worker bound to `bindHost` advertises: `advertiseHost` when given;
 * the bind address when it is a specific one; for a wildcard bind the
 * machine's {@link primaryAddress}, else 127.0.0.1 with a warning (only this
 * machine can reach it).
 */
export function chooseAdvertiseHost(bindHost: string, advertiseHost: string | undefined, network: () => HostNetwork = hostNetwork): AdvertiseChoice {
  if (advertiseHost !== undefined) return { host: advertiseHost, source: "--advertise-host" };
  if (!isWildcardHost(bindHost)) return { host: bindHost, source: "the bind address" };
  const primary = primaryAddress(network());
  if (primary) return primary;
  return {
    host: "127.0.0.1",
    source: "the loopback fallback",
    warning:
      `bound to ${bindHost}, but this machine has no address other than loopback; advertising 127.0.0.1, ` +
      "which only this machine can reach (set --advertise-host to an address the controller can reach)",
  };
}
