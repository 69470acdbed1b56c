/**
 * Issue 23: the MCP server over Streamable HTTP, driven by the SDK's own client, against a real gateway, a real
 * controller (the in-memory provider, whose instances take 1.5 s to run: a cold start, serving a fake vLLM over
 * pinned TLS) and real Redis. Keys of scope read and admin; an inference key is refused. Every read tool is called;
 * every acting tool is refused for a read key with nothing changed, and with an admin key changes what the
 * controller or the gateway does, leaves one audit entry, and shows in `aiorch status`. No output carries a secret.
 */

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Controller } from "../../controller/controller";
import { ControllerJournal } from "../../controller/journal";
import { ControllerMetrics } from "../../controller/metrics";
import { ProviderError } from "../../controller/providers/types";
import { hashApiKey } from "../../core/api-keys";
import { AuditTrail } from "../../core/audit-trail";
import { readStatus } from "../../core/stack-status";
import { readVariantWeights } from "../../core/variant-weights";
import { createWorkerCertificate } from "../../core/x509";
import { startMcpHttp } from "../../mcp/http";
import { redacted, runbooksOf } from "../../mcp/resources";
import { TOOL_NAMES } from "../../mcp/server";
import { InMemoryProvider } from "../fakes/in-memory-provider";
import { type FakeVllm, startFakeVllm } from "../fakes/vllm-upstream";
import { createHarness, type Harness, testRuntimeConfig } from "../gateway/harness";

/** The text of a resource's first content (a text resource, not a blob). */
const textOf = (read: { contents: ({ text: string } | { blob: string })[] }): string => {
  const first = read.contents[0];
  return first && "text" in first ? first.text : "";
};

const HF_SECRET = "hf_mcpSecretTokenThatMustNeverLeak";
const SECRET_PROMPT = "PROMPT-SECRET-7f3a the launch codes";
const BOOT_MS = 1_500;

let h: Harness;
let engine: FakeVllm;
let gatewayUrl: string;
let controller: Controller;
let mcp: { url: string; close(): Promise<void> };
const keyText: Record<"admin" | "read" | "inference" | "victim", string> = {
  admin: "",
  read: "",
  inference: "",
  victim: "",
};
const keyIds: Record<string, string> = {};
const clients: Client[] = [];
/** Every tool answer of the file, for the secret scan. */
const outputs: string[] = [];

async function connect(key: string): Promise<Client> {
  const client = new Client({ name: "aiorch-test", version: "1.0.0" });
  // bearer API key on every request (StreamableHTTPClientTransportOptions.requestInit, sdk client/streamableHttp.d.ts)
  const transport = new StreamableHTTPClientTransport(new URL(mcp.url), {
    requestInit: { headers: { authorization: `Bearer ${key}` } },
  });
  await client.connect(transport);
  clients.push(client);
  await client.listTools(); // the client then checks every structured answer against the tool's output schema
  return client;
}

async function call(
  client: Client,
  name: string,
  args: Record<string, unknown> = {},
): Promise<CallToolResult> {
  const result = (await client.callTool({ name, arguments: args })) as CallToolResult;
  outputs.push(JSON.stringify(result));
  return result;
}
const data = <T = Record<string, unknown>>(result: CallToolResult): T => {
  expect(result.isError, JSON.stringify(result.content)).toBeFalsy();
  return result.structuredContent as T;
};

