/**
 * How the controller acts on what providers answer, with scripted in-memory adapters (the HTTP contracts are the
 * adapters' own tests): a create refused as invalid is not repeated, a worker running without an address is
 * failed over, and a worker's record shows what its provider last said.
 */
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { Controller, explainOfferChoice } from "../../controller/controller";
import { ControllerMetrics } from "../../controller/metrics";
import {
  type InstanceInfo,
  type OfferSearch,
  PLACEMENT_REFUSED,
  type ProviderAdapter,
  ProviderError,
  type WorkerSpec,
} from "../../controller/providers/types";
import { WorkerRegistry } from "../../controller/registry";
import type { ConfigurableProviderId } from "../../core/catalog";
import { loadStackConfig, parseStackFile, type RuntimeConfig, renderRuntimeConfig } from "../../core/config";
import { type RedisKeys, redisKeys } from "../../core/redis-keys";
import { stackYaml } from "../../devkit/stack-yaml";

const redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
afterAll(() => redis.disconnect());

/** An adapter whose answers a test scripts: what a create does, and what describe says afterwards. */
class ScriptedAdapter implements ProviderAdapter {
  readonly creates: WorkerSpec[] = [];
  readonly terminated: string[] = [];
  createFails?: ProviderError;
  /** What describe answers for the instance, in turn (the last one repeats). */
  says: Omit<InstanceInfo, "providerId">[] = [{ status: "provisioning" }];
  private described = 0;

  constructor(readonly id: ConfigurableProviderId) {}

  async offers(): Promise<OfferSearch> {
    return { offers: [{ provider: this.id, gpu: "RTX_3090", usdPerHour: 0.2, offerId: "o1" }], skipped: [] };
  }
  async provision(spec: WorkerSpec): Promise<InstanceInfo> {
    this.creates.push(spec);
    if (this.createFails) throw this.createFails;
    return { providerId: `i-${spec.workerId}`, workerId: spec.workerId, status: "provisioning" };
  }
  async describe(providerId: string): Promise<InstanceInfo | undefined> {
    if (this.terminated.includes(providerId)) return { providerId, status: "terminated" };
    const said = this.says[Math.min(this.described++, this.says.length - 1)]!;
    return { providerId, ...said };
  }
  async listOwned(): Promise<InstanceInfo[]> {
    return [];
  }
  async terminate(providerId: string): Promise<void> {
    this.terminated.push(providerId);
  }
}

let keys: RedisKeys;
let config: RuntimeConfig;
let logs: string[];
let clock: number;

beforeEach(() => {
  keys = redisKeys(`pa${randomBytes(4).toString("hex")}:`);
  config = renderRuntimeConfig(
    loadStackConfig(
      parseStackFile(
        stackYaml({
          dataClass: "public",
          providers: "{ runpod-pod: { cloud: community }, vastai: {} }",
          models:
            "[{ name: m, kind: chat, source: o/m, gpu: [RTX_3090], providers: [runpod-pod, vastai], maxWorkers: 1 }]",
          redis: `{ keyPrefix: "${keys.prefix}" }`,
        }),
        "t.yaml",
      ),
    ),
    "test",
  );
  logs = [];
  clock = Date.now();
});

const controller = (
  adapters: Partial<Record<ConfigurableProviderId, ProviderAdapter>>,
  metrics?: ControllerMetrics,
) =>
  new Controller({
    config,
    redis,
    adapters,
    metrics: metrics ?? new ControllerMetrics({ defaultMetrics: false }),
    log: (line) => logs.push(line),
    now: () => clock,
    reconcileMs: 3_600_000,
  });

const waiting = () => redis.zadd(keys.waiting("m"), clock + 86_400_000, `r${randomBytes(3).toString("hex")}`);
const settle = () => new Promise((r) => setTimeout(r, 30));
const live = () => new WorkerRegistry(redis, keys, () => 0).live();
const decisions = async () =>
  (await redis.lrange(keys.scaleDecisions, 0, -1)).map(
    (d) => JSON.parse(d) as { action: string; reason: string },
  );

