/**
 * Issue 23: `aiorch mcp --config FILE` over stdio, as a local client (Claude Desktop) starts it: the SDK's stdio
 * client spawns `node bin/aiorch.js mcp …` against real Redis under a private key prefix. Read scope (the default)
 * lists and calls every read tool and is refused the acting ones; `--scope admin` acts, each change one audit
 * entry naming the local actor, and `aiorch status` shows it.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiKeyStore } from "../../core/api-keys";
import { AuditTrail } from "../../core/audit-trail";
import { redisKeys } from "../../core/redis-keys";
import { TOOL_NAMES } from "../../mcp/server";
import { aiorch, ROOT } from "../cli/helpers";
import { REDIS_URL, testRuntimeConfig } from "../gateway/harness";

/** The text of a resource's first content (a text resource, not a blob). */
const textOf = (read: { contents: ({ text: string } | { blob: string })[] }): string => {
  const first = read.contents[0];
  return first && "text" in first ? first.text : "";
};

const prefix = `mcp${randomBytes(4).toString("hex")}:`;
const keys = redisKeys(prefix);
let dir: string;
let configFile: string;
let redis: Redis;
const clients: Client[] = [];

/** Start `aiorch mcp` as a child process and connect the SDK's client to its stdio. */
async function spawnMcp(extra: string[] = []): Promise<Client> {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [join(ROOT, "bin", "aiorch.js"), "mcp", "--config", configFile, ...extra],
    env: { ...(process.env as Record<string, string>), REDIS_URL },
    stderr: "pipe",
  });
  const client = new Client({ name: "aiorch-stdio-test", version: "1.0.0" });
  await client.connect(transport);
  clients.push(client);
  await client.listTools(); // the client then checks every structured answer against the tool's output schema
  return client;
}
const call = async (client: Client, name: string, args: Record<string, unknown> = {}) =>
  (await client.callTool({ name, arguments: args })) as CallToolResult;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "aiorch-mcp-"));
  configFile = join(dir, "runtime.json");
  writeFileSync(
    configFile,
    JSON.stringify(
      testRuntimeConfig("http://127.0.0.1:9", prefix, {
        models: `[
          { name: chat, kind: chat, source: o/chat, gpu: [RTX_3090], providers: [local] },
          { name: cold, kind: chat, source: o/cold, gpu: [RTX_3090], providers: [vastai], maxWorkers: 2, monthlyBudgetUsd: 40 },
          { name: roll, kind: chat, source: o/roll, gpu: [RTX_3090], providers: [vastai], variants: [{ name: a, weight: 50 }, { name: b, weight: 50 }] }
        ]`,
      }),
    ),
  );
  redis = new Redis(REDIS_URL);
  process.env.REDIS_URL = REDIS_URL; // for the aiorch status child
});
afterAll(async () => {
  for (const c of clients) await c.close().catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
  const found = await redis.keys(`${prefix}*`);
  if (found.length > 0) await redis.del(...found);
  redis.disconnect();
});

/** A live worker of `cold` as the controller's registry records it (the controller itself is not run here). */
const WORKER = "w-stdio1";
let victimKeyId: string;
const acting = (): [string, Record<string, unknown>][] => [
  ["set_worker_bounds", { model: "cold", minWorkers: 1, maxWorkers: 1, reason: "one warm tonight" }],
  ["drain_worker", { workerId: WORKER, reason: "replace it" }],
  ["set_variant_weight", { model: "roll", variant: "a", weight: 0, reason: "roll back a" }],
  ["revoke_key", { keyId: victimKeyId, reason: "leaked" }],
  ["pause_model", { model: "chat", reason: "provider incident" }],
  ["unpause_model", { model: "roll", reason: "serve it" }],
  ["lower_budget", { scope: "stack", usd: 50, reason: "cut spend" }],
];
/** Everything an acting tool may write. */
const snapshot = async () =>
  JSON.stringify(
    await Promise.all([
      redis.hgetall(keys.workerBounds),
      redis.hgetall(keys.pausedModels),
      redis.hgetall(keys.budgetOverrides),
      redis.hgetall(keys.drainRequests),
      redis.hgetall(keys.variantWeights("roll")),
      redis.hgetall(keys.apiKey((await redis.hget(keys.apiKeyIds, victimKeyId))!)),
      redis.xlen(keys.auditStream),
    ]),
  );

