/**
 * Issue 20: a backend's error answers reach clients as OpenAI errors with a bounded, scrubbed message — never the
 * backend's own bytes (its file paths, addresses and tokens). Through a gateway on a real port and real Redis, with
 * the fake vLLM and a small node:http backend that answers what each test sets.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isErrorEnvelope, scrubUpstreamMessage, upstreamErrorBody } from "../../gateway/errors";
import { createHarness, type Harness, readSse } from "./harness";

/** What a careless backend puts into its error text. */
const SECRETS = [
  "/home/secret/path",
  "10.0.3.7",
  "10.0.3.7:8000",
  "sk-live-abc123def456ghi789",
  "hf_XXXX",
  "hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
  "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ3b3JrZXIifQ.c2lnbmF0dXJl",
  "3f9a1c0be27d4e5fa6b7c8d9e0f1a2b3c4d5e6f7",
  "worker-token-123456",
  "vllm-0.vllm.gpu.svc.cluster.local",
  "C:\\Users\\ops\\models",
  "hunter2",
];
const LEAKY = [
  "This model's maximum context length is 4096 tokens.",
  "Failed to load /home/secret/path/model.safetensors from http://10.0.3.7:8000/v1/models",
  "(worker 10.0.3.7:8000, key sk-live-abc123def456ghi789, hf_XXXX, hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789)",
  "Authorization: Bearer worker-token-123456 token=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ3b3JrZXIifQ.c2lnbmF0dXJl",
  "commit 3f9a1c0be27d4e5fa6b7c8d9e0f1a2b3c4d5e6f7 on vllm-0.vllm.gpu.svc.cluster.local,",
  'cache "C:\\Users\\ops\\models", password: hunter2',
].join(" ");

function expectClean(text: string) {
  for (const secret of SECRETS) expect(text, `leaks ${secret}`).not.toContain(secret);
}

type OpenAiError = { error: { message: string; type: string; param: unknown; code: unknown } };

function expectOpenAiError(body: unknown): OpenAiError["error"] {
  const error = (body as OpenAiError).error;
  expect(Object.keys(body as object)).toEqual(["error"]);
  expect(Object.keys(error).sort()).toEqual(["code", "message", "param", "type"]);
  expect(typeof error.message).toBe("string");
  expect(error.message.length).toBeGreaterThan(0);
  expect(error.message.length).toBeLessThanOrEqual(500);
  expectClean(JSON.stringify(error));
  expectClean(error.message);
  return error;
}

let h: Harness;
let url: string;
let key: string;
/** A backend of the `cold` model whose answer each test sets. */
let backend: Server;
let answer: { status: number; contentType?: string; body: string } = { status: 200, body: "{}" };

beforeAll(async () => {
  h = await createHarness();
  ({ url } = await h.start());
  key = await h.createKey();
  backend = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      res.writeHead(answer.status, answer.contentType ? { "content-type": answer.contentType } : {});
      res.end(answer.body);
    });
  });
  await new Promise<void>((resolve) => backend.listen(0, "127.0.0.1", resolve));
  await h.addRoute("cold", {
    baseUrl: `http://127.0.0.1:${(backend.address() as AddressInfo).port}/v1`,
    workerId: "w-leaky",
  });
});
afterAll(async () => {
  backend.closeAllConnections();
  await new Promise((resolve) => backend.close(resolve));
  await h.close();
});

const post = (model: string, body: Record<string, unknown> = {}) =>
  fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ model, messages: [{ role: "user", content: "hi" }], max_tokens: 3, ...body }),
  });

