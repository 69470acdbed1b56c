/**
 * Image generation (`POST /v1/images/generations`) through a real gateway on a real Redis, against the fake's
 * vLLM-Omni-shaped route: the official `openai` client's `images.generate`, the fields the gateway checks before
 * anything is queued (`n`, `size`, `response_format`: a 400 naming the field), the image count on the audit line
 * (of a request and of an async job's run alike), and the routes an image model does not answer.
 */
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHarness, type Harness, type MemorySink, testRuntimeConfig } from "./harness";

let h: Harness;
let url: string;
let audit: MemorySink;
let key: string;
let client: OpenAI;

beforeAll(async () => {
  h = await createHarness({
    fake: { model: ["chat", "pics"] },
    config: (localUrl, prefix) =>
      testRuntimeConfig(localUrl, prefix, {
        models: `[
          { name: chat, kind: chat, source: o/chat, gpu: [RTX_3090], providers: [local] },
          { name: pics, kind: image, engine: vllm-omni, source: Tongyi-MAI/Z-Image-Turbo, gpu: [RTX_4090], providers: [local] }
        ]`,
      }),
  });
  ({ url, audit } = await h.start());
  key = await h.createKey();
  client = new OpenAI({ apiKey: key, baseURL: `${url}/v1`, maxRetries: 0 });
});
afterAll(async () => {
  await h.close();
});

const post = (body: unknown) =>
  fetch(`${url}/v1/images/generations`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

describe("image generation through the official openai client", () => {
  it("images.generate answers data[].b64_json (PNG), forwards the body untouched and audits the image count", async () => {
    const before = h.fake.records.requests.length;
    const answer = await client.images.generate({
      model: "pics",
      prompt: "a lighthouse at dusk",
      size: "1024x1024",
      n: 2,
      response_format: "b64_json",
    });
    expect(answer.data).toHaveLength(2);
    const png = Buffer.from(answer.data![0]!.b64_json!, "base64");
    expect(png.subarray(0, 8)).toEqual(PNG_SIGNATURE);
    const sent = h.fake.records.requests.slice(before);
    expect(sent.map((r) => r.path)).toEqual(["/v1/images/generations"]);
    expect(JSON.parse(sent[0]!.rawBody)).toEqual({
      model: "pics",
      prompt: "a lighthouse at dusk",
      size: "1024x1024",
      n: 2,
      response_format: "b64_json",
    });
    const entry = audit.entries.filter((e) => e.endpoint === "image").at(-1)!;
    expect(entry).toMatchObject({ model: "pics", status: 200, images: 2, provider: "local" });
    expect(typeof entry.costUsd).toBe("number");
  });

  it("the largest request the answer limit allows passes (2048x2048, n 4)", async () => {
    const response = await post({ model: "pics", prompt: "big", size: "2048x2048", n: 4 });
    expect(response.status).toBe(200);
    expect(((await response.json()) as { data: unknown[] }).data).toHaveLength(4);
  });

  it("without size, n or response_format: one image at the model's default size", async () => {
    const answer = await client.images.generate({ model: "pics", prompt: "a cat" });
    expect(answer.data).toHaveLength(1);
    expect(answer.data![0]!.b64_json).toBeTruthy();
    expect(audit.entries.filter((e) => e.endpoint === "image").at(-1)).toMatchObject({ images: 1 });
  });
});

describe("image generation as an async job (POST /v1/jobs)", () => {
  it("the job's run audits the image count as a request does; its submission line counts none", async () => {
    const submitted = await fetch(`${url}/v1/jobs`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({
        endpoint: "/v1/images/generations",
        body: { model: "pics", prompt: "a harbour at dawn", size: "256x256", n: 3 },
      }),
    });
    expect(submitted.status).toBe(202);
    const { id } = (await submitted.json()) as { id: string };
    let job: { status?: string; result?: { data?: unknown[] } } = {};
    for (let i = 0; i < 100 && job.status !== "succeeded" && job.status !== "failed"; i++) {
      await new Promise((r) => setTimeout(r, 100));
      job = (await (
        await fetch(`${url}/v1/jobs/${id}`, { headers: { authorization: `Bearer ${key}` } })
      ).json()) as {
        status?: string;
        result?: { data?: unknown[] };
      };
    }
    expect(job.status, JSON.stringify(job)).toBe("succeeded");
    expect(job.result?.data).toHaveLength(3);
    const lines = audit.entries.filter((e) => e.jobId === id);
    expect(lines.find((e) => e.endpoint === "jobs")).not.toHaveProperty("images");
    const run = lines.find((e) => e.endpoint === "image");
    expect(run).toMatchObject({ model: "pics", status: 200, images: 3, provider: "local" });
    expect(typeof run?.costUsd).toBe("number");
  });
});

describe("bad image requests: an OpenAI-shaped 400 naming the field, nothing forwarded", () => {
  it.each([
    ["n above 10", { n: 11 }, "n"],
    ["n zero", { n: 0 }, "n"],
    ["n not a whole number", { n: 1.5 }, "n"],
    ["size without x", { size: "1024" }, "size"],
    ["size auto (the engine takes WIDTHxHEIGHT only)", { size: "auto" }, "size"],
    ["size zero wide", { size: "0x512" }, "size"],
    ["more pixels than an answer can carry (5000x5000)", { size: "5000x5000" }, "size"],
    ["size × n past the answer's limit (2048x2048, n 5)", { size: "2048x2048", n: 5 }, "size"],
    ["response_format url (the engine returns no URLs)", { response_format: "url" }, "response_format"],
    ["response_format unknown", { response_format: "png" }, "response_format"],
    ["prompt missing", { prompt: undefined }, "prompt"],
  ])("%s", async (_label, fields, param) => {
    const before = h.fake.records.requests.length;
    const response = await post({ model: "pics", prompt: "a cat", ...fields });
    expect(response.status).toBe(400);
    const body = (await response.json()) as { error: { type: string; param: string; message: string } };
    expect(body.error).toMatchObject({ type: "invalid_request_error", param });
    expect(body.error.message).toContain(param);
    expect(h.fake.records.requests.length).toBe(before);
  });

  it("the openai client sees the 400 as BadRequestError", async () => {
    await expect(
      client.images.generate({ model: "pics", prompt: "x", response_format: "url" }),
    ).rejects.toMatchObject({ status: 400, param: "response_format" });
  });

  it("an image model asked through chat is a 404 naming the kinds; a chat model asked for images likewise", async () => {
    await expect(
      client.chat.completions.create({ model: "pics", messages: [{ role: "user", content: "hi" }] }),
    ).rejects.toMatchObject({ status: 404 });
    await expect(client.images.generate({ model: "chat", prompt: "x" })).rejects.toMatchObject({
      status: 404,
      message: expect.stringContaining("serves image models only"),
    });
  });
});
