/**
 * Pure renderers of what the platform add-ons are installed with: Helm values of cert-manager, the
 * prometheus-operator CRDs and kube-prometheus-stack, and the ClusterIssuer. No Pulumi here: tested as plain
 * functions (`test/components/platform-addons.test.ts`).
 *
 * Facts they rely on (upstream chart values):
 * - cert-manager chart (`deploy/charts/cert-manager/values.yaml`): `crds.enabled` installs the CRDs with the
 *   release (`installCRDs` is its deprecated form); `crds.keep` keeps them when the release is deleted.
 * - cert-manager ClusterIssuer (`cert-manager.io/v1`, v1.21.1 `pkg/apis/acme/v1/types_issuer.go`): `spec.acme.server`,
 *   `email`, `privateKeySecretRef.name`, `solvers[].http01.ingress.ingressClassName` (the solver Ingress gets that
 *   class; "the recommended way", exclusive with `class`), `serviceType` (the solver Service is a NodePort unless
 *   it says ClusterIP: `pkg/issuer/acme/http/service.go`). Its validating webhook refuses cert-manager.io objects
 *   until it serves (`failurePolicy: Fail`), so the issuer waits for the release (which waits for the webhook).
 * - kube-prometheus-stack 88.5.3 (`values.yaml`, `templates/prometheus/prometheus.yaml`): `crds.enabled: false` leaves CRDs to prometheus-operator-crds;
 *   `prometheus.prometheusSpec.{ruleSelectorNilUsesHelmValues, serviceMonitorSelectorNilUsesHelmValues}` (true)
 *   select rules and monitors labelled `release: <release name>`; `prometheus.prometheusSpec.storageSpec`
 *   (a volumeClaimTemplate) and `retention`; `alertmanager.alertmanagerSpec.{alertmanagerConfigSelector,
 *   alertmanagerConfigNamespaceSelector, alertmanagerConfigMatcherStrategy}` (defaults `{}`, `{}`, `{}`: the template
 *   `templates/alertmanager/alertmanager.yaml` renders an empty selector, which selects every AlertmanagerConfig in
 *   every namespace, and the operator's default strategy `OnNamespace`); Grafana (grafana/helm-charts `values.yaml`): `admin.existingSecret`,
 *   `admin.userKey`, `admin.passwordKey`, `sidecar.dashboards.{enabled,label,labelValue,searchNamespace}`.
 * - hetznercloud/csi-driver: the StorageClass `hcloud-volumes` (volumes of at least 10 GB).
 */

/** Keys of the Grafana admin Secret (grafana chart `admin.userKey`/`admin.passwordKey` defaults). */
export const GRAFANA_ADMIN_KEYS = { user: "admin-user", password: "admin-password" } as const;

/** The StorageClass the Hetzner CSI driver installs. */
export const HCLOUD_STORAGE_CLASS = "hcloud-volumes";

export function certManagerValues(): Record<string, unknown> {
  return {
    // the CRDs come with the release, so the ClusterIssuer can depend on it; kept if the release is removed
    crds: { enabled: true, keep: true },
  };
}

export interface ClusterIssuerInput {
  readonly acmeServer: string;
  readonly email?: string;
  readonly issuerName: string;
  readonly ingressClassName: string;
}

/** The ClusterIssuer's spec: ACME with an HTTP-01 solver answered through the given IngressClass. */
export function clusterIssuerSpec(o: ClusterIssuerInput): Record<string, unknown> {
  return {
    acme: {
      server: o.acmeServer,
      ...(o.email ? { email: o.email } : {}),
      privateKeySecretRef: { name: `${o.issuerName}-account-key` },
      // ClusterIP: the ingress controller reaches the solver inside the cluster; no port opens on every node
      solvers: [{ http01: { ingress: { ingressClassName: o.ingressClassName, serviceType: "ClusterIP" } } }],
    },
  };
}

export interface KubePrometheusStackInput {
  /** The release's name: its Alertmanager takes the AlertmanagerConfigs labelled `release: <name>`. */
  readonly release: string;
  /** Prometheus' volume, GiB. */
  readonly storageGi: number;
  /** Sample retention, e.g. "15d". */
  readonly retention: string;
  /** Label the Grafana sidecar loads dashboards by (value "1"). */
  readonly dashboardLabel: string;
  /** Secret holding the Grafana admin user and password (GRAFANA_ADMIN_KEYS). */
  readonly grafanaAdminSecret: string;
}

export function kubePrometheusStackValues(o: KubePrometheusStackInput): Record<string, unknown> {
  return {
    // prometheus-operator-crds installs them, before this release and before any rule or monitor
    crds: { enabled: false },
    prometheus: {
      prometheusSpec: {
        // the defaults, written out because the stack relies on them: rules and monitors labelled
        // `release: <release name>` are loaded (components/monitoring.ts labels them so)
        ruleSelectorNilUsesHelmValues: true,
        serviceMonitorSelectorNilUsesHelmValues: true,
        retention: o.retention,
        storageSpec: {
          volumeClaimTemplate: {
            spec: {
              storageClassName: HCLOUD_STORAGE_CLASS,
              accessModes: ["ReadWriteOnce"],
              resources: { requests: { storage: `${o.storageGi}Gi` } },
            },
          },
        },
      },
    },
    alertmanager: {
      alertmanagerSpec: {
        // the stack's AlertmanagerConfig (components/monitoring.ts) is labelled like its rules; only such configs
        // reach this Alertmanager, from any namespace (the stack's is not the monitoring namespace)
        alertmanagerConfigSelector: { matchLabels: { release: o.release } },
        alertmanagerConfigNamespaceSelector: {},
        // the operator's default, written out because the routing relies on it: a config receives only alerts
        // labelled with its own namespace (components/alert-rules.ts labels every alert so)
        alertmanagerConfigMatcherStrategy: { type: "OnNamespace" },
      },
    },
    grafana: {
      // never the chart's well-known default password
      admin: {
        existingSecret: o.grafanaAdminSecret,
        userKey: GRAFANA_ADMIN_KEYS.user,
        passwordKey: GRAFANA_ADMIN_KEYS.password,
      },
      sidecar: {
        dashboards: {
          enabled: true,
          label: o.dashboardLabel,
          labelValue: "1",
          // the stack's dashboard ConfigMap lives in the stack's namespace
          searchNamespace: "ALL",
        },
      },
    },
  };
}