describe("a backend's 4xx reaches the client as an OpenAI error with a scrubbed message", () => {
  it("the fake vLLM's 400 (OpenAI shape): status kept, the message kept without paths, addresses or tokens", async () => {
    h.fake.failNext(400, { message: LEAKY });
    const response = await post("chat");
    expect(response.status).toBe(400);
    expect(response.headers.get("content-type")).toMatch(/^application\/json/);
    const text = await response.text();
    expectClean(text);
    const error = expectOpenAiError(JSON.parse(text));
    expect(error.type).toBe("invalid_request_error");
    expect(error.message).toContain("This model's maximum context length is 4096 tokens.");
    expect(error.message).toContain("[path]");
    expect(error.message).toContain("[url]");
    expect(error.message).toContain("[address]");
    expect(error.message).toContain("[redacted]");
  });

  it("the same for a client that asked to stream (the backend answered before any stream)", async () => {
    h.fake.failNext(400, { message: LEAKY });
    const response = await post("chat", { stream: true });
    expect(response.status).toBe(400);
    const text = await response.text();
    expectClean(text);
    expect(expectOpenAiError(JSON.parse(text)).message).toContain("maximum context length");
  });

  it("a streaming client held through a cold start gets the scrubbed error as its event", async () => {
    await h.removeRoutes("cold");
    answer = {
      status: 400,
      contentType: "application/json",
      body: JSON.stringify({ error: { message: LEAKY } }),
    };
    try {
      const pending = post("cold", { stream: true });
      // the harness sends a keep-alive comment every second: the client's stream has started by then
      setTimeout(
        () =>
          void h.addRoute("cold", {
            baseUrl: `http://127.0.0.1:${(backend.address() as AddressInfo).port}/v1`,
            workerId: "w-leaky",
          }),
        1_500,
      );
      const response = await pending;
      expect(response.status).toBe(200);
      const frames = await readSse(response);
      expectClean(frames.join("\n"));
      const event = frames.find((f) => f.startsWith("{"));
      expect(expectOpenAiError(JSON.parse(event!)).message).toContain("maximum context length");
    } finally {
      answer = { status: 200, body: "{}" };
    }
  });

  it("an error event the backend sends in the middle of its stream reaches the client scrubbed", async () => {
    const chunk = {
      id: "c1",
      object: "chat.completion.chunk",
      created: 1,
      model: "cold",
      choices: [{ index: 0, delta: { content: "Hel" }, finish_reason: null }],
    };
    answer = {
      status: 200,
      contentType: "text/event-stream",
      body: `data: ${JSON.stringify(chunk)}\n\ndata: ${JSON.stringify({
        error: { object: "error", message: LEAKY, type: "InternalServerError", param: null, code: 500 },
      })}\n\ndata: [DONE]\n\n`,
    };
    try {
      const response = await post("cold", { stream: true });
      expect(response.status).toBe(200);
      const frames = await readSse(response);
      expectClean(frames.join("\n"));
      expect(JSON.parse(frames[0]!).choices[0].delta.content).toBe("Hel");
      const error = expectOpenAiError(JSON.parse(frames[1]!));
      expect(error.message).toContain("maximum context length");
      expect(error.type).toBe("upstream_error");
      expect(frames.at(-1)).toBe("[DONE]");
    } finally {
      answer = { status: 200, body: "{}" };
    }
  });

  it("vLLM's flat error shape: param kept when it is a plain name, the numeric code dropped", async () => {
    answer = {
      status: 422,
      contentType: "application/json",
      body: JSON.stringify({
        object: "error",
        message: LEAKY,
        type: "BadRequestError",
        param: "messages",
        code: 422,
      }),
    };
    const response = await post("cold");
    expect(response.status).toBe(422);
    const text = await response.text();
    expectClean(text);
    const error = expectOpenAiError(JSON.parse(text));
    expect(error).toMatchObject({ type: "invalid_request_error", param: "messages", code: null });
  });

  it("FastAPI's detail, a plain-text body and an HTML page; param and code that are not plain names are dropped", async () => {
    answer = {
      status: 400,
      contentType: "application/json",
      body: JSON.stringify({ detail: LEAKY, param: "x" }),
    };
    let response = await post("cold");
    expect(response.status).toBe(400);
    let text = await response.text();
    expectClean(text);
    expect(expectOpenAiError(JSON.parse(text)).message).toContain("maximum context length");

    answer = { status: 409, contentType: "text/plain; charset=utf-8", body: LEAKY };
    response = await post("cold");
    expect(response.status).toBe(409);
    text = await response.text();
    expectClean(text);
    expect(expectOpenAiError(JSON.parse(text)).message).toContain("maximum context length");

    answer = { status: 400, contentType: "text/html", body: `<html><body><pre>${LEAKY}</pre></body></html>` };
    response = await post("cold");
    expect(response.status).toBe(400);
    text = await response.text();
    expectClean(text);
    expect(expectOpenAiError(JSON.parse(text)).message).toBe(
      "the model's backend answered 400 (Bad Request)",
    );

    answer = {
      status: 400,
      contentType: "application/json",
      body: JSON.stringify({
        error: { message: "bad", param: "/home/secret/path", code: "sk-live-abc123def456ghi789" },
      }),
    };
    response = await post("cold");
    text = await response.text();
    expectClean(text);
    expect(expectOpenAiError(JSON.parse(text))).toMatchObject({ message: "bad", param: null, code: null });
    answer = { status: 200, body: "{}" };
  });

  it("a long message is cut to 500 characters; a huge body is not parsed and gives a generic message", async () => {
    answer = {
      status: 400,
      contentType: "application/json",
      body: JSON.stringify({ error: { message: `${"word ".repeat(400)}${LEAKY}`, code: "too_long" } }),
    };
    let response = await post("cold");
    let text = await response.text();
    expectClean(text);
    let error = expectOpenAiError(JSON.parse(text));
    expect(error.message.length).toBe(500);
    expect(error.message.endsWith("…")).toBe(true);
    expect(error.code).toBe("too_long");

    answer = {
      status: 400,
      contentType: "application/json",
      body: JSON.stringify({ error: { message: `${LEAKY} ${"x".repeat(100_000)}` } }),
    };
    response = await post("cold");
    expect(response.status).toBe(400);
    text = await response.text();
    expectClean(text);
    error = expectOpenAiError(JSON.parse(text));
    expect(error.message).toBe("the model's backend answered 400 (Bad Request)");
    answer = { status: 200, body: "{}" };
  });
});

