import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { type AlertRulesInput, renderAlertRules } from "./alert-rules";
import {
  ALERT_RECEIVERS_SECRET,
  ALERT_URL_SECRET_KEYS,
  type AlertmanagerConfigInput,
  renderAlertmanagerConfig,
} from "./alertmanager-config";
import { renderDashboard } from "./grafana-dashboard";
import { labelsFor, selectorFor } from "./labels";

export interface MonitoringArgs {
  /** Namespace of the stack; rules, monitors and the dashboard live there and query it. */
  readonly namespace: pulumi.Input<string>;
  /** Namespace name as plain text, for the expressions in rules and panels. */
  readonly namespaceName: string;
  /** Stack name, a label on every alert and the dashboard's title. */
  readonly stack: string;
  /** Kubernetes provider of the target cluster. */
  readonly provider: pulumi.ProviderResource;
  /** Label value kube-prometheus-stack selects rules and monitors by (`release: <name>`). @default "kube-prometheus-stack" */
  readonly prometheusRelease?: string;
  /** Label the Grafana sidecar loads dashboards by; the value is "1". @default "grafana_dashboard" */
  readonly dashboardLabel?: string;
  /**
   * What installs the monitoring.coreos.com CRDs (the prometheus-operator-crds release): the rule and monitors are
   * created after it. @default none: the CRDs are a prerequisite of the cluster
   */
  readonly crdsInstalledBy?: pulumi.Resource;
  /** Budget thresholds and alert tuning (see `renderAlertRules`). */
  readonly alerts: Omit<AlertRulesInput, "namespace" | "stack">;
  /**
   * Where the alerts go: a Secret with the receivers' URLs and an AlertmanagerConfig labelled like the rules
   * (`release: <name>`) routing the stack's alerts there. @default none: Alertmanager only shows them
   */
  readonly notify?: {
    readonly slack?: { readonly channel?: string; readonly url: pulumi.Input<string> };
    readonly webhook?: { readonly url: pulumi.Input<string> };
    readonly groupBy: readonly string[];
    readonly repeatIntervalMinutes: number;
  };
}

/**
 * What watches the stack: a PrometheusRule with its alerts, ServiceMonitors for the gateway and controller,
 * and a Grafana dashboard ConfigMap for the sidecar to load.
 */
export class Monitoring extends pulumi.ComponentResource {
  /** Name of the PrometheusRule. */
  public readonly ruleName: pulumi.Output<string>;

  constructor(name: string, args: MonitoringArgs, opts?: pulumi.ComponentResourceOptions) {
    super("aiorch:k8s:Monitoring", name, {}, opts);
    const childOpts = { parent: this, provider: args.provider };
    const afterCrds = { ...childOpts, dependsOn: args.crdsInstalledBy ? [args.crdsInstalledBy] : [] };
    const release = { release: args.prometheusRelease ?? "kube-prometheus-stack" };

    const rule = new k8s.apiextensions.CustomResource(
      `${name}-rules`,
      {
        apiVersion: "monitoring.coreos.com/v1",
        kind: "PrometheusRule",
        metadata: { namespace: args.namespace, labels: labelsFor("alert-rules", release) },
        spec: renderAlertRules({ ...args.alerts, namespace: args.namespaceName, stack: args.stack }),
      },
      afterCrds,
    );

    for (const component of ["gateway", "controller"]) {
      new k8s.apiextensions.CustomResource(
        `${name}-${component}`,
        {
          apiVersion: "monitoring.coreos.com/v1",
          kind: "ServiceMonitor",
          metadata: { namespace: args.namespace, labels: labelsFor(`${component}-monitor`, release) },
          spec: {
            selector: { matchLabels: selectorFor(component) },
            endpoints: [{ port: "metrics", path: "/metrics", interval: "30s" }],
          },
        },
        afterCrds,
      );
    }

    new k8s.core.v1.ConfigMap(
      `${name}-dashboard`,
      {
        metadata: {
          namespace: args.namespace,
          labels: labelsFor("dashboard", { [args.dashboardLabel ?? "grafana_dashboard"]: "1" }),
        },
        data: {
          [`ai-orchestrator-${args.stack}.json`]: JSON.stringify(
            renderDashboard({ namespace: args.namespaceName, stack: args.stack }),
          ),
        },
      },
      childOpts,
    );

    if (args.notify) {
      const notify = args.notify;
      const urls: Record<string, pulumi.Output<string>> = {};
      if (notify.slack) urls[ALERT_URL_SECRET_KEYS.slack] = pulumi.secret(notify.slack.url);
      if (notify.webhook) urls[ALERT_URL_SECRET_KEYS.webhook] = pulumi.secret(notify.webhook.url);
      // the URLs are credentials: only in this Secret, which the operator reads into Alertmanager's own Secret
      const receivers = new k8s.core.v1.Secret(
        `${name}-alert-receivers`,
        {
          metadata: {
            name: ALERT_RECEIVERS_SECRET,
            namespace: args.namespace,
            labels: labelsFor("alert-receivers"),
          },
          stringData: urls,
        },
        childOpts,
      );
      const receiverInput: AlertmanagerConfigInput = {
        namespace: args.namespaceName,
        stack: args.stack,
        ...(notify.slack ? { slack: notify.slack.channel ? { channel: notify.slack.channel } : {} } : {}),
        webhook: notify.webhook !== undefined,
        groupBy: notify.groupBy,
        repeatIntervalMinutes: notify.repeatIntervalMinutes,
      };
      new k8s.apiextensions.CustomResource(
        `${name}-alert-routing`,
        {
          apiVersion: "monitoring.coreos.com/v1alpha1",
          kind: "AlertmanagerConfig",
          // the label kube-prometheus-stack's Alertmanager selects configs by (platform-values.ts)
          metadata: { namespace: args.namespace, labels: labelsFor("alert-routing", release) },
          spec: renderAlertmanagerConfig(receiverInput),
        },
        // the operator skips a config whose Secret it cannot read (operator.go checkAlertmanagerConfig)
        { ...afterCrds, dependsOn: [...(args.crdsInstalledBy ? [args.crdsInstalledBy] : []), receivers] },
      );
    }

    this.ruleName = rule.metadata.name;
    this.registerOutputs({ ruleName: this.ruleName });
  }
}
