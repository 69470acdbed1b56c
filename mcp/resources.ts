/**
 * MCP resources and prompts of the orchestrator's server: the runtime config with anything secret-looking
 * redacted, the stack's trust rules (which provider each model may use, and why), the README's runbooks when the
 * project folder is at hand, and prompts for the common jobs ("investigate slow requests", "reduce spend") that
 * walk an assistant through the tools in server.ts.
 */
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import { CONFIGURABLE_PROVIDER_IDS } from "../core/catalog";
import type { RuntimeConfig } from "../core/config";
import { approvedOfferings, decideProvision } from "../core/trust";

/** Field names whose values are credentials wherever they appear (the runtime config should hold none). */
const SECRET_FIELD = /(api_?key|token|secret|passw(or)?d|credential|private_?key|key_?pem|authorization)/i;

/** A copy with secret-looking fields replaced and credentials in URLs removed. */
export function redacted(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redacted);
  if (typeof value === "object" && value !== null)
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, SECRET_FIELD.test(k) ? "[redacted]" : redacted(v)]),
    );
  if (typeof value === "string" && /^[a-z][a-z0-9+.-]*:\/\/[^/@\s]+@/i.test(value))
    return value.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@\s]+@/i, "$1[redacted]@");
  return value;
}

/** Per model and provider: may its data go there, why, and the fix when not (the controller's own gate). */
export function trustRules(config: RuntimeConfig) {
  return {
    stack: config.stack,
    dataClass: config.dataClass,
    gdpr: config.gdpr,
    approvedOfferings: Object.fromEntries(
      (["public", "internal", "confidential"] as const).map((c) => [c, approvedOfferings(c, config.trust)]),
    ),
    exceptions: config.trust.exceptions.map((e) => ({ ...e })),
    models: config.models.map((m) => ({
      model: m.name,
      dataClass: m.dataClass,
      providers: m.providers
        .filter((p) => (CONFIGURABLE_PROVIDER_IDS as readonly string[]).includes(p))
        .map((p) => {
          const d = decideProvision(config, m.name, p);
          return { provider: p, allowed: d.allowed, reason: d.reason, ...(d.fix ? { fix: d.fix } : {}) };
        }),
    })),
  };
}

/** The stack's Grafana dashboard: its link where the stack names Grafana's address, else its uid and how to set it. */
export function dashboardLink(config: Pick<RuntimeConfig, "dashboard" | "stack">) {
  const { dashboard } = config;
  if (!dashboard)
    return { dashboard: null, note: `monitoring is off for stack ${config.stack}: no dashboard` };
  if (dashboard.url) return { uid: dashboard.uid, url: dashboard.url };
  return {
    uid: dashboard.uid,
    url: null,
    note: "set ai-orchestrator:monitoring.grafanaUrl to get a link; in Grafana, search for this uid",
  };
}

/** The README's runbook sections (`### … runbook`), as markdown; undefined when it has none. */
export function runbooksOf(readme: string): string | undefined {
  const sections = readme.split(/^(?=#{2,3} )/m).filter((s) => /^#{2,3} .*runbook/i.test(s));
  return sections.length > 0 ? sections.join("\n").trim() : undefined;
}

export function registerResourcesAndPrompts(
  server: McpServer,
  deps: { readonly config: RuntimeConfig; readonly runbooks?: string },
): void {
  const { config } = deps;
  const json = (uri: URL, data: unknown) => ({
    contents: [{ uri: uri.href, mimeType: "application/json", text: JSON.stringify(data, null, 2) }],
  });
  server.registerResource(
    "runtime-config",
    "aiorch://config",
    {
      title: "Runtime config",
      description: `The runtime config the gateway and controller of stack ${config.stack} read (secrets redacted)`,
      mimeType: "application/json",
    },
    (uri) => json(uri, redacted(config)),
  );
  server.registerResource(
    "trust-rules",
    "aiorch://trust",
    {
      title: "Trust rules",
      description: "Which provider each model's data may go to, why, and the fix when it may not",
      mimeType: "application/json",
    },
    (uri) => json(uri, trustRules(config)),
  );
  server.registerResource(
    "dashboard",
    "aiorch://dashboard",
    {
      title: "Grafana dashboard",
      description: `Where the Grafana dashboard of stack ${config.stack} is (queue, workers, spend, cold starts)`,
      mimeType: "application/json",
    },
    (uri) => json(uri, dashboardLink(config)),
  );
  const runbooks = deps.runbooks;
  if (runbooks !== undefined)
    server.registerResource(
      "runbooks",
      "aiorch://runbooks",
      { title: "Runbooks", description: "The README's runbooks", mimeType: "text/markdown" },
      (uri) => ({ contents: [{ uri: uri.href, mimeType: "text/markdown", text: runbooks }] }),
    );

  server.registerPrompt(
    "investigate-slow-requests",
    {
      title: "Investigate slow requests",
      description: "Find out why requests waited: cold starts, capacity, providers, decisions",
      argsSchema: {
        requestId: z.string().optional().describe("a slow request's x-request-id, if known"),
        model: z.string().optional().describe("the model that was slow, if known"),
      },
    },
    ({ requestId, model }) => ({
      messages: [
        {
          role: "user",
          content: {
            type: "text",
            text: [
              `Investigate slow requests on the ai-orchestrator stack ${config.stack}.`,
              requestId
                ? `1. Call request_story with requestId ${requestId}: how long it waited, whether it was a cold start, which provider and worker.`
                : "1. Call status: queue depth, workers loading, budget blocks.",
              `2. Call explain_scaling${model ? ` for model ${model}` : " for the slow model"}: the decisions (demand, keep-alive, offers chosen and skipped) around that time.`,
              "3. Call worker_health (workers slow to boot) and provider_errors (a provider failing or out of capacity).",
              "4. Explain the cause in a few sentences with the numbers, and suggest a change (a warm floor with set_worker_bounds, another provider in the stack config), without acting unless asked.",
            ].join("\n"),
          },
        },
      ],
    }),
  );
  server.registerPrompt(
    "reduce-spend",
    {
      title: "Reduce spend",
      description: "Find where the GPU money goes and propose (or, with an admin key, make) cuts",
      argsSchema: { targetUsd: z.string().optional().describe("the month's spend to stay under, in USD") },
    },
    ({ targetUsd }) => ({
      messages: [
        {
          role: "user",
          content: {
            type: "text",
            text: [
              `Reduce GPU spend on the ai-orchestrator stack ${config.stack}${targetUsd ? ` to stay under $${targetUsd} this month` : ""}.`,
              "1. Call spend (by model, key and day) and status (running workers, their price per hour).",
              "2. Call worker_health for idle workers and explain_scaling for the models that cost most (keep-alive reasons).",
              "3. Call cost_forecast for those models under the usage pattern that fits, to compare what each change saves.",
              "4. Propose cuts with their savings: lower a model's max workers (set_worker_bounds), drain idle workers (drain_worker), lower a budget for the rest of the month (lower_budget). Act only when asked, with a reason.",
            ].join("\n"),
          },
        },
      ],
    }),
  );
}
