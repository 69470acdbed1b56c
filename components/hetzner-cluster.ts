import * as command from "@pulumi/command";
import * as hcloud from "@pulumi/hcloud";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import * as tls from "@pulumi/tls";
import { renderK3sCloudInit } from "./k3s-cloud-init";

export interface ServerPool {
  /** Hetzner Cloud server type, e.g. `cpx21`. */
  readonly serverType: string;
  /** Number of servers. */
  readonly count: number;
}

export interface HetznerClusterArgs {
  /** Hetzner location of every server. @default "fsn1" */
  readonly location?: string;
  /** Control-plane servers; the count must be odd for etcd quorum. @default { serverType: "cpx21", count: 1 } */
  readonly controlPlane?: ServerPool;
  /** Worker servers. @default { serverType: "cpx21", count: 2 } */
  readonly workers?: ServerPool;
  /** Pinned k3s release, e.g. `v1.36.4+k3s1` (within `SUPPORTED_KUBERNETES_MINORS`, core/platform-versions). */
  readonly k3sVersion: string;
  /** OS image. @default "ubuntu-24.04" */
  readonly image?: string;
  /** Sources allowed to reach SSH (port 22). Must include where `pulumi up` runs: it reads the kubeconfig over SSH. @default [] */
  readonly sshAllowedCidrs?: readonly string[];
  /** Sources allowed to reach the Kubernetes API (port 6443). @default [] */
  readonly apiAllowedCidrs?: readonly string[];
  /** Private network of the cluster; nodes live in its `x.y.1.0/24`. @default "10.0.0.0/16" */
  readonly privateNetworkCidr?: string;
  /**
   * An administrator's SSH public key, written to root's authorized_keys by cloud-init (not uploaded as a Hetzner
   * key: Hetzner refuses a second key with the same fingerprint, so two stacks in one project could not both).
   * @default none
   */
  readonly sshPublicKey?: string;
  /** Name of an SSH key already in the Hetzner project to add to every server. @default none */
  readonly sshKeyName?: string;
  /** Keep the Traefik ingress controller k3s bundles. @default true */
  readonly bundledTraefik?: boolean;
  /** Hetzner API token for the cloud controller and CSI driver (stored in `kube-system/hcloud`). */
  readonly hcloudToken: pulumi.Input<string>;
  /**
   * Prefix of the servers' Hetzner names (`<prefix>-cp-0`, `<prefix>-worker-0`): server names are unique per
   * Hetzner project, so stacks sharing a project need their own. @default the Pulumi stack name
   */
  readonly serverNamePrefix?: string;
}

/** A spread placement group holds at most this many servers (Hetzner Cloud limit). */
export const SPREAD_GROUP_MAX_SERVERS = 10;

/**
 * The spread placement group (0, 1, …) of server `index` of a pool: groups of at most SPREAD_GROUP_MAX_SERVERS,
 * so a pool of 25 workers spreads over three groups instead of failing at the eleventh server.
 */
export function spreadGroupOf(index: number): number {
  return Math.floor(index / SPREAD_GROUP_MAX_SERVERS);
}

/** Hetzner names of a pool's servers: `<prefix>-cp-<i>` or `<prefix>-worker-<i>`, a DNS label (≤ 63 characters). */
export function serverNameOf(prefix: string, pool: "cp" | "worker", index: number): string {
  const suffix = `-${pool}-${index}`;
  const base = prefix
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 63 - suffix.length)
    .replace(/-+$/, "");
  if (!base) throw new Error(`serverNamePrefix "${prefix}" has no letter or digit to name servers with`);
  return `${base}${suffix}`;
}

const NETWORK_ZONES: Readonly<Record<string, string>> = {
  fsn1: "eu-central",
  nbg1: "eu-central",
  hel1: "eu-central",
  ash: "us-east",
  hil: "us-west",
  sin: "ap-southeast",
};

