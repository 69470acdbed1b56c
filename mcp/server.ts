/**
 * The orchestrator's MCP server (Model Context Protocol, `@modelcontextprotocol/sdk`): what an operator sees and
 * does with `aiorch status`, `keys`, `models`, `audit` and `simulate`, as tools an assistant can call. `main.ts`
 * serves it over stdio or Streamable HTTP; tests build it from their own Redis and call it with the SDK's client.
 *
 * Rules:
 * - read tools (annotated `readOnlyHint`) answer with structured output (`outputSchema` + `structuredContent`,
 *   MCP spec 2025-06-18 "Structured Content"), built from the records in read.ts — never a secret;
 * - acting tools (annotated `destructiveHint` where they stop or refuse work) need a caller of scope `admin` and
 *   a `reason`; a `read` caller is refused (`isError`) before anything is written; each change is one audit entry
 *   naming the caller (act.ts);
 * - a refusal or a bad argument is a tool error the assistant can read and act on, never a crash of the server;
 * - no tool rotates an API key: the new raw key would have to be in the result, which goes into the assistant's
 *   context, and the protocol has no way to mark a result secret — the spec sends credentials only out of band
 *   (MCP 2025-11-25, client/elicitation: "Servers MUST use URL mode for interactions involving sensitive
 *   information, such as credentials"). `revoke_key` is a tool; rotation stays with `aiorch keys rotate`.
 */
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import type { Redis } from "ioredis";
import { z } from "zod";
import type { RuntimeConfig } from "../core/config";
import { redisKeys } from "../core/redis-keys";
import { readStatus } from "../core/stack-status";
import { USAGE_PATTERNS } from "../core/usage-patterns";
import { version } from "../package.json";
import {
  type ActContext,
  drainWorker,
  lowerBudget,
  RefusedChange,
  revokeKey,
  setPaused,
  setWeight,
  setWorkerBounds,
} from "./act";
import {
  anomalies,
  auditVerify,
  costForecast,
  explainScaling,
  providerErrors,
  requestStory,
  spendReport,
  UnknownModel,
  workerHealth,
} from "./read";
import { registerResourcesAndPrompts } from "./resources";
import { selfHealingStatus } from "./self-healing";

export interface McpDeps {
  readonly config: RuntimeConfig;
  readonly redis: Redis;
  /** @default Date.now */
  readonly now?: () => number;
  /** The README's runbooks (markdown), served as a resource when given. */
  readonly runbooks?: string;
}

/** Who is calling: from the API key over HTTP, or the local operator over stdio. */
export interface McpCaller {
  /** What the audit trail names: `mcp:<key id>` or `mcp:local:<user>`. */
  readonly actor: string;
  readonly scope: "read" | "admin";
}

const READ_TOOLS = [
  "status",
  "explain_scaling",
  "request_story",
  "spend",
  "cost_forecast",
  "audit_verify",
  "provider_errors",
  "worker_health",
  "anomalies",
] as const;
const ACTING_TOOLS = [
  "set_worker_bounds",
  "drain_worker",
  "set_variant_weight",
  "revoke_key",
  "pause_model",
  "unpause_model",
  "lower_budget",
] as const;
export const TOOL_NAMES = { read: READ_TOOLS, acting: ACTING_TOOLS } as const;

const structured = (data: Record<string, unknown>): CallToolResult => ({
  content: [{ type: "text", text: JSON.stringify(data, null, 2) }],
  structuredContent: data,
});
const toolError = (message: string): CallToolResult => ({
  content: [{ type: "text", text: message }],
  isError: true,
});

/** Run a tool body; refusals and unknown names become a tool error the assistant reads. */
async function answer(
  body: () => Promise<Record<string, unknown>> | Record<string, unknown>,
): Promise<CallToolResult> {
  try {
    return structured(await body());
  } catch (error) {
    if (error instanceof RefusedChange || error instanceof UnknownModel)
      return toolError((error as Error).message);
    throw error;
  }
}

const reason = z
  .string()
  .trim()
  .min(3)
  .max(500)
  .describe("why: goes into the audit trail with the caller (required)");

