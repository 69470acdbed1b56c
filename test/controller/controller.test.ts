/**
 * The controller against a real Redis, the Vast.ai contract fake, and a fake vLLM the fake's instances "run"
 * (over TLS, with the certificate the controller pins): scale from zero and back, drain, failover, trust,
 * budgets, crashes at each provisioning step, leadership, garbage from the provider, and worker certificates.
 */
import { createPrivateKey, randomBytes, X509Certificate } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Controller, type ControllerDeps, probeOpenAi } from "../../controller/controller";
import { ControllerMetrics } from "../../controller/metrics";
import { LocalAdapter } from "../../controller/providers/local";
import { TLS_ENV, type WorkerSpec } from "../../controller/providers/types";
import { VastAiAdapter } from "../../controller/providers/vastai";
import { WorkerRegistry } from "../../controller/registry";
import { AuditTrail } from "../../core/audit-trail";
import { loadStackConfig, parseStackFile, type RuntimeConfig, renderRuntimeConfig } from "../../core/config";
import { decodeRoute, inflightMember, ledgerMonth } from "../../core/protocol";
import { type RedisKeys, redisKeys } from "../../core/redis-keys";
import { type CertificatePin, createWorkerCertificate, type WorkerCertificate } from "../../core/x509";
import { stackYaml } from "../../devkit/stack-yaml";
import { joinedEnvValue, VastAiFake, type VastOfferSeed } from "../fakes/vastai-api";
import { type FakeVllm, startFakeVllm } from "../fakes/vllm-upstream";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const API_KEY = "vast-test-key";
const OFFERS: VastOfferSeed[] = [
  { id: 101, gpu_name: "RTX 3090", num_gpus: 1, dph_base: 0.2, reliability: 0.99, verified: true },
  { id: 102, gpu_name: "RTX 3090", num_gpus: 1, dph_base: 0.25, reliability: 0.995, verified: true },
  { id: 103, gpu_name: "RTX 3090", num_gpus: 1, dph_base: 0.28, reliability: 0.995, verified: true },
];

let redis: Redis;
/** The engine every Vast instance "runs": https with `engineCert`, which the controller hands out by default. */
let engine: FakeVllm;
let engineCert: WorkerCertificate;
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

const vastAdapter = (cfg: RuntimeConfig) =>
  new VastAiAdapter({
    settings: cfg.providers.vastai!,
    apiKey: API_KEY,
    retry: { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 5, maxTotalMs: 50 },
    timeoutMs: 500,
  });

