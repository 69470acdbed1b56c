/**
 * Controller benchmark (issue 6): scale-from-zero reaction (demand signal → provider create call), one decision
 * tick for 100 models × 20 workers, and the loop's memory over an hour of simulated churn.
 *
 *   npm run bench:controller -- [--json] [--quick] [--help]
 *
 * Uses the real Redis (REDIS_URL, default 127.0.0.1:6379) under a throw-away key prefix and an in-process
 * provider that answers at once, so what is measured is the controller, not a provider.
 */
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { Controller } from "../controller/controller";
import { ControllerMetrics } from "../controller/metrics";
import { decideScale, type WorkerView } from "../controller/policy";
import type { InstanceInfo, OfferSearch, ProviderAdapter, WorkerSpec } from "../controller/providers/types";
import type { RuntimeConfig } from "../core/config";
import { redisKeys } from "../core/redis-keys";
import { renderTable } from "../core/table";
import { deleteKeysByPrefix } from "../devkit/redis";
import { runtimeConfigOf, stackYaml } from "../devkit/stack-yaml";
import { benchArgs } from "./args";

const USAGE = `Controller benchmark: scale-from-zero reaction (demand signal → provider create call), one decision tick
for 100 models × 20 workers, and the loop's memory over an hour of simulated churn. Uses the real Redis (REDIS_URL,
default redis://127.0.0.1:6379) under a throw-away key prefix and an in-process provider that answers at once.

usage: npm run bench:controller -- [options]
       node --expose-gc -r tsx/cjs bench/controller.ts [options]

  --json      print the figures as one JSON object
  --quick     fewer rounds and a tenth of the churn (seconds)
  -h, --help  this text
`;

const { json, quick } = benchArgs("bench:controller", USAGE, {
  json: { type: "boolean", default: false },
  quick: { type: "boolean", default: false },
});
const progress = (line: string) => {
  if (!json) process.stderr.write(`${line}\n`);
};

/** A provider that creates instantly and records when each create was issued. */
class InstantProvider implements ProviderAdapter {
  readonly id = "vastai" as const;
  readonly created: { workerId: string; atNs: bigint }[] = [];
  private readonly instances = new Map<string, InstanceInfo>();
  private next = 1;

  async offers(): Promise<OfferSearch> {
    return { offers: [{ provider: "vastai", gpu: "RTX_3090", usdPerHour: 0.2, offerId: "1" }], skipped: [] };
  }
  async provision(spec: WorkerSpec): Promise<InstanceInfo> {
    this.created.push({ workerId: spec.workerId, atNs: process.hrtime.bigint() });
    const info: InstanceInfo = {
      providerId: String(this.next++),
      workerId: spec.workerId,
      ownerLabel: spec.ownerLabel,
      status: "running",
      baseUrl: "http://127.0.0.1:9",
      usdPerHour: 0.2,
    };
    this.instances.set(info.providerId, info);
    return info;
  }
  async describe(providerId: string): Promise<InstanceInfo | undefined> {
    return this.instances.get(providerId);
  }
  async listOwned(): Promise<InstanceInfo[]> {
    return [...this.instances.values()];
  }
  async terminate(providerId: string): Promise<void> {
    this.instances.delete(providerId);
  }
}

function stackConfig(prefix: string, models: number, maxWorkers: number): RuntimeConfig {
  const list = Array.from(
    { length: models },
    (_, i) =>
      `{ name: m${i}, kind: chat, source: o/m${i}, gpu: [RTX_3090], providers: [vastai], maxWorkers: ${maxWorkers}, targetConcurrency: 1, idleTimeoutSeconds: 5 }`,
  );
  // no budget: the controller is measured, not a spending cap
  const yaml = stackYaml({ budget: "", models: `[${list.join(", ")}]`, redis: `{ keyPrefix: "${prefix}" }` });
  return runtimeConfigOf(yaml, "bench");
}

const percentile = (sorted: number[], q: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
const rssMb = () => Math.round((process.memoryUsage().rss / 1024 / 1024) * 10) / 10;
const heapMb = () => Math.round((process.memoryUsage().heapUsed / 1024 / 1024) * 10) / 10;

/** Demand signal → create call, measured per model at zero, the way the gateway signals. */
async function reaction(redis: Redis, rounds: number, models: number): Promise<number[]> {
  const samples: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const prefix = `benchc${randomBytes(3).toString("hex")}:`;
    const keys = redisKeys(prefix);
    const provider = new InstantProvider();
    const controller = new Controller({
      config: stackConfig(prefix, models, 1),
      redis,
      adapters: { vastai: provider },
      metrics: new ControllerMetrics({ defaultMetrics: false }),
      log: () => undefined,
      probe: async () => true,
      tickMs: 1_000,
    });
    await controller.start();
    await new Promise((r) => setTimeout(r, 50)); // leader elected, subscribed
    for (let m = 0; m < models; m++) {
      const model = `m${m}`;
      const sent = process.hrtime.bigint();
      await redis.zadd(keys.waiting(model), Date.now() + 60_000, `r${m}`);
      await redis.publish(
        keys.demandChannel,
        JSON.stringify({ model, requestId: `r${m}`, deadlineMs: Date.now() + 60_000 }),
      );
      const deadline = Date.now() + 2_000;
      while (!provider.created.some((c) => c.atNs >= sent) && Date.now() < deadline)
        await new Promise((r) => setImmediate(r));
      const created = provider.created.find((c) => c.atNs >= sent);
      if (created) samples.push(Number(created.atNs - sent) / 1e6);
      await new Promise((r) => setTimeout(r, 5));
    }
    await controller.stop();
    await deleteKeysByPrefix(redis, prefix, 1000);
    progress(`reaction: round ${round + 1}/${rounds}`);
  }
  return samples.sort((a, b) => a - b);
}

