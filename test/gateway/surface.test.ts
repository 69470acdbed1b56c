import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FakeVllm, startFakeVllm } from "../fakes/vllm-upstream";
import { createHarness, type Harness, type MemorySink } from "./harness";

let h: Harness;
let url: string;
let opsUrl: string;
let audit: MemorySink;
let key: string;
let client: OpenAI;
/** A second worker that requires its token, like vLLM started with --api-key. */
let tokenFake: FakeVllm;

beforeAll(async () => {
  h = await createHarness();
  ({ url, opsUrl, audit } = await h.start());
  key = await h.createKey();
  client = new OpenAI({ apiKey: key, baseURL: `${url}/v1`, maxRetries: 0 });
  tokenFake = await startFakeVllm({ model: "cold", apiKey: "worker-token-123" });
});
afterAll(async () => {
  await tokenFake.close();
  await h.close();
});

const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${url}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });

async function expectError(response: Response, status: number, code: string | null, type?: string) {
  expect(response.status).toBe(status);
  expect(response.headers.get("x-request-id")).toMatch(/\S+/);
  const body = (await response.json()) as {
    error: { message: string; type: string; param: unknown; code: unknown };
  };
  expect(Object.keys(body.error).sort()).toEqual(["code", "message", "param", "type"]);
  expect(body.error.code).toBe(code);
  if (type) expect(body.error.type).toBe(type);
  expect(body.error.message.length).toBeGreaterThan(5);
  return body.error;
}