const toInt = (ip: string): number => ip.split(".").reduce((acc, octet) => acc * 256 + Number(octet), 0);
const toIp = (n: number): string => [24, 16, 8, 0].map((shift) => (n >>> shift) & 255).join(".");

/** The node subnet (`x.y.1.0/24`) of a private network and the address of each node in it. */
export function nodeAddressing(networkCidr: string): {
  subnet: string;
  controlPlaneIp(i: number): string;
  workerIp(i: number): string;
} {
  const [base, prefixText] = networkCidr.split("/");
  const prefix = Number(prefixText);
  if (!base || !/^\d+\.\d+\.\d+\.\d+$/.test(base) || !(prefix >= 8 && prefix <= 24)) {
    throw new Error(
      `privateNetworkCidr "${networkCidr}" must be an IPv4 network between /8 and /24, e.g. 10.0.0.0/16`,
    );
  }
  const network = toInt(base) & (0xffffffff << (32 - prefix));
  const subnetBase = prefix === 24 ? network : network + 256;
  return {
    subnet: `${toIp(subnetBase >>> 0)}/24`,
    controlPlaneIp: (i) => toIp((subnetBase + 10 + i) >>> 0),
    workerIp: (i) => toIp((subnetBase + 100 + i) >>> 0),
  };
}

/** Public firewall rules: SSH and the API only from the configured sources; everything from the private network. */
export function firewallRules(args: {
  sshAllowedCidrs: readonly string[];
  apiAllowedCidrs: readonly string[];
  privateNetworkCidr: string;
}): hcloud.types.input.FirewallRule[] {
  const rules: hcloud.types.input.FirewallRule[] = [
    { direction: "in", protocol: "icmp", sourceIps: ["0.0.0.0/0", "::/0"], description: "ping" },
    // Hetzner firewalls filter public interfaces only; the explicit rule documents that nodes talk privately.
    {
      direction: "in",
      protocol: "tcp",
      port: "any",
      sourceIps: [args.privateNetworkCidr],
      description: "node-to-node tcp",
    },
    {
      direction: "in",
      protocol: "udp",
      port: "any",
      sourceIps: [args.privateNetworkCidr],
      description: "node-to-node udp",
    },
  ];
  if (args.sshAllowedCidrs.length > 0) {
    rules.push({
      direction: "in",
      protocol: "tcp",
      port: "22",
      sourceIps: [...args.sshAllowedCidrs],
      description: "ssh",
    });
  }
  if (args.apiAllowedCidrs.length > 0) {
    rules.push({
      direction: "in",
      protocol: "tcp",
      port: "6443",
      sourceIps: [...args.apiAllowedCidrs],
      description: "kubernetes api",
    });
  }
  return rules;
}

/**
 * A k3s cluster on Hetzner Cloud: private network, firewall, spread placement, control-plane and worker servers
 * installed by cloud-init, the `kube-system/hcloud` secret for the Hetzner CCM and CSI driver, and a Kubernetes
 * provider built from the kubeconfig (read once over SSH from the first server, kept as a secret).
 */
export class HetznerCluster extends pulumi.ComponentResource {
  /** Kubeconfig of the cluster admin (secret). */
  public readonly kubeconfig: pulumi.Output<string>;
  /** Kubernetes provider for everything deployed into the cluster. */
  public readonly provider: k8s.Provider;
  /** Public IPv4 of the first control-plane server (the API endpoint). */
  public readonly apiEndpoint: pulumi.Output<string>;
  /** Hetzner id of the private network. */
  public readonly networkId: pulumi.Output<string>;
  /** The `kube-system/hcloud` Secret the CCM and CSI driver wait for: add-ons depend on it. */
  public readonly hcloudSecret: k8s.core.v1.Secret;

