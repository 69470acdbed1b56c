/**
 * The request path's cached reads (key records, routes, budget blocks, key spend) are renewed in the background
 * once half their lifetime has passed: a key or model in steady use never waits on Redis for them, and what a
 * request sees is never older than the lifetime. A read that started before a revocation or an announced change is
 * not cached.
 */
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { ApiKeyStore, ApiKeyVerifier } from "../../core/api-keys";
import { encodeRoute, ledgerMonth } from "../../core/protocol";
import { redisKeys } from "../../core/redis-keys";
import { RefreshAhead } from "../../core/refresh-ahead";
import { BackendRegistry } from "../../gateway/routing";
import { SpendView } from "../../gateway/spend";
import { REDIS_URL, testRuntimeConfig } from "./harness";

const prefix = `ra${randomBytes(4).toString("hex")}:`;
const keys = redisKeys(prefix);
const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 2 });

afterAll(async () => {
  const found = await redis.keys(`${prefix}*`);
  if (found.length > 0) await redis.del(...found);
  redis.disconnect();
});

/** Until the background reads under way have come back (one Redis round trip each, then their continuations). */
async function settle(): Promise<void> {
  await redis.ping();
  await new Promise((resolve) => setImmediate(resolve));
}

/** Counts the calls of `name` on `target` (a method of the store or of a Redis connection). */
function counted<T extends object>(target: T, name: keyof T & string): () => number {
  const methods = target as unknown as Record<string, (...args: unknown[]) => unknown>;
  const original = methods[name]!.bind(target);
  let calls = 0;
  methods[name] = (...args: unknown[]) => {
    calls += 1;
    return original(...args);
  };
  return () => calls;
}

describe("RefreshAhead", () => {
  it("runs one read per key at a time and drops a failed one", async () => {
    const refresh = new RefreshAhead<string>();
    let release: () => void = () => undefined;
    let reads = 0;
    const slow = () => {
      reads += 1;
      return new Promise<void>((resolve) => {
        release = resolve;
      });
    };
    refresh.renew("a", slow);
    refresh.renew("a", slow); // under way: not started again
    refresh.renew("b", async () => {
      throw new Error("Redis away");
    });
    expect(reads).toBe(1);
    release();
    await settle();
    refresh.renew("a", slow); // done: the next renewal reads again
    expect(reads).toBe(2);
    release();
    expect(RefreshAhead.due(999, 2_000)).toBe(false);
    expect(RefreshAhead.due(1_000, 2_000)).toBe(true);
  });
});

