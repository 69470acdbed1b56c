/**
 * The controller loop against the in-memory provider (no HTTP) and a virtual clock: scale from zero on queue
 * demand, failover to the next offer on a capacity error, scale to zero after the keep-alive, and crash safety —
 * the intent record is written before the create, and a create the controller died in is adopted by the next
 * controller, never made twice, while an instance nobody owns is terminated. Real Redis (as the other suites).
 */
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Controller, type ScaleDecisionEntry } from "../../controller/controller";
import { ControllerMetrics } from "../../controller/metrics";
import { UNRECORDED_MODEL } from "../../controller/reconciler";
import { REDIS_LOSS_HOLD_MS } from "../../controller/redis-loss";
import { type WorkerRecord, WorkerRegistry } from "../../controller/registry";
import { openBackup, sealBackup } from "../../core/backup";
import { exportBackup, restoreBackup } from "../../core/backup-redis";
import { loadStackConfig, parseStackFile, type RuntimeConfig, renderRuntimeConfig } from "../../core/config";
import { fromMicroUsd, inflightMember, ledgerMonth } from "../../core/protocol";
import { type RedisKeys, redisKeys } from "../../core/redis-keys";
import { markStateLost } from "../../core/stack-epoch";
import { createWorkerCertificate, type WorkerCertificate } from "../../core/x509";
import { type FakeCall, fakeProviderError, InMemoryProvider } from "../fakes/in-memory-provider";

const redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
/** The virtual clock the controller and the fake provider share. */
let clock: number;
const now = () => clock;
let keys: RedisKeys;
let config: RuntimeConfig;
let provider: InMemoryProvider;
let metrics: ControllerMetrics;
let logs: string[];
let certificate: WorkerCertificate;
let onCall: ((call: FakeCall, workerId?: string) => Promise<void>) | undefined;

function stack(prefix: string, idleTimeoutSeconds: number | "auto"): RuntimeConfig {
  const yaml = `config:
  ai-orchestrator:cluster: { mode: existing }
  ai-orchestrator:dataClass: public
  ai-orchestrator:providers: { vastai: {} }
  ai-orchestrator:models: [{ name: m, kind: chat, source: o/m, gpu: [RTX_3090], providers: [vastai], maxWorkers: 2, targetConcurrency: 1, idleTimeoutSeconds: ${idleTimeoutSeconds} }]
  ai-orchestrator:gateway: { host: ai.example.com }
  ai-orchestrator:redis: { keyPrefix: "${prefix}" }
`;
  return renderRuntimeConfig(loadStackConfig(parseStackFile(yaml, "loop.yaml")), "loop");
}

const controller = (holder?: string) =>
  new Controller({
    config,
    redis,
    adapters: { vastai: provider },
    metrics,
    log: (line) => logs.push(line),
    now,
    tickMs: 1_000,
    probe: async () => true,
    issueCertificate: () => certificate,
    ...(holder ? { holder } : {}),
    keepAliveDrawSeed: 1, // the randomized break-even draws the same in every run
  });

const live = () => new WorkerRegistry(redis, keys, () => 0).live();
const decisions = async (): Promise<ScaleDecisionEntry[]> =>
  (await redis.lrange(keys.scaleDecisions, 0, -1)).map((line) => JSON.parse(line) as ScaleDecisionEntry);
/** Provisioning runs in the background after the tick that decided it: wait (in real time) for its end. */
const until = async (what: string, check: () => Promise<boolean> | boolean, timeoutMs = 3_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}\n${logs.slice(-10).join("\n")}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
};
const workerIn = async (state: WorkerRecord["state"]) => (await live()).find((w) => w.state === state);
const waitingRequest = (id = "r1") => redis.zadd(keys.waiting("m"), clock + 60_000, id);

/** One request waiting, ticks until its worker serves; the ready worker. */
async function readyWorker(c: Controller): Promise<WorkerRecord> {
  await waitingRequest();
  await c.tick();
  await until("the create recorded", async () => (await workerIn("provisioning")) !== undefined);
  clock += 12_001; // the fake's walk: 2 s provisioning + 10 s booting
  await c.tick();
  const ready = await workerIn("ready");
  expect(ready).toBeDefined();
  return ready!;
}

