/**
 * Speech-to-text (`POST /v1/audio/transcriptions`, multipart/form-data) through a real gateway on a real Redis,
 * against the vLLM-like fake: the official `openai` client's `audio.transcriptions.create`, the upload relayed to
 * the worker byte for byte, its own 25 MB limit (the JSON routes keep theirs), malformed forms as 400s, waiting at
 * zero, a plain-text answer relayed as it came, and the routes an audio model's kind does not serve.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import OpenAI, { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_AUDIO_BODY_BYTES, MAX_AUDIO_FILE_BYTES } from "../../gateway/multipart";
import { createHarness, type Harness, type MemorySink, testRuntimeConfig } from "./harness";

let h: Harness;
let url: string;
let opsUrl: string;
let audit: MemorySink;
let key: string;
let client: OpenAI;

beforeAll(async () => {
  h = await createHarness({
    fake: { model: ["chat", "whisper", "cold-whisper"] },
    config: (localUrl, prefix) =>
      testRuntimeConfig(localUrl, prefix, {
        models: `[
          { name: chat, kind: chat, source: o/chat, gpu: [RTX_3090], providers: [local] },
          { name: whisper, kind: audio, source: openai/whisper-large-v3, gpu: [RTX_3090], providers: [local] },
          { name: cold-whisper, kind: audio, source: o/w, gpu: [RTX_3090], providers: [vastai], queueTimeoutSeconds: 5 },
          { name: text-whisper, kind: audio, source: o/t, gpu: [RTX_3090], providers: [vastai], queueTimeoutSeconds: 5 }
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

const BOUNDARY = "----aiorch-test-boundary";

/** A multipart/form-data body as RFC 7578 lays it out: text fields, then the file when given. */
function form(fields: Record<string, string>, file?: { filename: string; bytes: Buffer }): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of Object.entries(fields))
    parts.push(
      Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`),
    );
  if (file)
    parts.push(
      Buffer.from(
        `--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="${file.filename}"\r\nContent-Type: audio/wav\r\n\r\n`,
      ),
      file.bytes,
      Buffer.from("\r\n"),
    );
  parts.push(Buffer.from(`--${BOUNDARY}--\r\n`));
  return Buffer.concat(parts);
}

const upload = (
  body: Buffer | string,
  contentType = `multipart/form-data; boundary=${BOUNDARY}`,
  auth = key,
) =>
  fetch(`${url}/v1/audio/transcriptions`, {
    method: "POST",
    headers: { authorization: `Bearer ${auth}`, "content-type": contentType },
    body,
  });

/** Audio-like bytes: every byte value, so a relay that decoded them as text would change them. */
const audio = (size: number) => {
  const bytes = Buffer.alloc(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + 7) & 0xff;
  return bytes;
};

interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string };
}

const lastAudit = () => audit.entries.filter((e) => e.endpoint === "transcription").at(-1)!;

describe("audio.transcriptions.create through the official openai client", () => {
  it("answers vLLM's { text } and books the request like any other", async () => {
    const transcription = await client.audio.transcriptions.create({
      file: await toFile(audio(64_000), "speech.wav", { type: "audio/wav" }),
      model: "whisper",
    });
    // two "words": one per 32,000 bytes (the fake's rule)
    expect(transcription.text.split(/\s+/)).toHaveLength(2);
    const sent = h.fake.records.requests.at(-1)!;
    expect(sent.path).toBe("/v1/audio/transcriptions");
    expect(sent.headers["content-type"]).toMatch(/^multipart\/form-data; boundary=/);
    expect(sent.body).toMatchObject({ model: "whisper", file: { filename: "speech.wav", bytes: 64_000 } });
    expect(lastAudit()).toMatchObject({
      model: "whisper",
      status: 200,
      stream: false,
      keyId: expect.any(String),
    });
    const metrics = await (await fetch(`${opsUrl}/metrics`)).text();
    expect(metrics).toMatch(/aiorch_requests_total\{model="whisper",variant="",status="200"\} 1/);
  });

  it("a form the client builds with a language and a prompt: relayed, the engine judges them", async () => {
    const transcription = await client.audio.transcriptions.create({
      file: await toFile(audio(10), "a.mp3"),
      model: "whisper",
      language: "en",
      prompt: "names: Ada, Grace",
      response_format: "json",
    });
    expect(typeof transcription.text).toBe("string");
    expect(h.fake.records.requests.at(-1)!.body).toMatchObject({
      language: "en",
      prompt: "names: Ada, Grace",
    });
  });
});

describe("the upload goes to the worker unchanged", () => {
  it("the same bytes and the same Content-Type (boundary included), though larger than the JSON limit", async () => {
    const body = form(
      { model: "whisper", response_format: "text" },
      { filename: "x.wav", bytes: audio(200_000) },
    );
    expect(body.length).toBeGreaterThan(h.config.gateway.maxRequestBytes);
    const response = await upload(body);
    expect(response.status).toBe(200);
    expect(((await response.json()) as { text: string }).text.length).toBeGreaterThan(0);
    const sent = h.fake.records.requests.at(-1)!;
    expect(Buffer.compare(sent.rawBytes!, body)).toBe(0);
    expect(sent.headers["content-type"]).toBe(`multipart/form-data; boundary=${BOUNDARY}`);
  });

  it("an engine's plain-text answer (response_format text, as OpenAI answers it) is relayed as it came", async () => {
    const plain: Server = createServer((req, res) => {
      req.resume();
      req.on("end", () => {
        res.writeHead(200, { "content-type": "text/plain; charset=utf-8" });
        res.end("hello from the engine\n");
      });
    });
    await new Promise<void>((resolve) => plain.listen(0, "127.0.0.1", resolve));
    const engine = `http://127.0.0.1:${(plain.address() as AddressInfo).port}/v1`;
    await h.addRoute("text-whisper", { baseUrl: engine, workerId: "w-text" });
    try {
      const response = await upload(
        form({ model: "text-whisper", response_format: "text" }, { filename: "a.wav", bytes: audio(5) }),
      );
      expect(response.status).toBe(200);
      expect(response.headers.get("content-type")).toMatch(/^text\/plain/);
      expect(await response.text()).toBe("hello from the engine\n");
      expect(lastAudit()).toMatchObject({ model: "text-whisper", status: 200, backend: "w-text" });
    } finally {
      await h.removeRoutes("text-whisper");
      await new Promise((resolve) => plain.close(resolve));
    }
  });
});

