/**
 * The Responses API (`POST /v1/responses`) through a real gateway on a real Redis, against the vLLM-like fake:
 * the official `openai` client (plain and streaming), the Vercel AI SDK's default provider (which calls
 * /v1/responses), usage accounting from `input_tokens`/`output_tokens`, waiting at zero, broken streams, and the
 * routes a model's kind and engine do not serve.
 */
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, streamText } from "ai";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHarness, type Harness, type MemorySink, readSse, testRuntimeConfig } from "./harness";

let h: Harness;
let url: string;
let opsUrl: string;
let audit: MemorySink;
let key: string;
let client: OpenAI;

beforeAll(async () => {
  h = await createHarness({
    config: (localUrl, prefix) =>
      testRuntimeConfig(localUrl, prefix, {
        models: `[
          { name: chat, kind: chat, source: o/chat, gpu: [RTX_3090], providers: [local] },
          { name: embed, kind: embedding, source: o/embed, gpu: [RTX_3090], providers: [local] },
          { name: cold, kind: chat, source: o/cold, gpu: [RTX_3090], providers: [vastai], queueTimeoutSeconds: 5 },
          { name: tgi-chat, kind: chat, engine: tgi, source: o/tgi, gpu: [RTX_3090], providers: [local] }
        ]`,
      }),
  });
  ({ url, opsUrl, audit } = await h.start());
  key = await h.createKey();
  client = new OpenAI({ apiKey: key, baseURL: `${url}/v1`, maxRetries: 0 });
});
afterAll(async () => {
  await h.close();
});

const post = (body: unknown) =>
  fetch(`${url}/v1/responses`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });

/** The audit line of the last request that reached the Responses endpoint. */
const lastResponseAudit = () => audit.entries.filter((e) => e.endpoint === "response").at(-1)!;

describe("the Responses API through the official openai client", () => {
  it("responses.create answers the whole response, with usage booked as prompt and completion tokens", async () => {
    const response = await client.responses.create({
      model: "chat",
      input: "say three words",
      max_output_tokens: 6,
    });
    expect(response.object).toBe("response");
    expect(response.status).toBe("completed");
    expect(response.output_text.trim().split(/\s+/)).toHaveLength(6);
    expect(response.usage).toMatchObject({ input_tokens: 3, output_tokens: 6, total_tokens: 9 });
    // the engine got the client's own body, untouched (no stream_options spliced in)
    const sent = h.fake.records.requests.at(-1)!;
    expect(sent.path).toBe("/v1/responses");
    expect(JSON.parse(sent.rawBody)).toEqual({
      model: "chat",
      input: "say three words",
      max_output_tokens: 6,
    });
    const entry = lastResponseAudit();
    expect(entry).toMatchObject({
      model: "chat",
      status: 200,
      stream: false,
      promptTokens: 3,
      completionTokens: 6,
    });
  });

  it("stream: true relays the typed events in order and books the usage of response.completed", async () => {
    const stream = await client.responses.create({
      model: "chat",
      input: [{ role: "user", content: "four words in here" }],
      instructions: "be brief",
      max_output_tokens: 5,
      stream: true,
    });
    const types: string[] = [];
    let text = "";
    let completed: OpenAI.Responses.Response | undefined;
    for await (const event of stream) {
      types.push(event.type);
      if (event.type === "response.output_text.delta") text += event.delta;
      if (event.type === "response.completed") completed = event.response;
    }
    expect(types.slice(0, 4)).toEqual([
      "response.created",
      "response.in_progress",
      "response.output_item.added",
      "response.content_part.added",
    ]);
    expect(types.filter((t) => t === "response.output_text.delta")).toHaveLength(5);
    expect(types.at(-1)).toBe("response.completed");
    expect(text.trim().split(/\s+/)).toHaveLength(5);
    const item = completed?.output[0];
    expect(item?.type === "message" ? item.content[0] : undefined).toMatchObject({
      type: "output_text",
      text,
    });
    // input words (4) and instructions (2)
    expect(completed?.usage).toMatchObject({ input_tokens: 6, output_tokens: 5 });
    const entry = lastResponseAudit();
    expect(entry).toMatchObject({ status: 200, stream: true, promptTokens: 6, completionTokens: 5 });
    expect(entry.ttftMs).not.toBeNull();
    const metrics = await (await fetch(`${opsUrl}/metrics`)).text();
    expect(metrics).toMatch(/aiorch_gateway_tokens_total\{model="chat",type="completion"\} \d+/);
  });

  it("each event is relayed with its event: line, and no [DONE] is added", async () => {
    const response = await post({ model: "chat", input: "hi", max_output_tokens: 2, stream: true });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const frames = await readSse(response);
    expect(frames.every((f) => f.startsWith("event: response."))).toBe(true);
    expect(frames.some((f) => f.includes("[DONE]"))).toBe(false);
    const numbers = frames.map(
      (f) => (JSON.parse(f.slice(f.indexOf("data:") + 5)) as { sequence_number: number }).sequence_number,
    );
    expect(numbers).toEqual(numbers.map((_, i) => i));
  });
});

