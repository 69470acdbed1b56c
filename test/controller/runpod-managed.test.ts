/** RunPod serverless as a managed backend: routed through its OpenAI path, bounds steered, running workers billed. */
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Controller } from "../../controller/controller";
import { ControllerMetrics } from "../../controller/metrics";
import { RunPodServerlessBackend } from "../../controller/providers/runpod-serverless";
import { openBackup, sealBackup } from "../../core/backup";
import { exportBackup, restoreBackup } from "../../core/backup-redis";
import {
  loadStackConfig,
  parseStackFile,
  type RuntimeConfig,
  renderRuntimeConfig,
  runpodEndpointName,
} from "../../core/config";
import { decodeRoute, ledgerMonth } from "../../core/protocol";
import { type RedisKeys, redisKeys } from "../../core/redis-keys";
import { stackYaml } from "../../devkit/stack-yaml";
import { type FakeServerlessEndpoint, RunpodServerlessFake } from "../fakes/runpod-serverless";

const KEY = "rpa_MANAGED_TEST_KEY_0123";
const redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
let fake: RunpodServerlessFake;
let keys: RedisKeys;
let config: RuntimeConfig;
let logs: string[];
let endpoint: FakeServerlessEndpoint;

beforeAll(async () => {
  fake = new RunpodServerlessFake({ apiKey: KEY });
  await fake.start();
});
afterAll(async () => {
  expect(fake.contractViolations).toEqual([]);
  await fake.close();
  redis.disconnect();
});
beforeEach(() => {
  fake.endpoints.clear();
  fake.templates.clear();
  fake.clearFaults();
  (fake.requests as unknown[]).length = 0;
  keys = redisKeys(`rp${randomBytes(4).toString("hex")}:`);
  config = renderRuntimeConfig(
    loadStackConfig(
      parseStackFile(
        stackYaml({
          dataClass: "confidential",
          budget: "{ monthlyUsd: 100 }",
          providers: `{ runpod-serverless: { apiBase: "${fake.url}", dataCenters: [EU-RO-1] } }`,
          models:
            "[{ name: llm, kind: chat, source: o/llm, gpu: [RTX_4090], gpuCount: 2, providers: [runpod-serverless], maxWorkers: 3 }]",
          redis: `{ keyPrefix: "${keys.prefix}" }`,
        }),
        "t.yaml",
      ),
    ),
    "test",
  );
  logs = [];
  // the endpoint the stack's Pulumi program created, under the name the controller looks for
  endpoint = fake.seedLegacyEndpoint({
    name: runpodEndpointName(config.project, config.stack, "llm"),
    image: "runpod/worker-v1-vllm:v2.25.2",
    pools: ["ADA_24"],
    max: 3,
  });
  endpoint.gpu.count = 2;
  endpoint.networkVolumes = ["vol123"];
  endpoint.dataCenterIds = ["EU-RO-1"];
});

/** A controller steering the fake's endpoints, on every tick unless `steer` says otherwise (`{}`: the default). */
const controller = (steer: { managedSteerMs?: number } = { managedSteerMs: 0 }) =>
  new Controller({
    config,
    redis,
    adapters: {},
    managed: {
      "runpod-serverless": new RunPodServerlessBackend({
        settings: config.providers["runpod-serverless"]!,
        apiKey: KEY,
        project: config.project,
        stack: config.stack,
        jobApiBase: fake.url,
      }),
    },
    metrics: new ControllerMetrics({ defaultMetrics: false }),
    log: (line) => logs.push(line),
    ...steer,
  });

