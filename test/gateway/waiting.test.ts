import { Redis } from "ioredis";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FakeVllm, startFakeVllm } from "../fakes/vllm-upstream";
import {
  createHarness,
  type Harness,
  type MemorySink,
  REDIS_URL,
  readSse,
  testRuntimeConfig,
} from "./harness";

let h: Harness;
let url: string;
let audit: MemorySink;
let key: string;
let second: FakeVllm;

beforeAll(async () => {
  h = await createHarness();
  ({ url, audit } = await h.start());
  key = await h.createKey();
  second = await startFakeVllm({ model: ["chat", "cold"] });
});
afterAll(async () => {
  await second.close();
  await h.close();
});

const post = (model: string, body: Record<string, unknown> = {}, signal?: AbortSignal) =>
  fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ model, messages: [{ role: "user", content: "hi" }], max_tokens: 3, ...body }),
    signal,
  });

describe("a model at zero", () => {
  it("the request waits, signals demand, and is served the moment a worker registers", async () => {
    const demand = new Redis(REDIS_URL);
    const signals: string[] = [];
    demand.on("message", (_channel: string, message: string) => signals.push(message));
    await demand.subscribe(h.keys.demandChannel);
    try {
      const started = Date.now();
      const pending = post("cold");
      await new Promise((r) => setTimeout(r, 300));
      expect(await h.redis.zcard(h.keys.waiting("cold"))).toBe(1);
      expect(JSON.parse(signals[0] ?? "{}")).toMatchObject({ model: "cold" });
      await h.addRoute("cold", { baseUrl: h.fake.url, workerId: "w-cold" });
      const response = await pending;
      expect(response.status).toBe(200);
      expect(Date.now() - started).toBeLessThan(2_000);
      expect(await h.redis.zcard(h.keys.waiting("cold"))).toBe(0);
      const entry = audit.entries.at(-1)!;
      expect(entry.backend).toBe("w-cold");
      expect(entry.queueMs).toBeGreaterThanOrEqual(250);
    } finally {
      demand.disconnect();
      await h.removeRoutes("cold");
    }
  });

  it("a request that outlives its deadline gets 503 with Retry-After, never a 404 or a hang", async () => {
    const started = Date.now();
    const response = await post("cold"); // queueTimeoutSeconds: 5 in the test stack
    expect(response.status).toBe(503);
    expect(Date.now() - started).toBeGreaterThanOrEqual(4_900);
    expect(Number(response.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe("no_capacity");
    expect(await h.redis.zcard(h.keys.waiting("cold"))).toBe(0);
  }, 15_000);

  it("streaming clients hear SSE keep-alive comments while they wait, then the answer", async () => {
    const pending = post("cold", { stream: true });
    setTimeout(() => void h.addRoute("cold", { baseUrl: h.fake.url }), 1_600);
    const response = await pending;
    expect(response.status).toBe(200);
    const frames = await readSse(response);
    expect(frames[0]).toMatch(/^: waiting for a worker/);
    expect(frames.at(-1)).toBe("[DONE]");
    expect(frames.filter((f) => f.startsWith("{")).length).toBeGreaterThanOrEqual(3);
    await h.removeRoutes("cold");
  });

  it("the per-model waiting cap answers 429 queue_full", async () => {
    const capped = await h.start(
      testRuntimeConfig(h.fake.url, h.keys.prefix, {
        gateway: "{ host: ai.example.com, maxWaitingPerModel: 1 }",
      }),
    );
    const call = (signal?: AbortSignal) =>
      fetch(`${capped.url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: JSON.stringify({ model: "cold", messages: [{ role: "user", content: "x" }] }),
        signal,
      });
    const abort = new AbortController();
    const waiting = call(abort.signal).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 200));
    const full = await call();
    expect(full.status).toBe(429);
    expect(((await full.json()) as { error: { code: string } }).error.code).toBe("queue_full");
    abort.abort();
    await waiting;
    await new Promise((r) => setTimeout(r, 100));
    expect(await h.redis.zcard(h.keys.waiting("cold"))).toBe(0); // a client that leaves does not keep its place
  });
});

describe("failover and broken workers", () => {
  it("a backend answering 503 before the first byte fails over to the next one", async () => {
    await h.addRoute("cold", { baseUrl: h.fake.url, workerId: "w-bad" });
    await h.addRoute("cold", { baseUrl: second.url, workerId: "w-good" });
    h.fake.failNext(503, { count: 5 });
    for (let i = 0; i < 4; i++) {
      const response = await post("cold");
      expect(response.status).toBe(200);
      await response.text();
    }
    const backends = audit.entries.slice(-4).map((e) => e.backend);
    expect(backends.every((b) => b === "w-good")).toBe(true);
    h.fake.clearFaults();
    await h.removeRoutes("cold");
  });

  it("every backend failing gives 502, and the error names the model, not the backend", async () => {
    await h.addRoute("cold", { baseUrl: "http://127.0.0.1:9", workerId: "w-dead" });
    const response = await post("cold");
    expect(response.status).toBe(502);
    const { error } = (await response.json()) as { error: { message: string; code: string } };
    expect(error.message).toMatch(/model "cold" is unreachable/);
    await h.removeRoutes("cold");
  });

  it("a backend slower than upstreamTimeoutSeconds gives 504", async () => {
    const slow = await h.start(
      testRuntimeConfig(h.fake.url, h.keys.prefix, {
        gateway: "{ host: ai.example.com, upstreamTimeoutSeconds: 1 }",
      }),
    );
    h.fake.delayNext(1_500);
    const response = await fetch(`${slow.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "chat", messages: [{ role: "user", content: "x" }], max_tokens: 1 }),
    });
    expect(response.status).toBe(504);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe("upstream_timeout");
    await h.fake.whenIdle(3_000).catch(() => undefined);
  });

  it("a worker that dies mid-stream: the client gets an SSE error event", async () => {
    await h.addRoute("cold", { baseUrl: h.fake.url, workerId: "w-dies" });
    h.fake.dropNext(2);
    const client = new OpenAI({ apiKey: key, baseURL: `${url}/v1`, maxRetries: 0 });
    const stream = await client.chat.completions.create({
      model: "cold",
      messages: [{ role: "user", content: "x" }],
      max_tokens: 10,
      stream: true,
    });
    const received: string[] = [];
    await expect(
      (async () => {
        for await (const chunk of stream) received.push(chunk.choices[0]?.delta.content ?? "");
      })(),
    ).rejects.toThrow(/stopped before the answer was complete/);
    expect(received.join("").trim().split(/\s+/).length).toBeGreaterThanOrEqual(1);
    await new Promise((r) => setTimeout(r, 50));
    expect(audit.entries.at(-1)).toMatchObject({ status: 502, error: "stream_broken" });
    await h.removeRoutes("cold");
  });

  it("a client that disconnects aborts the upstream request and is billed the tokens seen", async () => {
    h.fake.reset();
    h.fake.configure({ interTokenDelayMs: 50 });
    const abort = new AbortController();
    const response = await post("chat", { stream: true, max_tokens: 40 }, abort.signal);
    const reader = response.body!.getReader();
    await reader.read();
    await reader.read();
    abort.abort();
    await h.fake.whenIdle(2_000);
    h.fake.configure({ interTokenDelayMs: 0 });
    const stream = h.fake.records.streams.at(-1)!;
    expect(stream.aborted).toBe(true);
    expect(stream.tokensSent).toBeLessThan(40);
    await new Promise((r) => setTimeout(r, 50));
    const entry = audit.entries.at(-1)!;
    expect(entry).toMatchObject({ status: 499, error: "client_disconnected" });
    expect(entry.completionTokens).toBeGreaterThan(0);
  });
});