describe("the Vercel AI SDK's default provider (which calls /v1/responses)", () => {
  const provider = () => createOpenAI({ apiKey: key, baseURL: `${url}/v1` });

  it("generateText", async () => {
    const before = h.fake.records.requestCounts["/v1/responses"] ?? 0;
    const result = await generateText({
      model: provider()("chat"),
      prompt: "hello there",
      maxOutputTokens: 4,
    });
    expect(result.text.trim().split(/\s+/)).toHaveLength(4);
    expect(result.usage.inputTokens).toBe(2);
    expect(result.usage.outputTokens).toBe(4);
    expect(h.fake.records.requestCounts["/v1/responses"]).toBe(before + 1);
  });

  it("streamText", async () => {
    const result = streamText({ model: provider()("chat"), prompt: "one two three", maxOutputTokens: 3 });
    const text = await result.text;
    expect(text.trim().split(/\s+/)).toHaveLength(3);
    expect((await result.usage).outputTokens).toBe(3);
    expect(lastResponseAudit()).toMatchObject({ stream: true, promptTokens: 3, completionTokens: 3 });
  });
});

describe("a Responses request to a model at zero", () => {
  it("waits (streaming, with keep-alives) and completes once a worker is ready; its time is billed", async () => {
    const pending = post({ model: "cold", input: "wake up", max_output_tokens: 3, stream: true });
    setTimeout(() => void h.addRoute("cold", { baseUrl: h.fake.url, workerId: "w-cold" }), 1_300);
    try {
      const response = await pending;
      expect(response.status).toBe(200);
      const frames = await readSse(response);
      expect(frames[0]?.startsWith(":")).toBe(true); // a keep-alive comment while the worker booted
      expect(frames.at(-1)).toMatch(/^event: response\.completed/);
      const entry = lastResponseAudit();
      expect(entry).toMatchObject({ model: "cold", backend: "w-cold", status: 200, completionTokens: 3 });
      expect(entry.queueMs).toBeGreaterThanOrEqual(1_000);
      expect(entry.costUsd).toBeGreaterThan(0);
    } finally {
      await h.removeRoutes("cold");
    }
  });
});

