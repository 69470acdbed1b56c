/**
 * What a stack installs into its cluster besides itself (ingress, cert-manager, the monitoring stack) and what it
 * expects to find there instead — one decision, read by the Pulumi program (what to declare) and by `aiorch plan`
 * (what to list as prerequisites of `cluster.mode: existing`). Pure: no Pulumi here.
 *
 * Rules:
 * - On a cluster the stack creates, every add-on is installed unless its switch says no; on an existing cluster,
 *   none is, and each one the stack relies on is a prerequisite with the command that checks it.
 * - The gateway's Ingress needs an ingress controller; with TLS on, a cert-manager ClusterIssuer of the configured
 *   name; monitoring needs the prometheus-operator CRDs (and a Prometheus that selects `release: <name>`); alert
 *   receivers (`monitoring.notify`) an Alertmanager that selects the stack's AlertmanagerConfig.
 *
 * Upstream facts (sources next to each constant).
 */
import type { StackConfig } from "./config/schema";
import { PLATFORM_CHARTS } from "./platform-versions";

/**
 * k3s' bundled Traefik: the HelmChart `traefik` in kube-system (k3s-io/k3s `manifests/traefik.yaml`; helm-controller
 * v0.17.7 `pkg/controllers/chart/chart.go` installs it as release `traefik` in kube-system). Its chart
 * (traefik/traefik-helm-chart v40.1.0, what k3s v1.36.4 packages as `+up40.1.0`) labels the pods
 * `app.kubernetes.io/name: traefik` (`templates/_helpers.tpl`) and creates the default IngressClass `traefik`
 * (`values.yaml` `ingressClass`, `templates/ingressclass.yaml`). Traefik v3.7.8 (`pkg/config/static/static_config.go`,
 * `pkg/proxy/httputil/proxy.go`) flushes streamed responses at once and sets no write or response-header timeout,
 * so SSE and requests that wait through a cold start pass unchanged; its 60 s `readTimeout` bounds reading a request
 * (body included), far above what a 1 MiB body needs; it has no request body limit (the gateway keeps its own).
 */
export const K3S_TRAEFIK = {
  namespace: "kube-system",
  ingressClassName: "traefik",
  podLabels: { "app.kubernetes.io/name": "traefik" },
} as const;

/**
 * A Traefik Ingress is served on every entry point unless annotated (doc.traefik.io, "Traefik & Kubernetes with
 * Ingress": `traefik.ingress.kubernetes.io/router.entrypoints`, `router.tls`); the chart's entry points are `web`
 * (80) and `websecure` (443). With TLS on, the API is routed on `websecure` only, so a key never gets an answer over
 * plain HTTP (cert-manager's solver Ingress carries no such annotation and keeps port 80 for HTTP-01).
 */
export const TRAEFIK_ENTRYPOINTS_ANNOTATION = "traefik.ingress.kubernetes.io/router.entrypoints";
export const TRAEFIK_HTTPS_ENTRYPOINT = "websecure";
export const TRAEFIK_HTTPS_ONLY: Readonly<Record<string, string>> = {
  [TRAEFIK_ENTRYPOINTS_ANNOTATION]: TRAEFIK_HTTPS_ENTRYPOINT,
  "traefik.ingress.kubernetes.io/router.tls": "true",
};

/** Let's Encrypt's ACME directories (cert-manager v1.21.1 `pkg/issuer/acme/setup.go`). */
export const ACME_DIRECTORIES = {
  production: "https://acme-v02.api.letsencrypt.org/directory",
  staging: "https://acme-staging-v02.api.letsencrypt.org/directory",
} as const;

/**
 * cert-manager's HTTP-01 solver pod (v1.21.1 `pkg/issuer/acme/http/pod.go`, `http.go`): created in the
 * Certificate's namespace (the gateway's), labelled `acme.cert-manager.io/http01-solver: "true"`, listening on
 * 8089; non-root, RuntimeDefault seccomp, no capabilities, so Pod Security `restricted` admits it. The ingress
 * controller must reach it there, so the stack's default-deny namespace admits exactly that.
 */
export const ACME_HTTP01_SOLVER = {
  podLabels: { "acme.cert-manager.io/http01-solver": "true" },
  port: 8089,
} as const;

/**
 * Pods of a Prometheus the operator runs carry this label (prometheus-operator v0.93 `pkg/prometheus/server/
 * operator.go`, `statefulset.go`); kube-prometheus-stack runs it in the release's namespace.
 */
export const PROMETHEUS_POD_LABELS = { "app.kubernetes.io/name": "prometheus" } as const;

/** A pod group allowed to reach the stack: its namespace and, where known, its pods' labels. */
export interface PodPeer {
  readonly namespace: string;
  readonly podLabels?: Readonly<Record<string, string>>;
}

/** Something the cluster must already run for the stack to work, and how to check it. */
export interface Prerequisite {
  readonly what: string;
  readonly why: string;
  readonly check: string;
}

