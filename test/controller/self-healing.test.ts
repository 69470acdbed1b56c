/**
 * Self-healing in the controller loop (in-memory provider, virtual clock, real Redis): a worker slow to boot is
 * replaced — drained, journaled, audited, counted — and with a guard rail of one action an hour the next slow
 * worker is left alone, with the guard rail named in the decision list.
 */
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import { Controller, type ControllerDeps, type ScaleDecisionEntry } from "../../controller/controller";
import { ControllerJournal } from "../../controller/journal";
import { ControllerMetrics } from "../../controller/metrics";
import { WorkerRegistry } from "../../controller/registry";
import { AuditTrail } from "../../core/audit-trail";
import { loadStackConfig, parseStackFile, type RuntimeConfig, renderRuntimeConfig } from "../../core/config";
import { type RedisKeys, redisKeys } from "../../core/redis-keys";
import { createWorkerCertificate } from "../../core/x509";
import { fakeProviderError, InMemoryProvider } from "../fakes/in-memory-provider";

const redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
let clock: number;
const now = () => clock;
let keys: RedisKeys;
let provider: InMemoryProvider;
let logs: string[];
const certificate = createWorkerCertificate("wheal");

function stack(prefix: string, selfHealing: string, providers = ["vastai"]): RuntimeConfig {
  const yaml = `config:
  ai-orchestrator:cluster: { mode: existing }
  ai-orchestrator:dataClass: public
  ai-orchestrator:providers: { ${providers.map((p) => `${p}: {}`).join(", ")} }
  ai-orchestrator:models: [{ name: m, kind: chat, source: o/m, gpu: [${providers.includes("datacrunch") ? "RTX_3090, L40S" : "RTX_3090"}], providers: [${providers.join(", ")}], maxWorkers: 2, targetConcurrency: 1, idleTimeoutSeconds: 30 }]
  ai-orchestrator:gateway: { host: ai.example.com }
  ai-orchestrator:redis: { keyPrefix: "${prefix}" }
  ai-orchestrator:selfHealing: ${selfHealing}
`;
  return renderRuntimeConfig(loadStackConfig(parseStackFile(yaml, "heal.yaml")), "heal");
}

const controller = (config: RuntimeConfig, adapters: ControllerDeps["adapters"] = { vastai: provider }) =>
  new Controller({
    config,
    redis,
    adapters,
    metrics: new ControllerMetrics({ defaultMetrics: false }),
    log: (line) => logs.push(line),
    now,
    tickMs: 1_000,
    probe: async () => true,
    issueCertificate: () => certificate,
  });

const live = () => new WorkerRegistry(redis, keys, () => 0).live();
const decisions = async (): Promise<ScaleDecisionEntry[]> =>
  (await redis.lrange(keys.scaleDecisions, 0, -1)).map((line) => JSON.parse(line) as ScaleDecisionEntry);
const until = async (what: string, check: () => Promise<boolean>, timeoutMs = 3_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}\n${logs.slice(-10).join("\n")}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
};
/** Tick until the background create of a new worker is recorded; that worker's id. */
async function createdWorker(c: Controller, known: readonly string[]): Promise<string> {
  await c.tick();
  let id = "";
  await until("a new worker created", async () => {
    const fresh = (await live()).find((w) => !known.includes(w.id) && w.state === "provisioning");
    id = fresh?.id ?? "";
    return fresh !== undefined;
  });
  return id;
}
// the catalog's p50 cold start at Vast.ai is 240 s, so a boot is slow after 3 × 240 s = 12 minutes
const SLOW = 13 * 60_000;

afterAll(() => redis.disconnect());
beforeEach(async () => {
  clock = Date.UTC(2026, 0, 15, 12);
  keys = redisKeys(`heal${randomBytes(4).toString("hex")}:`);
  logs = [];
  provider = new InMemoryProvider({
    now,
    offers: [{ provider: "vastai", gpu: "RTX_3090", usdPerHour: 0.2, offerId: "o1" }],
    // boots that never end within the test: every worker stays loading
    walk: { provisioningMs: 1_000, bootingMs: 10 * 3_600_000 },
  });
  await redis.zadd(keys.waiting("m"), clock + 10 * 3_600_000, "r1");
});
afterEach(async () => {
  const found = await redis.keys(`${keys.prefix}*`);
  if (found.length > 0) await redis.del(...found);
});