function controller(
  options: {
    config?: RuntimeConfig;
    holder?: string;
    tickMs?: number;
  } & Partial<
    Pick<ControllerDeps, "adapters" | "probe" | "issueCertificate" | "healthCheckMs" | "metrics">
  > = {},
): Controller {
  const cfg = options.config ?? config;
  const c = new Controller({
    config: cfg,
    redis,
    adapters: options.adapters ?? { vastai: vastAdapter(cfg) },
    metrics: options.metrics ?? new ControllerMetrics({ defaultMetrics: false }),
    log: (line) => logs.push(line),
    tickMs: options.tickMs ?? 50,
    reconcileMs: 60_000,
    holder: options.holder,
    // Every worker gets the certificate the fake engine serves (by default each gets a fresh one).
    issueCertificate: options.issueCertificate ?? (() => engineCert),
    ...(options.probe ? { probe: options.probe } : {}),
    ...(options.healthCheckMs ? { healthCheckMs: options.healthCheckMs } : {}),
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
/**
 * Start the controller, let one request bring up a ready worker of m, then leave that worker with a long request
 * in flight (its waiting entry gone). The worker's id.
 */
const readyWorkerWithLongRequest = async (c: Controller): Promise<string> => {
  await c.start();
  const requestId = await waitRequest();
  await until("ready", async () => (await redis.hlen(keys.routes("m"))) === 1);
  const workerId = (await redis.hkeys(keys.routes("m")))[0]!;
  await redis.zrem(keys.waiting("m"), requestId);
  await redis.zadd(keys.inflight("m"), Date.now() + 60_000, inflightMember(workerId, "long"));
  return workerId;
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
  engineCert = createWorkerCertificate("wengine");
  engine = await startFakeVllm({ model: "m", tls: { cert: engineCert.certPem, key: engineCert.keyPem } });
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
    expect(route.baseUrl).toBe(`https://127.0.0.1:${engine.port}/v1`);
    expect(route.tls?.fingerprint256).toBe(engineCert.fingerprint256);
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
    // a long request in flight: no scale-down while it runs
    const workerId = await readyWorkerWithLongRequest(controller());
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
    // refused on every tick, audited once
    await c.tick();
    await c.tick();
    await until("the audit entry", async () => (await new AuditTrail(redis, keys).list()).length > 0);
    const trail = await new AuditTrail(redis, keys).list();
    expect(trail.map((e) => [e.action, e.target])).toEqual([["provider.refused", "m@vastai"]]);
    expect(trail[0]!.actor).toMatch(/^controller:/);
    expect(trail[0]!.reason).toMatch(/marketplace provider/);
  });

  it("at the cap a busy worker is stopped at once: in-flight requests get no drain grace, so spend stops within a tick", async () => {
    const cfg = stack({
      models:
        "[{ name: m, kind: chat, source: o/m, gpu: [RTX_3090], providers: [vastai], maxWorkers: 1, targetConcurrency: 1, idleTimeoutSeconds: 300, monthlyBudgetUsd: 5 }]",
    });
    // a long request in flight (a normal drain would wait up to two minutes for it) when the model's budget runs out
    await readyWorkerWithLongRequest(controller({ config: cfg }));
    const month = keys.spendMonth(ledgerMonth(Date.now()));
    await redis.hincrby(month, "model:m", 5_000_000);
    await redis.hincrby(month, "total", 5_000_000);
    await until(
      "the worker terminated despite its in-flight request",
      async () => fake.live().length === 0,
      4_000,
    );
    expect(await redis.hlen(keys.routes("m"))).toBe(0);
    expect(logs.join("\n")).toMatch(/budget: model m reached its monthly budget of \$5/);
  });

  it("a model blocked a tick before its cap stays blocked while another model's worker terminates", async () => {
    // m's spend is just under its cap, so only the burn of its running worker blocks it; n's worker going away
    // used to recompute the blocks from that one worker's burn and lift m's block until the next tick
    const cfg = stack({
      models: `[{ name: m, kind: chat, source: o/m, gpu: [RTX_3090], providers: [vastai], maxWorkers: 1,
          targetConcurrency: 1, idleTimeoutSeconds: 300, monthlyBudgetUsd: 5 },
        { name: n, kind: chat, source: o/n, gpu: [RTX_3090], providers: [vastai], maxWorkers: 1,
          targetConcurrency: 1, idleTimeoutSeconds: 1 }]`,
    });
    // a minute's burn is the projection: $0.2/h of m's worker is $0.0033, more than the $0.002 left
    const c = controller({ config: cfg, tickMs: 60_000 });
    const ready = (model: string) => async () => {
      await c.tick();
      return (await live()).some((w) => w.model === model && w.state === "ready");
    };
    const requestM = await waitRequest("m");
    const requestN = await waitRequest("n");
    await until("ready workers of m and n", async () => (await ready("m")()) && (await ready("n")()));
    await redis.zrem(keys.waiting("m"), requestM);
    await redis.zrem(keys.waiting("n"), requestN);
    const month = keys.spendMonth(ledgerMonth(Date.now()));
    await redis.hincrby(month, "model:m", 4_998_000);
    await redis.hincrby(month, "total", 4_998_000);
    await c.tick();
    expect(await redis.hget(keys.budgetBlocked, "m")).toBe("model m reached its monthly budget of $5");
    await until("n's idle worker terminated", async () => {
      await c.tick();
      return !(await live()).some((w) => w.model === "n");
    });
    expect((await live()).filter((w) => w.model === "m").map((w) => w.state)).toEqual(["ready"]);
    await until("the audit entries", async () => (await new AuditTrail(redis, keys).list()).length > 0);
    await new Promise((r) => setTimeout(r, 50));
    const budgetChanges = (await new AuditTrail(redis, keys).list()).filter(
      (e) => e.action === "budget.changed",
    );
    expect(budgetChanges.map((e) => [e.target, e.reason])).toEqual([
      ["model m", "blocked: model m reached its monthly budget of $5"],
    ]);
  });

  it("at the budget cap no worker starts and the gateway is told", async () => {
    const c = controller({ config: stack({ budget: "{ monthlyUsd: 5 }" }) });
    await redis.hset(keys.spendMonth(ledgerMonth(Date.now())), "total", 5_000_000);
    await waitRequest();
    await c.tick();
    await c.tick();
    expect(fake.live()).toHaveLength(0);
    expect(await redis.hget(keys.budgetBlocked, "*")).toMatch(/reached its monthly budget of \$5/);
    await until("the audit entry", async () => (await new AuditTrail(redis, keys).list()).length > 0);
    expect((await new AuditTrail(redis, keys).list()).map((e) => [e.action, e.target, e.reason])).toEqual([
      ["budget.changed", "stack test", "blocked: stack test reached its monthly budget of $5"],
    ]);
    // the cap lifted (next month, a raised budget): unblocked, audited once more
    await redis.del(keys.spendMonth(ledgerMonth(Date.now())));
    await c.tick();
    await until("the second entry", async () => (await new AuditTrail(redis, keys).list()).length > 1);
    expect((await new AuditTrail(redis, keys).list()).at(-1)).toMatchObject({
      action: "budget.changed",
      reason: "unblocked",
    });
  });
});

