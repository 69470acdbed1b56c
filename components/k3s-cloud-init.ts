/**
 * Pure renderer of the cloud-init user data that installs k3s on a Hetzner Cloud server: pinned version, node
 * IPs on the private network, the Hetzner cloud controller (external cloud provider) and CSI driver.
 * No Pulumi here: tested as a plain function with snapshots.
 *
 * Facts it relies on:
 * - k3s-io/helm-controller v0.17.7 `pkg/controllers/chart/chart.go`: only a HelmChart with `spec.bootstrap: true`
 *   gets an install job that runs on a control-plane node with host networking and tolerates
 *   `node.cloudprovider.kubernetes.io/uninitialized` — the taint every node keeps until the CCM runs. Without it the
 *   CCM's install job never schedules and nothing else ever does.
 * - hetznercloud/hcloud-cloud-controller-manager chart 1.35.0 (`docs/reference/version-policy.md`: Kubernetes
 *   1.33–1.36), `chart/values.yaml`: `networking.enabled`/`clusterCIDR` (must be the pod CIDR), `env` a map of
 *   NAME → {value}; `docs/reference/load_balancer_envs.md`: `HCLOUD_LOAD_BALANCERS_LOCATION` has no default, so a
 *   LoadBalancer Service without it (or a per-Service annotation) fails.
 * - hetznercloud/csi-driver chart 2.22.1 (`docs/kubernetes/reference/version-policy.md`: 1.33–1.36 → v2.20.2+),
 *   default StorageClass `hcloud-volumes`.
 */
import { stringify } from "yaml";
import { HETZNER_CHART_VERSIONS } from "../core/platform-versions";

export interface K3sNodeSpec {
  /** `server` runs the control plane; `agent` is a worker. */
  readonly role: "server" | "agent";
  /** Pinned k3s release, e.g. `v1.36.4+k3s1` (within `SUPPORTED_KUBERNETES_MINORS`, core/platform-versions). */
  readonly k3sVersion: string;
  /** Shared join secret of the cluster. */
  readonly token: string;
  /** This node's address on the private network; k3s binds and advertises it. */
  readonly nodeIp: string;
  /** URL of the first server to join (`https://10.0.1.10:6443`); absent on the first server. */
  readonly joinUrl?: string;
  /** First server of an HA control plane: start the embedded etcd cluster. */
  readonly clusterInit?: boolean;
  /** Private network CIDR of the cluster, e.g. `10.0.0.0/16`. */
  readonly privateNetworkCidr: string;
  /** Pod network, must not overlap the private network. @default "10.42.0.0/16" */
  readonly clusterCidr?: string;
  /** Service network. @default "10.43.0.0/16" */
  readonly serviceCidr?: string;
  /** Install the Hetzner CCM and CSI driver as k3s HelmCharts (first server only). */
  readonly installHetznerAddons?: boolean;
  /** Hetzner location new load balancers go to (`HCLOUD_LOAD_BALANCERS_LOCATION`), e.g. `fsn1`. @default "fsn1" */
  readonly loadBalancerLocation?: string;
  /** Keep the Traefik ingress controller k3s bundles (off: the platform brings its own). @default true */
  readonly bundledTraefik?: boolean;
  /** Extra admin SSH keys (public, OpenSSH format). */
  readonly sshAuthorizedKeys?: readonly string[];
}

/** Hetzner's charts repository, the source the CCM and CSI HelmCharts install from. */
export const HETZNER_CHARTS_REPO = "https://charts.hetzner.cloud";

function k3sConfig(spec: K3sNodeSpec): Record<string, unknown> {
  const common = {
    token: spec.token,
    "node-ip": spec.nodeIp,
    "kubelet-arg": ["cloud-provider=external"],
  };
  if (spec.role === "agent") return { ...common, server: spec.joinUrl };
  return {
    ...common,
    ...(spec.joinUrl ? { server: spec.joinUrl } : {}),
    ...(spec.clusterInit ? { "cluster-init": true } : {}),
    "advertise-address": spec.nodeIp,
    "tls-san": [spec.nodeIp],
    "cluster-cidr": spec.clusterCidr ?? "10.42.0.0/16",
    "service-cidr": spec.serviceCidr ?? "10.43.0.0/16",
    "disable-cloud-controller": true,
    // The Hetzner CCM provides load balancers and CSI volumes; k3s' bundled Traefik is the ingress controller
    // (its LoadBalancer Service gets a Hetzner load balancer from the CCM).
    disable: [...(spec.bundledTraefik === false ? ["traefik"] : []), "servicelb", "local-storage"],
    "write-kubeconfig-mode": "0600",
    "secrets-encryption": true,
  };
}

/** A k3s `HelmChart` (helm.cattle.io/v1) as the first server's manifests directory holds it. */
export interface K3sHelmChart {
  readonly apiVersion: "helm.cattle.io/v1";
  readonly kind: "HelmChart";
  readonly metadata: { readonly name: string; readonly namespace: string };
  readonly spec: {
    readonly repo: string;
    readonly chart: string;
    readonly version: string;
    readonly targetNamespace: string;
    readonly bootstrap?: boolean;
    readonly valuesContent?: string;
  };
}

