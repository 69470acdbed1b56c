/**
 * Rate limits of busy keys: a replica admits from a slice of the shared buckets instead of calling Redis per
 * request; the slices of all replicas come out of the same buckets, so together they never admit more than the
 * limit, and what a replica does not use goes back.
 */
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RedisKeys, redisKeys } from "../../core/redis-keys";
import { RateLimiter } from "../../gateway/limits";
import { REDIS_URL } from "./harness";

let redis: Redis;
let keys: RedisKeys;
const prefix = `t${randomBytes(4).toString("hex")}:`;

beforeAll(() => {
  redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 2 });
  keys = redisKeys(prefix);
});
afterAll(async () => {
  const found = await redis.keys(`${prefix}*`);
  if (found.length > 0) await redis.del(...found);
  redis.disconnect();
});

/** Script calls a limiter makes (each replica gets its own connection, as real replicas do). */
function replica(options: { sliceMs?: number; now?: () => number } = {}): {
  limiter: RateLimiter;
  calls: () => number;
  conn: Redis;
} {
  const conn = new Redis(REDIS_URL, { maxRetriesPerRequest: 2 });
  const limiter = new RateLimiter(conn, keys, options);
  let calls = 0;
  for (const name of ["aiorchAdmitSlice", "aiorchGiveBack"] as const) {
    const target = conn as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
    const original = target[name]!.bind(conn);
    target[name] = (...args: unknown[]) => {
      calls += 1;
      return original(...args);
    };
  }
  return { limiter, calls: () => calls, conn };
}

/** Bucket content now, refilled the way the scripts refill it. */
async function level(keyId: string, kind: "rpm" | "tpm", capacity: number): Promise<number> {
  const [tokens, ts] = await redis.hmget(keys.rateBucket(keyId, kind), "tokens", "ts");
  if (tokens === null || ts === null) return capacity;
  return Math.min(capacity, Number(tokens) + ((Date.now() - Number(ts)) * capacity) / 60_000);
}

