/**
 * The controller process serving MCP in the cluster (stack config `mcp`): with `mcpPort` it serves Streamable HTTP
 * once Redis answers, to API keys of scope read or admin only; without it, nothing listens.
 */
import { randomBytes } from "node:crypto";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { startController } from "../../controller/main";
import { ApiKeyStore } from "../../core/api-keys";
import { redisKeys } from "../../core/redis-keys";
import { TOOL_NAMES } from "../../mcp/server";
import { testRuntimeConfig } from "../gateway/harness";
import { freePort } from "../private-redis";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const prefix = `mp${randomBytes(4).toString("hex")}:`;
const config = testRuntimeConfig("http://127.0.0.1:9/v1", prefix);
const redis = new Redis(REDIS_URL);
afterAll(async () => {
  const found = await redis.keys(`${prefix}*`);
  if (found.length > 0) await redis.del(...found);
  redis.disconnect();
});

describe("controller process: the MCP port", () => {
  it("serves MCP to a read key, refuses an inference key, and stops with the controller", async () => {
    const store = new ApiKeyStore(redis, redisKeys(prefix));
    const read = await store.create({ name: "assistant", scope: "read" });
    const inference = await store.create({ name: "app" });
    const handle = await startController({
      config,
      env: { REDIS_URL },
      port: await freePort(),
      host: "127.0.0.1",
      mcpPort: 0,
      log: () => undefined,
      tickMs: 200,
    });
    const url = `http://127.0.0.1:${handle.mcpPort}/mcp`;
    try {
      const client = new Client({ name: "aiorch-test", version: "1.0.0" });
      await client.connect(
        new StreamableHTTPClientTransport(new URL(url), {
          requestInit: { headers: { authorization: `Bearer ${read.key}` } },
        }),
      );
      const tools = (await client.listTools()).tools.map((t) => t.name).sort();
      expect(tools).toEqual([...TOOL_NAMES.read, ...TOOL_NAMES.acting].sort());
      await client.close();
      const refused = await fetch(url, {
        method: "POST",
        headers: {
          authorization: `Bearer ${inference.key}`,
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
        },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
      });
      expect(refused.status).toBe(403);
    } finally {
      await handle.close();
    }
    await expect(fetch(url, { method: "POST" })).rejects.toThrow();
  }, 20_000);

  it("without mcpPort no MCP server runs", async () => {
    const handle = await startController({
      config,
      env: { REDIS_URL },
      port: await freePort(),
      host: "127.0.0.1",
      log: () => undefined,
    });
    try {
      expect(handle.mcpPort).toBeUndefined();
    } finally {
      await handle.close();
    }
  });
});