const decisionShape = z.object({
  at: z.string(),
  model: z.string(),
  action: z.string(),
  workers: z.number().optional(),
  worker: z.string().optional(),
  reason: z.string(),
});

export function buildMcpServer(deps: McpDeps, caller: McpCaller): McpServer {
  const { config, redis } = deps;
  const now = deps.now ?? Date.now;
  const keys = redisKeys(config.redis.keyPrefix);
  const server = new McpServer(
    { name: "aiorch", title: `ai-orchestrator (stack ${config.stack})`, version },
    {
      instructions:
        "Operate an ai-orchestrator stack: read tools explain workers, scaling decisions, requests, spend and errors; " +
        "acting tools (admin keys only) change bounds, drain workers, pause models, set weights, revoke keys and lower budgets, each with a reason that is audited.",
    },
  );
  const readOnly = { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false };

  server.registerTool(
    "status",
    {
      title: "Stack status",
      description:
        "Workers by model, provider and state; queue depth and in-flight requests per model; spend this month against the budgets; budget blocks; the controller leader; its last scale decisions.",
      inputSchema: {
        decisions: z.number().int().min(0).max(200).default(20).describe("how many recent decisions"),
      },
      outputSchema: {
        stack: z.string(),
        at: z.string(),
        leader: z.string().nullable(),
        workers: z.array(
          z.object({
            id: z.string(),
            model: z.string(),
            provider: z.string(),
            state: z.string(),
            providerId: z.string().nullable(),
            usdPerHour: z.number(),
            ageSeconds: z.number(),
            stateSeconds: z.number(),
            detail: z.string().nullable(),
          }),
        ),
        workersByState: z.array(
          z.object({
            model: z.string(),
            provider: z.string(),
            state: z.string(),
            workers: z.number(),
            usdPerHour: z.number(),
          }),
        ),
        queue: z.array(
          z.object({
            model: z.string(),
            waiting: z.number(),
            jobs: z.number(),
            inFlight: z.number(),
            routes: z.number(),
          }),
        ),
        spend: z.object({
          month: z.string(),
          totalUsd: z.number(),
          budgetUsd: z.number().nullable(),
          percent: z.number().nullable(),
          byModel: z.array(
            z.object({
              model: z.string(),
              usd: z.number(),
              budgetUsd: z.number().nullable(),
              requests: z.number(),
            }),
          ),
        }),
        budgetBlocks: z.record(z.string(), z.string()),
        controls: z.object({
          bounds: z.record(z.string(), z.object({ minWorkers: z.number(), maxWorkers: z.number() })),
          paused: z.record(z.string(), z.string()),
          budgets: z.record(z.string(), z.number()),
        }),
        decisions: z.array(decisionShape),
      },
      annotations: readOnly,
    },
    ({ decisions }) =>
      answer(async () => ({ ...(await readStatus(redis, config, { decisions, now: now() })) })),
  );

  server.registerTool(
    "explain_scaling",
    {
      title: "Explain a model's scaling",
      description:
        "A model's last scale decisions with their reasons (demand, keep-alive, offer chosen and skipped, budget blocks), its configured bounds and any run-time bounds or pause in force.",
      inputSchema: {
        model: z.string().describe("model name (or model@variant)"),
        limit: z.number().int().min(1).max(200).default(20),
      },
      outputSchema: {
        model: z.string(),
        config: z.object({
          minWorkers: z.number(),
          maxWorkers: z.number(),
          targetConcurrency: z.number(),
          idleTimeoutSeconds: z.number().nullable(),
          providers: z.array(z.string()),
        }),
        runTimeBounds: z.array(
          z.object({ unit: z.string(), minWorkers: z.number(), maxWorkers: z.number() }),
        ),
        paused: z.string().nullable(),
        decisions: z.array(decisionShape),
      },
      annotations: readOnly,
    },
    ({ model, limit }) => answer(() => explainScaling(redis, keys, config, model, limit)),
  );

  server.registerTool(
    "request_story",
    {
      title: "A request's story",
      description:
        "What happened to one request, by its x-request-id (req_…): status, how long it waited, which worker and provider served it, whether it waited for a cold start, and the controller's decisions that explain the wait.",
      inputSchema: {
        requestId: z.string().regex(/^req_[0-9a-f]{32}$/, "a gateway request id: req_ + 32 hex digits"),
      },
      outputSchema: {
        requestId: z.string(),
        found: z.boolean(),
        summary: z.string().optional(),
        request: z
          .object({
            at: z.string(),
            model: z.string(),
            status: z.number(),
            waitedMs: z.number(),
            worker: z.string().nullable(),
            provider: z.string().nullable(),
          })
          .passthrough()
          .optional(),
        coldStart: z.boolean().optional(),
        bootSeconds: z.number().nullable().optional(),
        worker: z
          .object({ id: z.string(), provider: z.string(), state: z.string() })
          .passthrough()
          .nullable()
          .optional(),
        decisions: z.array(decisionShape).optional(),
      },
      annotations: readOnly,
    },
    ({ requestId }) => answer(() => requestStory(redis, keys, requestId)),
  );

  const usd = z.object({ name: z.string(), usd: z.number() });
  server.registerTool(
    "spend",
    {
      title: "Spend by model, key and day",
      description: "GPU spend this month by model and by API key id, and the last days by model (USD).",
      inputSchema: { days: z.number().int().min(1).max(31).default(7) },
      outputSchema: {
        month: z.string(),
        totalUsd: z.number(),
        budgetUsd: z.number().nullable(),
        byModel: z.array(usd),
        byKey: z.array(z.object({ keyId: z.string(), usd: z.number() })),
        days: z.array(z.object({ day: z.string(), totalUsd: z.number(), byModel: z.array(usd) })),
      },
      annotations: readOnly,
    },
    ({ days }) => answer(() => spendReport(redis, keys, config, days, now())),
  );

  const patternIds = USAGE_PATTERNS.map((p) => p.id) as [string, ...string[]];
  server.registerTool(
    "cost_forecast",
    {
      title: "Cost forecast",
      description:
        "Simulate one model under a usage pattern with the real scaling policy (aiorch simulate): cost, billed hours, cold starts and p95 wait per provider.",
      inputSchema: {
        model: z.string(),
        pattern: z.enum(patternIds).describe(`usage pattern: ${patternIds.join(", ")}`),
        ratePerSecond: z
          .number()
          .positive()
          .max(1000)
          .default(0.1)
          .describe("mean requests per second while active"),
        days: z.number().int().min(1).max(31).default(30),
        seed: z.number().int().min(0).default(1),
      },
      outputSchema: {
        model: z.string(),
        pattern: z.string(),
        days: z.number(),
        results: z.array(
          z.object({
            provider: z.string(),
            gpu: z.string(),
            policy: z.string(),
            costUsd: z.number(),
            billedHours: z.number(),
            coldStarts: z.number(),
            waitP95Seconds: z.number(),
            requests: z.number(),
          }),
        ),
        unpriced: z.array(z.string()),
        assumptions: z.array(z.string()),
      },
      annotations: readOnly,
    },
    (input) =>
      answer(() =>
        costForecast(config, { ...input, pattern: input.pattern as (typeof USAGE_PATTERNS)[number]["id"] }),
      ),
  );

  server.registerTool(
    "audit_verify",
    {
      title: "Verify the audit trail",
      description: "Check the administrative audit trail's hash chain and show its latest entries.",
      inputSchema: { last: z.number().int().min(0).max(200).default(10) },
      outputSchema: {
        ok: z.boolean(),
        entries: z.number(),
        head: z.string(),
        broken: z.object({ id: z.string(), why: z.string() }).nullable(),
        recent: z.array(
          z.object({
            at: z.string(),
            actor: z.string(),
            action: z.string(),
            target: z.string(),
            reason: z.string(),
          }),
        ),
      },
      annotations: readOnly,
    },
    ({ last }) => answer(() => auditVerify(redis, keys, last)),
  );

  server.registerTool(
    "provider_errors",
    {
      title: "Recent provider errors",
      description:
        "The controller's recent provider errors (offers, creates, terminations, reconciles), counted by provider and kind.",
      inputSchema: { limit: z.number().int().min(1).max(200).default(50) },
      outputSchema: {
        byProvider: z.array(z.object({ provider: z.string(), kind: z.string(), count: z.number() })),
        errors: z.array(
          z.object({
            at: z.string(),
            provider: z.string(),
            kind: z.string(),
            what: z.string(),
            message: z.string(),
          }),
        ),
      },
      annotations: readOnly,
    },
    ({ limit }) => answer(() => providerErrors(redis, keys, limit)),
  );

  server.registerTool(
    "worker_health",
    {
      title: "Worker health",
      description:
        "Every live worker: state and for how long, requests in flight, idle time, boot time, and a verdict (serving, idle, loading, slow to boot, draining, failed).",
      inputSchema: {},
      outputSchema: {
        workers: z.array(
          z
            .object({
              id: z.string(),
              model: z.string(),
              provider: z.string(),
              state: z.string(),
              verdict: z.string(),
              inFlight: z.number(),
            })
            .passthrough(),
        ),
      },
      annotations: readOnly,
    },
    () => answer(() => workerHealth(redis, keys, config, now())),
  );

  const anomalyReport = async () => ({
    ...(await anomalies(redis, keys, now())),
    selfHealing: await selfHealingStatus(redis, keys, config, now()),
  });
  server.registerTool(
    "anomalies",
    {
      title: "Anomalies",
      description:
        "What looks wrong in the stack's own records: workers slow to boot against their provider's history, a provider erroring repeatedly, spend far above the month's rate, a 5xx spike; each names the tool to act with. selfHealing says which the controller acts on by itself (replacing slow workers, failing over from an erroring provider, within the stack's hourly guard rail) and what it did in the last day; the rest is for you and a human to decide.",
      inputSchema: {},
      outputSchema: {
        at: z.string(),
        anomalies: z.array(
          z.object({ kind: z.string(), subject: z.string(), detail: z.string(), suggestion: z.string() }),
        ),
        selfHealing: z.object({
          enabled: z.boolean(),
          replaceSlowWorkers: z.boolean(),
          failOverOnProviderErrors: z.boolean(),
          maxActionsPerHour: z.number(),
          actionsLeftThisHour: z.number(),
          recentActions: z.array(
            z.object({ at: z.string(), kind: z.string(), subject: z.string(), reason: z.string() }),
          ),
        }),
      },
      annotations: readOnly,
    },
    () => answer(anomalyReport),
  );
  // the same report as a resource, for clients that watch resources rather than call tools
  server.registerResource(
    "anomalies",
    "aiorch://anomalies",
    {
      title: "Anomalies",
      description:
        "What looks wrong now and what self-healing did in the last day (the anomalies tool's answer)",
      mimeType: "application/json",
    },
    async (uri) => ({
      contents: [
        { uri: uri.href, mimeType: "application/json", text: JSON.stringify(await anomalyReport(), null, 2) },
      ],
    }),
  );

  // ── acting tools: admin keys only, each one audit entry ────────────────────────────────────────────────────

  const acting = (run: (ctx: ActContext) => Promise<Record<string, unknown>>): Promise<CallToolResult> => {
    if (caller.scope !== "admin")
      return Promise.resolve(
        toolError(
          `refused: this tool changes the stack and needs an API key of scope "admin"; the caller (${caller.actor}) has scope "${caller.scope}". Nothing was changed.`,
        ),
      );
    return answer(() => run({ redis, keys, config, actor: caller.actor, now: now() }));
  };
  const acts = { readOnlyHint: false, openWorldHint: false };

  server.registerTool(
    "set_worker_bounds",
    {
      title: "Set a model's worker bounds",
      description:
        "Set a model's min/max workers at run time, within the stack config's bounds (the controller follows on its next tick); reset returns to the config's.",
      inputSchema: {
        model: z.string().describe("model name (model@variant for a variant)"),
        minWorkers: z.number().int().min(0).default(0),
        maxWorkers: z.number().int().min(0).default(0),
        reset: z.boolean().default(false),
        reason,
      },
      outputSchema: { model: z.string(), minWorkers: z.number(), maxWorkers: z.number(), source: z.string() },
      annotations: { ...acts, destructiveHint: true, idempotentHint: true },
    },
    (input) => acting((ctx) => setWorkerBounds(ctx, input)),
  );

  server.registerTool(
    "drain_worker",
    {
      title: "Drain a worker",
      description:
        "Stop routing to a worker, let its in-flight requests finish and terminate it (the controller replaces it when demand or minWorkers still need one).",
      inputSchema: { workerId: z.string(), reason },
      outputSchema: { workerId: z.string(), model: z.string(), state: z.string(), queued: z.boolean() },
      annotations: { ...acts, destructiveHint: true, idempotentHint: true },
    },
    (input) => acting((ctx) => drainWorker(ctx, input)),
  );

  server.registerTool(
    "set_variant_weight",
    {
      title: "Set a variant's traffic weight",
      description:
        "Change the traffic weight of one variant of a model in a rollout (every gateway follows at once).",
      inputSchema: { model: z.string(), variant: z.string(), weight: z.number().min(0), reason },
      outputSchema: {
        model: z.string(),
        variant: z.string(),
        before: z.number(),
        after: z.number(),
        weights: z.array(z.object({ name: z.string(), weight: z.number() })),
      },
      annotations: { ...acts, destructiveHint: false, idempotentHint: true },
    },
    (input) => acting((ctx) => setWeight(ctx, input)),
  );

  server.registerTool(
    "revoke_key",
    {
      title: "Revoke an API key",
      description:
        "Revoke an API key by its id (key_…); every gateway refuses it within seconds. To replace a key instead, an operator runs `aiorch keys rotate <id>` in a terminal: a new key is never returned over MCP.",
      inputSchema: { keyId: z.string().regex(/^key_[0-9a-f]+$/, "a key id: key_ + hex digits"), reason },
      outputSchema: { keyId: z.string(), revoked: z.boolean() },
      annotations: { ...acts, destructiveHint: true, idempotentHint: true },
    },
    (input) => acting((ctx) => revokeKey(ctx, input)),
  );

  server.registerTool(
    "pause_model",
    {
      title: "Pause a model",
      description:
        "Pause a model: the gateway answers its requests 503 with the reason until it is unpaused.",
      inputSchema: { model: z.string(), reason },
      outputSchema: { model: z.string(), paused: z.boolean() },
      annotations: { ...acts, destructiveHint: true, idempotentHint: true },
    },
    ({ model, reason: why }) => acting((ctx) => setPaused(ctx, { model, paused: true, reason: why })),
  );

  server.registerTool(
    "unpause_model",
    {
      title: "Unpause a model",
      description: "Serve a paused model again.",
      inputSchema: { model: z.string(), reason },
      outputSchema: { model: z.string(), paused: z.boolean() },
      annotations: { ...acts, destructiveHint: false, idempotentHint: true },
    },
    ({ model, reason: why }) => acting((ctx) => setPaused(ctx, { model, paused: false, reason: why })),
  );

  server.registerTool(
    "lower_budget",
    {
      title: "Lower a budget for this month",
      description:
        "Lower the stack's (scope \"stack\") or a model's monthly GPU budget for the rest of this month; at the lowered cap the controller starts no workers and stops running ones. Only lowers.",
      inputSchema: { scope: z.string().describe('"stack" or a model name'), usd: z.number().min(0), reason },
      outputSchema: {
        scope: z.string(),
        usd: z.number(),
        month: z.string(),
        previousUsd: z.number().nullable(),
      },
      annotations: { ...acts, destructiveHint: true, idempotentHint: true },
    },
    (input) => acting((ctx) => lowerBudget(ctx, input)),
  );

  registerResourcesAndPrompts(server, deps);
  return server;
}