describe("what the controller does with providers' answers", () => {
  it("a create refused as invalid is surfaced once and not repeated; the model fails over to its next provider", async () => {
    const pod = new ScriptedAdapter("runpod-pod");
    pod.createFails = new ProviderError({
      kind: "invalid",
      provider: "runpod-pod",
      operation: "provision",
      status: 422,
      detail: "Request validation failed. ($: additional properties 'publicIp' not allowed)",
    });
    const vast = new ScriptedAdapter("vastai");
    vast.createFails = new ProviderError({
      kind: "capacity",
      provider: "vastai",
      operation: "provision",
      detail: "no_such_ask",
    });
    const metrics = new ControllerMetrics({ defaultMetrics: false });
    const c = controller({ "runpod-pod": pod, vastai: vast }, metrics);
    await waiting();
    for (let i = 0; i < 30; i++) {
      await c.tick();
      await settle();
      clock += 2_000;
    }
    // one create at RunPod in a minute of demand (61 a minute before), while Vast.ai is asked every time
    expect(pod.creates).toHaveLength(1);
    expect(vast.creates.length).toBeGreaterThan(10);
    const configErrors = (await decisions()).filter((d) => d.action === "config-error");
    expect(configErrors).toHaveLength(1);
    expect(configErrors[0]!.reason).toMatch(/runpod-pod refused the create as invalid .*publicIp/);
    expect(
      (await metrics.registry.getSingleMetricAsString("aiorch_provider_request_rejected")).trim(),
    ).toMatch(/aiorch_provider_request_rejected\{model="m",provider="runpod-pod"\} 1$/m);
    // after an hour RunPod is asked again
    clock += 3_600_000;
    await c.tick();
    await settle();
    expect(pod.creates).toHaveLength(2);
    await c.stop();
  });

  it("every offer of a provider refused with an ambiguous 400 is read as a problem with the request, not capacity", async () => {
    const pod = new ScriptedAdapter("runpod-pod");
    pod.offers = async () => ({
      offers: ["o1", "o2"].map((offerId) => ({
        provider: "runpod-pod" as const,
        gpu: "RTX_3090" as const,
        usdPerHour: 0.2,
        offerId,
      })),
      skipped: [],
    });
    pod.createFails = new ProviderError({
      kind: "capacity",
      provider: "runpod-pod",
      operation: "provision",
      status: 400,
      code: PLACEMENT_REFUSED,
      detail: "NVIDIA GeForce RTX 3090: RunPod could not place it: ports must be unique",
    });
    const vast = new ScriptedAdapter("vastai");
    const c = controller({ "runpod-pod": pod, vastai: vast });
    await waiting();
    for (let i = 0; i < 5; i++) {
      await c.tick();
      await settle();
      clock += 2_000;
    }
    // both RunPod offers tried once, then held back; the worker came from Vast.ai
    expect(pod.creates).toHaveLength(2);
    expect(vast.creates).toHaveLength(1);
    const [configError] = (await decisions()).filter((d) => d.action === "config-error");
    expect(configError?.reason).toMatch(
      /every one of the 2 offers tried was refused .* ports must be unique; .* 10 minutes/,
    );
    await c.stop();
  });

  it("a worker its provider calls running without an address is failed over after a minute, not left booting", async () => {
    const pod = new ScriptedAdapter("runpod-pod");
    pod.says = [{ status: "running", detail: "status=RUNNING; 8000/tcp has no public ip:port" }];
    const c = controller({ "runpod-pod": pod });
    await waiting();
    await c.tick();
    await settle();
    await c.tick();
    const [worker] = await live();
    expect(worker?.state).toBe("provisioning");
    // what RunPod said is on the record (aiorch status shows it)
    expect(worker?.detail).toBe("runpod-pod: status=RUNNING; 8000/tcp has no public ip:port");
    clock += 61_000;
    await c.tick();
    await settle();
    expect(pod.terminated).toEqual([`i-${worker!.id}`]);
    const failed = (await decisions()).find((d) => d.action === "fail");
    expect(failed?.reason).toMatch(/reports the instance running but gives no address .*failing over/);
    await c.stop();
  });

  it("a booting worker's record follows what its provider says", async () => {
    const pod = new ScriptedAdapter("runpod-pod");
    pod.says = [
      { status: "provisioning", detail: "status=PROVISIONING" },
      { status: "booting", detail: "status=STARTING" },
      { status: "booting", detail: "status=STARTING; pulling image" },
    ];
    const c = controller({ "runpod-pod": pod });
    await waiting();
    await c.tick();
    await settle();
    const details: (string | undefined)[] = [];
    for (let i = 0; i < 3; i++) {
      await c.tick();
      details.push((await live())[0]?.detail);
    }
    expect(details).toEqual([
      "runpod-pod: status=PROVISIONING",
      "runpod-pod: status=STARTING",
      "runpod-pod: status=STARTING; pulling image",
    ]);
    await c.stop();
  });
});

describe("explainOfferChoice", () => {
  it("names the offer chosen, its memory and price, the cheaper ones that failed, and the skipped ones with why", () => {
    const chosen = {
      provider: "vastai",
      gpu: "A100_80GB",
      usdPerHour: 1.1,
      offerId: "9",
      gpuMemoryGb: 80,
    } as const;
    const text = explainOfferChoice(chosen, 1, [
      {
        provider: "vastai",
        offerId: "7",
        gpuName: "A100 SXM4",
        gpuMemoryGb: 40,
        usdPerHour: 0.6,
        reason: "40 GB per GPU, A100_80GB has 80 GB",
      },
      {
        provider: "vastai",
        offerId: "6",
        gpuName: "A100 SXM4",
        usdPerHour: 0.5,
        reason: "no direct ports",
      },
    ]);
    expect(text).toBe(
      "chose vastai 9, A100_80GB, 80 GB/GPU, $1.1/h (cheapest that could be created); 1 cheaper offer(s) failed first; " +
        "skipped vastai 7, A100 SXM4, 40 GB/GPU, $0.6/h: 40 GB per GPU, A100_80GB has 80 GB; vastai 6, A100 SXM4, $0.5/h: no direct ports",
    );
  });
});
