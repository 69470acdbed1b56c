/**
 * The controller against a real Redis, the Vast.ai contract fake, and a fake vLLM the fake's instances "run":
 * scale from zero and back, drain, failover, trust, budgets, crashes at each provisioning step, leadership,
 * and garbage from the provider.
 */
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Controller } from "../../controller/controller";
import { ControllerMetrics } from "../../controller/metrics";
import { VastAiAdapter } from "../../controller/providers/vastai";
import { WorkerRegistry } from "../../controller/registry";
import { loadStackConfig, parseStackFile, type RuntimeConfig, renderRuntimeConfig } from "../../core/config";
import { decodeRoute, inflightMember, ledgerMonth } from "../../core/protocol";
import { type RedisKeys, redisKeys } from "../../core/redis-keys";
import { VastAiFake, type VastOfferSeed } from "../fakes/vastai-api";
import { type FakeVllm, startFakeVllm } from "../fakes/vllm-upstream";
import { stackYaml } from "../stack-yaml";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const API_KEY = "vast-test-key";
const OFFERS: VastOfferSeed[] = [
  { id: 101, gpu_name: "RTX 3090", num_gpus: 1, dph_base: 0.2, reliability: 0.99, verified: true },
  { id: 102, gpu_name: "RTX 3090", num_gpus: 1, dph_base: 0.25, reliability: 0.995, verified: true },
  { id: 103, gpu_name: "RTX 3090", num_gpus: 1, dph_base: 0.28, reliability: 0.995, verified: true },
];

let redis: Redis;
let engine: FakeVllm;
let fake: VastAiFake;
let keys: RedisKeys;
let config: RuntimeConfig;
let logs: string[];
const controllers: Controller[] = [];

function stack(overrides: Record<string, string> = {}): RuntimeConfig {
  const yaml = stackYaml({
    providers: `{ vastai: { apiBase: "${fake.apiBase}", maxUsdPerHour: 0.5 } }`,
    models:
      "[{ name: m, kind: chat, source: o/m, gpu: [RTX_3090], providers: [vastai], maxWorkers: 2, targetConcurrency: 1, idleTimeoutSeconds: 1 }]",
    redis: `{ keyPrefix: "${keys.prefix}" }`,
    ...overrides,
  });
  return renderRuntimeConfig(loadStackConfig(parseStackFile(yaml, "t.yaml")), "test");
}

function controller(options: { config?: RuntimeConfig; holder?: string; tickMs?: number } = {}): Controller {
  const cfg = options.config ?? config;
  const c = new Controller({
    config: cfg,
    redis,
    adapters: {
      vastai: new VastAiAdapter({
        settings: cfg.providers.vastai!,
        apiKey: API_KEY,
        retry: { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 5, maxTotalMs: 50 },
        timeoutMs: 500,
      }),
    },
    metrics: new ControllerMetrics({ defaultMetrics: false }),
    log: (line) => logs.push(line),
    tickMs: options.tickMs ?? 50,
    reconcileMs: 60_000,
    holder: options.holder,
  });
  controllers.push(c);
  return c;
}

const live = () => new WorkerRegistry(redis, keys, () => 0).live();
const until = async (what: string, check: () => Promise<boolean> | boolean, timeoutMs = 8_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}\n${logs.slice(-15).join("\n")}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};
const waitRequest = async (model = "m", id = `r${randomBytes(3).toString("hex")}`) => {
  await redis.zadd(keys.waiting(model), Date.now() + 60_000, id);
  await redis.publish(
    keys.demandChannel,
    JSON.stringify({ model, requestId: id, deadlineMs: Date.now() + 60_000 }),
  );
  return id;
};

beforeAll(async () => {
  redis = new Redis(REDIS_URL);
  engine = await startFakeVllm({ model: "m" });
});
afterAll(async () => {
  await engine.close();
  redis.disconnect();
});
beforeEach(async () => {
  keys = redisKeys(`ct${randomBytes(4).toString("hex")}:`);
  fake = new VastAiFake({
    apiKey: API_KEY,
    offers: OFFERS,
    walk: { createdMs: 30, loadingMs: 150 },
    engineAddress: { ip: "127.0.0.1", port: engine.port },
  });
  await fake.start();
  config = stack();
  logs = [];
});
afterEach(async () => {
  for (const c of controllers.splice(0)) await c.stop();
  await fake.close();
  const found = await redis.keys(`${keys.prefix}*`);
  if (found.length > 0) await redis.del(...found);
});

