/** A gateway on a real Redis with a fake vLLM behind it, each test file under its own Redis key prefix. */
import { randomBytes } from "node:crypto";
import type { FastifyInstance } from "fastify";
import { Redis } from "ioredis";
import { ApiKeyStore, type CreateKeyOptions } from "../../core/api-keys";
import { loadStackConfig, parseStackFile, type RuntimeConfig, renderRuntimeConfig } from "../../core/config";
import { type KeyRing, newKeyRingEntry, parseKeyRing } from "../../core/envelope";
import { encodeRoute, type Route } from "../../core/protocol";
import { type RedisKeys, redisKeys } from "../../core/redis-keys";
import type { AuditEntry } from "../../core/request-audit";
import { stackYaml } from "../../devkit/stack-yaml";
import { buildGateway, buildOpsServer, type Gateway } from "../../gateway/app";
import type { TracingOptions } from "../../gateway/tracing";
import { type FakeVllm, type FakeVllmOptions, startFakeVllm } from "../fakes/vllm-upstream";

export const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

/** Models of the test stack: `chat` and `embed` are served by the local provider (the fake), `cold` by vastai. */
export function testRuntimeConfig(
  localUrl: string,
  prefix: string,
  overrides: Record<string, string> = {},
): RuntimeConfig {
  const yaml = stackYaml({
    providers: `{ local: { url: "${localUrl}" }, vastai: {} }`,
    models: `[
      { name: chat, kind: chat, source: o/chat, gpu: [RTX_3090], providers: [local] },
      { name: embed, kind: embedding, source: o/embed, gpu: [RTX_3090], providers: [local] },
      { name: cold, kind: chat, source: o/cold, gpu: [RTX_3090], providers: [vastai], queueTimeoutSeconds: 5 }
    ]`,
    redis: `{ keyPrefix: "${prefix}" }`,
    gateway:
      "{ host: ai.example.com, limits: { rpm: 1000, tpm: 1000000 }, maxRequestBytes: 65536, keepAliveSeconds: 1 }",
    // job bodies in clear unless a test passes a key ring (a stack with encryptQueued on needs one to start)
    security: "{ encryptQueued: false }",
    ...overrides,
  });
  return renderRuntimeConfig(loadStackConfig(parseStackFile(yaml, "test.yaml")), "test");
}

export class MemorySink {
  readonly lines: string[] = [];
  write(line: string): boolean {
    this.lines.push(line);
    return true;
  }
  once(): this {
    return this;
  }
  get entries(): AuditEntry[] {
    return this.lines.map((l) => JSON.parse(l) as AuditEntry);
  }
}

export interface Harness {
  readonly redis: Redis;
  readonly keys: RedisKeys;
  readonly config: RuntimeConfig;
  readonly fake: FakeVllm;
  readonly store: ApiKeyStore;
  /** A gateway listening on a real port, and its ops server (/metrics, /healthz, /readyz) on another. */
  start(
    config?: RuntimeConfig,
    extra?: { jobVisibilityMs?: number; encryption?: KeyRing; tracing?: TracingOptions },
  ): Promise<{ gateway: Gateway; url: string; opsUrl: string; audit: MemorySink }>;
  createKey(options?: Partial<CreateKeyOptions>): Promise<string>;
  /** Publish a ready backend for a model, as the controller does. */
  addRoute(model: string, route: Partial<Route> & { baseUrl: string }): Promise<void>;
  removeRoutes(model: string): Promise<void>;
  close(): Promise<void>;
}

export async function createHarness(
  options: { fake?: FakeVllmOptions; config?: (localUrl: string, prefix: string) => RuntimeConfig } = {},
): Promise<Harness> {
  const prefix = `t${randomBytes(4).toString("hex")}:`;
  const fake = await startFakeVllm({ model: ["chat", "embed", "cold"], ...options.fake });
  const config = options.config?.(fake.url, prefix) ?? testRuntimeConfig(fake.url, prefix);
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 2 });
  const keys = redisKeys(prefix);
  const store = new ApiKeyStore(redis, keys);
  const ring = parseKeyRing(newKeyRingEntry("test"));
  const gateways: Gateway[] = [];
  const opsServers: FastifyInstance[] = [];
  let workerCount = 0;
  return {
    redis,
    keys,
    config,
    fake,
    store,
    async start(custom = config, extra = {}) {
      const audit = new MemorySink();
      const gateway = await buildGateway({
        config: custom,
        redis,
        auditSink: audit,
        defaultMetrics: false,
        // a stack that seals queued jobs has its key ring (the cluster's Secret): one per harness, as per stack
        encryption: custom.security.encryptQueued ? ring : undefined,
        ...extra,
      });
      gateways.push(gateway);
      const address = await gateway.app.listen({ port: 0, host: "127.0.0.1" });
      const ops = buildOpsServer({ metrics: gateway.metrics, readiness: gateway.readiness });
      opsServers.push(ops);
      const opsUrl = await ops.listen({ port: 0, host: "127.0.0.1" });
      return { gateway, url: address, opsUrl, audit };
    },
    async createKey(o = {}) {
      return (await store.create({ name: "test", ...o })).key;
    },
    async addRoute(model, route) {
      workerCount += 1;
      const full: Route = {
        workerId: route.workerId ?? `w${workerCount}`,
        provider: route.provider ?? "vastai",
        baseUrl: route.baseUrl,
        auth: route.auth ?? { kind: "none" },
        capacity: route.capacity ?? 8,
        usdPerSecond: route.usdPerSecond ?? 0.0001,
        ...(route.tls ? { tls: route.tls } : {}),
      };
      await redis.hset(keys.routes(model), full.workerId, encodeRoute(full));
      await redis.publish(keys.routesChannel, JSON.stringify({ model }));
    },
    async removeRoutes(model) {
      await redis.del(keys.routes(model));
      await redis.publish(keys.routesChannel, JSON.stringify({ model }));
    },
    async close() {
      for (const g of gateways) await g.app.close();
      for (const ops of opsServers) await ops.close();
      let cursor = "0";
      do {
        const [next, found] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 500);
        cursor = next;
        if (found.length > 0) await redis.del(...found);
      } while (cursor !== "0");
      redis.disconnect();
      await fake.close();
    },
  };
}

/** Read an SSE response into its frames' data payloads (comments kept as `:…`). */
export async function readSse(response: Response): Promise<string[]> {
  const text = await response.text();
  return text
    .split("\n\n")
    .filter((f) => f.trim().length > 0)
    .map((f) => (f.startsWith("data:") ? f.slice(5).trim() : f.trim()));
}
