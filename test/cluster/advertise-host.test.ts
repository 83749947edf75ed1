// The address a worker advertises, decided from an injected interfaces table
// and route table: no sockets.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { NetworkInterfaceInfo } from "node:os";
import { chooseAdvertiseHost, defaultRouteInterface, primaryAddress, type HostNetwork, type InterfaceTable } from "../../src/cluster/worker/advertise-host.js";

function ipv4(address: string, internal = false): NetworkInterfaceInfo {
  return { address, netmask: "255.255.255.0", family: "IPv4", mac: "00:00:00:00:00:00", internal, cidr: `${address}/24` };
}
function ipv6(address: string, internal = false): NetworkInterfaceInfo {
  return { address, netmask: "ffff:ffff:ffff:ffff::", family: "IPv6", mac: "00:00:00:00:00:00", internal, cidr: `${address}/64`, scopeid: 0 };
}
const lo = [ipv4("127.0.0.1", true), ipv6("::1", true)];

const ROUTE_HEADER = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT";
/** A /proc/net/route line: default route (destination and mask 0) unless told otherwise. */
function route(iface: string, options: { metric?: number; flags?: string; destination?: string; mask?: string } = {}): string {
  return [iface, options.destination ?? "00000000", "0100000A", options.flags ?? "0003", "0", "0", String(options.metric ?? 0), options.mask ?? "00000000", "0", "0", "0"].join("\t");
}
const network = (interfaces: InterfaceTable, routes: string[] = []): HostNetwork => ({ interfaces, routeTable: [ROUTE_HEADER, ...routes].join("\n") + "\n" });

describe("defaultRouteInterface", () => {
  test("the up default route with the lowest metric; other routes and down ones are ignored", () => {
    const table = network({}, [
      route("docker0", { destination: "000011AC", mask: "0000FFFF", flags: "0001" }),
      route("wlan0", { metric: 600 }),
      route("eth0", { metric: 100 }),
      route("tun0", { metric: 0, flags: "0002" }), // not RTF_UP
    ]).routeTable;
    assert.equal(defaultRouteInterface(table), "eth0");
  });

  test("no default route, an empty or unreadable table: none", () => {
    assert.equal(defaultRouteInterface(network({}, [route("docker0", { destination: "000011AC", mask: "0000FFFF" })]).routeTable), undefined);
    assert.equal(defaultRouteInterface(""), undefined);
    assert.equal(defaultRouteInterface("garbage\nmore garbage"), undefined);
  });
});

describe("primaryAddress", () => {
  test("the default route's interface wins over interfaces listed before it", () => {
    const interfaces = { lo, docker0: [ipv4("172.17.0.1")], eth0: [ipv6("2001:db8::5"), ipv4("10.0.0.5"), ipv4("10.0.0.6")] };
    assert.deepEqual(primaryAddress(network(interfaces, [route("eth0")])), { host: "10.0.0.5", source: "the default route's interface eth0" });
  });

  test("without a usable default route: the first non-internal IPv4 address, in the table's order", () => {
    const interfaces = { lo, eth1: [ipv6("2001:db8::1")], eth0: [ipv4("169.254.3.4"), ipv4("192.168.1.7")], eth2: [ipv4("10.1.1.1")] };
    assert.equal(primaryAddress(network(interfaces))?.host, "192.168.1.7");
    // A default route through an interface with no IPv4 address falls through to the same rule.
    assert.equal(primaryAddress(network(interfaces, [route("eth1")]))?.host, "192.168.1.7");
    assert.equal(primaryAddress(network(interfaces, [route("gone0")]))?.host, "192.168.1.7");
  });

  test("then a link-local IPv4 address, then a global IPv6 one; never a loopback or link-local IPv6 one", () => {
    assert.equal(primaryAddress(network({ lo, eth0: [ipv6("fe80::1"), ipv4("169.254.9.9")] }))?.host, "169.254.9.9");
    assert.equal(primaryAddress(network({ lo, eth0: [ipv6("fe80::1"), ipv6("2001:db8::7")] }))?.host, "2001:db8::7");
    assert.equal(primaryAddress(network({ lo, eth0: [ipv6("fe80::1")] })), undefined);
    assert.equal(primaryAddress(network({ lo })), undefined);
    assert.equal(primaryAddress(network({})), undefined);
  });
});

describe("chooseAdvertiseHost", () => {
  const machine = () => network({ lo, eth0: [ipv4("10.0.0.5")] }, [route("eth0")]);

  test("--advertise-host wins; a specific bind address is advertised as it is", () => {
    assert.deepEqual(chooseAdvertiseHost("0.0.0.0", "127.0.0.2", machine), { host: "127.0.0.2", source: "--advertise-host" });
    assert.deepEqual(chooseAdvertiseHost("127.0.0.1", undefined, machine), { host: "127.0.0.1", source: "the bind address" });
    assert.deepEqual(chooseAdvertiseHost("10.9.9.9", undefined, machine), { host: "10.9.9.9", source: "the bind address" });
  });

  test("a wildcard bind advertises the machine's primary address, never the wildcard", () => {
    for (const wildcard of ["0.0.0.0", "::"]) {
      const choice = chooseAdvertiseHost(wildcard, undefined, machine);
      assert.equal(choice.host, "10.0.0.5");
      assert.equal(choice.warning, undefined);
    }
  });

  test("a machine with only loopback falls back to 127.0.0.1 and warns how to fix it", () => {
    const choice = chooseAdvertiseHost("0.0.0.0", undefined, () => network({ lo }));
    assert.equal(choice.host, "127.0.0.1");
    assert.match(choice.warning ?? "", /no address other than loopback; advertising 127\.0\.0\.1, which only this machine can reach \(set --advertise-host to an address the controller can reach\)/);
  });

  test("this machine's own table gives a usable host for a wildcard bind", () => {
    const { host } = chooseAdvertiseHost("0.0.0.0", undefined);
    assert.ok(host !== "0.0.0.0" && host !== "::" && host !== "", host);
  });
});
