/**
 * Weighted rollout through the real gateway: requests for one model split across its variants' workers by
 * weight, stick to a variant per API key when asked, follow a run-time weight change at once, and say which
 * variant served them in the header, the audit line and the metrics.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { setVariantWeight } from "../../cli/models";
import { AuditTrail } from "../../core/audit-trail";
import { loadStackConfig, parseStackFile, renderRuntimeConfig } from "../../core/config";
import { stackYaml } from "../../devkit/stack-yaml";
import { type FakeVllm, startFakeVllm } from "../fakes/vllm-upstream";
import { createHarness, type Harness, type MemorySink } from "./harness";

let h: Harness;
let url: string;
let opsUrl: string;
let audit: MemorySink;
let key: string;
let v1: FakeVllm;
let v2: FakeVllm;
let s1: FakeVllm;
let s2: FakeVllm;

beforeAll(async () => {
  h = await createHarness({
    config: (_localUrl, prefix) =>
      renderRuntimeConfig(
        loadStackConfig(
          parseStackFile(
            stackYaml({
              providers: "{ vastai: {} }",
              models: `[
                { name: roll, kind: chat, source: o/roll, revision: ${"a".repeat(40)}, gpu: [RTX_3090], providers: [vastai],
                  variants: [{ name: v1, weight: 90 }, { name: v2, source: o/roll-next, revision: ${"b".repeat(40)}, weight: 10 }] },
                { name: sticky, kind: chat, source: o/sticky, gpu: [RTX_3090], providers: [vastai], stickyVariants: true,
                  variants: [{ name: a, weight: 50 }, { name: b, weight: 50 }] }
              ]`,
              redis: `{ keyPrefix: "${prefix}" }`,
              gateway: "{ host: ai.example.com, limits: { rpm: 1000000, tpm: 100000000 } }",
            }),
            "test.yaml",
          ),
        ),
        "test",
      ),
  });
  [v1, v2, s1, s2] = await Promise.all([
    startFakeVllm({ model: "roll" }),
    startFakeVllm({ model: "roll" }),
    startFakeVllm({ model: "sticky" }),
    startFakeVllm({ model: "sticky" }),
  ]);
  await h.addRoute("roll@v1", { baseUrl: v1.url, capacity: 64 });
  await h.addRoute("roll@v2", { baseUrl: v2.url, capacity: 64 });
  await h.addRoute("sticky@a", { baseUrl: s1.url, capacity: 64 });
  await h.addRoute("sticky@b", { baseUrl: s2.url, capacity: 64 });
  ({ url, opsUrl, audit } = await h.start());
  key = await h.createKey();
});
afterAll(async () => {
  await h.close();
  await Promise.all([v1, v2, s1, s2].map((f) => f.close()));
});

const chat = (model: string, apiKey = key) =>
  fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
    body: JSON.stringify({ model, messages: [{ role: "user", content: "hi" }], max_tokens: 1 }),
  });

/** Send `n` requests, `parallel` at a time; count the variant header of each answer. */
async function split(model: string, n: number, parallel = 32): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < n) {
        next += 1;
        const response = await chat(model);
        expect(response.status).toBe(200);
        const body = (await response.json()) as { model: string };
        expect(body.model).toBe(model); // workers answer under the public name
        const variant = response.headers.get("x-aiorch-variant") ?? "none";
        counts[variant] = (counts[variant] ?? 0) + 1;
      }
    }),
  );
  return counts;
}