const until = async (what: string, check: () => Promise<boolean> | boolean, timeoutMs = 15_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

const chat = (model: string, key = keyText.inference, text = "hello") =>
  fetch(`${gatewayUrl}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ model, messages: [{ role: "user", content: text }], max_tokens: 5 }),
  });

const auditEntries = () => new AuditTrail(h.redis, h.keys).list();
/** Everything an acting tool may write, to compare before and after a refusal. */
const controlSnapshot = async () =>
  JSON.stringify(
    await Promise.all([
      h.redis.hgetall(h.keys.workerBounds),
      h.redis.hgetall(h.keys.pausedModels),
      h.redis.hgetall(h.keys.budgetOverrides),
      h.redis.hgetall(h.keys.drainRequests),
      h.redis.hgetall(h.keys.variantWeights("roll")),
      h.redis.hget(h.keys.apiKey(hashApiKey(keyText.victim)), "revoked"),
      h.redis.xlen(h.keys.auditStream),
    ]),
  );
const liveWorkers = async (model: string) => {
  const status = await readStatus(h.redis, h.config);
  return status.workers.filter((w) => w.model === model && w.state !== "draining");
};

beforeAll(async () => {
  h = await createHarness({
    fake: { model: ["chat", "roll", "cold"] },
    config: (url, prefix) =>
      testRuntimeConfig(url, prefix, {
        models: `[
          { name: chat, kind: chat, source: o/chat, gpu: [RTX_3090], providers: [vastai], maxWorkers: 2, targetConcurrency: 4, monthlyBudgetUsd: 50 },
          { name: roll, kind: chat, source: o/roll, gpu: [RTX_3090], providers: [vastai], variants: [{ name: a, weight: 50 }, { name: b, weight: 50 }] },
          { name: cold, kind: chat, source: o/cold, gpu: [RTX_3090], providers: [vastai] }
        ]`,
        gateway:
          "{ host: ai.example.com, limits: { rpm: 1000, tpm: 1000000 }, maxRequestBytes: 65536, keepAliveSeconds: 1, auditPrompts: true }",
      }),
  });
  ({ url: gatewayUrl } = await h.start());
  // every worker "runs" this engine, over TLS with the certificate the controller issues and pins
  const certificate = createWorkerCertificate("wmcp");
  engine = await startFakeVllm({
    model: ["chat", "roll", "cold"],
    tls: { cert: certificate.certPem, key: certificate.keyPem },
  });
  const provider = new InMemoryProvider({
    now: Date.now,
    offers: [
      { provider: "vastai", gpu: "RTX_3090", usdPerHour: 0.2, offerId: "o1" },
      { provider: "vastai", gpu: "RTX_3090", usdPerHour: 0.3, offerId: "o2" },
    ],
    walk: { provisioningMs: 300, bootingMs: BOOT_MS },
    baseUrlOf: () => engine.url.replace(/\/v1$/, ""),
  });
  controller = new Controller({
    config: h.config,
    redis: h.redis,
    adapters: { vastai: provider },
    metrics: new ControllerMetrics({ defaultMetrics: false }),
    workerEnv: { HF_TOKEN: HF_SECRET },
    log: () => undefined,
    tickMs: 100,
    issueCertificate: () => certificate,
  });
  await controller.start();
  mcp = await startMcpHttp({
    config: h.config,
    redis: h.redis,
    port: 0,
    host: "127.0.0.1",
    runbooks: runbooksOf(readFileSync(join(__dirname, "..", "..", "README.md"), "utf8")),
  });
  for (const scope of ["admin", "read", "inference"] as const) {
    const created = await h.store.create({ name: scope, scope });
    keyText[scope] = created.key;
    keyIds[scope] = created.record.id;
  }
  const victim = await h.store.create({ name: "victim" });
  keyText.victim = victim.key;
  keyIds.victim = victim.record.id;
}, 30_000);

afterAll(async () => {
  for (const c of clients) await c.close().catch(() => undefined);
  await mcp?.close();
  await controller?.stop();
  await h?.close();
  await engine?.close();
});

describe("MCP over Streamable HTTP: authentication and the tool list", () => {
  it("refuses a missing key (401) and an inference key (403 naming its scope)", async () => {
    const post = (headers: Record<string, string>) =>
      fetch(mcp.url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
          ...headers,
        },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
      });
    expect((await post({})).status).toBe(401);
    const refused = await post({ authorization: `Bearer ${keyText.inference}` });
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { error: { message: string } }).error.message).toContain(
      'scope "inference"',
    );
    await expect(connect(keyText.inference)).rejects.toThrow();
  });

  it("lists every tool with its annotations and an output schema", async () => {
    const { tools } = await (await connect(keyText.read)).listTools();
    const names = tools.map((t) => t.name).sort();
    expect(names).toEqual([...TOOL_NAMES.read, ...TOOL_NAMES.acting].sort());
    for (const tool of tools) {
      expect(tool.outputSchema, tool.name).toBeDefined();
      const readOnly = (TOOL_NAMES.read as readonly string[]).includes(tool.name);
      expect(tool.annotations?.readOnlyHint, tool.name).toBe(readOnly);
      expect(typeof tool.annotations?.destructiveHint, tool.name).toBe("boolean");
    }
    expect(tools.find((t) => t.name === "drain_worker")?.annotations?.destructiveHint).toBe(true);
    expect(tools.find((t) => t.name === "revoke_key")?.annotations?.destructiveHint).toBe(true);
  });
});

describe("why did my request wait? (read tools on real records)", () => {
  let requestId: string;

  it("a request that waited for a cold start: its story names the cold start, the provider and the decision", async () => {
    const started = Date.now();
    const response = await chat("chat", keyText.inference, SECRET_PROMPT);
    expect(response.status).toBe(200);
    await response.text();
    expect(Date.now() - started).toBeGreaterThanOrEqual(BOOT_MS - 200);
    requestId = response.headers.get("x-request-id")!;
    const client = await connect(keyText.read);
    let story: Record<string, unknown> = {};
    await until("the request's audit line in Redis", async () => {
      story = data(await call(client, "request_story", { requestId }));
      return story.found === true;
    });
    const request = story.request as { waitedMs: number; provider: string; worker: string; status: number };
    expect(request.status).toBe(200);
    expect(request.provider).toBe("vastai");
    expect(request.waitedMs).toBeGreaterThanOrEqual(BOOT_MS - 200);
    expect(story.coldStart).toBe(true);
    expect(story.bootSeconds as number).toBeGreaterThanOrEqual((BOOT_MS - 200) / 1000);
    const decisions = story.decisions as { action: string; reason: string; worker?: string }[];
    const provision = decisions.find((d) => d.action === "provision");
    expect(provision?.reason).toMatch(/demand 1 \(1 waiting/);
    expect(decisions.find((d) => d.action === "offer")?.worker).toBe(request.worker);
    expect(story.summary).toMatch(/waited \d+\.\d s for a cold start: worker .* on vastai booted in/);
    expect(story.summary).toContain("the controller decided:");
    // an unknown id is not found (not an error)
    expect(data(await call(client, "request_story", { requestId: `req_${"0".repeat(32)}` })).found).toBe(
      false,
    );
  });

  it("every read tool answers with structured output", async () => {
    const client = await connect(keyText.read);
    const status = data<{ workersByState: { model: string; state: string }[]; spend: { month: string } }>(
      await call(client, "status"),
    );
    expect(status.workersByState).toContainEqual(expect.objectContaining({ model: "chat", state: "ready" }));
    const explain = data<{ decisions: { action: string }[]; config: { maxWorkers: number } }>(
      await call(client, "explain_scaling", { model: "chat" }),
    );
    expect(explain.config.maxWorkers).toBe(2);
    expect(explain.decisions.map((d) => d.action)).toContain("provision");
    const unknown = await call(client, "explain_scaling", { model: "gpt-9" });
    expect(unknown.isError).toBe(true);
    const spend = data<{ month: string; byKey: unknown[]; days: unknown[] }>(
      await call(client, "spend", { days: 3 }),
    );
    expect(spend.month).toBe(status.spend.month);
    expect(spend.days).toHaveLength(3);
    const forecast = data<{ results: { provider: string; costUsd: number }[] }>(
      await call(client, "cost_forecast", { model: "cold", pattern: "burst", days: 2 }),
    );
    expect(forecast.results.length).toBeGreaterThan(0);
    expect(forecast.results[0]!.provider).toBe("vastai");
    expect(data(await call(client, "audit_verify")).ok).toBe(true);
    // a provider error as the controller's journal records it
    new ControllerJournal({
      redis: h.redis,
      keys: h.keys,
      metrics: new ControllerMetrics({ defaultMetrics: false }),
      now: Date.now,
      log: () => undefined,
      actor: "controller:test",
    }).providerError(
      "vastai",
      new ProviderError({
        kind: "capacity",
        provider: "vastai",
        operation: "provision",
        detail: "no machine left",
      }),
      "provision w-test",
    );
    await until("the provider error recorded", async () => (await h.redis.llen(h.keys.providerErrors)) > 0);
    const errors = data<{ byProvider: { provider: string; kind: string; count: number }[] }>(
      await call(client, "provider_errors"),
    );
    expect(errors.byProvider).toContainEqual({ provider: "vastai", kind: "capacity", count: 1 });
    expect(data<{ anomalies: unknown[] }>(await call(client, "anomalies")).anomalies).toEqual([]);
    const journal = new ControllerJournal({
      redis: h.redis,
      keys: h.keys,
      metrics: new ControllerMetrics({ defaultMetrics: false }),
      now: Date.now,
      log: () => undefined,
      actor: "controller:test",
    });
    for (const what of ["provision w-2", "provision w-3"])
      journal.providerError(
        "vastai",
        new ProviderError({
          kind: "transient",
          provider: "vastai",
          operation: "provision",
          detail: "HTTP 502",
        }),
        what,
      );
    await until("three provider errors", async () => (await h.redis.llen(h.keys.providerErrors)) === 3);
    const found = data<{ anomalies: { kind: string; subject: string; detail: string }[] }>(
      await call(client, "anomalies"),
    ).anomalies;
    expect(found).toEqual([
      expect.objectContaining({
        kind: "provider-erroring",
        subject: "vastai",
        detail: expect.stringContaining("3 errors"),
      }),
    ]);
    // this stack sets no self-healing guard rails: the controller acts on none of them by itself
    expect(data<{ selfHealing: unknown }>(await call(client, "anomalies")).selfHealing).toEqual({
      enabled: false,
      replaceSlowWorkers: false,
      failOverOnProviderErrors: false,
      maxActionsPerHour: 0,
      actionsLeftThisHour: 0,
      recentActions: [],
    });
    const health = data<{ workers: { model: string; verdict: string }[] }>(
      await call(client, "worker_health"),
    );
    expect(health.workers.find((w) => w.model === "chat")?.verdict).toMatch(/idle|serving/);
  });
});

describe("acting tools", () => {
  const acting: [string, Record<string, unknown>][] = [
    ["set_worker_bounds", { model: "chat", minWorkers: 2, maxWorkers: 2, reason: "warm for the demo" }],
    ["drain_worker", { workerId: "w-any", reason: "replace it" }],
    ["set_variant_weight", { model: "roll", variant: "a", weight: 0, reason: "roll back a" }],
    ["revoke_key", { keyId: "key_00", reason: "leaked" }],
    ["pause_model", { model: "chat", reason: "incident" }],
    ["unpause_model", { model: "chat", reason: "incident over" }],
    ["lower_budget", { scope: "stack", usd: 0, reason: "cut spend" }],
  ];

  it("a read key is refused every acting tool, and nothing changes", async () => {
    const client = await connect(keyText.read);
    const live = (await liveWorkers("chat")).length;
    const [, workerArgs] = acting[1]!;
    workerArgs.workerId = (await liveWorkers("chat"))[0]!.id;
    (acting[3]![1] as { keyId: string }).keyId = keyIds.victim!;
    const before = await controlSnapshot();
    for (const [name, args] of acting) {
      const result = await call(client, name, args);
      expect(result.isError, name).toBe(true);
      expect(JSON.stringify(result.content), name).toMatch(/needs an API key of scope \\"admin\\"/);
    }
    expect(await controlSnapshot()).toBe(before);
    await new Promise((r) => setTimeout(r, 300)); // a few controller ticks: still nothing drained or started
    expect((await liveWorkers("chat")).length).toBe(live);
    expect((await chat("chat")).status).toBe(200);
  });

  it("an admin key acts: each change takes effect in the controller or gateway, once in the audit trail", async () => {
    const client = await connect(keyText.admin);
    const actor = `mcp:${keyIds.admin}`;
    const act = async (name: string, args: Record<string, unknown>) => {
      const before = (await auditEntries()).length;
      const result = data(await call(client, name, args));
      const entries = await auditEntries();
      const mine = entries.slice(before).filter((e) => e.actor === actor);
      expect(mine, name).toHaveLength(1);
      expect(mine[0]!.reason, name).toContain(String(args.reason));
      return result;
    };

    // bounds beyond the config are refused, nothing written
    const over = await call(client, "set_worker_bounds", {
      model: "chat",
      minWorkers: 1,
      maxWorkers: 5,
      reason: "more",
    });
    expect(over.isError).toBe(true);
    expect(JSON.stringify(over.content)).toContain("above the stack's maxWorkers 2");
    expect(await h.redis.hlen(h.keys.workerBounds)).toBe(0);

    // 1. a warm floor of 2: the controller starts a second chat worker with nothing waiting
    await act("set_worker_bounds", acting[0]![1]);
    await until("two chat workers", async () => (await liveWorkers("chat")).length === 2);
    expect((await readStatus(h.redis, h.config)).controls.bounds.chat).toEqual({
      minWorkers: 2,
      maxWorkers: 2,
    });

    // 2. drain one: it leaves, and the floor brings a replacement
    const target =
      (await liveWorkers("chat")).find((w) => w.state === "ready") ?? (await liveWorkers("chat"))[0]!;
    await act("drain_worker", { workerId: target.id, reason: "replace it" });
    await until(
      "the worker drained",
      async () => (await h.redis.hget(h.keys.worker(target.id), "state")) !== target.state,
    );
    expect(["draining", "terminated"]).toContain(await h.redis.hget(h.keys.worker(target.id), "state"));
    const drained = (await readStatus(h.redis, h.config, { decisions: 50 })).decisions.find(
      (d) => d.action === "drain" && d.worker === target.id,
    );
    expect(drained?.reason).toBe(`asked by ${actor}: replace it`);
    await until(
      "a replacement",
      async () => (await liveWorkers("chat")).filter((w) => w.id !== target.id).length === 2,
    );

    // 3. variant weights: every roll request goes to b
    await act("set_variant_weight", acting[2]![1]);
    expect((await readVariantWeights(h.redis, h.keys, h.config)).find((r) => r.variant === "a")?.weight).toBe(
      0,
    );
    await until("the gateway follows", async () => {
      const response = await chat("roll");
      await response.text();
      return response.headers.get("x-aiorch-variant") === "b";
    });
    for (let i = 0; i < 5; i++) {
      const response = await chat("roll");
      await response.text();
      expect(response.headers.get("x-aiorch-variant")).toBe("b");
    }

    // 4. revoke a key: the gateway refuses it
    expect((await chat("chat", keyText.victim)).status).toBe(200);
    await act("revoke_key", { keyId: keyIds.victim, reason: "leaked in a ticket" });
    await until("the key refused", async () => (await chat("chat", keyText.victim)).status === 401);

    // 5. pause: 503 with the reason; unpause: served again
    await act("pause_model", acting[4]![1]);
    await until("paused", async () => (await chat("chat")).status === 503);
    const paused = (await (await chat("chat")).json()) as { error: { code: string; message: string } };
    expect(paused.error.code).toBe("model_paused");
    expect(paused.error.message).toContain("incident");
    expect((await readStatus(h.redis, h.config)).controls.paused.chat).toContain("incident");
    await act("unpause_model", acting[5]![1]);
    await until("unpaused", async () => (await chat("chat")).status === 200);

    // 6. a budget can only be lowered; lowered to 0 the controller blocks and the gateway refuses
    const raise = await call(client, "lower_budget", { scope: "chat", usd: 500, reason: "more" });
    expect(raise.isError).toBe(true);
    expect(JSON.stringify(raise.content)).toContain("may only lower it");
    await act("lower_budget", acting[6]![1]);
    await until("the stack blocked", async () => (await h.redis.hget(h.keys.budgetBlocked, "*")) !== null);
    const status = await readStatus(h.redis, h.config);
    expect(status.controls.budgets["*"]).toBe(0);
    expect(status.budgetBlocks["*"]).toContain("$0");
    await until("the gateway refuses", async () => (await chat("chat")).status === 429);
    expect(data(await call(client, "audit_verify")).ok).toBe(true);
  });

  it("serves the redacted runtime config, the trust rules, the dashboard, the runbooks and two prompts", async () => {
    const client = await connect(keyText.read);
    const { resources } = await client.listResources();
    expect(resources.map((r) => r.uri).sort()).toEqual([
      "aiorch://anomalies",
      "aiorch://config",
      "aiorch://dashboard",
      "aiorch://runbooks",
      "aiorch://trust",
    ]);
    const report = JSON.parse(textOf(await client.readResource({ uri: "aiorch://anomalies" })));
    expect(Object.keys(report)).toEqual(expect.arrayContaining(["anomalies", "selfHealing"]));
    // the stack names no Grafana address: the uid, and how to get a link
    expect(JSON.parse(textOf(await client.readResource({ uri: "aiorch://dashboard" })))).toMatchObject({
      uid: `aiorch-${h.config.stack}`,
      url: null,
    });
    for (const { uri } of resources) {
      const read = await client.readResource({ uri });
      outputs.push(JSON.stringify(read));
      expect(read.contents[0]?.uri).toBe(uri);
    }
    const trust = JSON.parse(textOf(await client.readResource({ uri: "aiorch://trust" }))) as {
      models: { model: string; providers: { provider: string; allowed: boolean; reason: string }[] }[];
    };
    expect(trust.models.find((m) => m.model === "chat")?.providers[0]).toMatchObject({
      provider: "vastai",
      allowed: true,
    });
    const runbooks = textOf(await client.readResource({ uri: "aiorch://runbooks" }));
    expect(runbooks).toContain("Rotation runbook");
    expect(
      redacted({ providers: { runpod: { apiKey: "rp_live_x" } }, url: "redis://user:pw@host:6379" }),
    ).toEqual({
      providers: { runpod: { apiKey: "[redacted]" } },
      url: "redis://[redacted]@host:6379",
    });
    const { prompts } = await client.listPrompts();
    expect(prompts.map((p) => p.name).sort()).toEqual(["investigate-slow-requests", "reduce-spend"]);
    const slow = await client.getPrompt({
      name: "investigate-slow-requests",
      arguments: { requestId: "req_1" },
    });
    expect(JSON.stringify(slow.messages)).toContain("request_story with requestId req_1");
    const spend = await client.getPrompt({ name: "reduce-spend", arguments: { targetUsd: "200" } });
    expect(JSON.stringify(spend.messages)).toContain("under $200");
  });

  it("no tool or resource answer carries a secret: client keys, their hashes, worker tokens, HF token, prompts", async () => {
    const tokens: string[] = [];
    for (const id of await h.redis.keys(`${h.keys.prefix}worker:*`)) {
      const token = await h.redis.hget(id, "token");
      if (token) tokens.push(token);
    }
    expect(tokens.length).toBeGreaterThan(0);
    const secrets = [
      ...Object.values(keyText),
      ...Object.values(keyText).map(hashApiKey),
      ...tokens,
      HF_SECRET,
      "PROMPT-SECRET-7f3a",
    ];
    expect(outputs.length).toBeGreaterThan(20);
    const all = outputs.join("\n");
    for (const secret of secrets)
      expect(all.includes(secret), `an output contains ${secret.slice(0, 12)}…`).toBe(false);
    // the prompt was in the gateway's audit line (auditPrompts on), yet not in Redis's copy
    const stored = JSON.stringify(await h.redis.xrange(h.keys.recentRequests, "-", "+"));
    expect(stored).not.toContain("PROMPT-SECRET-7f3a");
  });
});
