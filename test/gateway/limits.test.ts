import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ledgerMonth } from "../../core/protocol";
import { createHarness, type Harness } from "./harness";

let h: Harness;
let a: string;
let b: string;

beforeAll(async () => {
  h = await createHarness();
  a = (await h.start()).url;
  b = (await h.start()).url; // a second replica on the same Redis
});
afterAll(() => h.close());

const chat = (url: string, key: string, body: Record<string, unknown> = {}) =>
  fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({
      model: "chat",
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 2,
      ...body,
    }),
  });

describe("per-key limits", () => {
  it("requests per minute hold across two gateway replicas, with Retry-After and x-ratelimit headers", async () => {
    const key = await h.createKey({ rpm: 4 });
    const statuses = [];
    for (const url of [a, b, a, b]) {
      const r = await chat(url, key);
      statuses.push(r.status);
      await r.text();
    }
    expect(statuses).toEqual([200, 200, 200, 200]);
    const limited = await chat(b, key);
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(limited.headers.get("x-ratelimit-limit-requests")).toBe("4");
    expect(limited.headers.get("x-ratelimit-remaining-requests")).toBe("0");
    expect(((await limited.json()) as { error: { code: string } }).error.code).toBe("rate_limit_exceeded");
  });

  it("success responses carry x-ratelimit headers", async () => {
    const key = await h.createKey({ rpm: 10, tpm: 5000 });
    const r = await chat(a, key);
    expect(r.headers.get("x-ratelimit-limit-requests")).toBe("10");
    expect(r.headers.get("x-ratelimit-remaining-requests")).toBe("9");
    expect(r.headers.get("x-ratelimit-limit-tokens")).toBe("5000");
    expect(r.headers.get("x-ratelimit-reset-requests")).toMatch(/^\d+(m\d+)?s$/);
  });

  it("tokens per minute reserve at admission and settle to real usage", async () => {
    const key = await h.createKey({ tpm: 1000 });
    // without max_tokens the gateway reserves 512 + the prompt estimate: a second request cannot fit meanwhile
    h.fake.delayNext(300);
    const first = chat(a, key, { max_tokens: undefined });
    await new Promise((r) => setTimeout(r, 100));
    const second = await chat(b, key, { max_tokens: undefined });
    expect(second.status).toBe(429);
    expect(second.headers.get("x-ratelimit-limit-tokens")).toBe("1000");
    const done = await first;
    expect(done.status).toBe(200);
    expect(((await done.json()) as { usage: { total_tokens: number } }).usage.total_tokens).toBeLessThan(50);
    await new Promise((r) => setTimeout(r, 50)); // settlement is fire-and-forget
    // the engine used ~20 of the ~520 reserved tokens: the rest came back
    const third = await chat(b, key, { max_tokens: undefined });
    expect(third.status, await third.text()).toBe(200);
  });

  it("a key over its monthly budget gets 429 with x-should-retry: false", async () => {
    const { key, record } = await h.store.create({ name: "budgeted", monthlyBudgetUsd: 1 });
    await h.redis.hset(h.keys.spendMonth(ledgerMonth(Date.now())), `key:${record.id}`, 1_500_000);
    const r = await chat(a, key);
    expect(r.status).toBe(429);
    expect(r.headers.get("x-should-retry")).toBe("false");
    expect(((await r.json()) as { error: { code: string } }).error.code).toBe("insufficient_quota");
  });

  it("a burst of 30 concurrent requests on a $0.01 key books at most the budget plus one request's cost", async () => {
    const { key, record } = await h.store.create({ name: "burst", monthlyBudgetUsd: 0.01 });
    // ten workers at $0.10/s: a request alone costs ~$0.005 (50 ms); spread over them, 30 at once would book ~$0.05
    for (let i = 0; i < 10; i++)
      await h.addRoute("cold", { baseUrl: h.fake.url, usdPerSecond: 0.1, workerId: `burst-${i}` });
    h.fake.delayNext(50, { count: 30 });
    const responses = await Promise.all(Array.from({ length: 30 }, () => chat(a, key, { model: "cold" })));
    const statuses = responses.map((r) => r.status);
    const refused = await Promise.all(
      responses
        .filter((r) => r.status === 429)
        .map(async (r) => (await r.json()) as { error: { code: string } }),
    );
    for (const r of responses.filter((x) => x.status !== 429)) await r.text();
    h.fake.clearFaults();
    await new Promise((r) => setTimeout(r, 700)); // spend counters reach Redis every 500 ms
    const micro = Number(await h.redis.hget(h.keys.spendMonth(ledgerMonth(Date.now())), `key:${record.id}`));
    const oneRequest = 0.06 * 0.1; // generously: 60 ms of a $0.10/s worker
    expect(micro / 1e6).toBeLessThanOrEqual(0.01 + oneRequest);
    expect(statuses.filter((s) => s === 200).length).toBeGreaterThanOrEqual(1);
    expect(new Set(refused.map((r) => r.error.code))).toEqual(new Set(["budget_held_in_flight"]));
    await h.removeRoutes("cold");
  });

  it("a budgeted key's own spend counts at once, before the batched counters and cached reads catch up", async () => {
    const { key } = await h.store.create({ name: "sequential", monthlyBudgetUsd: 0.01 });
    await h.addRoute("cold", { baseUrl: h.fake.url, usdPerSecond: 0.1, workerId: "seq" });
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) {
      h.fake.delayNext(40); // ~$0.004 each: the third passes the budget
      const r = await chat(a, key, { model: "cold" });
      statuses.push(r.status);
      await r.text();
    }
    const served = statuses.filter((s) => s === 200).length;
    expect(served).toBeGreaterThanOrEqual(2);
    expect(served).toBeLessThanOrEqual(4);
    expect(statuses.slice(served).every((s) => s === 429)).toBe(true);
    h.fake.clearFaults(); // the refused requests' delays were never used
    await h.removeRoutes("cold");
  });

  it("a non-streamed request the client abandons after the upstream call was sent is billed its service time", async () => {
    const { key, record } = await h.store.create({ name: "quitter" });
    await h.addRoute("cold", { baseUrl: h.fake.url, usdPerSecond: 10, workerId: "slow" });
    h.fake.delayNext(400);
    const gaveUp = new AbortController();
    const request = fetch(`${a}/v1/chat/completions`, {
      method: "POST",
      signal: gaveUp.signal,
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "cold", messages: [{ role: "user", content: "hi" }], max_tokens: 2 }),
    }).catch((error: Error) => error);
    await new Promise((r) => setTimeout(r, 150));
    gaveUp.abort();
    expect(await request).toBeInstanceOf(Error); // the client gave up
    await new Promise((r) => setTimeout(r, 700));
    const micro = Number(await h.redis.hget(h.keys.spendMonth(ledgerMonth(Date.now())), `key:${record.id}`));
    // it ran ~150 ms on a $10/s worker before the client left: billed, not $0
    expect(micro).toBeGreaterThan(0.05 * 10 * 1_000_000);
    h.fake.clearFaults();
    await h.removeRoutes("cold");
  });

  it("a budget block set by the controller refuses requests clearly", async () => {
    const key = await h.createKey();
    await h.redis.hset(h.keys.budgetBlocked, "chat", "model chat reached its monthly budget of $10");
    await h.redis.publish(h.keys.budgetChannel, "changed");
    await new Promise((r) => setTimeout(r, 50));
    const r = await chat(a, key);
    expect(r.status).toBe(429);
    expect(r.headers.get("x-should-retry")).toBe("false");
    expect(((await r.json()) as { error: { message: string } }).error.message).toMatch(
      /monthly budget of \$10/,
    );
    await h.redis.hdel(h.keys.budgetBlocked, "chat");
    await h.redis.publish(h.keys.budgetChannel, "changed");
  });

  it("spend of served requests is attributed to the key", async () => {
    const { key, record } = await h.store.create({ name: "spender" });
    await h.addRoute("cold", { baseUrl: h.fake.url, usdPerSecond: 10 });
    h.fake.delayNext(50);
    const r = await chat(a, key, { model: "cold" });
    expect(r.status).toBe(200);
    await r.text();
    await new Promise((r) => setTimeout(r, 700)); // spend counters reach Redis in batches, every 500 ms
    const micro = Number(await h.redis.hget(h.keys.spendMonth(ledgerMonth(Date.now())), `key:${record.id}`));
    expect(micro).toBeGreaterThan(0.04 * 10 * 1_000_000); // at least 40 ms at $10/s
    await h.removeRoutes("cold");
  });
});