describe("weighted rollout", () => {
  it("splits 10,000 routed requests within ±2% of the weights, to the variants' own workers", async () => {
    const before = {
      v1: v1.records.requestCounts["/v1/chat/completions"] ?? 0,
      v2: v2.records.requestCounts["/v1/chat/completions"] ?? 0,
    };
    const counts = await split("roll", 10_000);
    expect(counts.v1! + counts.v2!).toBe(10_000);
    expect(Math.abs(counts.v2! / 10_000 - 0.1)).toBeLessThanOrEqual(0.02);
    // the header tells the truth: each variant's worker got exactly the requests labelled with it
    expect((v1.records.requestCounts["/v1/chat/completions"] ?? 0) - before.v1).toBe(counts.v1);
    expect((v2.records.requestCounts["/v1/chat/completions"] ?? 0) - before.v2).toBe(counts.v2);
  }, 120_000);

  it("names the variant in the audit line and the metrics", async () => {
    const response = await chat("roll");
    const variant = response.headers.get("x-aiorch-variant");
    await response.arrayBuffer();
    const entry = audit.entries.at(-1)!;
    expect(entry).toMatchObject({ model: "roll", variant, status: 200 });
    const metrics = await (await fetch(`${opsUrl}/metrics`)).text();
    expect(metrics).toMatch(/aiorch_requests_total\{model="roll",variant="v1",status="200"\} \d+/);
    expect(metrics).toMatch(/aiorch_requests_total\{model="roll",variant="v2",status="200"\} \d+/);
  });

  it("keeps each API key on one variant when the model is sticky, and spreads keys across variants", async () => {
    const seen = new Map<string, Set<string>>();
    for (let i = 0; i < 24; i++) {
      const apiKey = await h.createKey({ name: `sticky-${i}` });
      const variants = new Set<string>();
      for (let j = 0; j < 5; j++) {
        const response = await chat("sticky", apiKey);
        expect(response.status).toBe(200);
        await response.arrayBuffer();
        variants.add(response.headers.get("x-aiorch-variant")!);
      }
      seen.set(apiKey, variants);
    }
    for (const variants of seen.values()) expect(variants.size).toBe(1);
    const landed = [...seen.values()].map((s) => [...s][0]);
    expect(new Set(landed)).toEqual(new Set(["a", "b"])); // 24 keys at 50/50 all on one side: p = 2^-23
  });

  it("follows a run-time weight change at once, audited, and refuses to switch the model off", async () => {
    const result = await setVariantWeight(h.redis, h.keys, h.config, {
      model: "roll",
      variant: "v1",
      weight: 0,
      actor: "alice",
      reason: "v2 looks good",
    });
    expect(result).toMatchObject({ before: 90, after: 0 });
    // the announcement travels over pub/sub; a short pause lets the gateway re-read
    await new Promise((r) => setTimeout(r, 100));
    expect(await split("roll", 200)).toEqual({ v2: 200 });
    await expect(
      setVariantWeight(h.redis, h.keys, h.config, {
        model: "roll",
        variant: "v2",
        weight: 0,
        actor: "alice",
      }),
    ).rejects.toThrow(/switch the model off/);
    await expect(
      setVariantWeight(h.redis, h.keys, h.config, {
        model: "roll",
        variant: "v9",
        weight: 1,
        actor: "alice",
      }),
    ).rejects.toThrow(/no variant "v9"; its variants: v1, v2/);
    const trail = await new AuditTrail(h.redis, h.keys).list();
    expect(trail.at(-1)).toMatchObject({
      actor: "alice",
      action: "weights.changed",
      target: "roll@v1",
      reason: "90 → 0: v2 looks good",
    });
    // back to the declared weight
    await setVariantWeight(h.redis, h.keys, h.config, {
      model: "roll",
      variant: "v1",
      weight: undefined,
      actor: "alice",
    });
    await new Promise((r) => setTimeout(r, 100));
    const counts = await split("roll", 300);
    expect(counts.v1).toBeGreaterThan(200);
  });

  it("a model whose every weight is 0 in Redis answers 503 model_disabled, not a crash", async () => {
    await h.redis.hset(h.keys.variantWeights("sticky"), "a", "0", "b", "0");
    await h.redis.publish(h.keys.variantWeightsChannel, "sticky");
    await new Promise((r) => setTimeout(r, 100));
    const response = await chat("sticky");
    expect(response.status).toBe(503);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe("model_disabled");
    await h.redis.del(h.keys.variantWeights("sticky"));
    await h.redis.publish(h.keys.variantWeightsChannel, "sticky");
  });
});