describe("bad uploads: OpenAI-shaped 4xx, never a 500", () => {
  it.each([
    [
      "no closing boundary",
      Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper`),
    ],
    ["no part at all", Buffer.from("just some bytes")],
    [
      "a part without Content-Disposition",
      Buffer.from(`--${BOUNDARY}\r\nX-Other: 1\r\n\r\nwhisper\r\n--${BOUNDARY}--\r\n`),
    ],
    [
      "a part's headers never end",
      Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="model"`),
    ],
    ["an empty body", Buffer.alloc(0)],
  ])("%s: 400 invalid_multipart", async (_label, body) => {
    const response = await upload(body);
    expect(response.status).toBe(400);
    const { error } = (await response.json()) as ErrorBody;
    expect(error.type).toBe("invalid_request_error");
    expect(error.code).toBe("invalid_multipart");
    expect(lastAudit()).toMatchObject({ status: 400, error: "invalid_multipart" });
  });

  it("a multipart Content-Type without a boundary: 400", async () => {
    const response = await upload(form({ model: "whisper" }), "multipart/form-data");
    expect(response.status).toBe(400);
    expect(((await response.json()) as ErrorBody).error.message).toMatch(/no valid boundary/);
  });

  it("no file, or no model: 400 naming the field", async () => {
    for (const [body, param] of [
      [form({ model: "whisper" }), "file"],
      [form({}, { filename: "a.wav", bytes: audio(10) }), "model"],
      [form({ model: "whisper" }, { filename: "a.wav", bytes: Buffer.alloc(0) }), "file"],
      [
        form({ model: "whisper", response_format: "mp3" }, { filename: "a.wav", bytes: audio(10) }),
        "response_format",
      ],
      [form({ model: "whisper", stream: "true" }, { filename: "a.wav", bytes: audio(10) }), "stream"],
    ] as const) {
      const response = await upload(body);
      expect(response.status).toBe(400);
      expect(((await response.json()) as ErrorBody).error.param).toBe(param);
    }
  });

  it("a JSON body on the audio route: 400 saying to send multipart", async () => {
    const response = await upload(JSON.stringify({ model: "whisper", file: "abc" }), "application/json");
    expect(response.status).toBe(400);
    expect(((await response.json()) as ErrorBody).error.code).toBe("invalid_content_type");
  });

  it("a multipart body on a JSON route: 400, the form is not read there", async () => {
    const response = await fetch(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${key}`,
        "content-type": `multipart/form-data; boundary=${BOUNDARY}`,
      },
      body: form({ model: "chat" }),
    });
    expect(response.status).toBe(400);
    expect(((await response.json()) as ErrorBody).error.message).toMatch(/application\/json/);
  });

  it("without a valid API key: 401", async () => {
    const response = await upload(
      form({ model: "whisper" }, { filename: "a.wav", bytes: audio(10) }),
      undefined,
      "sk-nope",
    );
    expect(response.status).toBe(401);
  });
});

describe("the 25 MB upload limit", () => {
  it("a file over 25 MiB in a body within the limit: 413 naming file", async () => {
    const body = form(
      { model: "whisper" },
      { filename: "big.wav", bytes: Buffer.alloc(MAX_AUDIO_FILE_BYTES + 1) },
    );
    expect(body.length).toBeLessThanOrEqual(MAX_AUDIO_BODY_BYTES);
    const response = await upload(body);
    expect(response.status).toBe(413);
    const { error } = (await response.json()) as ErrorBody;
    expect(error).toMatchObject({ type: "invalid_request_error", code: "request_too_large", param: "file" });
    expect(error.message).toMatch(/limited to 25 MB/);
  });

  it("a body over the limit: 413 before it is read", async () => {
    const response = await upload(Buffer.alloc(MAX_AUDIO_BODY_BYTES + 1));
    expect(response.status).toBe(413);
    const { error } = (await response.json()) as ErrorBody;
    expect(error).toMatchObject({ type: "invalid_request_error", code: "request_too_large" });
    expect(error.message).toMatch(/25 MB/);
  });
});

describe("kinds", () => {
  it("a chat model asked to transcribe: 404 naming the audio kind", async () => {
    const response = await upload(form({ model: "chat" }, { filename: "a.wav", bytes: audio(10) }));
    expect(response.status).toBe(404);
    const { error } = (await response.json()) as ErrorBody;
    expect(error.code).toBe("wrong_endpoint");
    expect(error.message).toMatch(/is a chat model; \/v1\/audio\/transcriptions serves audio models only/);
  });

  it("an audio model one of whose providers is RunPod serverless's queue: 400 naming the provider", async () => {
    // The stack config refuses this model (core/config/load.ts); a runtime config that still has it — written by
    // hand or by an older release — is refused per request, before anything reaches a worker.
    const whisper = h.config.models.find((m) => m.name === "whisper")!;
    const custom = {
      ...h.config,
      models: [
        ...h.config.models,
        {
          ...whisper,
          name: "rp-whisper",
          providers: ["local", "runpod-serverless"] as typeof whisper.providers,
        },
      ],
    };
    const second = await h.start(custom);
    const before = h.fake.records.requests.length;
    const response = await fetch(`${second.url}/v1/audio/transcriptions`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${key}`,
        "content-type": `multipart/form-data; boundary=${BOUNDARY}`,
      },
      body: form({ model: "rp-whisper" }, { filename: "a.wav", bytes: audio(10) }),
    });
    expect(response.status).toBe(400);
    const { error } = (await response.json()) as ErrorBody;
    expect(error).toMatchObject({
      type: "invalid_request_error",
      code: "route_not_served_by_provider",
      param: "model",
    });
    expect(error.message).toBe(
      'The model "rp-whisper" runs on runpod-serverless (worker-vllm v2.25.2), which does not serve /v1/audio/transcriptions',
    );
    expect(h.fake.records.requests.length).toBe(before);
    // the same model on its own engine's server only: transcribed as before
    expect((await upload(form({ model: "whisper" }, { filename: "a.wav", bytes: audio(10) }))).status).toBe(
      200,
    );
  });

  it("an audio model asked to chat: 404 naming the chat kind", async () => {
    const response = await fetch(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "whisper", messages: [{ role: "user", content: "hi" }] }),
    });
    expect(response.status).toBe(404);
    expect(((await response.json()) as ErrorBody).error.message).toMatch(
      /is an audio model; \/v1\/chat\/completions serves chat models only/,
    );
  });

  it("a model at zero: the upload waits and is transcribed once a worker registers", async () => {
    const pending = upload(form({ model: "cold-whisper" }, { filename: "a.wav", bytes: audio(40_000) }));
    setTimeout(() => void h.addRoute("cold-whisper", { baseUrl: h.fake.url, workerId: "w-cold" }), 500);
    try {
      const response = await pending;
      expect(response.status).toBe(200);
      expect(((await response.json()) as { text: string }).text.split(/\s+/)).toHaveLength(2);
      expect(lastAudit()).toMatchObject({ model: "cold-whisper", backend: "w-cold", status: 200 });
      expect(lastAudit().queueMs).toBeGreaterThan(0);
    } finally {
      await h.removeRoutes("cold-whisper");
    }
  });
});