describe("scaling", () => {
  it("0 → 1 on the first waiting request, served once its OpenAI endpoint answers, then back to 0 after keep-alive", async () => {
    const c = controller();
    await c.start();
    const requestId = await waitRequest();
    await until("a ready worker with a route", async () => (await redis.hlen(keys.routes("m"))) === 1);
    const [workerId, routeText] = Object.entries(await redis.hgetall(keys.routes("m")))[0]!;
    const route = decodeRoute(routeText)!;
    expect(route.baseUrl).toBe(`http://127.0.0.1:${engine.port}/v1`);
    expect(route.auth.kind).toBe("bearer");
    expect(fake.live()).toHaveLength(1);
    expect(fake.live()[0]!.label).toContain(workerId);
    // the cheapest allowed offer
    expect(fake.live()[0]!.askId).toBe(101);
    // the request is served (the gateway would remove its waiting entry), the worker idles past its keep-alive
    await redis.zrem(keys.waiting("m"), requestId);
    await until("scale to zero", async () => fake.live().length === 0 && (await live()).length === 0);
    expect(await redis.hlen(keys.routes("m"))).toBe(0);
    expect(logs.join("\n")).toMatch(/terminated at vastai/);
    // the ledger booked its time
    const spent = Number(await redis.hget(keys.spendMonth(ledgerMonth(Date.now())), "model:m"));
    expect(spent).toBeGreaterThan(0);
  });

  it("never scales down while anything waits", async () => {
    const c = controller();
    await c.start();
    await waitRequest();
    await until("ready", async () => (await redis.hlen(keys.routes("m"))) === 1);
    await new Promise((r) => setTimeout(r, 1_500)); // well past the 1 s keep-alive
    expect((await live()).filter((w) => w.state === "ready")).toHaveLength(1);
  });

  it("a draining worker keeps its in-flight requests until they finish", async () => {
    const c = controller();
    await c.start();
    const requestId = await waitRequest();
    await until("ready", async () => (await redis.hlen(keys.routes("m"))) === 1);
    const workerId = (await redis.hkeys(keys.routes("m")))[0]!;
    await redis.zrem(keys.waiting("m"), requestId);
    // a long request in flight: no scale-down while it runs
    await redis.zadd(keys.inflight("m"), Date.now() + 60_000, inflightMember(workerId, "long"));
    await new Promise((r) => setTimeout(r, 1_300));
    expect(fake.live()).toHaveLength(1);
    await redis.zrem(keys.inflight("m"), inflightMember(workerId, "long"));
    await until("scale to zero", async () => fake.live().length === 0);
  });

  it("fails over to the next offer when the cheapest is gone (capacity)", async () => {
    fake.inject(
      { type: "status", status: 400, json: { success: false, error: "no_such_ask", msg: "gone" } },
      { method: "PUT", path: "/asks/101/", times: 1 },
    );
    const c = controller();
    await c.start();
    await waitRequest();
    await until("ready", async () => (await redis.hlen(keys.routes("m"))) === 1);
    expect(
      fake.live().map((i) => i.askId),
      logs.join("\n"),
    ).toEqual([102]);
  });
});

describe("trust and budgets", () => {
  it("refuses a marketplace provider for a confidential model, with the trust rule's reason", async () => {
    const c = controller({ config: stack({ dataClass: "confidential" }) });
    await c.tick();
    await waitRequest();
    await c.tick();
    expect(fake.live()).toHaveLength(0);
    expect(logs.join("\n")).toMatch(
      /refusing vastai for m: model "m" holds confidential data but vastai is a marketplace provider/,
    );
  });

  it("at the budget cap no worker starts and the gateway is told", async () => {
    const c = controller({ config: stack({ budget: "{ monthlyUsd: 5 }" }) });
    await redis.hset(keys.spendMonth(ledgerMonth(Date.now())), "total", 5_000_000);
    await waitRequest();
    await c.tick();
    await c.tick();
    expect(fake.live()).toHaveLength(0);
    expect(await redis.hget(keys.budgetBlocked, "*")).toMatch(/reached its monthly budget of \$5/);
  });
});