  constructor(name: string, args: HetznerClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super("aiorch:hetzner:Cluster", name, {}, opts);
    const location = args.location ?? "fsn1";
    const controlPlane = args.controlPlane ?? { serverType: "cpx21", count: 1 };
    const workers = args.workers ?? { serverType: "cpx21", count: 2 };
    const networkCidr = args.privateNetworkCidr ?? "10.0.0.0/16";
    const networkZone = NETWORK_ZONES[location];
    if (!networkZone) {
      throw new Error(
        `HetznerCluster ${name}: location "${location}" is unknown; use one of ${Object.keys(NETWORK_ZONES).join(", ")}`,
      );
    }
    if (controlPlane.count < 1 || controlPlane.count % 2 === 0) {
      throw new Error(
        `HetznerCluster ${name}: controlPlane.count must be odd (1, 3, 5) for etcd quorum; got ${controlPlane.count}`,
      );
    }
    if (workers.count > 80)
      throw new Error(
        `HetznerCluster ${name}: workers.count ${workers.count} exceeds 80; add a second subnet first`,
      );
    const addressing = nodeAddressing(networkCidr);
    const child = { parent: this };

    const network = new hcloud.Network(
      `${name}-network`,
      { ipRange: networkCidr, labels: { cluster: name } },
      child,
    );
    const subnet = new hcloud.NetworkSubnet(
      `${name}-nodes`,
      { networkId: network.id.apply(Number), type: "cloud", networkZone, ipRange: addressing.subnet },
      child,
    );
    const firewall = new hcloud.Firewall(
      `${name}-firewall`,
      {
        labels: { cluster: name },
        rules: firewallRules({
          sshAllowedCidrs: args.sshAllowedCidrs ?? [],
          apiAllowedCidrs: args.apiAllowedCidrs ?? [],
          privateNetworkCidr: networkCidr,
        }),
      },
      child,
    );
    // One spread group per SPREAD_GROUP_MAX_SERVERS servers of a pool; the first keeps the name the single group had.
    const placementGroups = (pool: string, count: number) =>
      Array.from(
        { length: Math.ceil(count / SPREAD_GROUP_MAX_SERVERS) },
        (_, g) =>
          new hcloud.PlacementGroup(
            g === 0 ? `${name}-${pool}` : `${name}-${pool}-${g}`,
            { type: "spread", labels: { cluster: name, pool } },
            child,
          ),
      );
    const controlPlanePlacement = placementGroups("control-plane", controlPlane.count);
    const workerPlacement = placementGroups("workers", workers.count);
    const serverPrefix = args.serverNamePrefix ?? pulumi.getStack();

    // Pulumi's own key: it reads the kubeconfig over SSH once the first server is up.
    const deployKey = new tls.PrivateKey(`${name}-deploy-key`, { algorithm: "ED25519" }, child);
    const sshKeyIds: pulumi.Input<string>[] = [
      new hcloud.SshKey(`${name}-deploy`, { publicKey: deployKey.publicKeyOpenssh }, child).id,
    ];
    if (args.sshKeyName)
      sshKeyIds.push(
        hcloud.getSshKeyOutput({ name: args.sshKeyName }, { parent: this }).apply((k) => String(k.id)),
      );

    const token = new random.RandomPassword(`${name}-k3s-token`, { length: 48, special: false }, child);
    const firstServerIp = addressing.controlPlaneIp(0);
    const joinUrl = `https://${firstServerIp}:6443`;

    const server = (
      resourceName: string,
      serverName: string,
      role: "control-plane" | "worker",
      pool: ServerPool,
      group: hcloud.PlacementGroup | undefined,
      ip: string,
      spec: (token: string) => string,
      dependsOn: pulumi.Resource[],
    ) =>
      new hcloud.Server(
        resourceName,
        {
          name: serverName,
          serverType: pool.serverType,
          image: args.image ?? "ubuntu-24.04",
          location,
          placementGroupId: group?.id.apply(Number),
          firewallIds: [firewall.id.apply(Number)],
          sshKeys: sshKeyIds,
          publicNets: [{ ipv4Enabled: true, ipv6Enabled: true }],
          networks: [{ networkId: network.id.apply(Number), ip }],
          userData: pulumi.secret(token.result.apply(spec)),
          labels: { cluster: name, role },
        },
        // Rebuilding a node because cloud-init or keys changed would wipe it; roll nodes deliberately instead.
        { parent: this, dependsOn: [subnet, ...dependsOn], ignoreChanges: ["userData", "sshKeys", "image"] },
      );

    const servers: hcloud.Server[] = [];
    for (let i = 0; i < controlPlane.count; i++) {
      const first = i === 0;
      servers.push(
        server(
          `${name}-cp-${i}`,
          serverNameOf(serverPrefix, "cp", i),
          "control-plane",
          controlPlane,
          controlPlanePlacement[spreadGroupOf(i)],
          addressing.controlPlaneIp(i),
          (t) =>
            renderK3sCloudInit({
              role: "server",
              k3sVersion: args.k3sVersion,
              token: t,
              nodeIp: addressing.controlPlaneIp(i),
              joinUrl: first ? undefined : joinUrl,
              clusterInit: first && controlPlane.count > 1,
              privateNetworkCidr: networkCidr,
              installHetznerAddons: first,
              loadBalancerLocation: location,
              bundledTraefik: args.bundledTraefik ?? true,
              sshAuthorizedKeys: args.sshPublicKey ? [args.sshPublicKey] : [],
            }),
          first ? [] : [servers[0]!],
        ),
      );
    }
    for (let i = 0; i < workers.count; i++) {
      servers.push(
        server(
          `${name}-worker-${i}`,
          serverNameOf(serverPrefix, "worker", i),
          "worker",
          workers,
          workerPlacement[spreadGroupOf(i)],
          addressing.workerIp(i),
          (t) =>
            renderK3sCloudInit({
              role: "agent",
              k3sVersion: args.k3sVersion,
              token: t,
              nodeIp: addressing.workerIp(i),
              joinUrl,
              privateNetworkCidr: networkCidr,
            }),
          [servers[0]!],
        ),
      );
    }
    const firstServer = servers[0]!;
    this.apiEndpoint = firstServer.ipv4Address;

    const fetchKubeconfig = new command.remote.Command(
      `${name}-kubeconfig`,
      {
        connection: { host: firstServer.ipv4Address, user: "root", privateKey: deployKey.privateKeyOpenssh },
        create:
          "cloud-init status --wait >/dev/null 2>&1 || true; " +
          "for i in $(seq 1 90); do test -s /etc/rancher/k3s/k3s.yaml && break; sleep 5; done; cat /etc/rancher/k3s/k3s.yaml",
        logging: "stderr",
      },
      { parent: this, dependsOn: servers, additionalSecretOutputs: ["stdout"] },
    );
    this.kubeconfig = pulumi.secret(
      pulumi
        .all([fetchKubeconfig.stdout, firstServer.ipv4Address])
        .apply(([text, ip]) => text.replace("https://127.0.0.1:6443", `https://${ip}:6443`)),
    );
    this.provider = new k8s.Provider(`${name}-k8s`, { kubeconfig: this.kubeconfig }, child);
    this.networkId = network.id;

    // The CCM (a bootstrap chart k3s installs) initialises the nodes once this Secret exists; nothing else schedules
    // before, so what the stack installs next waits for it.
    this.hcloudSecret = new k8s.core.v1.Secret(
      `${name}-hcloud-secret`,
      {
        metadata: { name: "hcloud", namespace: "kube-system" },
        stringData: { token: pulumi.secret(args.hcloudToken), network: network.id },
      },
      { parent: this, provider: this.provider },
    );

    this.registerOutputs({
      kubeconfig: this.kubeconfig,
      apiEndpoint: this.apiEndpoint,
      networkId: this.networkId,
    });
  }
}
