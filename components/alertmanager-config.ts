/**
 * Pure renderer of where the stack's alerts go: the `spec` of a prometheus-operator AlertmanagerConfig
 * (monitoring.coreos.com/v1alpha1) routing them to Slack and/or a webhook. No Pulumi and no URL here: the
 * receivers reference the URLs by Secret key, so the object can be shown, logged and tested. Tested as a plain
 * function (`test/components/alertmanager-config.test.ts`), validated with @kubernetes-models/prometheus-operator.
 *
 * Facts it relies on (prometheus-operator v0.93, what kube-prometheus-stack 88.5.3 runs):
 * - `pkg/apis/monitoring/v1alpha1/alertmanager_config_types.go`: `route` {receiver, groupBy (unique; "..." alone),
 *   groupWait, groupInterval, repeatInterval, matchers [{name, value, matchType}]}; `receivers[]` {name,
 *   slackConfigs[] {apiURL: SecretKeySelector, channel, sendResolved}, webhookConfigs[] {urlSecret:
 *   SecretKeySelector, sendResolved}}; the Secrets "need to be in the same namespace as the AlertmanagerConfig".
 * - `pkg/alertmanager/amcfg.go`: with the default matcher strategy (`OnNamespace`) the operator replaces any
 *   `namespace` matcher of the first-level route with `namespace="<the config's namespace>"` and sets
 *   `continue: true`; with `None` it leaves the matchers as written. So the alerts must carry the stack's
 *   namespace as a label (components/alert-rules.ts adds it to every rule), and the route also matches the
 *   stack's label, which keeps other namespaces' alerts out under either strategy.
 */

/** Keys of the receivers' URLs in the Secret the AlertmanagerConfig references. */
export const ALERT_URL_SECRET_KEYS = { slack: "slack-webhook-url", webhook: "webhook-url" } as const;

/** Name of the Secret (in the stack's namespace) holding the receivers' URLs. */
export const ALERT_RECEIVERS_SECRET = "alert-receivers";

/** Name of the stack's receiver (the operator prefixes it with the config's namespace and name). */
export const STACK_RECEIVER = "stack-alerts";

export interface AlertmanagerConfigInput {
  /** The stack's namespace: the config lives there and routes the alerts labelled with it. */
  readonly namespace: string;
  /** Stack name: every alert of the stack carries `stack: <name>`. */
  readonly stack: string;
  /** Post to a Slack incoming webhook (URL in the Secret), optionally to a channel. */
  readonly slack?: { readonly channel?: string };
  /** POST Alertmanager's JSON payload to a webhook (URL in the Secret). */
  readonly webhook?: boolean;
  /** Alert labels one notification groups. */
  readonly groupBy: readonly string[];
  /** Minutes after which a firing alert is sent again. */
  readonly repeatIntervalMinutes: number;
  /** Secret holding the URLs under `ALERT_URL_SECRET_KEYS`. @default ALERT_RECEIVERS_SECRET */
  readonly secretName?: string;
}

export interface AlertMatcher {
  readonly name: string;
  readonly value: string;
  readonly matchType: "=";
}

export interface AlertmanagerConfigSpec {
  readonly route: {
    readonly receiver: string;
    readonly groupBy: readonly string[];
    readonly groupWait: string;
    readonly groupInterval: string;
    readonly repeatInterval: string;
    readonly matchers: readonly AlertMatcher[];
  };
  readonly receivers: readonly {
    readonly name: string;
    readonly slackConfigs?: readonly {
      readonly apiURL: { readonly name: string; readonly key: string };
      readonly channel?: string;
      readonly sendResolved: true;
    }[];
    readonly webhookConfigs?: readonly {
      readonly urlSecret: { readonly name: string; readonly key: string };
      readonly sendResolved: true;
    }[];
  }[];
}

/** The AlertmanagerConfig's spec: the stack's alerts, grouped, to one receiver with the configured integrations. */
export function renderAlertmanagerConfig(input: AlertmanagerConfigInput): AlertmanagerConfigSpec {
  if (!input.slack && !input.webhook)
    throw new Error(
      "renderAlertmanagerConfig: give slack and/or webhook; a receiver without one sends nothing",
    );
  const secret = input.secretName ?? ALERT_RECEIVERS_SECRET;
  return {
    route: {
      receiver: STACK_RECEIVER,
      groupBy: input.groupBy,
      // Alertmanager's defaults (prometheus.io/docs/alerting/latest/configuration/#route), written out
      groupWait: "30s",
      groupInterval: "5m",
      repeatInterval: `${input.repeatIntervalMinutes}m`,
      matchers: [
        { name: "namespace", value: input.namespace, matchType: "=" },
        { name: "stack", value: input.stack, matchType: "=" },
      ],
    },
    receivers: [
      {
        name: STACK_RECEIVER,
        ...(input.slack
          ? {
              slackConfigs: [
                {
                  apiURL: { name: secret, key: ALERT_URL_SECRET_KEYS.slack },
                  ...(input.slack.channel ? { channel: input.slack.channel } : {}),
                  // Slack's default is false: say when a budget or idle GPU alert is over
                  sendResolved: true,
                },
              ],
            }
          : {}),
        ...(input.webhook
          ? {
              webhookConfigs: [
                { urlSecret: { name: secret, key: ALERT_URL_SECRET_KEYS.webhook }, sendResolved: true },
              ],
            }
          : {}),
      },
    ],
  };
}
