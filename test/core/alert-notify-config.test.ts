/** `monitoring.notify` and its secrets: defaults, the missing-secret warning, errors naming the field and the fix. */
import { describe, expect, it } from "vitest";
import {
  type ConfigProblem,
  loadStackConfig,
  parseStackFile,
  renderRuntimeConfig,
  StackConfigError,
} from "../../core/config";
import { alertReceiverUrlProblem, CREDENTIAL_ENV } from "../../core/config/schema";
import { platformPlan } from "../../core/platform";
import { stackYaml } from "../../devkit/stack-yaml";

const load = (yaml: string) => loadStackConfig(parseStackFile(yaml, "Pulumi.test.yaml"));

function problemsOf(yaml: string): ConfigProblem[] {
  try {
    load(yaml);
  } catch (error) {
    if (error instanceof StackConfigError) return [...error.problems];
    throw error;
  }
  throw new Error("expected the config to be rejected");
}

const SLACK_KEY = "ai-orchestrator:alertSlackWebhookUrl";
const WEBHOOK_KEY = "ai-orchestrator:alertWebhookUrl";

describe("stack config: monitoring.notify", () => {
  it("is off by default: no receiver, no secret needed", () => {
    const loaded = load(stackYaml());
    expect(loaded.config.monitoring.notify).toBeUndefined();
    expect(loaded.missingSecrets).not.toContain(SLACK_KEY);
    expect(loaded.missingSecrets).not.toContain(WEBHOOK_KEY);
  });

  it("defaults grouping and repetition, and warns with the command when a receiver's secret is not set", () => {
    const loaded = load(stackYaml({ monitoring: "{ notify: { slack: {}, webhook: {} } }" }));
    expect(loaded.config.monitoring.notify).toEqual({
      slack: {},
      webhook: {},
      groupBy: ["alertname", "severity"],
      repeatIntervalMinutes: 240,
    });
    expect(loaded.missingSecrets).toEqual(expect.arrayContaining([SLACK_KEY, WEBHOOK_KEY]));
    const warning = loaded.warnings.find((w) => w.key === SLACK_KEY)!;
    expect(warning.message).toMatch(/monitoring\.notify\.slack/);
    expect(warning.message).toMatch(/pulumi config set --secret alertSlackWebhookUrl <value>/);
    expect(loaded.warnings.find((w) => w.key === WEBHOOK_KEY)?.message).toMatch(
      /pulumi config set --secret alertWebhookUrl/,
    );
  });

  it("no warning once the secret is set; only the configured receiver's secret is needed", () => {
    const loaded = load(
      stackYaml({
        monitoring: "{ notify: { slack: { channel: '#gpu-alerts' } } }",
        [SLACK_KEY]: "{ secure: v1:CIPHERslack }",
      }),
    );
    expect(loaded.missingSecrets).not.toContain(SLACK_KEY);
    expect(loaded.missingSecrets).not.toContain(WEBHOOK_KEY);
    expect(loaded.warnings.map((w) => w.key)).not.toContain(SLACK_KEY);
  });

  it("refuses a receiver URL stored in plain text, without echoing it", () => {
    const problems = problemsOf(
      stackYaml({ [SLACK_KEY]: "https://hooks.slack.com/services/T0/B0/SECRETPART" }),
    );
    expect(problems[0]).toMatchObject({ key: SLACK_KEY });
    expect(problems[0]!.message).toMatch(/pulumi config set --secret ai-orchestrator:alertSlackWebhookUrl/);
    expect(JSON.stringify(problems)).not.toContain("SECRETPART");
  });

  it("names each bad field and what to write", () => {
    const message = (yaml: string, key: string) =>
      problemsOf(yaml).find((p) => p.key === `ai-orchestrator:monitoring.notify${key}`)?.message;
    const notify = (body: string) => stackYaml({ monitoring: `{ notify: ${body} }` });
    expect(message(notify("{}"), "")).toMatch(
      /names no receiver; add slack: \{\} \(secret alertSlackWebhookUrl\)/,
    );
    expect(message(notify("{ slack: { channel: 'gpu alerts' } }"), ".slack.channel")).toMatch(
      /is not a Slack channel; write e.g. "#gpu-alerts"/,
    );
    expect(message(notify("{ slack: { url: 'https://x' } }"), ".slack.url")).toMatch(/unknown field "url"/);
    expect(message(notify("{ webhook: {}, groupBy: [alertname, alertname] }"), ".groupBy")).toMatch(
      /lists a label twice/,
    );
    expect(message(notify("{ webhook: {}, groupBy: ['...', model] }"), ".groupBy")).toMatch(
      /must be the only entry/,
    );
    expect(message(notify("{ webhook: {}, groupBy: ['model-name'] }"), ".groupBy[0]")).toMatch(
      /is not an alert label name/,
    );
    expect(message(notify("{ webhook: {}, repeatIntervalMinutes: 1 }"), ".repeatIntervalMinutes")).toMatch(
      /at least 5/,
    );
    expect(
      message(notify("{ webhook: {}, repeatIntervalMinutes: 10000 }"), ".repeatIntervalMinutes"),
    ).toMatch(/at most 7200/);
    expect(message(notify("{ webhook: {}, repeatIntervalMinutes: 61 }"), ".repeatIntervalMinutes")).toMatch(
      /must be a multiple of 5 \(the group interval\), e.g. 60 or 240/,
    );
    expect(
      problemsOf(stackYaml({ monitoring: "{ enabled: false, notify: { webhook: {} } }" })).find(
        (p) => p.key === "ai-orchestrator:monitoring.notify",
      )?.message,
    ).toMatch(/set monitoring.enabled: true or remove notify/);
  });

  it("the receivers' URLs never reach the runtime's environment or config", () => {
    expect(Object.keys(CREDENTIAL_ENV)).not.toContain("alertSlackWebhookUrl");
    expect(Object.keys(CREDENTIAL_ENV)).not.toContain("alertWebhookUrl");
    const runtime = renderRuntimeConfig(
      load(stackYaml({ monitoring: "{ notify: { webhook: {} } }" })),
      "test",
    );
    expect(JSON.stringify(runtime)).not.toMatch(/notify|webhook/i);
  });

  it("an existing cluster lists the Alertmanager that must select the stack's config as a prerequisite", () => {
    const withNotify = platformPlan(load(stackYaml({ monitoring: "{ notify: { webhook: {} } }" })).config);
    const alertmanager = withNotify.prerequisites.find((p) => p.check.includes("alertmanagers"));
    expect(alertmanager?.what).toMatch(/release=kube-prometheus-stack.*namespace ai-orchestrator/);
    expect(alertmanager?.check).toMatch(/kubectl get crd alertmanagerconfigs\.monitoring\.coreos\.com/);
    const installed = platformPlan(
      load(
        stackYaml({
          monitoring: "{ notify: { webhook: {} } }",
          platform: "{ monitoringStack: { install: true } }",
        }),
      ).config,
    );
    expect(installed.prerequisites.some((p) => p.check.includes("alertmanagers"))).toBe(false);
    expect(
      platformPlan(load(stackYaml()).config).prerequisites.some((p) => p.check.includes("alertmanagers")),
    ).toBe(false);
  });
});

describe("alertReceiverUrlProblem", () => {
  it("accepts http(s) URLs with a host and says what is wrong otherwise, never echoing the value", () => {
    expect(alertReceiverUrlProblem("https://hooks.slack.com/services/T0/B0/x")).toBeUndefined();
    expect(alertReceiverUrlProblem(" http://alert-sink.ops:8080/hook\n")).toBeUndefined();
    expect(alertReceiverUrlProblem("hooks.slack.com/services/T0/B0/SECRETPART")).toBe("is not a URL");
    expect(alertReceiverUrlProblem("ftp://example.com/SECRETPART")).toBe("is not an http(s) URL");
    expect(alertReceiverUrlProblem("mailto:SECRETPART@example.com")).toBe("is not an http(s) URL");
  });
});
