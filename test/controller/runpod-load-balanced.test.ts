/**
 * An image model on RunPod serverless (issue 24): the endpoint the stack declares for it (a load-balancing endpoint
 * running vLLM-Omni, components/runpod-worker-settings.ts, created by the real dynamic provider) against the RunPod
 * fake written from the v2 spec and the load-balancing docs; the controller steers it; a gateway holds an image
 * request while the model is at zero and completes it once RunPod's worker is ready, then the route goes with the
 * worker. The worker's server is the vLLM fake, which answers the images API as vLLM-Omni does.
 */
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  applyEndpointDefaults,
  createRunPodEndpointProvider,
  type RunPodEndpointInputs,
} from "../../components/runpod-endpoint";
import { RUNPOD_LB_ENGINE_PORT, runpodWorkerSettings } from "../../components/runpod-worker-settings";
import { Controller } from "../../controller/controller";
import { ControllerMetrics } from "../../controller/metrics";
import { RunPodServerlessBackend } from "../../controller/providers/runpod-serverless";
import { ApiKeyStore } from "../../core/api-keys";
import {
  loadStackConfig,
  parseStackFile,
  type RuntimeConfig,
  renderRuntimeConfig,
  runpodEndpointName,
} from "../../core/config";
import { decodeRoute } from "../../core/protocol";
import { type RedisKeys, redisKeys } from "../../core/redis-keys";
import { servingUnits } from "../../core/variants";
import { stackYaml } from "../../devkit/stack-yaml";
import { buildGateway, type Gateway } from "../../gateway/app";
import { RunpodServerlessFake } from "../fakes/runpod-serverless";
import { type FakeVllm, startFakeVllm } from "../fakes/vllm-upstream";

const KEY = "rpa_LOAD_BALANCED_TEST_KEY_01";
const redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
let fake: RunpodServerlessFake;
let engine: FakeVllm;
let keys: RedisKeys;
let config: RuntimeConfig;
let gateway: Gateway;
let gatewayUrl: string;
let apiKey: string;
let endpointId: string;
const logs: string[] = [];

beforeAll(async () => {
  // workers boot in 0.8 s, idle a second per 100 ms: the whole cycle in a few seconds
  fake = new RunpodServerlessFake({
    apiKey: KEY,
    loadBalancer: { bootMs: 800, healthCheckIntervalMs: 50, idleSecondMs: 100 },
  });
  await fake.start();
  engine = await startFakeVllm({ model: "pics" });
  keys = redisKeys(`rplb${randomBytes(4).toString("hex")}:`);
  config = renderRuntimeConfig(
    loadStackConfig(
      parseStackFile(
        stackYaml({
          providers: `{ runpod-serverless: { apiBase: "${fake.url}" } }`,
          models:
            "[{ name: pics, kind: image, engine: vllm-omni, source: Tongyi-MAI/Z-Image-Turbo, gpu: [RTX_4090], providers: [runpod-serverless], maxWorkers: 1, targetConcurrency: 1, queueTimeoutSeconds: 60 }]",
          redis: `{ keyPrefix: "${keys.prefix}" }`,
          gateway: "{ host: ai.example.com, limits: { rpm: 1000, tpm: 1000000 } }",
          security: "{ encryptQueued: false }",
        }),
        "t.yaml",
      ),
    ),
    "test",
  );
  // What `pulumi up` creates for the unit: index.ts's settings through the real dynamic provider.
  const unit = servingUnits(config.models)[0]!;
  const settings = runpodWorkerSettings(unit, undefined);
  const provider = createRunPodEndpointProvider();
  const checked = await provider.check!(
    {} as RunPodEndpointInputs,
    applyEndpointDefaults({
      name: runpodEndpointName(config.project, config.stack, unit.name),
      endpointType: settings.endpointType,
      image: settings.image,
      args: settings.args,
      ports: [...(settings.ports ?? [])],
      env: settings.env as Record<string, string>,
      gpuPoolIds: ["ADA_24"],
      workersMin: 0,
      workersMax: 1,
      idleTimeout: 5,
      scalerType: settings.scalerType,
      scalerValue: settings.scalerValue,
      apiKey: KEY,
      apiBase: fake.url,
    }),
  );
  expect(checked.failures).toEqual([]);
  endpointId = (await provider.create!(checked.inputs!)).id;
  // RunPod runs the endpoint's workers on the engine's port (the fake checks PORT, PORT_HEALTH and `ports`)
  fake.attachWorkerServer(endpointId, engine.origin, { port: RUNPOD_LB_ENGINE_PORT });

  gateway = await buildGateway({
    config,
    redis,
    defaultMetrics: false,
    providerKeys: { RUNPOD_API_KEY: KEY },
  });
  gatewayUrl = await gateway.app.listen({ port: 0, host: "127.0.0.1" });
  apiKey = (await new ApiKeyStore(redis, keys).create({ name: "t" })).key;
}, 60_000);

