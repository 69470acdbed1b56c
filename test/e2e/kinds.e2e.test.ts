/**
 * End to end (issue 24): the routes added for other kinds of models buffer at zero like chat does — a Responses
 * API stream to a chat model, a rerank to an embedding model and a transcription (multipart upload, official
 * `openai` client) to an audio model and an image generation (vLLM-Omni, `images.generate`) to an image model, all at zero, wait while the controller rents a worker from the Vast.ai fake
 * (whose instances are fake vLLM processes), complete once it is ready, and the models scale back to zero.
 */
import { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { E2EStack } from "../../devkit/e2e-stack";
import { until } from "../../devkit/process";

const vast = "gpu: [RTX_3090], providers: [vastai], idleTimeoutSeconds: 2, queueTimeoutSeconds: 60";
const MODELS = `[
  { name: resp, kind: chat, source: o/resp, ${vast} },
  { name: rank, kind: embedding, source: o/rank, ${vast} },
  { name: stt, kind: audio, source: openai/whisper-large-v3, ${vast} },
  { name: pics, kind: image, engine: vllm-omni, source: Tongyi-MAI/Z-Image-Turbo, ${vast} }
]`;

let stack: E2EStack;
let failed = false;

beforeAll(async () => {
  stack = new E2EStack({ name: "kinds", models: MODELS });
  await stack.start();
}, 60_000);

afterAll(async () => {
  if (failed) process.stderr.write(`e2e: logs of the processes kept in ${stack?.logs}\n`);
  await stack?.close({ keepLogs: failed });
}, 60_000);

const scenario = (fn: () => Promise<void>) => async () => {
  try {
    await fn();
  } catch (error) {
    failed = true;
    throw error;
  }
};

async function atZero(model: string): Promise<void> {
  await until(
    `${model} scaled to zero`,
    async () =>
      (await stack.workers(model)).every((w) => w.state === "terminated") &&
      (await stack.routes(model)).length === 0,
    { timeoutMs: 30_000, detail: async () => JSON.stringify(await stack.workers(model)) },
  );
}

describe.concurrent("models at zero, other routes than chat", () => {
  it(
    "a Responses stream (official openai client) waits for a cold start and completes",
    scenario(async () => {
      expect(await stack.workers("resp")).toEqual([]);
      const stream = await stack.client().responses.create({
        model: "resp",
        input: "hello from the cold",
        max_output_tokens: 6,
        stream: true,
      });
      let text = "";
      let usage: { input_tokens: number; output_tokens: number } | undefined;
      for await (const event of stream) {
        if (event.type === "response.output_text.delta") text += event.delta;
        if (event.type === "response.completed") usage = event.response.usage ?? undefined;
      }
      expect(text.trim().split(/\s+/)).toHaveLength(6);
      expect(usage).toMatchObject({ input_tokens: 4, output_tokens: 6 });
      expect((await stack.workers("resp")).length).toBe(1);
      await atZero("resp");
    }),
    90_000,
  );

  it(
    "a rerank waits for a cold start and completes",
    scenario(async () => {
      const response = await fetch(`${stack.gateway().url}/v1/rerank`, {
        method: "POST",
        headers: { authorization: `Bearer ${stack.apiKey}`, "content-type": "application/json" },
        body: JSON.stringify({
          model: "rank",
          query: "cats",
          documents: ["a cat", "a tax law", "dogs"],
          top_n: 2,
        }),
      });
      expect(response.status).toBe(200);
      const answer = (await response.json()) as { results: { index: number; relevance_score: number }[] };
      expect(answer.results).toHaveLength(2);
      expect((await stack.workers("rank")).length).toBe(1);
      await atZero("rank");
    }),
    90_000,
  );

  it(
    "a transcription (multipart upload) waits for a cold start and completes",
    scenario(async () => {
      expect(await stack.workers("stt")).toEqual([]);
      const transcription = await stack.client().audio.transcriptions.create({
        file: await toFile(new Uint8Array(96_000), "note.wav", { type: "audio/wav" }),
        model: "stt",
      });
      // the fake vLLM hears one word per 32,000 bytes of audio
      expect(transcription.text.trim().split(/\s+/)).toHaveLength(3);
      expect((await stack.workers("stt")).length).toBe(1);
      await atZero("stt");
    }),
    90_000,
  );

  it(
    "an image generation (official openai client, vLLM-Omni engine) waits for a cold start and completes",
    scenario(async () => {
      expect(await stack.workers("pics")).toEqual([]);
      const answer = await stack.client().images.generate({
        model: "pics",
        prompt: "a lighthouse at dusk",
        size: "512x512",
        n: 2,
        response_format: "b64_json",
      });
      expect(answer.data).toHaveLength(2);
      // a PNG, as vLLM-Omni's encode_image_base64 answers
      expect(Buffer.from(answer.data![0]!.b64_json!, "base64").subarray(1, 4).toString("latin1")).toBe("PNG");
      expect((await stack.workers("pics")).length).toBe(1);
      await atZero("pics");
    }),
    90_000,
  );
});
