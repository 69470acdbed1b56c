/**
 * The platform versions the stack pins together, and why they fit: the Hetzner charts' version policies decide
 * which Kubernetes (hence k3s) releases a stack may run.
 *
 * - hetznercloud/hcloud-cloud-controller-manager chart 1.35.0: `docs/reference/version-policy.md` lists Kubernetes
 *   1.33, 1.34, 1.35 and 1.36 as supported by the latest release (1.31 needs v1.29.2, 1.32 v1.30.1).
 * - hetznercloud/csi-driver chart 2.22.1: `docs/kubernetes/reference/version-policy.md`: 1.33–1.36 → v2.20.2 or later.
 * - k3s `vX.Y.Z+k3sN` is Kubernetes X.Y.Z; v1.36.4+k3s1 (Aug 2026) is within both, and Kubernetes 1.36 is supported
 *   until 2027-06-28 (kubernetes.io/releases); v1.31 reached its end of life on 2025-10-28.
 */

/** Pinned chart versions (for both, the chart version is the app version). */
export const HETZNER_CHART_VERSIONS = { ccm: "1.35.0", csi: "2.22.1" } as const;

/** Kubernetes minors (1.x) both pinned charts support: the k3s releases a stack may pin. */
export const SUPPORTED_KUBERNETES_MINORS = { min: 33, max: 36 } as const;

/** The k3s release the examples and the shipped stacks pin. */
export const RECOMMENDED_K3S_VERSION = "v1.36.4+k3s1";

/** The Kubernetes minor of a k3s release (`v1.36.4+k3s1` → 36), or undefined when it is not one. */
export function kubernetesMinorOf(k3sVersion: string): number | undefined {
  const m = /^v1\.(\d+)\.\d+\+k3s\d+$/.exec(k3sVersion);
  return m?.[1] !== undefined ? Number(m[1]) : undefined;
}

/**
 * The add-ons a created cluster gets as Helm releases (charts by version, from their publishers' repositories):
 * - cert-manager (jetstack): the chart installs its CRDs only with `crds.enabled: true`.
 * - prometheus-operator-crds (prometheus-community): the monitoring.coreos.com CRDs on their own, installed first so
 *   the stack's PrometheusRule and ServiceMonitors can depend on them whether or not the full stack is installed.
 * - kube-prometheus-stack (prometheus-community): Prometheus, Alertmanager and Grafana, with `crds.enabled: false`
 *   (the CRDs come from the release above).
 */
export const PLATFORM_CHARTS = {
  certManager: { repo: "https://charts.jetstack.io", chart: "cert-manager", version: "v1.21.1" },
  prometheusOperatorCrds: {
    repo: "https://prometheus-community.github.io/helm-charts",
    chart: "prometheus-operator-crds",
    version: "31.0.1",
  },
  kubePrometheusStack: {
    repo: "https://prometheus-community.github.io/helm-charts",
    chart: "kube-prometheus-stack",
    version: "88.5.3",
  },
} as const;