afterAll(async () => {
  expect(fake.contractViolations).toEqual([]);
  await gateway?.app.close();
  await fake.close();
  await engine.close();
  const found = await redis.keys(`${keys.prefix}*`);
  if (found.length > 0) await redis.del(...found);
  redis.disconnect();
});

const controller = () =>
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
      }),
    },
    metrics: new ControllerMetrics({ defaultMetrics: false }),
    log: (line) => logs.push(line),
    // a steering round a second (15 s by default): the route goes within one of the worker
    managedSteerMs: 1_000,
  });

/** One controller for the file: a second would wait for the first one's leader lease to lapse. */
let theController: Controller | undefined;
const leader = (): Controller => {
  theController ??= controller();
  return theController;
};

/** Tick the controller every 200 ms until `done` settles. */
async function ticking<T>(c: Controller, done: Promise<T>): Promise<T> {
  let settled = false;
  const loop = (async () => {
    while (!settled) {
      await c.tick();
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  try {
    return await done;
  } finally {
    settled = true;
    await loop;
  }
}

describe("an image model on a RunPod load-balancing endpoint", () => {
  it("the stack declares a LOAD_BALANCER endpoint starting vLLM-Omni on its own port", () => {
    const created = fake.requestsTo("/v2/serverless", "POST")[0]!.body as Record<string, unknown>;
    expect(created).toMatchObject({
      type: "LOAD_BALANCER",
      image: "vllm/vllm-omni:v0.16.0",
      ports: ["8000/http"],
      scaling: { type: "REQUEST_COUNT", requestCount: 1 },
      workers: { min: 0, max: 1, idleTimeout: 5 },
      env: { PORT: "8000", PORT_HEALTH: "8000", HEALTH_CHECK_PATH: "/health" },
    });
    expect(JSON.parse(created.args as string)).toMatchObject({
      entrypoint: ["vllm"],
      cmd: [
        "serve",
        "Tongyi-MAI/Z-Image-Turbo",
        "--omni",
        "--served-model-name",
        "pics",
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
      ],
    });
  });

  it("at zero: no route; a request waits in the gateway, the controller asks for a worker, the image comes once it is ready", async () => {
    const c = leader();
    await c.tick();
    // no worker is ready: the gateway is not routed to a load balancer that would hold nothing
    expect(await redis.hlen(keys.routes("pics"))).toBe(0);
    expect(fake.workersOf(endpointId)).toEqual([]);

    const client = new OpenAI({ apiKey, baseURL: `${gatewayUrl}/v1`, maxRetries: 0, timeout: 60_000 });
    const asked = Date.now();
    const answer = await ticking(
      c,
      client.images.generate({ model: "pics", prompt: "a lighthouse", n: 1, response_format: "b64_json" }),
    );
    expect(answer.data?.[0]?.b64_json?.length).toBeGreaterThan(0);
    // it waited for the worker's boot (0.8 s) rather than failing at once
    expect(Date.now() - asked).toBeGreaterThanOrEqual(800);
    expect(logs.join("\n")).toMatch(/bounds 0\.\.1 → 1\.\.1 \(1 request\(s\) wait for a worker\)/);
    // the request reached the engine through RunPod's load balancer, with the RunPod key (never a worker token)
    const lb = fake.requests.filter((r) => r.path === `/lb/${endpointId}/v1/images/generations`);
    expect(lb).toHaveLength(1);
    const route = decodeRoute(Object.values(await redis.hgetall(keys.routes("pics")))[0]!)!;
    expect(route.baseUrl).toBe(`${fake.loadBalancerUrl(endpointId)}/v1`);
    expect(route.auth).toEqual({ kind: "provider-key", envVar: "RUNPOD_API_KEY" });
    expect(JSON.stringify(await redis.hgetall(keys.routes("pics")))).not.toContain(KEY);
  }, 60_000);

  it("once the requests flow the bound goes back to 0; when RunPod's idle timeout takes the worker, the route goes", async () => {
    const c = leader();
    await ticking(
      c,
      (async () => {
        while (fake.endpoints.get(endpointId)!.workers.min !== 0)
          await new Promise((r) => setTimeout(r, 100));
        // idleTimeout 5 s at 100 ms a second: the worker goes, then the route within a steering round
        await fake.waitForWorkers(endpointId, (workers) => workers.length === 0, 10_000);
        const deadline = Date.now() + 20_000;
        while ((await redis.hlen(keys.routes("pics"))) > 0 && Date.now() < deadline)
          await new Promise((r) => setTimeout(r, 100));
      })(),
    );
    expect(await redis.hlen(keys.routes("pics"))).toBe(0);
  }, 60_000);
});