describe("model variants (a weighted rollout)", () => {
  const REV_B = "b".repeat(40);
  const variantStack = (extra = "") =>
    stack({
      models: `[{ name: m, kind: chat, source: o/m, gpu: [RTX_3090], providers: [vastai], maxWorkers: 2,
        targetConcurrency: 1, idleTimeoutSeconds: 1${extra},
        variants: [{ name: a, weight: 90 }, { name: b, source: o/m-next, revision: ${REV_B}, weight: 10 }] }]`,
    });

  it("each variant scales on its own queue, with its own weights, answering under the model's name", async () => {
    const c = controller({ config: variantStack() });
    await c.tick();
    await waitRequest("m@b");
    await until("a ready worker of m@b", async () => {
      await c.tick();
      return (await live()).some((w) => w.model === "m@b" && w.state === "ready");
    });
    const workers = await live();
    expect(workers.map((w) => w.model)).toEqual(["m@b"]); // nothing waits for m@a, so nothing starts for it
    expect(await redis.hlen(keys.routes("m@b"))).toBe(1);
    expect(await redis.hlen(keys.routes("m@a"))).toBe(0);
    const args = fake.live()[0]!.args as string[];
    const argAfter = (flag: string) => args[args.indexOf(flag) + 1];
    expect(argAfter("--served-model-name")).toBe("m");
    expect(argAfter("--model")).toBe("o/m-next");
    expect(argAfter("--revision")).toBe(REV_B);
  });

  it("the variants share the model's budget: their spend adds up against it", async () => {
    const c = controller({ config: variantStack(", monthlyBudgetUsd: 10") });
    const month = keys.spendMonth(ledgerMonth(Date.now()));
    await redis.hset(month, "model:m@a", 6_000_000, "model:m@b", 4_500_000, "total", 10_500_000);
    await waitRequest("m@b");
    await c.tick();
    await c.tick();
    expect(fake.live()).toHaveLength(0);
    expect(await redis.hget(keys.budgetBlocked, "m")).toBe("model m reached its monthly budget of $10");
  });
});

