// Whether a bind address keeps a server on this machine, decided from the
// addresses a host name resolves to, never from how the name is spelt:
// `localhost.example` may resolve to a public address, `127.0.0.2` is loopback.
import { lookup } from "node:dns/promises";
import { BlockList, isIP } from "node:net";

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet("127.0.0.0", 8, "ipv4");
LOOPBACK.addAddress("::1", "ipv6");
// An IPv4-mapped IPv6 loopback address (::ffff:127.0.0.1) as a dual-stack socket reports it.
LOOPBACK.addSubnet("::ffff:127.0.0.0", 104, "ipv6");

/** True for an IP address (v4 or v6, brackets allowed) in 127.0.0.0/8 or ::1. */
export function isLoopbackAddress(address: string): boolean {
  const ip = address.replace(/^\[(.*)\]$/, "$1");
  const family = isIP(ip);
  if (family === 0) return false;
  return LOOPBACK.check(ip, family === 4 ? "ipv4" : "ipv6");
}

/** Every address a host name resolves to (`dns.lookup` with `all`); tests pass a table. */
export type HostResolver = (host: string) => Promise<readonly { address: string }[]>;

/**
 * True when every address `host` resolves to is a loopback address (a
 * literal IP is taken as it is). A name that does not resolve is not
 * loopback: binding it fails anyway.
 */
export async function resolvesToLoopback(host: string, resolve: HostResolver = (name) => lookup(name, { all: true })): Promise<boolean> {
  const literal = host.replace(/^\[(.*)\]$/, "$1");
  if (isIP(literal) !== 0) return isLoopbackAddress(literal);
  let addresses: readonly { address: string }[];
  try {
    addresses = await resolve(literal);
  } catch {
    return false;
  }
  return addresses.length > 0 && addresses.every((a) => isLoopbackAddress(a.address));
}