describe("aiorch mcp over stdio", () => {
  beforeAll(async () => {
    const now = Date.now();
    await redis.hset(keys.worker(WORKER), {
      id: WORKER,
      model: "cold",
      provider: "vastai",
      state: "ready",
      usdPerHour: "0.2",
      createdAtMs: String(now - 60_000),
      stateChangedAtMs: String(now - 30_000),
      readyAtMs: String(now - 30_000),
      lastActiveAtMs: String(now - 30_000),
      token: "worker-token-secret",
    });
    await redis.sadd(keys.liveWorkers, WORKER);
    victimKeyId = (await new ApiKeyStore(redis, keys).create({ name: "victim" })).record.id;
  });

  it("read scope: lists the tools, answers every read tool, refuses every acting one", async () => {
    const client = await spawnMcp();
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual([...TOOL_NAMES.read, ...TOOL_NAMES.acting].sort());
    const reads: [string, Record<string, unknown>][] = [
      ["status", {}],
      ["explain_scaling", { model: "chat" }],
      ["request_story", { requestId: `req_${"a".repeat(32)}` }],
      ["spend", {}],
      ["cost_forecast", { model: "cold", pattern: "burst", days: 1 }],
      ["audit_verify", {}],
      ["provider_errors", {}],
      ["worker_health", {}],
      ["anomalies", {}],
    ];
    expect(reads.map(([n]) => n).sort()).toEqual([...TOOL_NAMES.read].sort());
    for (const [name, args] of reads) {
      const result = await call(client, name, args);
      expect(result.isError, `${name}: ${JSON.stringify(result.content)}`).toBeFalsy();
      expect(result.structuredContent, name).toBeDefined();
    }
    expect((await call(client, "status")).structuredContent?.stack).toBe("test");
    // started in the project folder: the README's runbooks are a resource
    const runbooks = await client.readResource({ uri: "aiorch://runbooks" });
    expect(textOf(runbooks)).toContain("Rotation runbook");
    const before = await snapshot();
    for (const [name, args] of acting()) {
      const refused = await call(client, name, args);
      expect(refused.isError, name).toBe(true);
      expect(JSON.stringify(refused.content), name).toContain('scope \\"admin\\"');
    }
    expect(await snapshot()).toBe(before);
  });

  it("--scope admin acts: Redis, one audit entry naming the local actor, and aiorch status show it", async () => {
    const client = await spawnMcp(["--scope", "admin", "--actor", "alice"]);
    const outputs: string[] = [];
    for (const [name, args] of acting()) {
      const before = (await new AuditTrail(redis, keys).list()).length;
      const result = await call(client, name, args);
      outputs.push(JSON.stringify(result));
      expect(result.isError, `${name}: ${JSON.stringify(result.content)}`).toBeFalsy();
      const added = (await new AuditTrail(redis, keys).list()).slice(before);
      expect(added, name).toHaveLength(1);
      expect(added[0]!.actor, name).toBe("mcp:local:alice");
      expect(added[0]!.reason, name).toContain(String(args.reason));
    }
    // in Redis
    expect(JSON.parse((await redis.hget(keys.workerBounds, "cold"))!)).toEqual({
      minWorkers: 1,
      maxWorkers: 1,
    });
    expect(JSON.parse((await redis.hget(keys.drainRequests, WORKER))!).actor).toBe("mcp:local:alice");
    expect(await redis.hget(keys.variantWeights("roll"), "a")).toBe("0");
    expect(await redis.hget(keys.apiKey((await redis.hget(keys.apiKeyIds, victimKeyId))!), "revoked")).toBe(
      "1",
    );
    expect(JSON.parse((await redis.hget(keys.pausedModels, "chat"))!).reason).toBe("provider incident");
    expect(JSON.parse((await redis.hget(keys.budgetOverrides, "*"))!).usd).toBe(50);
    // in aiorch status
    const status = aiorch(["status", "--config", configFile], ROOT);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain("chat: PAUSED — provider incident (by mcp:local:alice)");
    expect(status.stdout).toContain("cold: workers [1, 1]");
    expect(status.stdout).toContain("stack: budget lowered to $50 this month");
    expect(outputs.join("\n")).not.toContain("worker-token-secret");
    expect((await call(client, "audit_verify")).structuredContent?.ok).toBe(true);
  });

  it("refuses --scope inference and --port without --http (exit 2)", () => {
    const bad = aiorch(["mcp", "--config", configFile, "--scope", "inference"], ROOT);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--scope "inference" is not an MCP scope');
    expect(aiorch(["mcp", "--config", configFile, "--port", "9000"], ROOT).code).toBe(2);
  });
});