describe("slices of a busy key's buckets", () => {
  it("two replicas admitting a hot key never pass the limit together, with few Redis calls", async () => {
    const a = replica();
    const b = replica();
    const limits = { rpm: 2_000, tpm: 100_000_000 };
    const started = Date.now();
    let allowed = 0;
    let refused = 0;
    for (let i = 0; i < 3_000; i++) {
      const r = await (i % 2 === 0 ? a : b).limiter.admit("hot", limits, 10);
      if (r.allowed) allowed += 1;
      else {
        refused += 1;
        expect(r.retryAfterMs).toBeGreaterThan(0);
      }
    }
    const refill = Math.ceil(((Date.now() - started) * limits.rpm) / 60_000);
    expect(allowed).toBeLessThanOrEqual(limits.rpm + refill); // never more than the shared bucket held
    // the documented bound: refusals start at most 5 % of the limit early per other replica
    expect(allowed).toBeGreaterThanOrEqual(limits.rpm * 0.95);
    expect(refused).toBeGreaterThan(0);
    // once hot, most admissions came out of a slice
    expect(a.calls() + b.calls()).toBeLessThan(1_500);
    await Promise.all([a.limiter.close(), b.limiter.close()]);
    a.conn.disconnect();
    b.conn.disconnect();
  });

  it("unused slices and settled tokens go back to the buckets: on close, and after the slice's time", async () => {
    const limits = { rpm: 100_000, tpm: 1_000_000 };
    for (const how of ["close", "expiry"] as const) {
      const keyId = `back-${how}`;
      const r = replica({ sliceMs: 200 });
      const n = 300;
      const started = Date.now();
      for (let i = 0; i < n; i++) {
        const admission = await r.limiter.admit(keyId, limits, 100);
        expect(admission.allowed).toBe(true);
        await r.limiter.settle(keyId, limits.tpm, 100, 40); // 60 of the 100 reserved come back
      }
      expect(r.calls()).toBeLessThan(n); // slices, not a call per admission and settlement
      if (how === "close") await r.limiter.close();
      else await new Promise((resolve) => setTimeout(resolve, 400)); // past the slice's 200 ms
      // what the buckets lost is exactly what was used: n requests, 40 tokens each (refill aside)
      expect(await level(keyId, "rpm", limits.rpm)).toBeGreaterThanOrEqual(limits.rpm - n - 1);
      const tokens = await level(keyId, "tpm", limits.tpm);
      const refill = ((Date.now() - started) * limits.tpm) / 60_000;
      expect(tokens).toBeGreaterThanOrEqual(limits.tpm - n * 40 - 1);
      expect(tokens).toBeLessThanOrEqual(limits.tpm - n * 40 + refill + 1);
      if (how === "expiry") await r.limiter.close();
      r.conn.disconnect();
    }
  });

  it("a busy key's admissions do not wait on Redis: the next slice comes in the background; a cooled key is exact", async () => {
    let now = Date.now();
    const r = replica({ now: () => now });
    const limits = { rpm: 1_000_000, tpm: 100_000_000 };
    /**
     * `n` admissions at `rate` a second on the limiter's clock, as the gateway admits (from the slice without a
     * promise, else through Redis); how many had to wait on Redis, and the script calls made meanwhile. Between
     * admissions any background call comes back, as it would between real requests: a PING on the limiter's
     * connection answers after every command sent before it (one connection answers in order), whatever the
     * machine's load, and a macrotask later its callbacks have run.
     */
    const admitAt = async (rate: number, n: number) => {
      const before = r.calls();
      let waited = 0;
      for (let i = 0; i < n; i++) {
        let admission = r.limiter.admitLocal("busy", limits, 10);
        if (!admission) {
          waited += 1;
          admission = await r.limiter.admit("busy", limits, 10);
        }
        expect(admission.allowed).toBe(true);
        now += 1_000 / rate;
        await r.conn.ping();
        await new Promise((resolve) => setImmediate(resolve));
      }
      return { waited, calls: r.calls() - before };
    };
    const warming = await admitAt(10, 20);
    expect(warming.waited).toBeLessThanOrEqual(4); // until three admissions in a second made it busy
    const busy = await admitAt(10, 40);
    expect(busy.waited).toBe(0);
    expect(busy.calls).toBeLessThanOrEqual(25); // refills of 3 requests, not a call per admission and settlement
    // 2/s is under the rate that makes a key busy (3), but a busy key stays busy down to half of it; the slice
    // sized for 10/s expires half used at the change of pace (one take), the next are sized for 2/s
    expect((await admitAt(2, 4)).waited).toBeLessThanOrEqual(1);
    expect((await admitAt(2, 12)).waited).toBe(0);
    await admitAt(1, 3); // under half the threshold: the slice runs out or expires
    expect(await admitAt(1, 4)).toEqual({ waited: 4, calls: 4 }); // exact again: a call per admission
    expect(await admitAt(0.5, 3)).toEqual({ waited: 3, calls: 3 });
    await r.limiter.close();
    r.conn.disconnect();
  });

  it("what one replica holds stays within its share: with admissions waiting on a slow refill, and settlement credit", async () => {
    let now = Date.now();
    const r = replica({ now: () => now });
    // slow refills (a script call that admits nothing), so admissions pile up behind one
    const target = r.conn as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
    const script = target.aiorchAdmitSlice!;
    target.aiorchAdmitSlice = async (...args: unknown[]) => {
      if (args.at(-1) === 0) await new Promise((resolve) => setTimeout(resolve, 30));
      return script(...args);
    };
    /** What the replica holds now (its slice and settlement credit; internal state, read for the bound). */
    const held = () =>
      (r.limiter as unknown as { state: Map<string, { rpm: number; tpm: number }> }).state.get("share")!;
    const limits = { rpm: 40, tpm: 1_000_000 }; // shares: 2 requests, 50,000 tokens
    let most = 0;
    for (let round = 0; round < 12; round++) {
      const batch = await Promise.all(
        Array.from(
          { length: 4 },
          () => r.limiter.admitLocal("share", limits, 100) ?? r.limiter.admit("share", limits, 100),
        ),
      );
      for (const admission of batch)
        if (admission.allowed) r.limiter.settleLocal("share", limits.tpm, 100_000, 0);
      most = Math.max(most, held().rpm);
      now += 250;
    }
    expect(most).toBeLessThanOrEqual(2);
    await new Promise((resolve) => setTimeout(resolve, 100)); // the last refill lands
    expect(held().rpm).toBeLessThanOrEqual(2);
    // credit of 100,000 tokens per admission went back with the refills: never more than one round's over the share
    expect(held().tpm).toBeLessThanOrEqual(50_000 + 4 * 100_000);
    await r.limiter.close();
    r.conn.disconnect();
  });

  it("quiet keys stay exact: a call per admission, headers count down one by one", async () => {
    const r = replica();
    const limits = { rpm: 10, tpm: 10_000 };
    const remaining: number[] = [];
    for (let i = 0; i < 10; i++) remaining.push((await r.limiter.admit("quiet", limits, 5)).rpmRemaining);
    expect(remaining).toEqual([9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
    const refused = await r.limiter.admit("quiet", limits, 5);
    expect(refused.allowed).toBe(false);
    expect(r.calls()).toBe(11);
    await r.limiter.close();
    r.conn.disconnect();
  });
});