describe("scrubUpstreamMessage", () => {
  it("keeps ordinary words, numbers, model names and parameter values", () => {
    for (const text of [
      "This model's maximum context length is 4096 tokens. However, you requested 100003 tokens (3 in the messages, 100000 in the completion).",
      "max_tokens=100 must be at most 4096",
      "The model `meta-llama/Llama-3.1-8B-Instruct` does not support tools; Qwen2VLForConditionalGeneration is multimodal.",
      "temperature must be between 0.0 and 2.0, got 3.5",
    ])
      expect(scrubUpstreamMessage(text)).toBe(text);
  });

  it("replaces URLs, addresses, paths and credentials word by word, keeping quotes and punctuation", () => {
    expect(scrubUpstreamMessage('could not read "/root/.cache/huggingface/hub/x" (see http://host/a).')).toBe(
      'could not read "[path]" (see [url]).',
    );
    expect(scrubUpstreamMessage("at 192.168.1.20:8000, [::1]:8000, fe80::1 and vllm:8000")).toBe(
      "at [address], [address], [address] and [address]",
    );
    expect(scrubUpstreamMessage("Bearer abc.def password=pa55word secret: s3cr3t ghp_abcdefghijklmnop")).toBe(
      "Bearer [redacted] [redacted] secret: [redacted] [redacted]",
    );
    expect(scrubUpstreamMessage("key AKIAIOSFODNN7EXAMPLE and Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA==")).toBe(
      "key [redacted] and [redacted]",
    );
  });

  it("keeps clock times, API routes, package and env names; catches one-segment paths and short random keys", () => {
    for (const text of [
      "the request timed out at 12:30:45 (after 00:01:30.5)",
      "POST /v1/chat/completions is not served here; try /v1/completions",
      "install hf_transfer or unset HF_HUB_ENABLE_HF_TRANSFER; sk-learn is not needed",
      "Qwen2VLForCausalLM, Phi3ForCausalLM and Llama4ForConditionalGeneration are supported",
    ])
      expect(scrubUpstreamMessage(text)).toBe(text);
    expect(
      scrubUpstreamMessage("cannot write /workspace or ~/.cache, nor /root; /config.json is missing"),
    ).toBe("cannot write [path] or [path], nor [path]; [path] is missing");
    expect(scrubUpstreamMessage("keys sk-abc1 hf_AbCdEfGhIjKlMnOp and a8F3kL9pQ2xZ7mN1 were refused")).toBe(
      "keys [redacted] [redacted] and [redacted] were refused",
    );
    expect(scrubUpstreamMessage("route /v2/abc123def/openai/v1 and 2001:db8:0:0:0:0:0:1")).toBe(
      "route [path] and [address]",
    );
  });

  it("one line: control and bidi characters become spaces; words over 200 characters are dropped", () => {
    expect(scrubUpstreamMessage("a\nb\r\n\tc\u001b[31m d\u202ee")).toBe("a b c [31m d e");
    expect(scrubUpstreamMessage(`x ${"y".repeat(201)} z`)).toBe("x [redacted] z");
  });

  it("a message cut off drops its last word; the result is at most the limit, ending with …", () => {
    expect(scrubUpstreamMessage("failed with sk-li", true)).toBe("failed with");
    const long = scrubUpstreamMessage("ab ".repeat(1_000), false, 50);
    expect(long.length).toBe(50);
    expect(long.endsWith("…")).toBe(true);
    expect(scrubUpstreamMessage("😀".repeat(30), false, 8).length).toBeLessThanOrEqual(8);
  });

  it("is linear: a 16 KiB message of hostile words takes milliseconds", () => {
    const hostile = `${"a.".repeat(90)}:1 ${"/a".repeat(90)} ${"1.".repeat(90)}`.repeat(50);
    const started = performance.now();
    scrubUpstreamMessage(hostile, false, 100_000);
    expect(performance.now() - started).toBeLessThan(200);
  });
});

