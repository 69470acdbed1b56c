/**
 * Where the stack's alerts go: the AlertmanagerConfig renderer as a plain function (shape, matchers, Secret
 * references, nothing secret), checked against the operator's schema and against the alerts it must route; and one
 * offline plan of a stack with receivers for the wiring (Secret, AlertmanagerConfig, the Alertmanager's selector).
 */
import { AlertmanagerConfig } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1alpha1/AlertmanagerConfig";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { renderAlertRules } from "../../components/alert-rules";
import {
  ALERT_RECEIVERS_SECRET,
  ALERT_URL_SECRET_KEYS,
  type AlertmanagerConfigInput,
  renderAlertmanagerConfig,
  STACK_RECEIVER,
} from "../../components/alertmanager-config";
import { kubePrometheusStackValues } from "../../components/platform-values";
import { stackYaml } from "../../devkit/stack-yaml";
import { aiorch, removeProject, tempProject } from "../cli/helpers";

const input: AlertmanagerConfigInput = {
  namespace: "ai-orchestrator",
  stack: "prod",
  slack: { channel: "#gpu-alerts" },
  webhook: true,
  groupBy: ["alertname", "severity"],
  repeatIntervalMinutes: 240,
};

/** The model class taking any data: what is checked is the schema, not our types (as manifests.test.ts does). */
const AlertmanagerConfigModel = AlertmanagerConfig as unknown as new (data: unknown) => { validate(): void };

const asManifest = (spec: unknown) => ({
  apiVersion: "monitoring.coreos.com/v1alpha1",
  kind: "AlertmanagerConfig",
  metadata: { name: "monitoring-alert-routing", namespace: input.namespace, labels: { release: "kps" } },
  spec,
});

describe("renderAlertmanagerConfig", () => {
  it("routes the stack's alerts to one receiver with Slack and the webhook, resolved ones too", () => {
    const spec = renderAlertmanagerConfig(input);
    expect(spec.route).toEqual({
      receiver: STACK_RECEIVER,
      groupBy: ["alertname", "severity"],
      groupWait: "30s",
      groupInterval: "5m",
      repeatInterval: "240m",
      matchers: [
        { name: "namespace", value: "ai-orchestrator", matchType: "=" },
        { name: "stack", value: "prod", matchType: "=" },
      ],
    });
    expect(spec.receivers).toEqual([
      {
        name: STACK_RECEIVER,
        slackConfigs: [
          {
            apiURL: { name: ALERT_RECEIVERS_SECRET, key: ALERT_URL_SECRET_KEYS.slack },
            channel: "#gpu-alerts",
            sendResolved: true,
          },
        ],
        webhookConfigs: [
          {
            urlSecret: { name: ALERT_RECEIVERS_SECRET, key: ALERT_URL_SECRET_KEYS.webhook },
            sendResolved: true,
          },
        ],
      },
    ]);
  });

  it("declares only the integrations asked for, and refuses a receiver with none", () => {
    const slackOnly = renderAlertmanagerConfig({ ...input, slack: {}, webhook: false });
    expect(slackOnly.receivers[0]).toEqual({
      name: STACK_RECEIVER,
      slackConfigs: [
        { apiURL: { name: ALERT_RECEIVERS_SECRET, key: "slack-webhook-url" }, sendResolved: true },
      ],
    });
    const { slack: _slack, ...withoutSlack } = input;
    expect(renderAlertmanagerConfig(withoutSlack).receivers[0]).not.toHaveProperty("slackConfigs");
    expect(() => renderAlertmanagerConfig({ ...withoutSlack, webhook: false })).toThrow(
      /slack and\/or webhook/,
    );
  });

  it("validates against the operator's AlertmanagerConfig schema", () => {
    for (const spec of [
      renderAlertmanagerConfig(input),
      renderAlertmanagerConfig({ ...input, slack: {}, webhook: false, groupBy: ["..."] }),
    ])
      expect(() => new AlertmanagerConfigModel(asManifest(spec)).validate()).not.toThrow();
    // the schema is strict enough to catch a URL written in place of a Secret reference
    const inline = {
      ...renderAlertmanagerConfig(input),
      receivers: [{ name: "x", slackConfigs: [{ apiURL: "https://hooks.slack.com/x" }] }],
    };
    expect(() => new AlertmanagerConfigModel(asManifest(inline)).validate()).toThrow();
  });

  it("holds no URL: only Secret references", () => {
    const text = JSON.stringify(renderAlertmanagerConfig(input));
    expect(text).not.toMatch(/https?:|hooks\.slack/);
  });

  it("every alert of the stack carries the labels the route matches (the operator's OnNamespace matcher too)", () => {
    const rules = renderAlertRules({
      namespace: input.namespace,
      stack: input.stack,
      budgetAlertAtPercent: [50, 100],
      modelBudgets: true,
      slos: [{ model: "m", availability: 0.995, ttftSeconds: 2, ttftTarget: 0.95 }],
      backupAlertAfterHours: 3,
    });
    const matchers = renderAlertmanagerConfig(input).route.matchers;
    const alerts = rules.groups.flatMap((g) => g.rules);
    expect(alerts.length).toBeGreaterThan(10);
    for (const alert of alerts)
      for (const m of matchers) expect(alert.labels[m.name], `${alert.alert} ${m.name}`).toBe(m.value);
  });

  it("the installed Alertmanager selects configs by the release label, from every namespace, per namespace", () => {
    const values = kubePrometheusStackValues({
      release: "kps",
      storageGi: 10,
      retention: "15d",
      dashboardLabel: "grafana_dashboard",
      grafanaAdminSecret: "grafana-admin",
    }) as { alertmanager: { alertmanagerSpec: Record<string, unknown> } };
    expect(values.alertmanager.alertmanagerSpec).toEqual({
      alertmanagerConfigSelector: { matchLabels: { release: "kps" } },
      alertmanagerConfigNamespaceSelector: {},
      alertmanagerConfigMatcherStrategy: { type: "OnNamespace" },
    });
  });
});

