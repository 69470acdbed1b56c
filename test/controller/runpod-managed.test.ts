/** RunPod serverless as a managed backend: routed through its OpenAI path, bounds steered, running workers billed. */
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Controller } from "../../controller/controller";
import { ControllerMetrics } from "../../controller/metrics";
import { RunPodServerlessManager } from "../../controller/providers/runpod-serverless";
import {
  loadStackConfig,
  parseStackFile,
  type RuntimeConfig,
  renderRuntimeConfig,
  runpodEndpointName,
} from "../../core/config";
import { decodeRoute, ledgerMonth } from "../../core/protocol";
import { type RedisKeys, redisKeys } from "../../core/redis-keys";
import { type RunPodFake, startRunPodFake } from "../fakes/runpod-graphql";
import { stackYaml } from "../stack-yaml";

const redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
let fake: RunPodFake;
let keys: RedisKeys;
let config: RuntimeConfig;
let logs: string[];

beforeAll(async () => {
  fake = await startRunPodFake();
});
afterAll(async () => {
  await fake.stop();
  redis.disconnect();
});
beforeEach(() => {
  fake.reset();
  keys = redisKeys(`rp${randomBytes(4).toString("hex")}:`);
  config = renderRuntimeConfig(
    loadStackConfig(
      parseStackFile(
        stackYaml({
          dataClass: "confidential",
          budget: "{ monthlyUsd: 100 }",
          providers: `{ runpod-serverless: { apiBase: "${fake.url}", dataCenters: [EU-RO-1] } }`,
          models:
            "[{ name: llm, kind: chat, source: o/llm, gpu: [RTX_4090], providers: [runpod-serverless], maxWorkers: 3 }]",
          redis: `{ keyPrefix: "${keys.prefix}" }`,
        }),
        "t.yaml",
      ),
    ),
    "test",
  );
  logs = [];
  // the template and endpoint the stack's Pulumi program created, under the name the controller looks for
  fake.templates.set("tpl1", {
    id: "tpl1",
    name: "llm-template",
    imageName: "runpod/worker-v1-vllm",
    containerDiskInGb: 30,
    volumeInGb: 0,
    volumeMountPath: null,
    dockerArgs: "",
    env: [],
    ports: null,
    isServerless: true,
    readme: "",
    startSsh: false,
    startJupyter: false,
    isPublic: false,
    containerRegistryAuthId: null,
  });
  fake.endpoints.set("ep1", {
    id: "ep1",
    name: runpodEndpointName(config.project, config.stack, "llm"),
    templateId: "tpl1",
    gpuIds: "ADA_24",
    gpuCount: 1,
    workersMin: 0,
    workersMax: 3,
    idleTimeout: 5,
    scalerType: "QUEUE_DELAY",
    scalerValue: 4,
    locations: "EU-RO-1",
    networkVolumeId: null,
    flashBootType: "FLASHBOOT",
    executionTimeoutMs: 600_000,
    type: "QB",
  });
});

const controller = () =>
  new Controller({
    config,
    redis,
    adapters: {},
    runpodServerless: new RunPodServerlessManager({
      settings: config.providers["runpod-serverless"]!,
      apiKey: fake.apiKey,
      jobApiBase: fake.url,
    }),
    metrics: new ControllerMetrics({ defaultMetrics: false }),
    log: (line) => logs.push(line),
  });

describe("RunPod serverless, managed", () => {
  it("routes through the endpoint's OpenAI path with the provider key, never a token in Redis", async () => {
    await controller().tick();
    const routes = await redis.hgetall(keys.routes("llm"));
    const route = decodeRoute(Object.values(routes)[0]!)!;
    expect(route.baseUrl).toBe(`${fake.url}/v2/ep1/openai/v1`);
    expect(route.auth).toEqual({ kind: "provider-key", envVar: "RUNPOD_API_KEY" });
    expect(JSON.stringify(routes)).not.toContain(fake.apiKey);
  });

  it("restores the worker bounds RunPod lowers on idle endpoints", async () => {
    fake.endpoints.get("ep1")!.workersMax = 0; // RunPod's 7-day scale-down
    await controller().tick();
    expect(fake.endpoints.get("ep1")!.workersMax, logs.join("\n")).toBe(3);
    expect(logs.join("\n")).toMatch(/bounds 0\.\.0 → 0\.\.3/);
  });

  it("a bounds update sends every setting back, so the weight cache stays mounted and the data centre pinned", async () => {
    const endpoint = fake.endpoints.get("ep1")!;
    endpoint.workersMax = 0;
    endpoint.networkVolumeId = "vol123";
    await controller().tick();
    const saves = fake.requests.filter((r) => r.fields.includes("saveEndpoint"));
    const input = saves.at(-1)?.variables.input as Record<string, unknown>;
    expect(input).toMatchObject({
      id: "ep1",
      workersMax: 3,
      networkVolumeId: "vol123",
      locations: "EU-RO-1",
      flashBootType: "FLASHBOOT",
      idleTimeout: 5,
      scalerType: "QUEUE_DELAY",
      scalerValue: 4,
    });
  });

  it("at the budget cap sets the endpoint to zero workers", async () => {
    await redis.hset(keys.spendMonth(ledgerMonth(Date.now())), "total", 100_000_000);
    await controller().tick();
    expect(fake.endpoints.get("ep1")!.workersMax).toBe(0);
    expect(await redis.hget(keys.budgetBlocked, "*")).toMatch(/monthly budget of \$100/);
  });

  it("bills the workers /health reports running, per second", async () => {
    fake.endpoints.get("ep1")!.runningWorkers = 2;
    const c = controller();
    await c.tick();
    await new Promise((r) => setTimeout(r, 1_100));
    await c.tick();
    const spent = Number(await redis.hget(keys.spendMonth(ledgerMonth(Date.now())), "model:llm")) / 1e6;
    // 2 workers × ~1.1 s × $1.116/h (RTX 4090 flex) ≈ $0.00068
    expect(spent).toBeGreaterThan(0.0005);
    expect(spent).toBeLessThan(0.002);
  });
});