beforeAll(() => {
  certificate = createWorkerCertificate("wloop");
});
afterAll(() => redis.disconnect());
beforeEach(() => {
  clock = Date.UTC(2026, 0, 15, 12);
  keys = redisKeys(`loop${randomBytes(4).toString("hex")}:`);
  config = stack(keys.prefix, 30);
  logs = [];
  onCall = undefined;
  metrics = new ControllerMetrics({ defaultMetrics: false });
  provider = new InMemoryProvider({
    now,
    offers: [
      { provider: "vastai", gpu: "RTX_3090", usdPerHour: 0.2, offerId: "o1" },
      { provider: "vastai", gpu: "RTX_3090", usdPerHour: 0.3, offerId: "o2" },
    ],
    onCall: async (call, spec) => onCall?.(call, spec?.workerId),
  });
});
afterEach(async () => {
  const found = await redis.keys(`${keys.prefix}*`);
  if (found.length > 0) await redis.del(...found);
});

describe("controller loop on the in-memory provider", () => {
  it("scales from zero on queue demand: intent, create on the cheapest offer, boot, route", async () => {
    const c = controller();
    await waitingRequest();
    await c.tick();
    await until("the create recorded", async () => (await workerIn("provisioning")) !== undefined);
    expect(provider.provisions.map((p) => p.offer.offerId)).toEqual(["o1"]);
    const spec = provider.provisions[0]!.spec;
    expect(spec.ownerLabel).toBe(config.ownerLabel);
    expect(spec.tls).toBeDefined(); // a worker outside the cluster serves TLS with the pinned certificate
    expect(await redis.hlen(keys.routes("m"))).toBe(0);

    clock += 5_000; // booting at the provider: not routed yet
    await c.tick();
    expect((await live())[0]?.state).toBe("booting");
    expect(await redis.hlen(keys.routes("m"))).toBe(0);

    clock += 7_001;
    await c.tick();
    const [worker] = await live();
    expect(worker?.state).toBe("ready");
    expect(await redis.hkeys(keys.routes("m"))).toEqual([worker!.id]);
    expect((await decisions()).map((d) => d.action).reverse()).toEqual(["provision", "offer"]);
    expect(provider.provisions).toHaveLength(1); // the loading worker counted as capacity on every tick
  });

  it("fails over to the next offer when the cheapest has no capacity", async () => {
    provider.failOffer("o1", fakeProviderError("capacity", "provision", "no machine left for this ask"));
    const c = controller();
    await waitingRequest();
    await c.tick();
    await until("the create recorded", async () => (await workerIn("provisioning")) !== undefined);
    const worker = (await workerIn("provisioning"))!;
    expect(provider.provisions.map((p) => p.offer.offerId)).toEqual(["o1", "o2"]);
    expect(worker.usdPerHour).toBe(0.3);
    expect(provider.live()).toHaveLength(1);
    const offer = (await decisions()).find((d) => d.action === "offer");
    expect(offer?.reason).toContain("1 cheaper offer(s) failed first");
    const errors = (await metrics.providerErrors.get()).values;
    expect(errors.find((v) => v.labels.kind === "capacity")?.value).toBe(1);
  });

  it("scales to zero once a worker idles past its keep-alive, and not before", async () => {
    const c = controller();
    const worker = await readyWorker(c);
    await redis.zadd(keys.inflight("m"), clock + 60_000, inflightMember(worker.id, "gw1", 1));
    await redis.zrem(keys.waiting("m"), "r1");
    clock += 10_000;
    await c.tick(); // busy: stays
    await redis.del(keys.inflight("m"));
    clock += 29_000;
    await c.tick(); // idle 29 s < keep-alive 30 s
    expect((await live()).map((w) => w.state)).toEqual(["ready"]);

    clock += 2_000;
    await c.tick(); // idle 31 s: drained, no longer routed
    expect((await live()).map((w) => w.state)).toEqual(["draining"]);
    expect(await redis.hlen(keys.routes("m"))).toBe(0);
    clock += 1_000;
    await c.tick(); // nothing in flight: terminated, once the provider confirms
    expect(await live()).toEqual([]);
    expect(provider.live()).toEqual([]);
    expect(provider.callsOf("terminate").map((call) => call.providerId)).toEqual([worker.providerId]);
    expect((await decisions()).some((d) => d.action === "drain")).toBe(true);
  });

  it("pre-warms a model whose idle gaps cluster: with a cron's gaps learnt, a worker starts before the request", async () => {
    config = stack(keys.prefix, "auto");
    const c = controller();
    const provisioned = () => provider.callsOf("provision").length;
    // a request every 20 minutes: demand, served once a worker is ready, then an idle spell of 20 minutes
    for (let i = 0; i < 21; i++) {
      const created = provisioned();
      await waitingRequest(`r${i}`);
      await c.tick();
      const kept = (await live()).some((w) => w.state === "ready"); // the last one, if its keep-alive held it
      // otherwise the create runs beside the tick: wait for it, then for the boot (13 s here) to be seen
      if (!kept) await until("the create called", () => provisioned() > created);
      clock += 13_000;
      await until("a worker ready", async () => {
        await c.tick();
        return (await live()).some((w) => w.state === "ready");
      });
      await redis.del(keys.waiting("m"));
      clock += 1_000;
      await c.tick(); // nothing waits or runs: the idle spell begins
      if (i < 20) clock += 1_200_000;
    }
    const choice = (await decisions()).find((d) => d.reason.includes("into an idle spell"));
    expect(choice?.reason ?? logs.join("\n")).toMatch(
      /let go at once, start one \d+(\.\d)?s into an idle spell/,
    );
    const start = Number(/start one (\d+(?:\.\d)?)s into/.exec(choice!.reason)![1]);
    expect(start).toBeGreaterThan(600);
    expect(start).toBeLessThan(1_200);
    const before = provisioned();
    clock += (start - 5) * 1_000;
    await c.tick(); // not yet: nothing waits, and the window has not opened
    expect(provisioned()).toBe(before);
    clock += 6_000;
    await c.tick(); // the window opens: one worker starts with no request waiting
    await until("the pre-warm created", () => provisioned() === before + 1);
    expect(await redis.zcard(keys.waiting("m"))).toBe(0);
  });

  it("writes the intent before the create, and a create the controller died in is adopted, never repeated", async () => {
    const atCreate: Record<string, string>[] = [];
    onCall = async (call, workerId) => {
      if (call.operation === "provision") atCreate.push(await redis.hgetall(keys.worker(workerId!)));
    };
    provider.hangNextProvision(); // the instance is made; the answer never comes back (the controller dies)
    const first = controller("first");
    await waitingRequest();
    await first.tick();
    await until("the create called", () => provider.provisions.length === 1);
    expect(atCreate[0]?.state).toBe("requested"); // the intent record existed before the provider was asked
    expect(atCreate[0]?.tlsFingerprint256).toBe(certificate.fingerprint256);
    expect(provider.live()).toHaveLength(1);
    const [intent] = await live();
    expect(intent?.providerId).toBeUndefined();

    await redis.del(keys.leaderLock); // the dead controller's lock runs out
    const next = controller("next");
    clock += 1_000;
    await next.tick(); // reconciles on its first tick: the instance carries the intent's worker id
    const adopted = await live();
    expect(adopted).toHaveLength(1);
    expect(adopted[0]).toMatchObject({ id: intent!.id, providerId: provider.live()[0]!.providerId });
    expect(adopted[0]!.state).not.toBe("requested");
    expect((await decisions()).find((d) => d.action === "adopt")?.worker).toBe(intent!.id);
    clock += 12_000;
    await next.tick();
    expect((await workerIn("ready"))?.id).toBe(intent!.id);
    expect(provider.provisions).toHaveLength(1); // never a second create for the same demand
  });

  it("terminates instances with the owner label that no live worker owns, and leaves other stacks' alone", async () => {
    const orphan = provider.seedInstance({ workerId: "wghost", ownerLabel: config.ownerLabel });
    const foreign = provider.seedInstance({ workerId: "wother", ownerLabel: "another-stack" });
    const c = controller();
    await c.tick();
    expect(provider.callsOf("terminate").map((call) => call.providerId)).toEqual([orphan.providerId]);
    expect(provider.live().map((i) => i.providerId)).toEqual([foreign.providerId]);
    expect((await metrics.orphans.get()).values.find((v) => v.labels.provider === "vastai")?.value).toBe(1);
    expect((await decisions()).find((d) => d.action === "orphan")?.worker).toBe("wghost");
  });
});