/** One decision round of the pure policy over 100 models × 20 workers. */
function decisionTick(models: number, workersPerModel: number, iterations: number): number {
  const now = Date.now();
  const inputs = Array.from({ length: models }, (_, m) => ({
    nowMs: now,
    model: { name: `m${m}`, minWorkers: 0, maxWorkers: workersPerModel, targetConcurrency: 4 },
    waiting: m % 3,
    workers: Array.from(
      { length: workersPerModel },
      (_, w): WorkerView => ({
        id: `m${m}w${w}`,
        provider: "vastai",
        phase: w % 5 === 0 ? "booting" : "ready",
        inFlight: (w * 7 + m) % 5,
        createdAtMs: now - 600_000,
        readyAtMs: now - 500_000,
        lastActiveAtMs: now - ((w * 13) % 120) * 1000,
        usdPerHour: 0.2 + (w % 4) * 0.1,
      }),
    ),
    keepAliveSeconds: 60,
    budgetExhausted: false,
  }));
  for (const input of inputs) decideScale(input); // warm-up
  const started = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) for (const input of inputs) decideScale(input);
  return Number(process.hrtime.bigint() - started) / 1e6 / iterations;
}

/** An hour of virtual time: demand comes and goes, workers start and stop; memory before and after. */
async function churn(
  redis: Redis,
  ticks: number,
): Promise<{ start: number; end: number; heapStart: number; heapEnd: number; provisions: number }> {
  const prefix = `benchc${randomBytes(3).toString("hex")}:`;
  const keys = redisKeys(prefix);
  let clock = Date.now();
  const provider = new InstantProvider();
  const controller = new Controller({
    config: stackConfig(prefix, 10, 4),
    redis,
    adapters: { vastai: provider },
    metrics: new ControllerMetrics({ defaultMetrics: false }),
    log: () => undefined,
    probe: async () => true,
    now: () => clock,
    reconcileMs: 60_000,
  });
  const warm = Math.min(300, Math.floor(ticks / 10));
  let start = 0;
  let heapStart = 0;
  for (let t = 0; t < ticks; t++) {
    if (t === warm) {
      global.gc?.();
      start = rssMb();
      heapStart = heapMb();
    }
    clock += 1_000;
    // every 30 s a burst of 4 requests for the next model: it scales up, the requests are done within 10 s,
    // its workers idle past their 5 s keep-alive and go — workers start and stop all hour long
    if (t % 30 === 0) {
      const model = `m${(t / 30) % 10}`;
      for (let r = 0; r < 4; r++) await redis.zadd(keys.waiting(model), clock + 10_000, `r${t}-${r}`);
    }
    await controller.tick();
    if (t % 600 === 0)
      progress(`churn: ${Math.round((100 * t) / ticks)}% (${provider.created.length} workers started)`);
  }
  global.gc?.();
  const end = rssMb();
  const heapEnd = heapMb();
  await controller.stop();
  await deleteKeysByPrefix(redis, prefix, 1000);
  return { start, end, heapStart, heapEnd, provisions: provider.created.length };
}

async function main(): Promise<void> {
  const redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
  try {
    const models = 100;
    const workers = 20;
    progress("decision tick: 100 models × 20 workers …");
    const tickMs = decisionTick(models, workers, quick ? 20 : 200);
    const samples = await reaction(redis, quick ? 2 : 10, 20);
    const memory = await churn(redis, quick ? 600 : 3_600);
    const result = {
      reactionP50Ms: Math.round(percentile(samples, 0.5) * 100) / 100,
      reactionP99Ms: Math.round(percentile(samples, 0.99) * 100) / 100,
      reactionSamples: samples.length,
      tickMs: Math.round(tickMs * 1000) / 1000,
      models,
      workers: models * workers,
      rssStartMb: memory.start,
      rssEndMb: memory.end,
      heapStartMb: memory.heapStart,
      heapEndMb: memory.heapEnd,
      churnWorkersStarted: memory.provisions,
    };
    if (json) {
      process.stdout.write(`${JSON.stringify(result)}\n`);
      return;
    }
    const verdict = (ok: boolean) => (ok ? "PASS" : "MISS");
    process.stdout.write(
      `${renderTable(
        ["measure", "value", "target", ""],
        [
          ["scale-from-zero reaction p50", `${result.reactionP50Ms} ms`, "", ""],
          [
            "scale-from-zero reaction p99",
            `${result.reactionP99Ms} ms`,
            "≤ 50 ms (KEDA polls every 30 s)",
            verdict(result.reactionP99Ms <= 50),
          ],
          [
            "decision tick, 100 models × 20 workers",
            `${result.tickMs} ms`,
            "≤ 5 ms",
            verdict(result.tickMs <= 5),
          ],
          // RSS moves with the allocator and Redis buffers; the JS heap after GC is what a leak would grow.
          ["RSS over an hour of churn", `${result.rssStartMb} → ${result.rssEndMb} MB`, "", ""],
          [
            "JS heap after GC, same hour",
            `${result.heapStartMb} → ${result.heapEndMb} MB`,
            "flat",
            verdict(result.heapEndMb - result.heapStartMb < 5),
          ],
        ],
      )}\n`,
    );
  } finally {
    redis.disconnect();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench:controller failed: ${(error as Error).stack ?? error}\n`);
  process.exitCode = 1;
});
