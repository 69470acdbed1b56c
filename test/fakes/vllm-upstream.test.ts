import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  type FakeVllm,
  type FakeVllmOptions,
  fakeCompletionText,
  fakeEmbedding,
  startFakeVllm,
} from "./vllm-upstream";

const ROOT = join(__dirname, "..", "..");

type Json = Record<string, unknown>;
type Chunk = {
  id: string;
  object: string;
  model: string;
  choices: Array<{
    index: number;
    delta?: { role?: string; content?: string };
    text?: string;
    finish_reason: string | null;
  }>;
  usage?: { prompt_tokens: number; completion_tokens: number; total_tokens: number } | null;
};

const fakes: FakeVllm[] = [];
const children: ChildProcess[] = [];

afterEach(async () => {
  for (const child of children.splice(0)) child.kill("SIGTERM");
  await Promise.all(fakes.splice(0).map((f) => f.close()));
});

async function start(options: FakeVllmOptions = {}): Promise<FakeVllm> {
  const fake = await startFakeVllm({ model: "m", ...options });
  fakes.push(fake);
  return fake;
}

function post(url: string, body: unknown, init: RequestInit = {}): Promise<Response> {
  return fetch(url, {
    method: "POST",
    ...init,
    headers: { "content-type": "application/json", ...(init.headers as Record<string, string>) },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

const chatBody = (extra: Json = {}): Json => ({
  model: "m",
  messages: [
    { role: "system", content: "be brief" },
    { role: "user", content: "hello there  fake vllm" },
  ],
  ...extra,
});
const CHAT_PROMPT_TOKENS = 6;

/** Incremental SSE reader: every event must be exactly `data: <payload>\n\n`. */
function sse(res: Response) {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  const next = async (): Promise<string | null> => {
    for (;;) {
      const end = buffer.indexOf("\n\n");
      if (end !== -1) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (!event.startsWith("data: ") || event.includes("\n")) throw new Error(`bad SSE event: ${event}`);
        return event.slice("data: ".length);
      }
      const { done, value } = await reader.read();
      if (done) {
        if (buffer.length > 0) throw new Error(`unterminated SSE event: ${buffer}`);
        return null;
      }
      buffer += decoder.decode(value, { stream: true });
    }
  };
  const all = async (): Promise<string[]> => {
    const out: string[] = [];
    for (let d = await next(); d !== null; d = await next()) out.push(d);
    return out;
  };
  return { next, all, cancel: () => reader.cancel() };
}

/** All frames of a stream: the JSON chunks, and checks that it ended with `[DONE]` exactly once. */
async function streamChunks(res: Response): Promise<Chunk[]> {
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
  const frames = await sse(res).all();
  expect(frames.at(-1)).toBe("[DONE]");
  expect(frames.filter((f) => f === "[DONE]")).toHaveLength(1);
  return frames.slice(0, -1).map((f) => JSON.parse(f) as Chunk);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("models, health and auth", () => {
  it("lists the served models with max_model_len", async () => {
    const fake = await start({ model: ["m", "m2"], maxModelLen: 8192 });
    expect(fake.url).toBe(`http://127.0.0.1:${fake.port}/v1`);
    const res = await fetch(`${fake.url}/models`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { object: string; data: Json[] };
    expect(body.object).toBe("list");
    expect(body.data.map((m) => m.id)).toEqual(["m", "m2"]);
    for (const card of body.data) {
      expect(card).toMatchObject({ object: "model", owned_by: "vllm", max_model_len: 8192 });
      expect(typeof card.created).toBe("number");
    }
    const one = await fetch(`${fake.url}/models/m2`);
    expect(((await one.json()) as Json).id).toBe("m2");
    const missing = await fetch(`${fake.url}/models/nope`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: Json }).error.code).toBe("model_not_found");
  });

  it("answers /health 503 until the boot delay has passed, then 200", async () => {
    const fake = await start({ bootDelayMs: 300 });
    const early = await fetch(`${fake.origin}/health`);
    expect(early.status).toBe(503);
    await early.arrayBuffer();
    const earlyChat = await post(`${fake.url}/chat/completions`, chatBody());
    expect(earlyChat.status).toBe(503);
    await earlyChat.arrayBuffer();
    await sleep(350);
    const late = await fetch(`${fake.origin}/health`);
    expect(late.status).toBe(200);
    expect(await late.text()).toBe("");
    expect(fake.records.requestCounts["/health"]).toBe(2);
  });

  it("requires the bearer key on /v1 when apiKey is set, but not on /health", async () => {
    const fake = await start({ apiKey: "secret" });
    const none = await fetch(`${fake.url}/models`);
    expect(none.status).toBe(401);
    const err = (await none.json()) as { error: Json };
    expect(err.error).toEqual({
      message: expect.any(String),
      type: "invalid_request_error",
      param: null,
      code: "invalid_api_key",
    });
    const wrong = await post(`${fake.url}/chat/completions`, chatBody(), {
      headers: { authorization: "Bearer nope" },
    });
    expect(wrong.status).toBe(401);
    await wrong.arrayBuffer();
    const ok = await post(`${fake.url}/chat/completions`, chatBody(), {
      headers: { authorization: "Bearer secret" },
    });
    expect(ok.status).toBe(200);
    await ok.arrayBuffer();
    expect((await fetch(`${fake.origin}/health`)).status).toBe(200);
  });

  it("serves a small Prometheus /metrics page with vLLM names", async () => {
    const fake = await start();
    await (await post(`${fake.url}/chat/completions`, chatBody({ max_tokens: 4 }))).arrayBuffer();
    const text = await (await fetch(`${fake.origin}/metrics`)).text();
    expect(text).toContain('vllm:num_requests_running{model_name="m",engine="0"} 0');
    expect(text).toContain('vllm:prompt_tokens_total{model_name="m",engine="0"} 6');
    expect(text).toContain('vllm:generation_tokens_total{model_name="m",engine="0"} 4');
    expect(text).toContain("vllm:kv_cache_usage_perc");
  });
});

describe("non-streaming completions", () => {
  it("returns a chat.completion with deterministic text and usage", async () => {
    const fake = await start();
    const res = await post(`${fake.url}/chat/completions`, chatBody({ max_tokens: 5 }), {
      headers: { "x-request-id": "req-1" },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-request-id")).toBe("req-1");
    const body = (await res.json()) as Json & { choices: Json[] };
    expect(body).toMatchObject({
      object: "chat.completion",
      model: "m",
      usage: {
        prompt_tokens: CHAT_PROMPT_TOKENS,
        completion_tokens: 5,
        total_tokens: CHAT_PROMPT_TOKENS + 5,
      },
    });
    expect(body.id).toMatch(/^chatcmpl-/);
    expect(body.choices).toHaveLength(1);
    expect(body.choices[0]).toMatchObject({
      index: 0,
      message: { role: "assistant", content: fakeCompletionText(CHAT_PROMPT_TOKENS, 5) },
      finish_reason: "length",
    });
    const text = (body.choices[0] as { message: { content: string } }).message.content;
    expect(text.split(" ")).toHaveLength(5);

    const again = (await (
      await post(`${fake.url}/chat/completions`, chatBody({ max_tokens: 5 }))
    ).json()) as Json;
    expect(again.id).not.toBe(body.id);
    expect(again.choices).toEqual(body.choices);
  });

  it("defaults to defaultMaxTokens words with finish_reason stop; max_completion_tokens wins", async () => {
    const fake = await start({ defaultMaxTokens: 16 });
    const body = (await (
      await post(`${fake.url}/chat/completions`, chatBody({ model: undefined }))
    ).json()) as {
      model: string;
      choices: Array<{ message: { content: string }; finish_reason: string }>;
      usage: Json;
    };
    expect(body.model).toBe("m");
    expect(body.choices[0]!.message.content.split(" ")).toHaveLength(16);
    expect(body.choices[0]!.finish_reason).toBe("stop");
    expect(body.usage.completion_tokens).toBe(16);
    const limited = (await (
      await post(`${fake.url}/chat/completions`, chatBody({ max_tokens: 9, max_completion_tokens: 3 }))
    ).json()) as { usage: Json };
    expect(limited.usage.completion_tokens).toBe(3);
  });

  it("returns a text_completion for /v1/completions, counting prompt words and n choices", async () => {
    const fake = await start();
    const res = await post(`${fake.url}/completions`, {
      model: "m",
      prompt: "one two three",
      max_tokens: 4,
      n: 2,
    });
    const body = (await res.json()) as Json & { choices: Json[] };
    expect(body.object).toBe("text_completion");
    expect(body.id).toMatch(/^cmpl-/);
    expect(body.choices.map((c) => c.index)).toEqual([0, 1]);
    expect(body.choices[0]).toMatchObject({ text: fakeCompletionText(3, 4), finish_reason: "length" });
    expect(body.usage).toEqual({ prompt_tokens: 3, completion_tokens: 8, total_tokens: 11 });
  });

  it("answers 404 model_not_found for an unknown model and 400 for malformed JSON or bad fields", async () => {
    const fake = await start({ maxModelLen: 20 });
    const unknown = await post(`${fake.url}/chat/completions`, chatBody({ model: "gpt-9" }));
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { error: Json }).error).toMatchObject({
      type: "invalid_request_error",
      code: "model_not_found",
      param: "model",
    });
    const malformed = await post(`${fake.url}/chat/completions`, "{not json");
    expect(malformed.status).toBe(400);
    expect(((await malformed.json()) as { error: Json }).error.type).toBe("invalid_request_error");
    expect(fake.records.requests.at(-1)!.body).toBe("{not json");
    const noMessages = await post(`${fake.url}/chat/completions`, { model: "m" });
    expect(noMessages.status).toBe(400);
    await noMessages.arrayBuffer();
    const tooLong = await post(`${fake.url}/chat/completions`, chatBody({ max_tokens: 15 }));
    expect(tooLong.status).toBe(400);
    expect(((await tooLong.json()) as { error: { message: string } }).error.message).toContain(
      "maximum context length is 20",
    );
    const notFound = await fetch(`${fake.url}/nope`);
    expect(notFound.status).toBe(404);
    await notFound.arrayBuffer();
  });
});

describe("streaming", () => {
  it("sends a role frame, one frame per token, the finish frame and [DONE]; no usage unless asked", async () => {
    const fake = await start();
    const chunks = await streamChunks(
      await post(`${fake.url}/chat/completions`, chatBody({ stream: true, max_tokens: 4 })),
    );
    expect(chunks).toHaveLength(1 + 4 + 1);
    for (const c of chunks) {
      expect(c.object).toBe("chat.completion.chunk");
      expect(c.model).toBe("m");
      expect(c.id).toBe(chunks[0]!.id);
      expect("usage" in c).toBe(false);
    }
    expect(chunks[0]!.choices[0]!.delta).toEqual({ role: "assistant", content: "" });
    const tokens = chunks.slice(1, 5).map((c) => c.choices[0]!.delta!.content);
    expect(tokens.join("")).toBe(fakeCompletionText(CHAT_PROMPT_TOKENS, 4));
    for (const c of chunks.slice(0, 5)) expect(c.choices[0]!.finish_reason).toBeNull();
    expect(chunks[5]!.choices[0]).toMatchObject({ delta: {}, finish_reason: "length" });
    expect(fake.records.streams[0]).toMatchObject({
      tokensSent: 4,
      plannedTokens: 4,
      completed: true,
      aborted: false,
    });
  });

  it("adds the usage chunk with choices: [] before [DONE] only when include_usage is true", async () => {
    const fake = await start();
    const asked = await streamChunks(
      await post(
        `${fake.url}/chat/completions`,
        chatBody({ stream: true, max_tokens: 3, stream_options: { include_usage: true } }),
      ),
    );
    expect(asked).toHaveLength(1 + 3 + 1 + 1);
    const last = asked.at(-1)!;
    expect(Object.keys(last).sort()).toEqual(["choices", "created", "id", "model", "object", "usage"]);
    expect(last.choices).toEqual([]);
    expect(last.usage).toEqual({
      prompt_tokens: CHAT_PROMPT_TOKENS,
      completion_tokens: 3,
      total_tokens: CHAT_PROMPT_TOKENS + 3,
    });
    expect(asked.at(-2)!.choices[0]!.finish_reason).toBe("length");
    for (const c of asked.slice(0, -1)) expect("usage" in c).toBe(false);

    const notAsked = await streamChunks(
      await post(
        `${fake.url}/chat/completions`,
        chatBody({ stream: true, max_tokens: 3, stream_options: { include_usage: false } }),
      ),
    );
    expect(notAsked).toHaveLength(1 + 3 + 1);
    expect(notAsked.every((c) => c.choices.length === 1 && !("usage" in c))).toBe(true);
  });

  it("every-chunk mode puts cumulative usage on every frame and always sends the usage chunk", async () => {
    const fake = await start({ usageMode: "every-chunk" });
    const chunks = await streamChunks(
      await post(`${fake.url}/chat/completions`, chatBody({ stream: true, max_tokens: 3 })),
    );
    expect(chunks.map((c) => c.usage?.completion_tokens)).toEqual([0, 1, 2, 3, 3, 3]);
    for (const c of chunks)
      expect(c.usage!.total_tokens).toBe(CHAT_PROMPT_TOKENS + c.usage!.completion_tokens);
    expect(chunks.at(-1)!.choices).toEqual([]);

    // Switchable at run time; continuous_usage_stats is the per-request vLLM equivalent.
    fake.configure({ usageMode: "final" });
    const continuous = await streamChunks(
      await post(
        `${fake.url}/chat/completions`,
        chatBody({
          stream: true,
          max_tokens: 2,
          stream_options: { include_usage: true, continuous_usage_stats: true },
        }),
      ),
    );
    expect(continuous.map((c) => c.usage?.completion_tokens)).toEqual([0, 1, 2, 2, 2]);
  });

  it("streams /v1/completions as text_completion frames", async () => {
    const fake = await start();
    const chunks = await streamChunks(
      await post(`${fake.url}/completions`, {
        model: "m",
        prompt: "a b",
        max_tokens: 3,
        stream: true,
        stream_options: { include_usage: true },
      }),
    );
    expect(chunks).toHaveLength(3 + 1 + 1);
    expect(chunks.every((c) => c.object === "text_completion")).toBe(true);
    expect(
      chunks
        .slice(0, 3)
        .map((c) => c.choices[0]!.text)
        .join(""),
    ).toBe(fakeCompletionText(2, 3));
    expect(chunks[3]!.choices[0]).toMatchObject({ text: "", finish_reason: "length" });
    expect(chunks[4]).toMatchObject({
      choices: [],
      usage: { prompt_tokens: 2, completion_tokens: 3, total_tokens: 5 },
    });
  });

  it("waits ttftMs before the first frame and interTokenDelayMs between frames", async () => {
    const fake = await start({ ttftMs: 250, interTokenDelayMs: 40 });
    const t0 = performance.now();
    const res = await post(`${fake.url}/chat/completions`, chatBody({ stream: true, max_tokens: 3 }));
    const headersAt = performance.now() - t0;
    expect(headersAt).toBeLessThan(200);
    const reader = sse(res);
    await reader.next(); // role frame, sent with the first token
    const first = performance.now() - t0;
    expect(first).toBeGreaterThanOrEqual(240);
    await reader.all();
    expect(performance.now() - t0).toBeGreaterThanOrEqual(240 + 2 * 40 - 5);

    // Non-stream requests take the same simulated generation time.
    const t1 = performance.now();
    await (await post(`${fake.url}/chat/completions`, chatBody({ max_tokens: 3 }))).json();
    expect(performance.now() - t1).toBeGreaterThanOrEqual(250 + 2 * 40 - 5);
  });

  it("records a client disconnect as an abort, with the tokens sent so far", async () => {
    const fake = await start({ interTokenDelayMs: 20 });
    const controller = new AbortController();
    const res = await post(`${fake.url}/chat/completions`, chatBody({ stream: true, max_tokens: 200 }), {
      signal: controller.signal,
    });
    const reader = sse(res);
    for (let i = 0; i < 4; i++) await reader.next(); // role + 3 tokens
    expect(fake.records.inFlight).toBe(1);
    controller.abort();
    await fake.whenIdle();
    const record = fake.records.streams[0]!;
    expect(record).toMatchObject({ aborted: true, completed: false, dropped: false, plannedTokens: 200 });
    expect(record.tokensSent).toBeGreaterThanOrEqual(3);
    expect(record.tokensSent).toBeLessThan(10);
    expect(record.endedAt).not.toBeNull();
    expect(fake.records.abortedRequests).toBe(1);
    expect(fake.records.inFlight).toBe(0);
  });
});

describe("embeddings and images", () => {
  it("returns deterministic 8-float embeddings for a string or an array", async () => {
    const fake = await start();
    const res = await post(`${fake.url}/embeddings`, { model: "m", input: ["hello world", "x"] });
    const body = (await res.json()) as {
      object: string;
      model: string;
      data: Array<{ object: string; index: number; embedding: number[] }>;
      usage: Json;
    };
    expect(body.object).toBe("list");
    expect(body.model).toBe("m");
    expect(body.data.map((d) => [d.object, d.index])).toEqual([
      ["embedding", 0],
      ["embedding", 1],
    ]);
    expect(body.data[0]!.embedding).toHaveLength(8);
    expect(body.data[0]!.embedding).toEqual(fakeEmbedding("hello world"));
    expect(body.data[0]!.embedding).not.toEqual(body.data[1]!.embedding);
    expect(body.usage).toEqual({ prompt_tokens: 3, total_tokens: 3 });

    const single = (await (
      await post(`${fake.url}/embeddings`, { model: "m", input: "hello world" })
    ).json()) as {
      data: Array<{ embedding: number[] }>;
    };
    expect(single.data).toHaveLength(1);
    expect(single.data[0]!.embedding).toEqual(body.data[0]!.embedding);
  });

  it("returns base64 float32 little-endian with encoding_format base64", async () => {
    const fake = await start();
    const body = (await (
      await post(`${fake.url}/embeddings`, { model: "m", input: "hello world", encoding_format: "base64" })
    ).json()) as { data: Array<{ embedding: string }> };
    const buf = Buffer.from(body.data[0]!.embedding, "base64");
    expect(buf.length).toBe(8 * 4);
    const decoded = Array.from({ length: 8 }, (_, i) => buf.readFloatLE(i * 4));
    expect(decoded).toEqual(fakeEmbedding("hello world"));
    const empty = await post(`${fake.url}/embeddings`, { model: "m", input: [] });
    expect(empty.status).toBe(400);
    await empty.arrayBuffer();
  });

  it("returns a tiny deterministic b64_json image", async () => {
    const fake = await start();
    const body = (await (await post(`${fake.url}/images/generations`, { prompt: "a cat", n: 2 })).json()) as {
      created: number;
      data: Array<{ b64_json: string }>;
    };
    expect(typeof body.created).toBe("number");
    expect(body.data).toHaveLength(2);
    const png = Buffer.from(body.data[0]!.b64_json, "base64");
    expect(png.subarray(1, 4).toString()).toBe("PNG");
    expect(body.data[1]!.b64_json).toBe(body.data[0]!.b64_json);
  });

  it("images as vLLM-Omni answers them: url fields null, url format, bad size and n > 10 refused", async () => {
    const fake = await start();
    const ok = (await (
      await post(`${fake.url}/images/generations`, { prompt: "a cat", size: "512x768" })
    ).json()) as {
      data: Array<Record<string, unknown>>;
    };
    expect(ok.data).toHaveLength(1);
    expect(ok.data[0]).toMatchObject({ url: null, revised_prompt: null });
    for (const [fields, param] of [
      [{ response_format: "url" }, "response_format"],
      [{ size: "1024" }, "size"],
      [{ size: "0x512" }, "size"],
      [{ n: 11 }, "n"],
    ] as const) {
      const refused = await post(`${fake.url}/images/generations`, { prompt: "a cat", ...fields });
      expect(refused.status).toBe(400);
      expect(((await refused.json()) as { error: { param: string } }).error.param).toBe(param);
    }
  });
});

describe("records", () => {
  it("counts requests per path and keeps the last N bodies and headers", async () => {
    const fake = await start({ recordLimit: 2 });
    for (let i = 1; i <= 3; i++) {
      await (
        await post(`${fake.url}/chat/completions`, chatBody({ max_tokens: i }), {
          headers: { "x-test": `h${i}` },
        })
      ).arrayBuffer();
    }
    await (await fetch(`${fake.url}/models?x=1`)).arrayBuffer();
    expect(fake.records.requestCounts).toEqual({ "/v1/chat/completions": 3, "/v1/models": 1 });
    expect(fake.records.requests).toHaveLength(2);
    const [a, b] = fake.records.requests;
    expect(a).toMatchObject({ method: "POST", path: "/v1/chat/completions", body: { max_tokens: 3 } });
    expect(a!.headers["x-test"]).toBe("h3");
    expect(b).toMatchObject({ method: "GET", path: "/v1/models", body: undefined });
    expect(fake.records.inFlight).toBe(0);

    const stats = (await (await fetch(`${fake.origin}/__stats`)).json()) as Json;
    expect(stats.requestCounts).toEqual({ "/v1/chat/completions": 3, "/v1/models": 1 });
    expect(fake.stats().requests).toHaveLength(2);

    const reset = await fetch(`${fake.origin}/__reset`, { method: "POST" });
    expect(reset.status).toBe(200);
    await reset.arrayBuffer();
    expect(fake.records.requestCounts).toEqual({});
    expect(fake.records.requests).toHaveLength(0);
  });

  it("counts requests in flight", async () => {
    const fake = await start({ ttftMs: 100 });
    const pending = [1, 2, 3].map(() => post(`${fake.url}/chat/completions`, chatBody({ max_tokens: 1 })));
    await sleep(50);
    expect(fake.records.inFlight).toBe(3);
    await Promise.all((await Promise.all(pending)).map((r) => r.json()));
    await fake.whenIdle();
    expect(fake.records.inFlight).toBe(0);
  });
});

describe("fault injection", () => {
  it("answers 429 with Retry-After for the next N requests, then recovers", async () => {
    const fake = await start();
    fake.failNext(429, { count: 2, retryAfter: 3, retryAfterMs: 2500 });
    expect(fake.pendingFaults()).toBe(2);
    for (let i = 0; i < 2; i++) {
      const res = await post(`${fake.url}/chat/completions`, chatBody());
      expect(res.status).toBe(429);
      expect(res.headers.get("retry-after")).toBe("3");
      expect(res.headers.get("retry-after-ms")).toBe("2500");
      expect(((await res.json()) as { error: Json }).error).toMatchObject({ code: "rate_limit_exceeded" });
    }
    const ok = await post(`${fake.url}/chat/completions`, chatBody());
    expect(ok.status).toBe(200);
    await ok.arrayBuffer();
    expect(fake.records.requestCounts["/v1/chat/completions"]).toBe(3);
  });

  it.each([429, 500, 502, 503])("answers %i without Retry-After when none is set", async (status) => {
    const fake = await start();
    fake.failNext(status);
    const res = await post(`${fake.url}/chat/completions`, chatBody({ stream: true }));
    expect(res.status).toBe(status);
    expect(res.headers.get("retry-after")).toBeNull();
    const body = (await res.json()) as { error: Json };
    expect(body.error).toHaveProperty("message");
    expect(body.error.type).toBe(status === 429 ? "rate_limit_exceeded" : "server_error");
  });

  it("leaves /health and /v1/models alone unless the fault names their path", async () => {
    const fake = await start();
    fake.failNext(500, { path: "/health" });
    expect((await fetch(`${fake.url}/models`)).status).toBe(200);
    expect((await fetch(`${fake.origin}/health`)).status).toBe(500);
    expect((await fetch(`${fake.origin}/health`)).status).toBe(200);
  });

  it("delays before headers so a client timeout fires, and records the abort", async () => {
    const fake = await start();
    fake.delayNext(1000);
    await expect(
      post(`${fake.url}/chat/completions`, chatBody(), { signal: AbortSignal.timeout(100) }),
    ).rejects.toThrow();
    await fake.whenIdle();
    expect(fake.records.abortedRequests).toBe(1);
    const t0 = performance.now();
    const ok = await post(`${fake.url}/chat/completions`, chatBody());
    expect(ok.status).toBe(200);
    await ok.arrayBuffer();
    expect(performance.now() - t0).toBeLessThan(500);
  });

  it("delays and then answers normally when the client waits", async () => {
    const fake = await start();
    fake.delayNext(150);
    const t0 = performance.now();
    const res = await post(`${fake.url}/chat/completions`, chatBody({ max_tokens: 2 }));
    expect(performance.now() - t0).toBeGreaterThanOrEqual(140);
    expect(((await res.json()) as Json).object).toBe("chat.completion");
  });

  it.each([0, 2])("drops the connection mid-stream after %i tokens", async (k) => {
    const fake = await start({ interTokenDelayMs: 5 });
    fake.dropNext(k);
    const res = await post(`${fake.url}/chat/completions`, chatBody({ stream: true, max_tokens: 10 }));
    expect(res.status).toBe(200);
    const reader = sse(res);
    const frames: string[] = [];
    await expect(
      (async () => {
        for (;;) {
          const f = await reader.next();
          if (f === null) return;
          frames.push(f);
        }
      })(),
    ).rejects.toThrow();
    expect(frames).not.toContain("[DONE]");
    const tokenFrames = frames.map((f) => JSON.parse(f) as Chunk).filter((c) => c.choices[0]?.delta?.content);
    expect(tokenFrames).toHaveLength(k);
    await fake.whenIdle();
    expect(fake.records.streams[0]).toMatchObject({
      dropped: true,
      aborted: false,
      completed: false,
      tokensSent: k,
    });
    expect(fake.records.abortedRequests).toBe(0);
  });

  it("drops a non-streaming request without answering (also with zero token delay)", async () => {
    const fake = await start();
    fake.dropNext(0);
    await expect(post(`${fake.url}/chat/completions`, chatBody())).rejects.toThrow();
    fake.dropNext(3);
    const res = await post(`${fake.url}/chat/completions`, chatBody({ stream: true, max_tokens: 10 }));
    const reader = sse(res);
    const frames: string[] = [];
    await expect(
      (async () => {
        for (let f = await reader.next(); f !== null; f = await reader.next()) frames.push(f);
      })(),
    ).rejects.toThrow();
    expect(frames).toHaveLength(1 + 3);
  });

  it("stalls mid-stream forever until the client gives up", async () => {
    const fake = await start();
    fake.stallNext(2);
    const controller = new AbortController();
    const res = await post(`${fake.url}/chat/completions`, chatBody({ stream: true, max_tokens: 10 }), {
      signal: controller.signal,
    });
    const reader = sse(res);
    for (let i = 0; i < 3; i++) expect(await reader.next()).not.toBeNull();
    const more = await Promise.race([reader.next().catch(() => "error"), sleep(300).then(() => "timeout")]);
    expect(more).toBe("timeout");
    expect(fake.records.streams[0]).toMatchObject({ stalled: true, tokensSent: 2, completed: false });
    expect(fake.records.inFlight).toBe(1);
    controller.abort();
    await fake.whenIdle();
    expect(fake.records.streams[0]).toMatchObject({ stalled: true, aborted: true });
  });

  it("answers garbage with status 200 (non-JSON body / non-JSON SSE frame)", async () => {
    const fake = await start();
    fake.garbageNext({ count: 2 });
    const plain = await post(`${fake.url}/chat/completions`, chatBody());
    expect(plain.status).toBe(200);
    await expect(plain.json()).rejects.toThrow();
    const stream = await post(`${fake.url}/chat/completions`, chatBody({ stream: true }));
    expect(stream.status).toBe(200);
    const frames = await sse(stream).all();
    expect(frames).toHaveLength(1);
    expect(() => JSON.parse(frames[0]!)).toThrow();
    expect(fake.pendingFaults()).toBe(0);
  });

  it("takes faults over HTTP: POST /__fault, POST /__config, POST /__reset", async () => {
    const fake = await start();
    const set = await post(`${fake.origin}/__fault`, [
      { type: "status", status: 503, retryAfter: 1, count: 1 },
      { type: "status", status: 502, count: -1, path: "/v1/embeddings" },
    ]);
    expect(set.status).toBe(200);
    expect(((await set.json()) as Json).ok).toBe(true);
    const first = await post(`${fake.url}/chat/completions`, chatBody());
    expect(first.status).toBe(503);
    expect(first.headers.get("retry-after")).toBe("1");
    await first.arrayBuffer();
    for (let i = 0; i < 3; i++) {
      const e = await post(`${fake.url}/embeddings`, { model: "m", input: "x" });
      expect(e.status).toBe(502);
      await e.arrayBuffer();
    }
    const bad = await post(`${fake.origin}/__fault`, { type: "explode" });
    expect(bad.status).toBe(400);
    await bad.arrayBuffer();

    const config = await post(`${fake.origin}/__config`, { usageMode: "every-chunk", defaultMaxTokens: 2 });
    expect(config.status).toBe(200);
    await config.arrayBuffer();
    const chunks = await streamChunks(await post(`${fake.url}/chat/completions`, chatBody({ stream: true })));
    expect(chunks.at(-1)).toMatchObject({ choices: [], usage: { completion_tokens: 2 } });

    await (await post(`${fake.origin}/__reset`, {})).arrayBuffer();
    expect(fake.pendingFaults()).toBe(0);
    const e = await post(`${fake.url}/embeddings`, { model: "m", input: "x" });
    expect(e.status).toBe(200);
    await e.arrayBuffer();
    expect(fake.records.requestCounts).toEqual({ "/v1/embeddings": 1 });
  });
});

describe("separate-process mode", () => {
  it("prints {port} on stdout and serves with the CLI options", async () => {
    const child = spawn(
      process.execPath,
      [
        "-r",
        "tsx/cjs",
        "test/fakes/vllm-upstream.ts",
        "--port",
        "0",
        "--model",
        "cli-model",
        "--api-key",
        "secret",
        "--boot-delay-ms",
        "200",
      ],
      { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] },
    );
    children.push(child);
    let stderr = "";
    child.stderr!.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const line = await new Promise<string>((resolve, reject) => {
      let out = "";
      child.stdout!.on("data", (d: Buffer) => {
        out += d.toString();
        const nl = out.indexOf("\n");
        if (nl !== -1) resolve(out.slice(0, nl));
      });
      child.once("exit", (code) => reject(new Error(`exited ${code}: ${stderr}`)));
    });
    const { port } = JSON.parse(line) as { port: number };
    expect(port).toBeGreaterThan(0);
    const origin = `http://127.0.0.1:${port}`;
    const auth = { authorization: "Bearer secret" };

    const booting = await fetch(`${origin}/health`);
    expect(booting.status).toBe(503);
    await booting.arrayBuffer();
    await sleep(250);
    expect((await fetch(`${origin}/health`)).status).toBe(200);
    const models = (await (await fetch(`${origin}/v1/models`, { headers: auth })).json()) as { data: Json[] };
    expect(models.data[0]).toMatchObject({ id: "cli-model", owned_by: "vllm" });
    expect((await fetch(`${origin}/v1/models`)).status).toBe(401);

    await (await post(`${origin}/__fault`, { type: "status", status: 500 })).arrayBuffer();
    const failed = await post(`${origin}/v1/chat/completions`, chatBody({ model: "cli-model" }), {
      headers: auth,
    });
    expect(failed.status).toBe(500);
    await failed.arrayBuffer();
    const ok = (await (
      await post(`${origin}/v1/chat/completions`, chatBody({ model: "cli-model", max_tokens: 2 }), {
        headers: auth,
      })
    ).json()) as { usage: Json };
    expect(ok.usage).toEqual({ prompt_tokens: CHAT_PROMPT_TOKENS, completion_tokens: 2, total_tokens: 8 });
    const stats = (await (await fetch(`${origin}/__stats`)).json()) as { requestCounts: Json };
    expect(stats.requestCounts["/v1/chat/completions"]).toBe(2);

    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
  });
});

describe("responses, rerank and score (vLLM's shapes)", () => {
  /** The frames of a Responses stream: each `event: <type>` + `data: <json>`, the type repeated in the data. */
  async function responseEvents(res: Response): Promise<Json[]> {
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const frames = (await res.text()).split("\n\n").filter((f) => f.length > 0);
    return frames.map((frame) => {
      const [eventLine, dataLine, ...rest] = frame.split("\n");
      expect(rest).toEqual([]);
      expect(eventLine).toMatch(/^event: [a-z_.]+$/);
      expect(dataLine).toMatch(/^data: \{/);
      const data = JSON.parse(dataLine!.slice("data: ".length)) as Json;
      expect(data.type).toBe(eventLine!.slice("event: ".length));
      return data;
    });
  }

  it("answers a whole Response with one output_text message and input/output token usage", async () => {
    const fake = await start();
    const res = await post(`${fake.url}/responses`, {
      model: "m",
      input: [{ role: "user", content: [{ type: "input_text", text: "three words here" }] }],
      instructions: "be brief",
      max_output_tokens: 4,
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Json & { output: Json[]; usage: Json };
    expect(body).toMatchObject({
      object: "response",
      status: "completed",
      model: "m",
      instructions: "be brief",
    });
    expect(body.output).toEqual([
      expect.objectContaining({
        type: "message",
        role: "assistant",
        status: "completed",
        content: [
          expect.objectContaining({ type: "output_text", text: fakeCompletionText(5, 4), annotations: [] }),
        ],
      }),
    ]);
    expect(body.usage).toMatchObject({ input_tokens: 5, output_tokens: 4, total_tokens: 9 });
  });

  it("streams the typed events in vLLM's order, numbered from 0, ending with response.completed (no [DONE])", async () => {
    const fake = await start();
    const events = await responseEvents(
      await post(`${fake.url}/responses`, { model: "m", input: "hello", max_output_tokens: 2, stream: true }),
    );
    expect(events.map((e) => e.type)).toEqual([
      "response.created",
      "response.in_progress",
      "response.output_item.added",
      "response.content_part.added",
      "response.output_text.delta",
      "response.output_text.delta",
      "response.output_text.done",
      "response.content_part.done",
      "response.output_item.done",
      "response.completed",
    ]);
    expect(events.map((e) => e.sequence_number)).toEqual(events.map((_, i) => i));
    expect((events[0]!.response as Json).usage).toBeNull();
    const completed = events.at(-1)!.response as Json;
    expect(completed.usage).toMatchObject({ input_tokens: 1, output_tokens: 2 });
    expect(
      events
        .filter((e) => e.type === "response.output_text.delta")
        .map((e) => e.delta)
        .join(""),
    ).toBe(fakeCompletionText(1, 2));
  });

  it("answers 404 for a previous_response_id (nothing is stored) and 400 without input", async () => {
    const fake = await start();
    expect(
      (await post(`${fake.url}/responses`, { model: "m", input: "x", previous_response_id: "r" })).status,
    ).toBe(404);
    expect((await post(`${fake.url}/responses`, { model: "m" })).status).toBe(400);
  });

  it("reranks documents best first, top_n of them, with usage total_tokens", async () => {
    const fake = await start();
    const res = await post(`${fake.url}/rerank`, {
      model: "m",
      query: "q",
      documents: ["a b", "c", "d e f"],
      top_n: 2,
    });
    const body = (await res.json()) as {
      results: Array<{ index: number; relevance_score: number }>;
      usage: Json;
    };
    expect(body.results).toHaveLength(2);
    expect(body.results[0]!.relevance_score).toBeGreaterThanOrEqual(body.results[1]!.relevance_score);
    expect(body.usage).toEqual({ total_tokens: 3 + 2 + 1 + 3 });
  });

  it("scores text_1 against each text_2", async () => {
    const fake = await start();
    const res = await post(`${fake.url}/score`, { model: "m", text_1: "same", text_2: ["same", "other"] });
    const body = (await res.json()) as { object: string; data: Array<{ index: number; score: number }> };
    expect(body.object).toBe("list");
    expect(body.data.map((d) => d.index)).toEqual([0, 1]);
    expect(body.data[0]!.score).toBeCloseTo(1, 5);
    expect((await post(`${fake.url}/score`, { model: "m", text_1: ["a", "b"], text_2: ["c"] })).status).toBe(
      400,
    );
  });
});

describe("audio transcriptions (vLLM 0.10.1.1's shape)", () => {
  const transcribe = (fake: FakeVllm, fields: Record<string, string>, audioBytes?: number) => {
    const data = new FormData();
    for (const [name, value] of Object.entries(fields)) data.append(name, value);
    if (audioBytes !== undefined) data.append("file", new Blob([new Uint8Array(audioBytes)]), "a.wav");
    return fetch(`${fake.url}/audio/transcriptions`, { method: "POST", body: data });
  };

  it("answers { text } as JSON for json and text, without usage; records the upload's bytes", async () => {
    const fake = await start();
    for (const format of ["json", "text"]) {
      const res = await transcribe(fake, { model: "m", response_format: format }, 64_001);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toMatch(/^application\/json/);
      const body = (await res.json()) as Json;
      expect(Object.keys(body)).toEqual(["text"]);
      expect(String(body.text).split(/\s+/)).toHaveLength(3);
    }
    const record = fake.records.requests.at(-1)!;
    expect(record.body).toMatchObject({ model: "m", response_format: "text", file: { filename: "a.wav" } });
    expect(record.rawBytes!.length).toBeGreaterThan(64_001);
  });

  it("refuses verbose_json, a missing file and an unknown model as vLLM does", async () => {
    const fake = await start();
    expect((await transcribe(fake, { model: "m", response_format: "verbose_json" }, 10)).status).toBe(400);
    expect((await transcribe(fake, { model: "m" })).status).toBe(400);
    expect((await transcribe(fake, { model: "other" }, 10)).status).toBe(404);
  });
});
