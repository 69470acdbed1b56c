import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { PLATFORM_CHARTS } from "../core/platform-versions";
import { labelsFor } from "./labels";
import {
  certManagerValues,
  clusterIssuerSpec,
  GRAFANA_ADMIN_KEYS,
  kubePrometheusStackValues,
} from "./platform-values";

/** How long a release may take to become ready (helm --wait): first installs pull images on fresh nodes. */
const RELEASE_TIMEOUT_SECONDS = 900;

export interface PlatformAddonsArgs {
  /** Kubernetes provider of the target cluster. */
  readonly provider: pulumi.ProviderResource;
  /**
   * Install cert-manager (pinned chart, its CRDs with it) and an ACME ClusterIssuer solving HTTP-01 through the
   * given IngressClass. @default not installed
   */
  readonly certManager?: {
    /** The ClusterIssuer's name (what the gateway's Ingress asks for). */
    readonly issuerName: string;
    /** ACME directory URL (Let's Encrypt production or staging). */
    readonly acmeServer: string;
    /** Contact address of the ACME account. @default none */
    readonly email?: string;
    /** IngressClass the solver's Ingress gets. */
    readonly ingressClassName: string;
    /** Namespace of the release. @default "cert-manager" */
    readonly namespace?: string;
  };
  /**
   * Install the prometheus-operator CRDs and kube-prometheus-stack (Prometheus, Alertmanager, Grafana).
   * @default not installed
   */
  readonly monitoring?: {
    /** Namespace of both releases. */
    readonly namespace: string;
    /** Release name of kube-prometheus-stack: its Prometheus loads rules and monitors labelled `release: <name>`. */
    readonly release: string;
    /** Prometheus' volume, GiB (Hetzner volumes start at 10). */
    readonly storageGi: number;
    /** Sample retention, e.g. "15d". */
    readonly retention: string;
    /** Label the Grafana sidecar loads dashboard ConfigMaps by. */
    readonly dashboardLabel: string;
  };
  /** What must exist before anything schedules (on a created cluster: the Secret the Hetzner CCM waits for). @default none */
  readonly dependsOn?: pulumi.Input<pulumi.Resource>[];
}

/**
 * The cluster add-ons the stack installs as pinned Helm releases: cert-manager with its ClusterIssuer, and the
 * prometheus-operator CRDs with kube-prometheus-stack. Resources of their kinds depend on `issuer` and
 * `monitoringCrds`, so they are created only after the CRDs exist (never "no matches for kind").
 */
export class PlatformAddons extends pulumi.ComponentResource {
  /** The ClusterIssuer, when cert-manager is installed (what an Ingress asking for a certificate waits on). */
  public readonly issuer?: pulumi.Resource;
  /** The release that installs the monitoring.coreos.com CRDs, when installed. */
  public readonly monitoringCrds?: pulumi.Resource;
  /** Name of the Secret with Grafana's admin user and password (`admin-user`, `admin-password`), when installed. */
  public readonly grafanaAdminSecret?: pulumi.Output<string>;

  constructor(name: string, args: PlatformAddonsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("aiorch:k8s:PlatformAddons", name, {}, opts);
    const child = { parent: this, provider: args.provider };
    const after = { ...child, dependsOn: args.dependsOn ?? [] };
    if (args.monitoring && !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(args.monitoring.release))
      throw new Error(
        `PlatformAddons ${name}: monitoring.release "${args.monitoring.release}" must be a Helm release name (lower-case letters, digits, '-')`,
      );

    if (args.certManager) {
      const cm = args.certManager;
      const chart = PLATFORM_CHARTS.certManager;
      const release = new k8s.helm.v3.Release(
        `${name}-cert-manager`,
        {
          name: "cert-manager",
          chart: chart.chart,
          version: chart.version,
          repositoryOpts: { repo: chart.repo },
          namespace: cm.namespace ?? "cert-manager",
          createNamespace: true,
          values: certManagerValues(),
          // waits for cert-manager's webhook, which must answer before a ClusterIssuer can be created
          timeout: RELEASE_TIMEOUT_SECONDS,
        },
        after,
      );
      this.issuer = new k8s.apiextensions.CustomResource(
        `${name}-cluster-issuer`,
        {
          apiVersion: "cert-manager.io/v1",
          kind: "ClusterIssuer",
          metadata: { name: cm.issuerName, labels: labelsFor("cluster-issuer") },
          spec: clusterIssuerSpec(cm),
        },
        { ...child, dependsOn: [release] },
      );
    }

    if (args.monitoring) {
      const m = args.monitoring;
      const crdsChart = PLATFORM_CHARTS.prometheusOperatorCrds;
      const crds = new k8s.helm.v3.Release(
        `${name}-prometheus-operator-crds`,
        {
          name: "prometheus-operator-crds",
          chart: crdsChart.chart,
          version: crdsChart.version,
          repositoryOpts: { repo: crdsChart.repo },
          namespace: m.namespace,
          createNamespace: true,
          timeout: RELEASE_TIMEOUT_SECONDS,
        },
        after,
      );
      this.monitoringCrds = crds;
      const password = new random.RandomPassword(
        `${name}-grafana-admin`,
        { length: 32, special: false },
        { parent: this },
      );
      const adminSecret = new k8s.core.v1.Secret(
        `${name}-grafana-admin`,
        {
          metadata: { name: "grafana-admin", namespace: m.namespace, labels: labelsFor("grafana-admin") },
          stringData: { [GRAFANA_ADMIN_KEYS.user]: "admin", [GRAFANA_ADMIN_KEYS.password]: password.result },
        },
        // the namespace comes with the CRDs' release
        { ...child, dependsOn: [crds] },
      );
      this.grafanaAdminSecret = adminSecret.metadata.name;
      const stackChart = PLATFORM_CHARTS.kubePrometheusStack;
      new k8s.helm.v3.Release(
        `${name}-kube-prometheus-stack`,
        {
          name: m.release,
          chart: stackChart.chart,
          version: stackChart.version,
          repositoryOpts: { repo: stackChart.repo },
          namespace: m.namespace,
          values: kubePrometheusStackValues({
            release: m.release,
            storageGi: m.storageGi,
            retention: m.retention,
            dashboardLabel: m.dashboardLabel,
            grafanaAdminSecret: "grafana-admin",
          }),
          timeout: RELEASE_TIMEOUT_SECONDS,
        },
        { ...child, dependsOn: [crds, adminSecret] },
      );
    }

    this.registerOutputs({ grafanaAdminSecret: this.grafanaAdminSecret });
  }
}