describe("RunPod serverless, managed", () => {
  it("steers every managedSteerMs with one listing for all endpoints, and at once when a budget block starts", async () => {
    const c = controller({}); // the default cadence
    for (let i = 0; i < 5; i++) await c.tick();
    // RunPod's REST v2 quota is per account (60 a minute in the spec's example): not a listing per model per tick
    expect(fake.requestsTo("/v2/serverless", "GET")).toHaveLength(1);
    await redis.hset(keys.spendMonth(ledgerMonth(Date.now())), "total", 100_000_000);
    await c.tick();
    expect(fake.requestsTo("/v2/serverless", "GET")).toHaveLength(2);
    expect(fake.endpoints.get(endpoint.id)!.workers.max).toBe(0);
  });

  it("routes through the endpoint's OpenAI path with the provider key, never a token in Redis", async () => {
    await controller().tick();
    const routes = await redis.hgetall(keys.routes("llm"));
    const route = decodeRoute(Object.values(routes)[0]!)!;
    expect(route.baseUrl).toBe(`${fake.url}/v2/${endpoint.id}/openai/v1`);
    expect(route.auth).toEqual({ kind: "provider-key", envVar: "RUNPOD_API_KEY" });
    expect(JSON.stringify(routes)).not.toContain(KEY);
  });

  it("restores the worker bounds RunPod lowers on idle endpoints", async () => {
    fake.lowerIdleMax(endpoint.id, 0); // RunPod's 7-day scale-down
    await controller().tick();
    expect(fake.endpoints.get(endpoint.id)!.workers.max, logs.join("\n")).toBe(3);
    expect(logs.join("\n")).toMatch(/bounds 0\.\.0 → 0\.\.3/);
  });

  it("a bounds update is one partial PATCH of the bounds: the weight cache stays mounted and the data centre pinned", async () => {
    fake.lowerIdleMax(endpoint.id, 0);
    await controller().tick();
    const patches = fake.requestsTo(`/v2/serverless/${endpoint.id}`, "PATCH");
    expect(patches.map((r) => r.body)).toEqual([{ workers: { min: 0, max: 3 } }]);
    expect(fake.endpoints.get(endpoint.id)).toMatchObject({
      networkVolumes: ["vol123"],
      dataCenterIds: ["EU-RO-1"],
      gpu: { count: 2 },
      workers: { min: 0, max: 3, idleTimeout: 5 },
    });
    // nothing went to GraphQL
    expect(fake.requests.filter((r) => r.path.includes("graphql"))).toEqual([]);
  });

  it("at the budget cap sets the endpoint to zero workers and purges its queue", async () => {
    fake.endpoints.get(endpoint.id)!.jobs.inQueue = 7;
    await redis.hset(keys.spendMonth(ledgerMonth(Date.now())), "total", 100_000_000);
    await controller().tick();
    expect(fake.endpoints.get(endpoint.id)!.workers.max).toBe(0);
    expect(await redis.hget(keys.budgetBlocked, "*")).toMatch(/monthly budget of \$100/);
    expect(fake.endpoints.get(endpoint.id)!.jobs.inQueue).toBe(0);
    expect(fake.requestsTo(`/v2/${endpoint.id}/purge-queue`, "POST")).toHaveLength(1);
    expect(logs.join("\n")).toMatch(/7 queued job\(s\) purged/);
  });

  it("bills the workers /health reports running, per second, for the GPUs each worker has", async () => {
    fake.endpoints.get(endpoint.id)!.workersNow.running = 2;
    const c = controller();
    await c.tick();
    await new Promise((r) => setTimeout(r, 1_100));
    await c.tick();
    const spent = Number(await redis.hget(keys.spendMonth(ledgerMonth(Date.now())), "model:llm")) / 1e6;
    // 2 workers × 2 GPUs × ~1.1 s × $1.116/h (RTX 4090 flex) ≈ $0.00136
    expect(spent).toBeGreaterThan(0.001);
    expect(spent).toBeLessThan(0.004);
  });

  it("after a restore, books the time since the backup's booking again (issue 25), at the count /health reports", async () => {
    fake.endpoints.get(endpoint.id)!.workersNow.running = 2;
    const spentUsd = async () =>
      Number(await redis.hget(keys.spendMonth(ledgerMonth(Date.now())), "model:llm")) / 1e6;
    const c = controller();
    await c.tick();
    const firstBookingMs = Number(await redis.hget(keys.managedBookedUntil, "llm"));
    expect(firstBookingMs).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 300));
    await c.tick();
    const content = await exportBackup(redis, { prefix: keys.prefix, stack: "test", nowMs: Date.now() });
    await new Promise((r) => setTimeout(r, 1_000));
    await c.tick(); // booked into the Redis that is then lost
    await redis.del(...(await redis.keys(`${keys.prefix}*`)));
    const { header, content: opened } = openBackup(sealBackup(content, "b-rp", undefined), undefined);
    await restoreBackup(redis, header, opened, {
      prefix: keys.prefix,
      force: false,
      actor: "t",
      nowMs: Date.now(),
    });
    await controller().tick(); // a controller started after the restore: nothing in its memory
    const lastBookingMs = Number(await redis.hget(keys.managedBookedUntil, "llm"));
    // what RunPod bills: 2 workers × 2 GPUs × $1.116/h (RTX 4090 flex) for as long as they ran, per second
    const billed = (2 * 2 * 1.116 * (lastBookingMs - firstBookingMs)) / 3_600_000;
    const oneTick = (2 * 2 * 1.116) / 3600; // a 1 s tick
    expect(Math.abs((await spentUsd()) - billed)).toBeLessThanOrEqual(oneTick);
    expect(await spentUsd()).toBeGreaterThan(billed * 0.9);
  });
});