describe("upstreamErrorBody", () => {
  it("types follow the status; a body without a message names the status", () => {
    const empty = new Uint8Array();
    expect(upstreamErrorBody(400, "", empty).error).toEqual({
      message: "the model's backend answered 400 (Bad Request)",
      type: "invalid_request_error",
      param: null,
      code: null,
    });
    expect(upstreamErrorBody(302, "", empty).error.type).toBe("upstream_error");
    expect(upstreamErrorBody(403, "", empty).error.type).toBe("permission_error");
    expect(
      upstreamErrorBody(400, "application/json", Buffer.from('{"error":"plain string"}')).error.message,
    ).toBe("plain string");
    expect(
      upstreamErrorBody(
        422,
        "application/json",
        Buffer.from(
          JSON.stringify({ detail: [{ loc: ["body", "x"], msg: "field required", type: "missing" }] }),
        ),
      ).error.message,
    ).toBe("field required");
  });
});

/** The job once it has failed or succeeded (polled every 50 ms, for at most 5 s). */
async function finishedJob(id: string): Promise<Record<string, unknown>> {
  let job: Record<string, unknown> = {};
  for (let i = 0; i < 100 && job.status !== "failed" && job.status !== "succeeded"; i++) {
    await new Promise((r) => setTimeout(r, 50));
    job = (await (
      await fetch(`${url}/v1/jobs/${id}`, { headers: { authorization: `Bearer ${key}` } })
    ).json()) as Record<string, unknown>;
  }
  return job;
}

describe("an async job whose worker refuses it", () => {
  it("fails with the worker's error reshaped and scrubbed, as an inference request gets it", async () => {
    answer = {
      status: 400,
      contentType: "application/json",
      body: JSON.stringify({ error: { message: LEAKY } }),
    };
    const submitted = await fetch(`${url}/v1/jobs`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({
        endpoint: "/v1/chat/completions",
        body: { model: "cold", messages: [{ role: "user", content: "hi" }], max_tokens: 3 },
      }),
    });
    expect(submitted.status).toBe(202);
    const { id } = (await submitted.json()) as { id: string };
    const job = await finishedJob(id);
    expect(job.status, JSON.stringify(job)).toBe("failed");
    const text = JSON.stringify(job);
    expectClean(text);
    expect(text).toContain("maximum context length is 4096 tokens");
  });
});

describe("an error a worker behind a job queue answers as a 200 (worker-vllm's job output on RunPod)", () => {
  it("reaches the client as a 502 OpenAI error with the scrubbed message, never as a success it cannot read", async () => {
    answer = {
      status: 200,
      contentType: "application/json",
      body: JSON.stringify({ error: { message: LEAKY, type: "worker_error", code: null } }),
    };
    const response = await post("cold");
    expect(response.status).toBe(502);
    const text = await response.text();
    expectClean(text);
    expect(expectOpenAiError(JSON.parse(text)).message).toContain("maximum context length");
  });

  it("an async job so answered fails (not retried) with the scrubbed message", async () => {
    answer = {
      status: 200,
      contentType: "application/json",
      body: JSON.stringify({ error: { message: LEAKY, type: "worker_error", code: null } }),
    };
    const submitted = await fetch(`${url}/v1/jobs`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({
        endpoint: "/v1/chat/completions",
        body: { model: "cold", messages: [{ role: "user", content: "hi" }], max_tokens: 3 },
      }),
    });
    const { id } = (await submitted.json()) as { id: string };
    const job = await finishedJob(id);
    expect(job.status, JSON.stringify(job)).toBe("failed");
    expectClean(JSON.stringify(job));
    expect(JSON.stringify(job)).toContain("maximum context length is 4096 tokens");
  });

  it("a success that carries an error field beside its answer is a success", async () => {
    const ok = {
      id: "c1",
      object: "chat.completion",
      choices: [{ index: 0, message: { role: "assistant", content: "hi" }, finish_reason: "stop" }],
      error: null,
    };
    answer = { status: 200, contentType: "application/json", body: JSON.stringify(ok) };
    const response = await post("cold");
    expect(response.status).toBe(200);
    expect(((await response.json()) as typeof ok).choices[0]!.message.content).toBe("hi");
  });
});

describe("isErrorEnvelope", () => {
  it("is only a JSON object whose one key is an error object", () => {
    const yes = ['{"error":{"message":"x"}}', '  {\n "error" : {"message": "x", "type": "worker_error"} }'];
    const no = [
      '{"error":"x"}',
      '{"error":{"message":"x"},"choices":[]}',
      '{"id":"1","error":{"message":"x"}}',
      '{"error":',
      "[]",
      "",
    ];
    for (const body of yes) expect(isErrorEnvelope(Buffer.from(body)), body).toBe(true);
    for (const body of no) expect(isErrorEnvelope(Buffer.from(body)), body).toBe(false);
  });
});