describe("refresh-ahead of the request path's reads", () => {
  it("a key in use is renewed before it expires; a revocation during a renewal is not undone", async () => {
    let now = 5_000_000;
    const store = new ApiKeyStore(redis, keys);
    const verifier = new ApiKeyVerifier(store, { ttlMs: 5_000, now: () => now });
    const reads = counted(store, "byHash");
    const { key, record } = await store.create({ name: "steady", nowMs: now });
    expect((await verifier.verify(key)).ok).toBe(true);
    now += 2_000; // under half the lifetime: a plain hit
    expect(verifier.verifyCached(key)).toEqual({ ok: true, key: record });
    expect(reads()).toBe(1);
    now += 1_000; // past half: still answered from the cache, and read again behind it
    expect(verifier.verifyCached(key)?.ok).toBe(true);
    expect(reads()).toBe(2);
    await settle();
    now += 3_000; // 6 s after the first read, 3 s after the renewal: no wait
    expect(verifier.verifyCached(key)?.ok).toBe(true);
    now += 6_000; // nothing asked for a whole lifetime: the next request reads Redis itself
    expect(verifier.verifyCached(key)).toBeUndefined();
    expect((await verifier.verify(key)).ok).toBe(true);

    // a renewal under way when the revocation is announced must not put the old record back
    const read = store.byHash.bind(store);
    let open: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    store.byHash = async (hash) => {
      const found = await read(hash); // read before the revocation…
      await gate; // …and back only after it was announced
      return found;
    };
    now += 3_000;
    expect(verifier.verifyCached(key)?.ok).toBe(true); // starts a renewal
    await store.revoke(record.id);
    verifier.invalidate(record.hash);
    open();
    await settle();
    store.byHash = read;
    expect(verifier.verifyCached(key)).toBeUndefined();
    expect(await verifier.verify(key)).toEqual({
      ok: false,
      reason: "This API key has been revoked",
      failure: "revoked",
    });
  });

  it("a model's routes and the budget blocks in use are renewed before they expire", async () => {
    let now = 7_000_000;
    const config = testRuntimeConfig("http://127.0.0.1:9", prefix);
    const conn = new Redis(REDIS_URL, { maxRetriesPerRequest: 2 });
    const registry = new BackendRegistry(conn, keys, config, { refreshMs: 2_000, now: () => now });
    const spend = new SpendView(conn, keys, () => now, 5_000);
    const hgetall = counted(conn, "hgetall");
    const route = {
      workerId: "w1",
      provider: "vastai" as const,
      baseUrl: "http://10.0.0.5:8000/v1",
      auth: { kind: "none" as const },
      capacity: 4,
      usdPerSecond: 0.0001,
    };
    await redis.hset(keys.routes("cold"), "w1", encodeRoute(route));
    await redis.hset(keys.budgetBlocked, "chat", "model budget reached");

    expect((await registry.backends("cold")).map((b) => b.id)).toEqual(["w1"]);
    expect(await spend.budgetBlocks()).toEqual({ chat: "model budget reached" });
    expect(hgetall()).toBe(2);
    now += 1_200; // past half of the 2 s: served, and read again behind
    expect(registry.cachedBackends("cold")?.map((b) => b.id)).toEqual(["w1"]);
    expect(spend.cachedBudgetBlocks()).toEqual({ chat: "model budget reached" });
    expect(hgetall()).toBe(4);
    await redis.hdel(keys.budgetBlocked, "chat"); // lifted; the renewal under way may or may not see it
    await settle();
    now += 1_200; // 2.4 s after the first reads, 1.2 s after the renewals: still no wait
    expect(registry.cachedBackends("cold")?.map((b) => b.id)).toEqual(["w1"]);
    expect(spend.cachedBudgetBlocks()).toBeDefined();
    now += 2_000; // a whole lifetime without a request: expired, the caller reads
    expect(registry.cachedBackends("cold")).toBeUndefined();
    expect(spend.cachedBudgetBlocks()).toBeUndefined();
    expect(await spend.budgetBlocks()).toEqual({});

    // a change announced while a renewal is under way wins: the renewal's answer is not cached
    now += 1_200;
    expect(spend.cachedBudgetBlocks()).toEqual({}); // starts a renewal
    await redis.hset(keys.budgetBlocked, "*", "stack budget reached");
    spend.invalidateBudgetBlocks();
    await settle();
    expect(await spend.budgetBlocks()).toEqual({ "*": "stack budget reached" });
    conn.disconnect();
  });

  it("a key's month-to-date spend is renewed before it expires", async () => {
    let now = Date.UTC(2026, 10, 27, 12);
    const conn = new Redis(REDIS_URL, { maxRetriesPerRequest: 2 });
    const spend = new SpendView(conn, keys, () => now, 5_000);
    const hget = counted(conn, "hget");
    await redis.hset(keys.spendMonth(ledgerMonth(now)), "key:k1", 2_500_000);
    expect(await spend.keySpendUsd("k1")).toBe(2.5);
    await redis.hset(keys.spendMonth(ledgerMonth(now)), "key:k1", 3_000_000);
    now += 3_000;
    expect(await spend.keySpendUsd("k1")).toBe(2.5); // the cached figure, renewed behind
    await settle();
    expect(hget()).toBe(2);
    now += 2_000; // 5 s after the first read: expired but for the renewal
    expect(await spend.keySpendUsd("k1")).toBe(3); // the renewal's figure, without a wait
    expect(hget()).toBe(2);
    conn.disconnect();
  });
});
