import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { renderK3sCloudInit } from "../../components/k3s-cloud-init";

const base = {
  k3sVersion: "v1.36.4+k3s1",
  token: "t0ken",
  privateNetworkCidr: "10.0.0.0/16",
};

interface CloudConfig {
  write_files: { path: string; content: string; permissions: string }[];
  runcmd: string[][];
  ssh_authorized_keys?: string[];
}

const parsed = (text: string): CloudConfig => {
  expect(text.startsWith("#cloud-config\n")).toBe(true);
  return parse(text) as CloudConfig;
};
const file = (cfg: CloudConfig, path: string) => cfg.write_files.find((f) => f.path === path);

describe("k3s cloud-init", () => {
  it("first server of an HA control plane", () => {
    const text = renderK3sCloudInit({
      ...base,
      role: "server",
      nodeIp: "10.0.1.10",
      clusterInit: true,
      installHetznerAddons: true,
      sshAuthorizedKeys: ["ssh-ed25519 AAAA admin"],
    });
    expect(text).toMatchSnapshot();
    const cfg = parsed(text);
    const k3s = parse(file(cfg, "/etc/rancher/k3s/config.yaml")!.content);
    expect(k3s).toMatchObject({
      token: "t0ken",
      "node-ip": "10.0.1.10",
      "advertise-address": "10.0.1.10",
      "cluster-init": true,
      "disable-cloud-controller": true,
      "kubelet-arg": ["cloud-provider=external"],
    });
    expect(k3s.server).toBeUndefined();
    expect(file(cfg, "/etc/rancher/k3s/config.yaml")!.permissions).toBe("0600");
    const script = file(cfg, "/usr/local/sbin/aiorch-install-k3s")!.content;
    expect(script).toContain("INSTALL_K3S_VERSION='v1.36.4+k3s1'");
    expect(script).toContain("INSTALL_K3S_EXEC='server'");
    const addons = file(cfg, "/var/lib/rancher/k3s/server/manifests/hetzner-addons.yaml")!.content;
    const [ccm, csi] = addons.split(/^---$/m).map((doc) => parse(doc) as { spec: Record<string, unknown> });
    // the CCM initialises the nodes, so its install job must tolerate their uninitialized taint: bootstrap
    expect(ccm?.spec).toMatchObject({
      chart: "hcloud-cloud-controller-manager",
      version: "1.35.0",
      bootstrap: true,
      targetNamespace: "kube-system",
    });
    expect(parse(ccm?.spec.valuesContent as string)).toMatchObject({
      networking: { enabled: true, clusterCIDR: "10.42.0.0/16" },
      env: { HCLOUD_LOAD_BALANCERS_LOCATION: { value: "fsn1" } },
    });
    expect(csi?.spec).toMatchObject({ chart: "hcloud-csi", version: "2.22.1" });
    expect(csi?.spec.bootstrap).toBeUndefined();
    expect(cfg.ssh_authorized_keys).toEqual(["ssh-ed25519 AAAA admin"]);
  });

  it("a joining server points at the first server and installs no add-ons", () => {
    const cfg = parsed(
      renderK3sCloudInit({ ...base, role: "server", nodeIp: "10.0.1.11", joinUrl: "https://10.0.1.10:6443" }),
    );
    const k3s = parse(file(cfg, "/etc/rancher/k3s/config.yaml")!.content);
    expect(k3s.server).toBe("https://10.0.1.10:6443");
    expect(k3s["cluster-init"]).toBeUndefined();
    expect(file(cfg, "/var/lib/rancher/k3s/server/manifests/hetzner-addons.yaml")).toBeUndefined();
  });

  it("an agent joins with the token and runs only the kubelet settings", () => {
    const text = renderK3sCloudInit({
      ...base,
      role: "agent",
      nodeIp: "10.0.1.100",
      joinUrl: "https://10.0.1.10:6443",
    });
    expect(text).toMatchSnapshot();
    const cfg = parsed(text);
    const k3s = parse(file(cfg, "/etc/rancher/k3s/config.yaml")!.content);
    expect(k3s).toEqual({
      token: "t0ken",
      "node-ip": "10.0.1.100",
      "kubelet-arg": ["cloud-provider=external"],
      server: "https://10.0.1.10:6443",
    });
    expect(file(cfg, "/usr/local/sbin/aiorch-install-k3s")!.content).toContain("INSTALL_K3S_EXEC='agent'");
  });

  it("refuses inconsistent roles", () => {
    expect(() => renderK3sCloudInit({ ...base, role: "agent", nodeIp: "10.0.1.100" })).toThrow(
      /needs joinUrl/,
    );
    expect(() =>
      renderK3sCloudInit({
        ...base,
        role: "server",
        nodeIp: "10.0.1.11",
        clusterInit: true,
        joinUrl: "https://x:6443",
      }),
    ).toThrow(/must not also join/);
  });
});