describe("crash safety", () => {
  const intent = async (id: string, patch: Record<string, string> = {}) => {
    const now = Date.now() - 10_000;
    await redis.hset(keys.worker(id), {
      id,
      model: "m",
      provider: "vastai",
      state: "requested",
      usdPerHour: "0.2",
      token: "t0k",
      createdAtMs: String(now),
      stateChangedAtMs: String(now),
      lastActiveAtMs: String(now),
      accruedUntilMs: String(now),
      ...patch,
    });
    await redis.sadd(keys.liveWorkers, id);
  };

  it("killed after the provider created the instance but before the registry knew: the reconciler adopts it", async () => {
    await intent("wcrash1");
    // the instance exists at the provider, tagged with our owner label and the worker id
    const adapter = new VastAiAdapter({ settings: config.providers.vastai!, apiKey: API_KEY });
    const offers = await adapter.offers({ gpu: ["RTX_3090"], gpuCount: 1 });
    await adapter.provision(
      {
        workerId: "wcrash1",
        ownerLabel: config.ownerLabel,
        model: "m",
        source: "o/m",
        engine: "vllm",
        image: "vllm/vllm-openai",
        gpuCount: 1,
        engineArgs: [],
        port: 8000,
        workerToken: "t0k",
        env: {},
      },
      offers[0]!,
    );
    await waitRequest(); // so the adopted worker is wanted, not drained
    const c = controller();
    await c.start();
    await until("the adopted worker is ready", async () =>
      (await redis.hkeys(keys.routes("m"))).includes("wcrash1"),
    );
    expect(fake.live()).toHaveLength(1); // adopted, not created twice
    expect(logs.join("\n")).toMatch(/reconcile adopted/);
  });

  it("killed during boot: the next controller carries the boot on", async () => {
    const adapter = new VastAiAdapter({ settings: config.providers.vastai!, apiKey: API_KEY });
    const offers = await adapter.offers({ gpu: ["RTX_3090"], gpuCount: 1 });
    const info = await adapter.provision(
      {
        workerId: "wboot",
        ownerLabel: config.ownerLabel,
        model: "m",
        source: "o/m",
        engine: "vllm",
        image: "vllm/vllm-openai",
        gpuCount: 1,
        engineArgs: [],
        port: 8000,
        workerToken: "t0k",
        env: {},
      },
      offers[0]!,
    );
    await intent("wboot", { state: "booting", providerId: info.providerId });
    await waitRequest();
    const c = controller();
    await c.start();
    await until("ready", async () => (await redis.hkeys(keys.routes("m"))).includes("wboot"));
    expect(fake.live()).toHaveLength(1);
  });

  it("an instance with our owner label that the registry does not know is an orphan and is terminated", async () => {
    const adapter = new VastAiAdapter({ settings: config.providers.vastai!, apiKey: API_KEY });
    const offers = await adapter.offers({ gpu: ["RTX_3090"], gpuCount: 1 });
    await adapter.provision(
      {
        workerId: "wghost",
        ownerLabel: config.ownerLabel,
        model: "m",
        source: "o/m",
        engine: "vllm",
        image: "vllm/vllm-openai",
        gpuCount: 1,
        engineArgs: [],
        port: 8000,
        workerToken: "t0k",
        env: {},
      },
      offers[0]!,
    );
    const c = controller();
    await c.tick();
    expect(fake.live()).toHaveLength(0);
    expect(logs.join("\n")).toMatch(/orphan .* \(worker wghost\); terminating/);
  });
});

describe("leadership and robustness", () => {
  it("two controllers: one leads, the other stands by and takes over", async () => {
    const a = controller({ holder: "a" });
    const b = controller({ holder: "b" });
    await a.tick();
    await b.tick();
    expect(a.isLeader).toBe(true);
    expect(b.isLeader).toBe(false);
    await a.stop(); // releases the lock
    await b.tick();
    expect(b.isLeader).toBe(true);
  });

  it("a provider answering garbage never crashes the loop", async () => {
    fake.inject({ type: "garbage", body: "<html>bad gateway</html>" }, { times: 50 });
    const c = controller();
    await waitRequest();
    for (let i = 0; i < 5; i++) await c.tick();
    await new Promise((r) => setTimeout(r, 200));
    expect(logs.join("\n")).toMatch(/failed/);
    // and once the provider recovers, the worker comes
    fake.clearFaults();
    await c.start();
    await until("ready", async () => (await redis.hlen(keys.routes("m"))) === 1);
  });
});