interface PlannedResource {
  type: string;
  name: string;
  inputs: Record<string, unknown>;
}

describe("a stack with alert receivers, planned offline", () => {
  let resources: PlannedResource[];
  let raw: string;
  let dir: string;

  beforeAll(() => {
    dir = tempProject({
      "Pulumi.n.yaml": stackYaml({
        monitoring:
          '{ notify: { slack: { channel: "#gpu-alerts" }, webhook: {}, repeatIntervalMinutes: 60 } }',
        // an existing cluster on which the stack installs the monitoring stack, so its values are planned too
        platform: "{ monitoringStack: { install: true } }",
        "ai-orchestrator:vastaiApiKey": "{ secure: v1:CIPHERvast }",
        "ai-orchestrator:kubeconfig": "{ secure: v1:CIPHERkube }",
        "ai-orchestrator:alertSlackWebhookUrl": "{ secure: v1:CIPHERslack }",
        "ai-orchestrator:alertWebhookUrl": "{ secure: v1:CIPHERhook }",
      }),
    });
    const result = aiorch(["plan", "--json", "--stack", "n"], dir);
    raw = result.stdout + result.stderr;
    if (result.code !== 0 && result.code !== 1)
      throw new Error(`plan failed (${result.code}): ${result.stderr}`);
    resources = (JSON.parse(result.stdout) as { resources: PlannedResource[] }).resources;
  }, 120_000);
  afterAll(() => removeProject(dir));

  it("declares the URLs only in a Secret, as secrets", () => {
    const secret = resources.find((r) => r.name === "monitoring-alert-receivers")!;
    expect(secret.type).toBe("kubernetes:core/v1:Secret");
    expect((secret.inputs.metadata as { name: string }).name).toBe(ALERT_RECEIVERS_SECRET);
    expect(secret.inputs.stringData).toEqual({
      [ALERT_URL_SECRET_KEYS.slack]: "[secret]",
      [ALERT_URL_SECRET_KEYS.webhook]: "[secret]",
    });
    expect(raw).not.toMatch(/CIPHER|offline-secret/);
  });

  it("declares a valid AlertmanagerConfig in the stack's namespace, labelled for the Alertmanager's selector", () => {
    const config = resources.find(
      (r) => r.type === "kubernetes:monitoring.coreos.com/v1alpha1:AlertmanagerConfig",
    )!;
    expect(() => new AlertmanagerConfigModel(config.inputs).validate()).not.toThrow();
    const metadata = config.inputs.metadata as { namespace: string; labels: Record<string, string> };
    expect(metadata.namespace).toBe("ai-orchestrator");
    const release = resources.find(
      (r) => r.type === "kubernetes:helm.sh/v3:Release" && r.inputs.chart === "kube-prometheus-stack",
    )!;
    const selector = (
      release.inputs.values as {
        alertmanager: {
          alertmanagerSpec: { alertmanagerConfigSelector: { matchLabels: Record<string, string> } };
        };
      }
    ).alertmanager.alertmanagerSpec.alertmanagerConfigSelector.matchLabels;
    for (const [k, v] of Object.entries(selector)) expect(metadata.labels[k]).toBe(v);
    expect((config.inputs.spec as { route: { repeatInterval: string } }).route.repeatInterval).toBe("60m");
    // nothing secret outside the Secret: not in the config, not in the Helm values
    expect(JSON.stringify(config.inputs)).not.toMatch(/\[secret\]|https?:/);
    expect(JSON.stringify(release.inputs.values)).not.toMatch(/\[secret\]|CIPHER/);
  });
});