describe("after a restore from backup (issue 25)", () => {
  it("marks the stack's state lost when its fencing token goes back (gateways then answer 503), and clears it on letting go", async () => {
    await redis.set(keys.leaderFence, "5"); // elections before this controller's
    const c = controller();
    await c.tick();
    expect(await redis.exists(keys.stateLost)).toBe(0);
    await redis.del(...(await redis.keys(`${keys.prefix}*`))); // FLUSHALL
    clock += 1_000;
    await c.tick();
    expect(logs.join("\n")).toMatch(/Redis lost the stack's state/);
    expect(JSON.parse((await redis.get(keys.stateLost)) ?? "{}")).toMatchObject({
      by: "controller",
      sinceMs: clock,
    });
    clock += REDIS_LOSS_HOLD_MS;
    await c.tick(); // no restore came: the controller goes on, and so do the gateways, on a new epoch
    expect(await redis.exists(keys.stateLost)).toBe(0);
    expect(await redis.get(keys.stackEpoch)).toMatch(/^epoch_/);
  });

  const workerUsd = async (id: string) =>
    fromMicroUsd(Number((await redis.hget(keys.spendMonth(ledgerMonth(clock)), `worker:${id}`)) ?? 0));

  it("a controller elected once (its token does not go back) holds while a gateway has marked the state lost", async () => {
    const c = controller();
    await c.tick(); // fence 1
    await redis.del(...(await redis.keys(`${keys.prefix}*`))); // FLUSHALL: the next election gets 1 again
    await markStateLost(redis, keys, { epoch: "epoch_x", sinceMs: clock, by: "gateway" });
    await waitingRequest();
    clock += 1_000;
    await c.tick();
    clock += 1_000;
    await c.tick();
    expect(provider.provisions).toHaveLength(0); // demand, but no worker started on an empty registry
    expect(logs.join("\n")).toMatch(/Redis lost the stack's state \(it is marked lost/);
    await redis.del(keys.stateLost); // what a restore does
    clock += 1_000;
    await c.tick();
    expect(logs.join("\n")).toMatch(/Redis was restored/);
    await until("the create", () => provider.provisions.length === 1);
  });

  it("books and terminates an instance created after the backup, and brings the restored worker's spend forward", async () => {
    config = stack(keys.prefix, 600); // no scale-down while the test's clock runs
    const c = controller();
    const a = await readyWorker(c);
    const content = await exportBackup(redis, { prefix: keys.prefix, stack: "loop", nowMs: clock });

    // after the backup: more demand, a second worker the backup does not know
    await waitingRequest("r2");
    await c.tick();
    await until("the second create recorded", async () =>
      (await live()).some((w) => w.id !== a.id && w.state === "provisioning"),
    );
    clock += 12_001;
    await c.tick();
    const b = (await live()).find((w) => w.id !== a.id)!;
    expect(b.state).toBe("ready");
    const instanceB = provider.live().find((i) => i.workerId === b.id)!;
    clock += 40_000;
    await c.tick(); // both booked up to here
    const bookedAtMs = clock;
    const aBooked = await workerUsd(a.id);

    // Redis loses the stack's state; the backup is restored into it; a controller starts on it
    const all = await redis.keys(`${keys.prefix}*`);
    await redis.del(...all);
    const { header, content: opened } = openBackup(sealBackup(content, "b-loop", undefined), undefined);
    await restoreBackup(redis, header, opened, {
      prefix: keys.prefix,
      force: false,
      actor: "t",
      nowMs: clock,
    });
    clock += 20_000;
    const next = controller("after-restore");
    await next.tick();

    // the instance the restored registry has no record of: recorded, booked from its creation, terminated
    expect(instanceB.endedAtMs).toBe(clock);
    const recordB = await new WorkerRegistry(redis, keys, now).get(b.id);
    expect(recordB).toMatchObject({ state: "terminated", model: UNRECORDED_MODEL, providerId: b.providerId });
    const fakeBillB = ((instanceB.endedAtMs! - instanceB.createdAtMs) / 3_600_000) * instanceB.usdPerHour;
    const oneTickUsd = instanceB.usdPerHour / 3600; // the 1 s tick at its price
    expect(Math.abs((await workerUsd(b.id)) - fakeBillB)).toBeLessThanOrEqual(oneTickUsd);
    expect((await decisions()).find((d) => d.action === "orphan")?.worker).toBe(b.id);

    // the worker the backup knew serves on, no second create; its spend is brought forward to now
    expect(provider.live().map((i) => i.workerId)).toEqual([a.id]);
    expect(provider.provisions).toHaveLength(2);
    expect((await live()).map((w) => [w.id, w.state])).toEqual([[a.id, "ready"]]);
    const aExpected = aBooked + ((clock - bookedAtMs) / 3_600_000) * a.usdPerHour;
    expect(Math.abs((await workerUsd(a.id)) - aExpected)).toBeLessThanOrEqual(a.usdPerHour / 3600);
  });
});