describe("weight cache (a Hugging Face mirror for instance providers)", () => {
  const MIRROR = "https://hf-mirror.example.com";
  const REV = "c".repeat(40);

  it("the engine downloads into its download dir from the mirror; the first cold start misses, the next hits", async () => {
    const cfg = stack({
      providers: `{ vastai: { apiBase: "${fake.apiBase}", maxUsdPerHour: 0.5, weightCache: { mirrorUrl: "${MIRROR}" } } }`,
      models: `[{ name: m, kind: chat, source: o/m, revision: ${REV}, gpu: [RTX_3090], providers: [vastai],
        maxWorkers: 1, targetConcurrency: 1, idleTimeoutSeconds: 1 }]`,
    });
    const metrics = new ControllerMetrics({ defaultMetrics: false });
    const c = controller({ config: cfg, metrics });
    await c.start();
    const coldStarts = async (cache: string) => {
      const text = await metrics.registry.metrics();
      const match = new RegExp(
        `aiorch_cold_start_latency_seconds_count\\{[^}]*cache="${cache}"[^}]*\\} (\\d+)`,
      ).exec(text);
      return Number(match?.[1] ?? Number.NaN);
    };
    expect([await coldStarts("miss"), await coldStarts("hit")]).toEqual([0, 0]);

    for (const expected of ["miss", "hit"]) {
      const requestId = await waitRequest();
      await until("a ready worker", async () => (await redis.hlen(keys.routes("m"))) === 1);
      const instance = fake.live()[0]!;
      expect(instance.env.HF_ENDPOINT).toBe(MIRROR);
      const args = instance.args as string[];
      expect(args[args.indexOf("--download-dir") + 1]).toBe("/aiorch/weights");
      // the route is written just before the ready line is logged: wait for the line, not only the route
      await until(`the ready line saying ${expected}`, () =>
        logs.join("\n").includes(`(weight cache ${expected})`),
      );
      await redis.zrem(keys.waiting("m"), requestId);
      await until("scale to zero", async () => fake.live().length === 0 && (await live()).length === 0);
    }
    expect([await coldStarts("miss"), await coldStarts("hit")]).toEqual([1, 1]);
    // the record outlives the controller: a restarted one knows the mirror holds this revision
    expect(Object.keys(await redis.hgetall(keys.weightCacheLoaded))).toEqual([`${MIRROR}|o/m@${REV}`]);
  });

  it("without a weight cache every cold start downloads from the Hub: a miss, and no mirror is passed", async () => {
    const metrics = new ControllerMetrics({ defaultMetrics: false });
    const c = controller({ metrics });
    await c.start();
    await waitRequest();
    await until("a ready worker", async () => (await redis.hlen(keys.routes("m"))) === 1);
    expect(fake.live()[0]!.env.HF_ENDPOINT).toBeUndefined();
    // the route is written just before the ready line is logged (as in the test above): wait for the line
    await until("the ready line", () => logs.join("\n").includes("(weight cache "));
    expect(logs.join("\n")).toContain("(weight cache miss)");
    expect(await metrics.registry.metrics()).not.toContain('cache="hit"');
    expect(await redis.hlen(keys.weightCacheLoaded)).toBe(0);
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
      tlsCertPem: engineCert.certPem,
      tlsFingerprint256: engineCert.fingerprint256,
      ...patch,
    });
    await redis.sadd(keys.liveWorkers, id);
  };

  /** An instance at the provider, tagged with our owner label and the worker id, as a create leaves it. */
  const createdAtProvider = async (workerId: string) => {
    const adapter = new VastAiAdapter({ settings: config.providers.vastai!, apiKey: API_KEY });
    const offers = (await adapter.offers({ gpu: ["RTX_3090"], gpuCount: 1 })).offers;
    const spec = {
      workerId,
      ownerLabel: config.ownerLabel,
      model: "m",
      source: "o/m",
      engine: "vllm" as const,
      image: "vllm/vllm-openai",
      gpuCount: 1,
      engineArgs: [],
      port: 8000,
      workerToken: "t0k",
      env: {},
    };
    return adapter.provision(spec, offers[0]!);
  };

  it("killed after the provider created the instance but before the registry knew: the reconciler adopts it", async () => {
    await intent("wcrash1");
    // the instance exists at the provider, tagged with our owner label and the worker id
    await createdAtProvider("wcrash1");
    await waitRequest(); // so the adopted worker is wanted, not drained
    const c = controller();
    await c.start();
    await until("the adopted worker is ready", async () =>
      (await redis.hkeys(keys.routes("m"))).includes("wcrash1"),
    );
    expect(fake.live()).toHaveLength(1); // adopted, not created twice
    expect(logs.join("\n")).toMatch(/reconcile adopted/);
  });

  it("killed before the create call: the intent is dropped once stale, and nothing was created", async () => {
    await intent("wnever");
    const c = new Controller({
      config,
      redis,
      adapters: { vastai: new VastAiAdapter({ settings: config.providers.vastai!, apiKey: API_KEY }) },
      metrics: new ControllerMetrics({ defaultMetrics: false }),
      log: (line) => logs.push(line),
      staleIntentMs: 1_000,
    });
    controllers.push(c);
    await c.tick();
    expect(await live()).toEqual([]);
    expect(await redis.hget(keys.worker("wnever"), "state")).toBe("terminated");
    expect(fake.live()).toHaveLength(0);
  });

  it("an intent whose write failed but landed (Redis restarting) is closed at the next tick, and a new worker starts", async () => {
    const c = controller();
    // the registry's write reaches Redis, its answer does not: as when Redis goes away between the two
    const registry = (c as unknown as { registry: { create: (...args: unknown[]) => Promise<unknown> } })
      .registry;
    const create = registry.create.bind(registry);
    registry.create = async (...args: unknown[]) => {
      await create(...args);
      throw new Error("Connection is closed.");
    };
    await waitRequest();
    await c.tick().catch(() => undefined);
    const [lost] = await live();
    expect(lost?.state).toBe("requested");
    registry.create = create;
    await c.tick(); // the default staleIntentMs is two minutes: without this, the model would wait that long
    expect(await redis.hget(keys.worker(lost!.id), "state")).toBe("terminated");
    await until("a new worker created at the provider", () => fake.live().length === 1);
    expect((await live()).map((w) => w.id)).not.toContain(lost!.id);
  });

  it("killed during boot: the next controller carries the boot on", async () => {
    const info = await createdAtProvider("wboot");
    await intent("wboot", { state: "booting", providerId: info.providerId });
    await waitRequest();
    const c = controller();
    await c.start();
    await until("ready", async () => (await redis.hkeys(keys.routes("m"))).includes("wboot"));
    expect(fake.live()).toHaveLength(1);
  });

  it("killed after the provider accepted a termination: the next controller books no time past it", async () => {
    const info = await createdAtProvider("wgone");
    // the provider stops billing here
    await new VastAiAdapter({ settings: config.providers.vastai!, apiKey: API_KEY }).terminate(
      info.providerId,
    );
    const acceptedAt = Date.now() - 10_000; // ...and the controller died before it could confirm
    await intent("wgone", {
      state: "draining",
      providerId: info.providerId,
      createdAtMs: String(acceptedAt - 200_000),
      accruedUntilMs: String(acceptedAt),
      terminateRequestedAtMs: String(acceptedAt),
      terminateAcceptedAtMs: String(acceptedAt),
    });
    const c = controller();
    await c.tick();
    expect(await redis.hget(keys.worker("wgone"), "state")).toBe("terminated");
    expect(Number(await redis.hget(keys.worker("wgone"), "accruedUntilMs"))).toBe(acceptedAt);
    // the 10 s the controller was away are not booked: the provider billed none of them
    const spend = await redis.hgetall(keys.spendMonth(ledgerMonth(Date.now())));
    expect(Number(spend["worker:wgone"] ?? 0)).toBe(0);
  });

  it("an instance with our owner label that the registry does not know is an orphan and is terminated", async () => {
    await createdAtProvider("wghost");
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

describe("ready workers' health and the decision record", () => {
  const ready = async () => {
    await until("ready", async () => (await redis.hlen(keys.routes("m"))) === 1);
    return (await live()).find((w) => w.state === "ready")!;
  };

  it("a ready worker whose engine stops answering and whose container exited is failed, terminated and replaced", async () => {
    let answering = true;
    const c = controller({
      healthCheckMs: 50,
      probe: async (url, token, pin) => answering && probeOpenAi(url, token, pin),
    });
    await c.start();
    await waitRequest();
    const worker = await ready();
    // the engine's --api-key: never a value its argument parser would take for an option
    expect(worker.token).toMatch(/^[0-9a-f]{48}$/);
    // the engine dies: the container exits at Vast
    answering = false;
    fake.instances.get(Number(worker.providerId))!.timeline.set("exited", Date.now());
    await until("the dead worker terminated", async () => (await live()).every((w) => w.id !== worker.id));
    const record = await new WorkerRegistry(redis, keys, () => 0).get(worker.id);
    expect(record?.state).toBe("terminated");
    expect(logs.join("\n")).toMatch(/stopped answering and vastai reports the instance failed/);
    // the request still waits: a replacement comes up
    answering = true;
    const replacement = await ready();
    expect(replacement.id).not.toBe(worker.id);
  });

  it("a worker that keeps failing its health checks while the provider reports it running is replaced too", async () => {
    let answering = true;
    const c = controller({
      healthCheckMs: 30,
      probe: async (url, token, pin) => answering && probeOpenAi(url, token, pin),
    });
    await c.start();
    await waitRequest();
    const worker = await ready();
    answering = false;
    await until("the wedged worker failed", async () => (await live()).every((w) => w.id !== worker.id));
    expect(logs.join("\n")).toMatch(/did not answer 5 health checks in a row/);
    // the provider was asked once per failed check, not on every tick
    expect(fake.requestsTo(`/instances/${worker.providerId}/`, "GET").length).toBeLessThan(20);
  });

  it("scale decisions and their reasons are kept, newest first, in a capped list (aiorch status reads it)", async () => {
    const c = controller();
    await c.start();
    const requestId = await waitRequest();
    await ready();
    await redis.zrem(keys.waiting("m"), requestId);
    await until("scale to zero", async () => (await live()).length === 0);
    const decisions = (await redis.lrange(keys.scaleDecisions, 0, -1)).map(
      (d) => JSON.parse(d) as { model: string; action: string; reason: string; workers?: number },
    );
    expect(decisions.map((d) => d.action)).toEqual(["drain", "offer", "provision"]);
    expect(decisions[2]).toMatchObject({ model: "m", workers: 1 });
    expect(decisions[2]!.reason).toMatch(/1 waiting .* provision 1/);
    // which offer the worker was created on, with its price
    expect(decisions[1]!.reason).toMatch(/^chose vastai \d+, RTX_3090, .*\$[\d.]+\/h/);
    expect(decisions[0]!.reason).toMatch(/idle .* keep-alive/);
  });

  it("a Redis failure while recording a created instance is not taken for the provider's: no second create", async () => {
    const c = controller();
    await c.start();
    // the registry write after the create fails twice (a Redis restart), then Redis is back
    const registryRedis = redis as unknown as { aiorchWorkerWrite: (...args: unknown[]) => Promise<number> };
    const write = registryRedis.aiorchWorkerWrite.bind(redis);
    let failures = 0;
    registryRedis.aiorchWorkerWrite = async (...args: unknown[]) => {
      if (args.includes("provisioning") && failures < 2) {
        failures += 1;
        throw new Error("Connection is closed.");
      }
      return write(...args);
    };
    try {
      await waitRequest();
      await ready();
    } finally {
      registryRedis.aiorchWorkerWrite = write;
    }
    expect(failures).toBe(2);
    expect(fake.requestsTo(/\/asks\/\d+\//, "PUT")).toHaveLength(1);
    expect(logs.join("\n")).not.toMatch(/provision .* on vastai failed/);
  });
});

describe("workers you can trust: TLS with a pinned certificate", () => {
  /** Every value stored under this test's key prefix, as text. */
  const everythingStored = async (): Promise<string> => {
    const out: string[] = [];
    for (const key of await redis.keys(`${keys.prefix}*`)) {
      const type = await redis.type(key);
      if (type === "hash") out.push(JSON.stringify(await redis.hgetall(key)));
      else if (type === "string") out.push((await redis.get(key)) ?? "");
      else if (type === "set") out.push(...(await redis.smembers(key)));
      else if (type === "zset") out.push(...(await redis.zrange(key, 0, -1)));
      else if (type === "list") out.push(...(await redis.lrange(key, 0, -1)));
    }
    return out.join("\n");
  };
  const keyLines = (pem: string) => pem.split("\n").filter((l) => l.length > 0 && !l.startsWith("-----"));

  it("a rented worker gets its own certificate: the key goes only to the provider, record and route carry the pin", async () => {
    const specs: WorkerSpec[] = [];
    const vast = vastAdapter(config);
    const spying = Object.assign(Object.create(vast) as VastAiAdapter, {
      provision: (spec: WorkerSpec, offer: Parameters<VastAiAdapter["provision"]>[1]) => {
        specs.push(spec);
        return vast.provision(spec, offer);
      },
    });
    const probes: { baseUrl: string; token: string; pin?: CertificatePin }[] = [];
    const c = controller({
      adapters: { vastai: spying },
      issueCertificate: (workerId) => createWorkerCertificate(workerId), // the real thing, one per worker
      probe: async (baseUrl, token, pin) => {
        probes.push({ baseUrl, token, ...(pin ? { pin } : {}) });
        return true;
      },
    });
    await c.start();
    await waitRequest();
    await until("ready", async () => (await redis.hlen(keys.routes("m"))) === 1);

    const [worker] = await live();
    const [spec] = specs;
    expect(worker && spec).toBeTruthy();
    // the spec carries the certificate and its key; the key belongs to the certificate
    const cert = new X509Certificate(spec!.tls!.certPem);
    expect(cert.subject).toBe(`CN=${worker!.id}`);
    expect(cert.checkPrivateKey(createPrivateKey(spec!.tls!.keyPem))).toBe(true);
    // the record keeps the certificate and its fingerprint, not the key
    expect(worker!.tlsCertPem).toBe(spec!.tls!.certPem);
    expect(worker!.tlsFingerprint256).toBe(cert.fingerprint256);
    // the route pins it, over https
    const route = decodeRoute((await redis.hget(keys.routes("m"), worker!.id))!)!;
    expect(route.baseUrl).toBe(`https://127.0.0.1:${engine.port}/v1`);
    expect(route.tls).toEqual({ certPem: cert.toString(), fingerprint256: cert.fingerprint256 });
    // the readiness probe pinned it too
    expect(probes.at(-1)).toMatchObject({
      baseUrl: route.baseUrl,
      token: worker!.token,
      pin: { fingerprint256: cert.fingerprint256 },
    });
    // the engine starts with TLS: the certificate and key travel in the start-up environment
    const [create] = fake.requestsTo(/\/asks\/\d+\/$/, "PUT");
    const body = create!.body as { env: Record<string, string>; onstart?: string; args: string[] };
    expect(body.onstart).toBe("/bin/sh");
    expect(body.args).toEqual(expect.arrayContaining(["--ssl-certfile", "--ssl-keyfile"]));
    expect(Buffer.from(joinedEnvValue(body.env, TLS_ENV.key)!, "base64").toString()).toBe(spec!.tls!.keyPem);
    // … and nowhere else: not in Redis, not in the logs
    const stored = await everythingStored();
    const secretParts = [
      spec!.tls!.keyPem,
      joinedEnvValue(body.env, TLS_ENV.key)!,
      ...keyLines(spec!.tls!.keyPem),
    ];
    for (const part of secretParts) {
      expect(stored).not.toContain(part);
      expect(logs.join("\n")).not.toContain(part);
    }
    expect(stored).not.toContain("PRIVATE KEY");
    expect(stored).toContain(cert.fingerprint256);
  });

  it("a worker presenting another certificate never becomes ready, however well it answers", async () => {
    engine.reset();
    const answers: boolean[] = [];
    const c = controller({
      // a fresh certificate per worker, so the engine (serving engineCert) is not the pinned server
      issueCertificate: (workerId) => createWorkerCertificate(workerId),
      probe: async (baseUrl, token, pin) => {
        const ok = await probeOpenAi(baseUrl, token, pin);
        answers.push(ok);
        return ok;
      },
    });
    await c.start();
    await waitRequest();
    await until("three probes of the running instance", () => answers.length >= 3);
    expect(answers.every((ok) => !ok)).toBe(true);
    expect(await redis.hlen(keys.routes("m"))).toBe(0);
    expect((await live()).map((w) => w.state)).toEqual(["booting"]);
    // the engine never saw a request (nor the worker token)
    expect(engine.records.requests).toHaveLength(0);
  });

  it("local workers (a static URL the team runs) stay as configured: no certificate, plain address", async () => {
    const plain = await startFakeVllm({ model: "m" });
    try {
      const cfg = stack({
        providers: `{ local: { url: "${plain.url}" } }`,
        models:
          "[{ name: m, kind: chat, source: o/m, gpu: [RTX_3090], providers: [local], maxWorkers: 1, targetConcurrency: 1 }]",
      });
      let issued = 0;
      const c = controller({
        config: cfg,
        adapters: { local: new LocalAdapter({ settings: cfg.providers.local! }) },
        issueCertificate: (workerId) => {
          issued += 1;
          return createWorkerCertificate(workerId);
        },
      });
      await c.start();
      await waitRequest();
      await until("ready", async () => (await redis.hlen(keys.routes("m"))) === 1);
      const route = decodeRoute(Object.values(await redis.hgetall(keys.routes("m")))[0]!)!;
      expect(route.baseUrl).toBe(plain.url);
      expect(route.tls).toBeUndefined();
      expect(issued).toBe(0);
      expect((await live())[0]?.tlsCertPem).toBeUndefined();
    } finally {
      await plain.close();
    }
  });

  it("an engine that cannot serve TLS is refused outside the cluster", async () => {
    const c = controller({
      config: stack({
        models: "[{ name: m, kind: chat, source: o/m, gpu: [RTX_3090], providers: [vastai], engine: tgi }]",
      }),
    });
    await waitRequest();
    await c.tick();
    await c.tick();
    expect(fake.live()).toHaveLength(0);
    expect(logs.join("\n")).toMatch(
      /refusing vastai for m: engine tgi cannot serve TLS, and traffic to a worker outside the cluster must be encrypted/,
    );
  });
});

describe("probeOpenAi", () => {
  const pin = (c: WorkerCertificate): CertificatePin => ({
    certPem: c.certPem,
    fingerprint256: c.fingerprint256,
  });

  it("answers true for the pinned certificate", async () => {
    expect(await probeOpenAi(engine.url, "t", pin(engineCert))).toBe(true);
  });

  it("refuses a server presenting another certificate, before sending the token", async () => {
    engine.reset();
    expect(await probeOpenAi(engine.url, "secret-token", pin(createWorkerCertificate("wother")))).toBe(false);
    // the right certificate as CA but another fingerprint: refused by the pin check
    const other = createWorkerCertificate("wother");
    expect(
      await probeOpenAi(engine.url, "t", {
        certPem: engineCert.certPem,
        fingerprint256: other.fingerprint256,
      }),
    ).toBe(false);
    expect(engine.records.requests).toHaveLength(0);
  });

  it("with a pin, never over plain http; without one, a self-signed server is not trusted either", async () => {
    expect(await probeOpenAi(engine.url.replace("https:", "http:"), "t", pin(engineCert))).toBe(false);
    expect(await probeOpenAi(engine.url, "t")).toBe(false);
  });
});
