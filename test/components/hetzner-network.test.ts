import { describe, expect, it } from "vitest";
import {
  firewallRules,
  nodeAddressing,
  SPREAD_GROUP_MAX_SERVERS,
  serverNameOf,
  spreadGroupOf,
} from "../../components/hetzner-cluster";

describe("Hetzner node addressing", () => {
  it("puts nodes in x.y.1.0/24 of the private network", () => {
    const a = nodeAddressing("10.0.0.0/16");
    expect(a.subnet).toBe("10.0.1.0/24");
    expect(a.controlPlaneIp(0)).toBe("10.0.1.10");
    expect(a.controlPlaneIp(2)).toBe("10.0.1.12");
    expect(a.workerIp(0)).toBe("10.0.1.100");
  });

  it("uses a /24 network as the subnet itself", () => {
    expect(nodeAddressing("192.168.7.0/24").subnet).toBe("192.168.7.0/24");
  });

  it("refuses what is not an IPv4 network of /8 to /24", () => {
    expect(() => nodeAddressing("10.0.0.0/28")).toThrow(/between \/8 and \/24/);
    expect(() => nodeAddressing("fd00::/64")).toThrow(/privateNetworkCidr/);
  });
});

describe("Hetzner firewall rules", () => {
  it("opens SSH and the API only to the configured sources", () => {
    const rules = firewallRules({
      sshAllowedCidrs: ["198.51.100.1/32"],
      apiAllowedCidrs: ["203.0.113.0/24"],
      privateNetworkCidr: "10.0.0.0/16",
    });
    expect(rules.find((r) => r.port === "22")?.sourceIps).toEqual(["198.51.100.1/32"]);
    expect(rules.find((r) => r.port === "6443")?.sourceIps).toEqual(["203.0.113.0/24"]);
    for (const rule of rules) {
      if (rule.protocol !== "icmp") expect(rule.sourceIps).not.toContain("0.0.0.0/0");
    }
  });

  it("with no sources configured, SSH and the API stay closed", () => {
    const rules = firewallRules({
      sshAllowedCidrs: [],
      apiAllowedCidrs: [],
      privateNetworkCidr: "10.0.0.0/16",
    });
    expect(rules.some((r) => r.port === "22" || r.port === "6443")).toBe(false);
  });
});

describe("Hetzner server names and placement", () => {
  it("names servers after the stack, so stacks can share a Hetzner project", () => {
    expect(serverNameOf("dev", "cp", 0)).toBe("dev-cp-0");
    expect(serverNameOf("prod", "worker", 12)).toBe("prod-worker-12");
    expect(serverNameOf("Team_A/Prod", "cp", 1)).toBe("team-a-prod-cp-1");
    expect(serverNameOf("x".repeat(80), "worker", 3)).toHaveLength(63);
    expect(() => serverNameOf("__", "cp", 0)).toThrow(/serverNamePrefix/);
  });

  it("spreads a pool over groups of at most 10 servers (Hetzner's spread limit)", () => {
    expect([0, 9, 10, 19, 20, 24].map(spreadGroupOf)).toEqual([0, 0, 1, 1, 2, 2]);
    expect(SPREAD_GROUP_MAX_SERVERS).toBe(10);
  });
});