/** The Hetzner CCM (bootstrap) and CSI charts k3s installs from the first server (also what `plan` lists). */
export function hetznerAddonCharts(
  spec: Pick<K3sNodeSpec, "clusterCidr" | "loadBalancerLocation">,
): K3sHelmChart[] {
  const ccm: K3sHelmChart = {
    apiVersion: "helm.cattle.io/v1",
    kind: "HelmChart",
    metadata: { name: "hcloud-cloud-controller-manager", namespace: "kube-system" },
    spec: {
      repo: HETZNER_CHARTS_REPO,
      chart: "hcloud-cloud-controller-manager",
      version: HETZNER_CHART_VERSIONS.ccm,
      targetNamespace: "kube-system",
      // the CCM initialises the nodes: its install job must run before any node is (see the header)
      bootstrap: true,
      valuesContent: stringify({
        networking: { enabled: true, clusterCIDR: spec.clusterCidr ?? "10.42.0.0/16" },
        env: {
          HCLOUD_LOAD_BALANCERS_USE_PRIVATE_IP: { value: "true" },
          HCLOUD_LOAD_BALANCERS_LOCATION: { value: spec.loadBalancerLocation ?? "fsn1" },
        },
      }),
    },
  };
  const csi: K3sHelmChart = {
    apiVersion: "helm.cattle.io/v1",
    kind: "HelmChart",
    metadata: { name: "hcloud-csi", namespace: "kube-system" },
    spec: {
      repo: HETZNER_CHARTS_REPO,
      chart: "hcloud-csi",
      version: HETZNER_CHART_VERSIONS.csi,
      targetNamespace: "kube-system",
    },
  };
  return [ccm, csi];
}

function hetznerAddonManifests(spec: K3sNodeSpec): string {
  return hetznerAddonCharts(spec)
    .map((m) => stringify(m))
    .join("---\n");
}

/**
 * The install script: waits for the private interface (Hetzner attaches it after boot), pins flannel to it,
 * adds the public address to the API certificate, then installs the pinned k3s.
 */
function installScript(spec: K3sNodeSpec): string {
  const exec = spec.role === "server" ? "server" : "agent";
  return [
    "#!/bin/sh",
    "set -eu",
    `NODE_IP=${spec.nodeIp}`,
    'for i in $(seq 1 120); do ip -o -4 addr show | grep -q " $NODE_IP/" && break; sleep 2; done',
    `IFACE=$(ip -o -4 addr show | awk -v ip="$NODE_IP" '$4 ~ "^"ip"/" {print $2; exit}')`,
    'test -n "$IFACE" || { echo "private address $NODE_IP never appeared" >&2; exit 1; }',
    'echo "flannel-iface: $IFACE" >> /etc/rancher/k3s/config.yaml',
    ...(spec.role === "server"
      ? [
          "PUBLIC_IP=$(curl -fsS http://169.254.169.254/hetzner/v1/metadata/public-ipv4 || true)",
          "mkdir -p /etc/rancher/k3s/config.yaml.d",
          // A drop-in replaces the list from config.yaml, so it repeats the private address.
          'if [ -n "$PUBLIC_IP" ]; then printf "tls-san:\\n  - %s\\n  - %s\\nnode-external-ip: %s\\n" "$NODE_IP" "$PUBLIC_IP" "$PUBLIC_IP" > /etc/rancher/k3s/config.yaml.d/public.yaml; fi',
        ]
      : []),
    `curl -sfL https://get.k3s.io | INSTALL_K3S_VERSION='${spec.k3sVersion}' INSTALL_K3S_EXEC='${exec}' sh -s -`,
    "",
  ].join("\n");
}

/** Render the `#cloud-config` user data for one node. */
export function renderK3sCloudInit(spec: K3sNodeSpec): string {
  if (spec.role === "agent" && !spec.joinUrl)
    throw new Error("an agent node needs joinUrl (the first server's URL)");
  if (spec.clusterInit && spec.joinUrl)
    throw new Error("the cluster-init server must not also join another server");
  const writeFiles: Record<string, unknown>[] = [
    { path: "/etc/rancher/k3s/config.yaml", permissions: "0600", content: stringify(k3sConfig(spec)) },
    { path: "/usr/local/sbin/aiorch-install-k3s", permissions: "0700", content: installScript(spec) },
  ];
  if (spec.installHetznerAddons) {
    writeFiles.push({
      path: "/var/lib/rancher/k3s/server/manifests/hetzner-addons.yaml",
      permissions: "0600",
      content: hetznerAddonManifests(spec),
    });
  }
  const cloudConfig: Record<string, unknown> = {
    package_update: true,
    packages: ["curl"],
    write_files: writeFiles,
    runcmd: [["/usr/local/sbin/aiorch-install-k3s"]],
  };
  if (spec.sshAuthorizedKeys && spec.sshAuthorizedKeys.length > 0) {
    cloudConfig.ssh_authorized_keys = [...spec.sshAuthorizedKeys];
  }
  return `#cloud-config\n${stringify(cloudConfig, { lineWidth: 0 })}`;
}