describe("self-healing in the controller loop", () => {
  it("replaces one slow worker, then the hourly guard rail holds the second back", async () => {
    const c = controller(stack(keys.prefix, "{ enabled: true, maxActionsPerHour: 1 }"));
    const first = await createdWorker(c, []);
    clock += SLOW;
    await c.tick();
    const drained = (await live()).find((w) => w.id === first);
    expect(drained?.state).toBe("draining");
    expect(drained?.detail).toContain("self-healing");

    const second = await createdWorker(c, [first]); // the policy starts the replacement for the waiting request
    clock += SLOW;
    await c.tick();
    await c.tick();
    expect((await live()).find((w) => w.id === second)?.state).toBe("booting");

    const entries = await decisions();
    const replaced = entries.filter((d) => d.action === "drain" && d.worker === first);
    expect(replaced).toHaveLength(1);
    expect(replaced[0]!.reason).toMatch(/self-healing: m on vastai still (provisioning|booting) after \d+ s/);
    const held = entries.filter((d) => d.action === "self-heal-held");
    expect(held).toEqual([
      expect.objectContaining({
        model: "m",
        worker: second,
        reason: expect.stringContaining("guard rail of 1 self-healing action(s) per hour is used up"),
      }),
    ]);
    const audit = (await new AuditTrail(redis, keys).list()).filter((e) => e.action === "worker.replaced");
    expect(audit.map((e) => [e.target, e.actor.startsWith("controller:")])).toEqual([[first, true]]);
    expect(await redis.llen(keys.selfHealingActions)).toBe(1);
  });

  it("fails over from a provider erroring repeatedly: the next worker starts at the model's other provider", async () => {
    const verda = new InMemoryProvider({
      id: "datacrunch",
      now,
      offers: [{ provider: "datacrunch", gpu: "L40S", usdPerHour: 0.9, offerId: "d1" }],
    });
    const c = controller(stack(keys.prefix, "{ enabled: true }", ["vastai", "datacrunch"]), {
      vastai: provider,
      datacrunch: verda,
    });
    const journal = new ControllerJournal({
      redis,
      keys,
      metrics: new ControllerMetrics({ defaultMetrics: false }),
      now,
      log: () => undefined,
      actor: "controller:test",
    });
    for (const what of ["offers for m", "provision w1", "provision w2"])
      journal.providerError("vastai", fakeProviderError("transient", "provision"), what);
    await until("three errors recorded", async () => (await redis.llen(keys.providerErrors)) === 3);
    await c.tick();
    let started = "";
    await until("a worker created", async () => {
      started = (await live()).find((w) => w.state === "provisioning")?.provider ?? "";
      return started !== "";
    });
    // vastai is cheaper, so only the fail-over sends the worker to datacrunch
    expect(started).toBe("datacrunch");
    expect(provider.provisions).toEqual([]);
    const entries = await decisions();
    expect(entries.filter((d) => d.action === "self-heal")).toEqual([
      expect.objectContaining({
        model: "m",
        reason: expect.stringContaining("no new workers there for 15 minutes"),
      }),
    ]);
    await until("the audit entry", async () =>
      (await new AuditTrail(redis, keys).list()).some(
        (e) => e.action === "provider.failed-over" && e.target === "vastai",
      ),
    );
  });

  it("off by default: a slow worker is left to boot", async () => {
    const c = controller(stack(keys.prefix, "{}"));
    const first = await createdWorker(c, []);
    clock += SLOW;
    await c.tick();
    expect((await live()).find((w) => w.id === first)?.state).toBe("booting");
    expect(await redis.exists(keys.selfHealingActions)).toBe(0);
  });
});