export interface PlatformPlan {
  readonly ingress: {
    /** Installed with the cluster (`k3s-traefik`), or expected to be there. */
    readonly installed: "k3s-traefik" | "existing";
    readonly className: string;
    /** Who the gateway admits client traffic from. */
    readonly peer: PodPeer;
  };
  /** With the gateway's TLS on: the issuer it asks for, and whether the stack installs cert-manager and the issuer. */
  readonly certManager?: {
    readonly install: boolean;
    readonly issuerName: string;
    readonly acmeServer: string;
    readonly email?: string;
    readonly version: string;
  };
  /** With monitoring on: where Prometheus runs and whether the stack installs the operator CRDs and the stack. */
  readonly monitoring?: {
    readonly install: boolean;
    readonly namespace: string;
    readonly release: string;
    readonly prometheus: PodPeer;
    readonly storageGi: number;
    readonly retention: string;
  };
  readonly prerequisites: readonly Prerequisite[];
}

/** Decide what the stack installs and what it expects (see the rules in the header). */
export function platformPlan(config: StackConfig): PlatformPlan {
  const created = config.cluster.mode === "create";
  const platform = config.platform;
  const prerequisites: Prerequisite[] = [];

  const ingressInstalled = platform.ingress ?? (created ? "k3s-traefik" : "existing");
  const className = config.gateway.ingressClassName;
  const ingress = {
    installed: ingressInstalled,
    className,
    peer:
      ingressInstalled === "k3s-traefik" &&
      className === K3S_TRAEFIK.ingressClassName &&
      config.gateway.ingressNamespace === K3S_TRAEFIK.namespace
        ? { namespace: K3S_TRAEFIK.namespace, podLabels: K3S_TRAEFIK.podLabels }
        : { namespace: config.gateway.ingressNamespace },
  } as const;
  if (ingressInstalled === "existing")
    prerequisites.push({
      what: `an ingress controller with IngressClass "${className}" in namespace ${config.gateway.ingressNamespace}`,
      why: "routes clients to the gateway (streams unbuffered, no response timeout shorter than a cold start)",
      check: `kubectl get ingressclass ${className}`,
    });

  let certManager: PlatformPlan["certManager"];
  if (config.gateway.tls.enabled) {
    const install = platform.certManager.install ?? created;
    certManager = {
      install,
      issuerName: config.gateway.tls.clusterIssuer,
      acmeServer: ACME_DIRECTORIES[platform.certManager.acme],
      ...(platform.certManager.email ? { email: platform.certManager.email } : {}),
      version: PLATFORM_CHARTS.certManager.version,
    };
    if (!install)
      prerequisites.push({
        what: `cert-manager with a ClusterIssuer "${certManager.issuerName}" that can solve HTTP-01 through IngressClass "${className}"`,
        why: "signs the gateway's TLS certificate",
        check: `kubectl get clusterissuer ${certManager.issuerName}`,
      });
  }

  let monitoring: PlatformPlan["monitoring"];
  if (config.monitoring.enabled) {
    const install = platform.monitoringStack.install ?? created;
    monitoring = {
      install,
      namespace: config.monitoring.prometheusNamespace,
      release: config.monitoring.prometheusRelease,
      // an existing Prometheus' labels are not ours to know: its namespace is admitted
      prometheus: {
        namespace: config.monitoring.prometheusNamespace,
        ...(install ? { podLabels: PROMETHEUS_POD_LABELS } : {}),
      },
      storageGi: platform.monitoringStack.storageGi,
      retention: platform.monitoringStack.retention,
    };
    if (!install)
      prerequisites.push({
        what: `the prometheus-operator CRDs and a Prometheus in namespace ${monitoring.namespace} selecting rules and monitors labelled release=${monitoring.release}`,
        why: "the stack declares a PrometheusRule and ServiceMonitors (monitoring.enabled); without the CRDs they fail with 'no matches for kind'",
        check: "kubectl get crd prometheusrules.monitoring.coreos.com servicemonitors.monitoring.coreos.com",
      });
    if (!install && config.monitoring.notify)
      prerequisites.push({
        what: `an Alertmanager run by the prometheus-operator whose alertmanagerConfigSelector matches release=${monitoring.release} and whose alertmanagerConfigNamespaceSelector admits namespace ${config.namespace}`,
        why: "monitoring.notify routes the stack's alerts through an AlertmanagerConfig; an Alertmanager that does not select it sends them nowhere",
        check:
          "kubectl get crd alertmanagerconfigs.monitoring.coreos.com && kubectl get alertmanagers -A -o custom-columns=NAME:.metadata.name,CONFIGS:.spec.alertmanagerConfigSelector,NAMESPACES:.spec.alertmanagerConfigNamespaceSelector,STRATEGY:.spec.alertmanagerConfigMatcherStrategy.type",
      });
  }
  return { ingress, certManager, monitoring, prerequisites };
}