describe("faults and refusals", () => {
  it("a worker that goes away mid-stream: the client gets a Responses error event, not [DONE]", async () => {
    h.fake.dropNext(2, { path: "/v1/responses" });
    const response = await post({ model: "chat", input: "hi", max_output_tokens: 6, stream: true });
    const frames = await readSse(response);
    const last = frames.at(-1)!;
    expect(last.startsWith("event: error\n")).toBe(true);
    const error = JSON.parse(last.slice(last.indexOf("data:") + 5)) as Record<string, unknown>;
    expect(error).toMatchObject({ type: "error", code: "stream_broken", param: null });
    expect(error.sequence_number).toBe(frames.length - 1);
    expect(frames.some((f) => f.includes("[DONE]"))).toBe(false);
    expect(lastResponseAudit()).toMatchObject({ status: 502, error: "stream_broken" });
  });

  it("the official client reads the broken stream's error as its typed error event", async () => {
    h.fake.dropNext(1, { path: "/v1/responses" });
    const stream = await client.responses.create({ model: "chat", input: "hi", stream: true });
    const events: OpenAI.Responses.ResponseStreamEvent[] = [];
    for await (const event of stream) events.push(event);
    expect(events.at(-1)).toMatchObject({
      type: "error",
      code: "stream_broken",
      message: expect.stringMatching(/stopped before the answer was complete/),
    });
    expect(events.some((e) => e.type === "response.completed")).toBe(false);
  });

  it("an engine's 4xx before the stream started reaches the client as an OpenAI error with its status", async () => {
    h.fake.failNext(400, { path: "/v1/responses", message: "input is too long for /srv/models/x" });
    const error = await client.responses.create({ model: "chat", input: "hi", stream: true }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect((error as InstanceType<typeof OpenAI.BadRequestError>).message).not.toContain("/srv/models");
  });

  it("a streaming client held at zero gets the engine's error as a typed error event", async () => {
    h.fake.failNext(400, { path: "/v1/responses", message: "bad input" });
    const pending = post({ model: "cold", input: "x", stream: true });
    setTimeout(() => void h.addRoute("cold", { baseUrl: h.fake.url, workerId: "w-cold-2" }), 1_300);
    try {
      const frames = await readSse(await pending);
      expect(frames[0]?.startsWith(":")).toBe(true);
      const last = frames.at(-1)!;
      expect(last.startsWith("event: error\n")).toBe(true);
      expect(JSON.parse(last.slice(last.indexOf("data:") + 5))).toMatchObject({
        type: "error",
        message: "bad input",
        sequence_number: 0,
      });
    } finally {
      await h.removeRoutes("cold");
    }
  });

  it("a model whose kind does not serve /v1/responses: 404 naming the kinds that do", async () => {
    const response = await post({ model: "embed", input: "x" });
    expect(response.status).toBe(404);
    const { error } = (await response.json()) as { error: Record<string, unknown> };
    expect(error).toMatchObject({ code: "wrong_endpoint", param: "model", type: "invalid_request_error" });
    expect(error.message).toMatch(/embedding model; \/v1\/responses serves chat models only/);
  });

  it("a model whose engine does not serve /v1/responses: 400 naming the engine and what to call instead", async () => {
    const before = h.fake.records.requestCounts["/v1/responses"] ?? 0;
    const response = await post({ model: "tgi-chat", input: "x" });
    expect(response.status).toBe(400);
    const { error } = (await response.json()) as { error: Record<string, unknown> };
    expect(error).toMatchObject({ code: "route_not_served_by_engine", param: "model" });
    expect(error.message).toMatch(/runs on tgi 3\.3\.4, which does not serve \/v1\/responses/);
    expect(error.message).toMatch(/call \/v1\/chat\/completions or \/v1\/completions instead/);
    expect(error.message).toMatch(/engines that serve \/v1\/responses: vllm/);
    expect(h.fake.records.requestCounts["/v1/responses"] ?? 0).toBe(before); // refused before anything upstream
  });

  it("bad bodies get OpenAI-shaped 400s naming the field", async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ model: "chat" }, "input"],
      [{ model: "chat", input: [] }, "input"],
      [{ model: "chat", input: "x", previous_response_id: "resp_1" }, "previous_response_id"],
      [{ model: "chat", input: "x", background: true }, "background"],
      [{ model: "chat", input: "x", max_output_tokens: 0 }, "max_output_tokens"],
      [{ model: "chat", input: "x", stream: "yes" }, "stream"],
    ];
    for (const [body, param] of cases) {
      const response = await post(body);
      expect(response.status, JSON.stringify(body)).toBe(400);
      const { error } = (await response.json()) as { error: { param: string } };
      expect(error.param).toBe(param);
    }
  });

  it("is not an async job endpoint", async () => {
    const response = await fetch(`${url}/v1/jobs`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ endpoint: "/v1/responses", body: { model: "chat", input: "x" } }),
    });
    expect(response.status).toBe(400);
  });
});