describe("OpenAI surface through the official client", () => {
  it("chat completion, non-streaming", async () => {
    const completion = await client.chat.completions.create({
      model: "chat",
      messages: [{ role: "user", content: "hello there" }],
      max_tokens: 5,
    });
    expect(completion.object).toBe("chat.completion");
    expect(completion.choices[0]?.message.content?.split(" ")).toHaveLength(5);
    expect(completion.usage?.completion_tokens).toBe(5);
  });

  it("chat completion, streaming, without usage: no usage chunk and no usage fields", async () => {
    const stream = await client.chat.completions.create({
      model: "chat",
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 4,
      stream: true,
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(
      chunks
        .map((c) => c.choices[0]?.delta.content ?? "")
        .join("")
        .trim()
        .split(/\s+/),
    ).toHaveLength(4);
    expect(chunks.every((c) => c.usage === undefined || c.usage === null)).toBe(true);
    expect(chunks.every((c) => c.choices.length > 0)).toBe(true);
  });

  it("streaming with include_usage: exactly one final usage chunk with empty choices", async () => {
    const stream = await client.chat.completions.create({
      model: "chat",
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 3,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    const last = chunks.at(-1)!;
    expect(last.choices).toEqual([]);
    expect(last.usage).toMatchObject({ completion_tokens: 3 });
    expect(chunks.filter((c) => c.usage).length).toBe(1);
  });

  it("the gateway always asks upstream for usage, also when the client did not", async () => {
    h.fake.reset();
    const stream = await client.chat.completions.create({
      model: "chat",
      messages: [{ role: "user", content: "x" }],
      max_tokens: 2,
      stream: true,
    });
    for await (const _ of stream) {
      // drain
    }
    const upstream = h.fake.records.requests.at(-1)!.body as { stream_options?: { include_usage?: boolean } };
    expect(upstream.stream_options?.include_usage).toBe(true);
  });

  it("text completions", async () => {
    const completion = await client.completions.create({ model: "chat", prompt: "once upon", max_tokens: 3 });
    expect(completion.object).toBe("text_completion");
    expect(completion.usage?.completion_tokens).toBe(3);
  });

  it("embeddings", async () => {
    const result = await client.embeddings.create({ model: "embed", input: ["a", "b"] });
    expect(result.data).toHaveLength(2);
    expect(result.data[0]?.embedding.length).toBe(8);
  });

  it("models lists what the key may use", async () => {
    const models = [];
    for await (const m of client.models.list()) models.push(m.id);
    expect(models.sort()).toEqual(["chat", "cold", "embed"]);
    const limited = new OpenAI({
      apiKey: await h.createKey({ models: ["embed"] }),
      baseURL: `${url}/v1`,
      maxRetries: 0,
    });
    const visible = [];
    for await (const m of limited.models.list()) visible.push(m.id);
    expect(visible).toEqual(["embed"]);
    expect((await limited.models.retrieve("embed")).id).toBe("embed");
  });
});

describe("errors are OpenAI-shaped with the right status", () => {
  it("401 without a key, with a wrong key, with a revoked or expired key", async () => {
    const none = await fetch(`${url}/v1/models`);
    await expectError(none, 401, "invalid_api_key", "authentication_error");
    const wrong = await fetch(`${url}/v1/models`, { headers: { authorization: "Bearer sk-aiorch-nope" } });
    await expectError(wrong, 401, "invalid_api_key");
    const { key: revokedKey, record } = await h.store.create({ name: "revoke-me" });
    expect(
      (await fetch(`${url}/v1/models`, { headers: { authorization: `Bearer ${revokedKey}` } })).status,
    ).toBe(200);
    await h.store.revoke(record.id);
    await new Promise((r) => setTimeout(r, 100)); // the revocation travels over pub/sub
    const revoked = await fetch(`${url}/v1/models`, { headers: { authorization: `Bearer ${revokedKey}` } });
    expect((await expectError(revoked, 401, "invalid_api_key")).message).toMatch(/revoked/);
    const expiredKey = (await h.store.create({ name: "old", expiresAtMs: Date.now() - 1 })).key;
    const expired = await fetch(`${url}/v1/models`, { headers: { authorization: `Bearer ${expiredKey}` } });
    expect((await expectError(expired, 401, "invalid_api_key")).message).toMatch(/expired/);
  });

  it("the invalid key is never echoed back", async () => {
    const bogus = "sk-aiorch-THISISNOTAKEYBUTLOOKSLIKEONE";
    const response = await fetch(`${url}/v1/models`, { headers: { authorization: `Bearer ${bogus}` } });
    expect(await response.text()).not.toContain("THISISNOTAKEY");
  });

  it("404 for an unknown model, 403 for a model the key may not use", async () => {
    await expectError(
      await post("/v1/chat/completions", { model: "gpt-9", messages: [{ role: "user", content: "x" }] }),
      404,
      "model_not_found",
    );
    const limited = await h.createKey({ models: ["embed"] });
    const forbidden = await post(
      "/v1/chat/completions",
      { model: "chat", messages: [{ role: "user", content: "x" }] },
      { authorization: `Bearer ${limited}` },
    );
    await expectError(forbidden, 403, "model_not_allowed", "permission_error");
  });

  it("a whole-answer request goes upstream as the client's own JSON text, not serialized again", async () => {
    h.fake.reset();
    // spacing, key order, 2.0 and a unicode escape: JSON.stringify of the parsed body would change each of them
    const text =
      '{ "max_tokens": 2.0, "model":"chat",\n "messages": [{"role":"user","content":"caf\\u00e9"}] }';
    const response = await post("/v1/chat/completions", text);
    expect(response.status).toBe(200);
    await response.json();
    expect(h.fake.records.requests.at(-1)!.rawBody).toBe(text);
  });

  it("a stream goes upstream as the client's text with stream_options spliced in; the client's own are merged", async () => {
    h.fake.reset();
    const text =
      '{ "stream": true, "model":"chat",\n "messages": [{"role":"user","content":"caf\\u00e9"}] }\n';
    const response = await post("/v1/chat/completions", text, { "x-request-id": "stream-1" });
    expect(response.status).toBe(200);
    // the event stream's own headers: the request id (the client's as a label), the key's limits, no caching or
    // proxy buffering
    expect(response.headers.get("x-request-id")).toMatch(/^req_[0-9a-f]{32}$/);
    expect(response.headers.get("x-client-request-id")).toBe("stream-1");
    expect(response.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    expect(response.headers.get("x-accel-buffering")).toBe("no");
    for (const name of ["requests", "tokens"])
      for (const kind of ["limit", "remaining", "reset"])
        expect(response.headers.get(`x-ratelimit-${kind}-${name}`), `${kind}-${name}`).toMatch(
          /^\d+(m\d+)?s?$/,
        );
    await response.text();
    expect(h.fake.records.requests.at(-1)!.rawBody).toBe(
      '{ "stream": true, "model":"chat",\n "messages": [{"role":"user","content":"caf\\u00e9"}] ,"stream_options":{"include_usage":true}}\n',
    );
    // the client's own stream_options (here asking for continuous usage) are kept, include_usage added
    const own = {
      model: "chat",
      stream: true,
      messages: [{ role: "user", content: "x" }],
      stream_options: { continuous_usage_stats: false },
    };
    const second = await post("/v1/chat/completions", JSON.stringify(own));
    expect(second.status).toBe(200);
    await second.text();
    expect(h.fake.records.requests.at(-1)!.body).toMatchObject({
      stream_options: { continuous_usage_stats: false, include_usage: true },
    });
  });

  it("a body with a byte order mark is read and forwarded without it", async () => {
    h.fake.reset();
    const text = '{"model":"chat","max_tokens":1,"messages":[{"role":"user","content":"x"}]}';
    const response = await post("/v1/chat/completions", `\ufeff${text}`);
    expect(response.status).toBe(200);
    await response.json();
    expect(h.fake.records.requests.at(-1)!.rawBody).toBe(text);
  });

  it("bodies that try prototype poisoning are refused as invalid JSON, as fastify's own parser does", async () => {
    const poisoned = [
      '{"model":"chat","messages":[{"role":"user","content":"x"}],"__proto__":{"admin":true}}',
      '{"model":"chat","messages":[{"role":"user","content":"x"}],"constructor":{"prototype":{"admin":true}}}',
    ];
    for (const text of poisoned)
      await expectError(await post("/v1/chat/completions", text), 400, "invalid_json");
    expect(({} as Record<string, unknown>).admin).toBeUndefined();
  });

  it("400 for invalid bodies, naming the parameter", async () => {
    expect(
      (await expectError(await post("/v1/chat/completions", { model: "chat" }), 400, "invalid_request"))
        .param,
    ).toBe("messages");
    expect(
      (await expectError(await post("/v1/chat/completions", { messages: [] }), 400, "invalid_request")).param,
    ).toBe("model");
    expect(
      (
        await expectError(
          await post("/v1/chat/completions", { model: "chat", messages: [{ role: "user" }], max_tokens: -1 }),
          400,
          "invalid_request",
        )
      ).param,
    ).toBe("max_tokens");
    await expectError(await post("/v1/chat/completions", "{not json"), 400, "invalid_json");
    await expectError(await post("/v1/chat/completions", "[1,2]"), 400, "invalid_request");
    await expectError(
      await post("/v1/chat/completions", "x=1", { "content-type": "text/plain" }),
      400,
      "invalid_content_type",
    );
    // a route the model's kind does not serve: 404, naming the kinds that route serves (core/engine-routes.ts)
    const wrong = await expectError(
      await post("/v1/embeddings", { model: "chat", input: "x" }),
      404,
      "wrong_endpoint",
    );
    expect(wrong.message).toMatch(/chat model; \/v1\/embeddings serves embedding models only/);
  });

  it("413 for a body over the limit", async () => {
    const big = { model: "chat", messages: [{ role: "user", content: "x".repeat(70_000) }] };
    await expectError(await post("/v1/chat/completions", big), 413, "request_too_large");
  });

  it("404 for an unknown route, still OpenAI-shaped", async () => {
    await expectError(await fetch(`${url}/v1/nothing-here`), 404, "unknown_url");
  });

  it("does not serve /metrics, /healthz or /readyz on the public port (they are on the ops port)", async () => {
    for (const path of ["/metrics", "/healthz", "/readyz"]) {
      const error = await expectError(
        await fetch(`${url}${path}`),
        404,
        "unknown_url",
        "invalid_request_error",
      );
      expect(error.message).toBe(`Unknown request URL: GET ${path}`);
    }
  });

  it("a 4xx from upstream keeps its status, as an OpenAI error (the message scrubbed: upstream-errors.test.ts)", async () => {
    // prompt + completion beyond max_model_len is the engine's 400
    const response = await post("/v1/chat/completions", {
      model: "chat",
      messages: [{ role: "user", content: "x" }],
      max_tokens: 100_000,
    });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: unknown }).error).toBeDefined();
  });
});

describe("request ids, health, metrics, audit", () => {
  it("answers its own x-request-id, echoing a client's as x-client-request-id (request-ids.test.ts)", async () => {
    const given = await fetch(`${url}/v1/models`, { headers: { "x-request-id": "abc-123" } });
    expect(given.headers.get("x-request-id")).toMatch(/^req_[0-9a-f]{32}$/);
    expect(given.headers.get("x-client-request-id")).toBe("abc-123");
    const made = await fetch(`${url}/v1/models`);
    expect(made.headers.get("x-request-id")).toMatch(/^req_[0-9a-f]{32}$/);
    const unsafe = await fetch(`${url}/v1/models`, { headers: { "x-request-id": "bad id with spaces" } });
    expect(unsafe.headers.get("x-request-id")).toMatch(/^req_/);
    expect(unsafe.headers.get("x-client-request-id")).toBeNull();
  });

  it("healthz and readyz on the ops port", async () => {
    expect((await fetch(`${opsUrl}/healthz`)).status).toBe(200);
    const ready = await fetch(`${opsUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: "ready" });
    expect((await fetch(`${opsUrl}/v1/models`)).status).toBe(404);
  });

  it("metrics carry requests by model and status, with bounded labels", async () => {
    await post("/v1/chat/completions", {
      model: "made-up-model-name",
      messages: [{ role: "user", content: "x" }],
    });
    const text = await (await fetch(`${opsUrl}/metrics`)).text();
    expect(text).toMatch(/aiorch_requests_total\{model="chat",variant="",status="200"\} \d+/);
    expect(text).toContain("aiorch_inference_requests_per_minute");
    expect(text).toContain("aiorch_time_to_first_token_seconds_bucket");
    expect(text).not.toContain("made-up-model-name");
  });

  it("one audit line per request with ids, tokens, cost and timings, and no prompt text", async () => {
    const before = audit.lines.length;
    await client.chat.completions.create({
      model: "chat",
      messages: [{ role: "user", content: "secret prompt words" }],
      max_tokens: 2,
    });
    await new Promise((r) => setTimeout(r, 20));
    const entries = audit.entries.slice(before);
    expect(entries).toHaveLength(1);
    const entry = entries[0]!;
    expect(entry).toMatchObject({
      model: "chat",
      status: 200,
      endpoint: "chat",
      provider: "local",
      completionTokens: 2,
      stream: false,
    });
    expect(entry.keyId).toMatch(/^key_/);
    expect(entry.latencyMs).toBeGreaterThanOrEqual(0);
    expect(audit.lines.slice(before).join("")).not.toContain("secret prompt words");
    expect(audit.lines.join("")).not.toContain(key);
  });
});

describe("credentials", () => {
  it("a bearer route's token reaches the worker and never the client", async () => {
    await h.addRoute("cold", { baseUrl: tokenFake.url, auth: { kind: "bearer", token: "worker-token-123" } });
    const response = await post("/v1/chat/completions", {
      model: "cold",
      messages: [{ role: "user", content: "x" }],
      max_tokens: 1,
    });
    const text = await response.text();
    expect(response.status, text).toBe(200);
    expect(text).not.toContain("worker-token-123");
    expect([...response.headers.values()].join(" ")).not.toContain("worker-token-123");
    const upstream = tokenFake.records.requests.at(-1)!;
    expect(upstream.headers.authorization).toBe("Bearer worker-token-123");
    expect(String(upstream.headers.authorization)).not.toContain(key);
  });
});
