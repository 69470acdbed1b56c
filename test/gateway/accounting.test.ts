/**
 * What a replica writes to Redis about the requests it serves is batched: spend and request counters are summed in
 * memory and flushed periodically and on close; in-flight counts are one member per replica and worker.
 */
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inflightCountOfMember, ledgerMonth, workerOfInflightMember } from "../../core/protocol";
import { CounterBatch } from "../../gateway/accounting";
import { createHarness, type Harness } from "./harness";

let h: Harness;
let a: string;

beforeAll(async () => {
  h = await createHarness();
  a = (await h.start()).url;
});
afterAll(() => h.close());

const chat = (url: string, key: string, body: Record<string, unknown> = {}) =>
  fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({
      model: "cold",
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 2,
      ...body,
    }),
  });

const month = () => h.keys.spendMonth(ledgerMonth(Date.now()));
const requestsOfCold = async () => Number((await h.redis.hget(month(), "requests:model:cold")) ?? 0);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A worker's requests in flight, read the way the controller reads them (unexpired members, counts summed). */
async function inflight(workerId: string): Promise<number> {
  const members = await h.redis.zrangebyscore(h.keys.inflight("cold"), Date.now(), "+inf");
  let count = 0;
  for (const m of members) if (workerOfInflightMember(m) === workerId) count += inflightCountOfMember(m);
  return count;
}

describe("spend and request counters", () => {
  it("N concurrent requests count exactly N after a flush, and never more", async () => {
    const key = await h.createKey();
    await h.addRoute("cold", { workerId: "wc1", baseUrl: h.fake.url, usdPerSecond: 1 });
    const before = await requestsOfCold();
    const n = 40;
    const responses = await Promise.all(Array.from({ length: n }, () => chat(a, key)));
    for (const r of responses) {
      expect(r.status).toBe(200);
      await r.text();
    }
    await sleep(700); // one flush period (500 ms) and some
    expect(await requestsOfCold()).toBe(before + n);
    await sleep(600);
    expect(await requestsOfCold()).toBe(before + n);
    await h.removeRoutes("cold");
  });

  it("a replica that closes writes what it had not flushed: counts and spend sum exactly", async () => {
    const { key, record } = await h.store.create({ name: "closing" });
    await h.addRoute("cold", { workerId: "wc2", baseUrl: h.fake.url, usdPerSecond: 1 });
    const c = await h.start();
    const before = await requestsOfCold();
    const n = 12;
    for (let i = 0; i < n; i++) {
      h.fake.delayNext(3);
      const r = await chat(c.url, key);
      expect(r.status).toBe(200);
      await r.text();
    }
    await c.gateway.app.close(); // at once: well within the flush period
    expect(await requestsOfCold()).toBe(before + n);
    // one at a time, so each request's cost is its latency at $1/s: whole micro-dollars per millisecond
    const audited = c.audit.entries.filter((e) => e.keyId === record.id);
    expect(audited).toHaveLength(n);
    const expected = audited.reduce((sum, e) => sum + Math.round(e.costUsd * 1_000_000), 0);
    expect(expected).toBeGreaterThan(0);
    expect(Number(await h.redis.hget(month(), `key:${record.id}`))).toBe(expected);
    await h.removeRoutes("cold");
  });
});

describe("in-flight counts for the controller", () => {
  it("a busy worker is published at once, counted per replica, and dropped when idle", async () => {
    const key = await h.createKey();
    await h.addRoute("cold", { workerId: "wc3", baseUrl: h.fake.url });
    h.fake.delayNext(1_600);
    const first = chat(a, key);
    await sleep(100);
    // published the moment the worker got busy, not at the next refresh
    expect(await inflight("wc3")).toBe(1);
    const all = await h.redis.zrange(h.keys.inflight("cold"), 0, -1, "WITHSCORES");
    const expiries: number[] = [];
    for (let i = 0; i < all.length; i += 2)
      if (workerOfInflightMember(all[i]!) === "wc3") expiries.push(Number(all[i + 1]));
    expect(expiries).toHaveLength(1); // one member for this replica and worker
    expect(expiries[0]).toBeGreaterThan(Date.now()); // scored by an expiry the replica renews
    expect(expiries[0]).toBeLessThanOrEqual(Date.now() + 15_000);
    h.fake.delayNext(1_200);
    h.fake.delayNext(1_200);
    const more = [chat(a, key), chat(a, key)];
    await sleep(1_100); // a refresh carries the count
    expect(await inflight("wc3")).toBe(3);
    for (const r of await Promise.all([first, ...more])) {
      expect(r.status).toBe(200);
      await r.text();
    }
    // idle for a whole refresh period: the member goes
    await sleep(2_200);
    expect(await inflight("wc3")).toBe(0);
    await h.removeRoutes("cold");
  });

  it("a closing replica removes its members", async () => {
    const key = await h.createKey();
    await h.addRoute("cold", { workerId: "wc4", baseUrl: h.fake.url });
    const c = await h.start();
    const r = await chat(c.url, key);
    expect(r.status).toBe(200);
    await r.text();
    expect(await inflight("wc4")).toBe(1); // still counted: busy within the last period
    await c.gateway.app.close();
    expect(await inflight("wc4")).toBe(0);
    await h.removeRoutes("cold");
  });
});

describe("a counter flush that fails", () => {
  it("keeps the increments and writes them with the next flush", async () => {
    const written: Array<[string, string, number]> = [];
    let failNext = true;
    const redis = {
      multi() {
        const queued: Array<[string, string, number]> = [];
        const tx = {
          hincrby(key: string, field: string, by: number) {
            queued.push([key, field, by]);
            return tx;
          },
          async exec() {
            if (failNext) {
              failNext = false;
              throw new Error("Connection is closed.");
            }
            written.push(...queued);
            return queued.map(() => [null, 1]);
          },
        };
        return tx;
      },
    } as unknown as Redis;
    const errors: string[] = [];
    const batch = new CounterBatch(redis, { flushMs: 60_000, onError: (e) => errors.push(e.message) });
    batch.incr("m", "requests:model:x", 1);
    batch.incr("m", "requests:model:x", 1);
    await batch.flush();
    expect(errors).toEqual(["Connection is closed."]);
    expect(written).toEqual([]);
    batch.incr("m", "requests:model:x", 1);
    await batch.close();
    expect(written).toEqual([["m", "requests:model:x", 3]]);
  });
});
