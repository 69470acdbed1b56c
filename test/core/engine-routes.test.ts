/** The table of routes per kind and engine (core/engine-routes.ts) and the config check built on it. */
import { describe, expect, it } from "vitest";
import { ENGINES, loadStackConfig, MODEL_KINDS, parseStackFile, StackConfigError } from "../../core/config";
import {
  API_ROUTES,
  ENGINE_ROUTES,
  enginesServing,
  KIND_ROUTES,
  kindsServing,
  servedRoutes,
} from "../../core/engine-routes";
import { stackYaml } from "../../devkit/stack-yaml";

const load = (models: string) => loadStackConfig(parseStackFile(stackYaml({ models }), "test.yaml"));
const problemsOf = (models: string) => {
  try {
    load(models);
  } catch (error) {
    if (error instanceof StackConfigError) return error.problems.map((p) => `${p.key}: ${p.message}`);
    throw error;
  }
  return [];
};

describe("routes per kind and engine", () => {
  it("covers every kind and engine, and every route it names is a gateway route", () => {
    expect(Object.keys(KIND_ROUTES).sort()).toEqual([...MODEL_KINDS].sort());
    expect(Object.keys(ENGINE_ROUTES).sort()).toEqual([...ENGINES].sort());
    for (const routes of [
      ...Object.values(KIND_ROUTES),
      ...Object.values(ENGINE_ROUTES).map((e) => e.routes),
    ])
      for (const route of routes) expect(API_ROUTES).toContain(route);
  });

  it("the Responses API: chat models, on vLLM only", () => {
    expect(kindsServing("/v1/responses")).toEqual(["chat"]);
    expect(enginesServing("/v1/responses")).toEqual(["vllm"]);
    expect(servedRoutes("chat", "tgi")).toEqual(["/v1/chat/completions", "/v1/completions"]);
    expect(servedRoutes("chat", "vllm")).toContain("/v1/responses");
  });

  it("speech-to-text: audio models, on vLLM only (Ollama 0.11.4 and TGI 3.3.4 serve no audio route)", () => {
    expect(kindsServing("/v1/audio/transcriptions")).toEqual(["audio"]);
    expect(enginesServing("/v1/audio/transcriptions")).toEqual(["vllm"]);
    expect(servedRoutes("audio", "vllm")).toEqual(["/v1/audio/transcriptions"]);
    expect(servedRoutes("audio", "ollama")).toEqual([]);
    expect(servedRoutes("audio", "tgi")).toEqual([]);
  });

  it("image generation: image models, on vLLM-Omni only; vLLM-Omni serves nothing else", () => {
    expect(kindsServing("/v1/images/generations")).toEqual(["image"]);
    expect(enginesServing("/v1/images/generations")).toEqual(["vllm-omni"]);
    expect(servedRoutes("image", "vllm-omni")).toEqual(["/v1/images/generations"]);
    for (const kind of MODEL_KINDS.filter((k) => k !== "image"))
      expect(servedRoutes(kind, "vllm-omni")).toEqual([]);
  });
});

describe("stack config: kind and engine", () => {
  it("accepts pairs that serve something", () => {
    expect(
      problemsOf(`[
        { name: a, kind: chat, engine: tgi, source: o/a, gpu: [RTX_3090], providers: [vastai] },
        { name: b, kind: embedding, engine: ollama, source: o/b, gpu: [RTX_3090], providers: [vastai] },
        { name: c, kind: completion, source: o/c, gpu: [RTX_3090], providers: [vastai] }
      ]`),
    ).toEqual([]);
  });

  it("refuses an embedding model on TGI, naming models[i].engine and the engines that would serve it", () => {
    const problems = problemsOf(`[
      { name: a, kind: chat, source: o/a, gpu: [RTX_3090], providers: [vastai] },
      { name: e, kind: embedding, engine: tgi, source: o/e, gpu: [RTX_3090], providers: [vastai] }
    ]`);
    expect(problems).toEqual([
      "ai-orchestrator:models[1].engine: tgi 3.3.4 serves none of the routes of an embedding model (/v1/embeddings, /v1/rerank, /v1/score); set engine to vllm or ollama",
    ]);
  });

  it("accepts an audio model on vLLM; refuses it on Ollama or TGI, naming models[i].engine", () => {
    expect(
      problemsOf(
        "[{ name: w, kind: audio, source: openai/whisper-large-v3, gpu: [RTX_3090], providers: [vastai] }]",
      ),
    ).toEqual([]);
    for (const engine of ["ollama", "tgi"])
      expect(
        problemsOf(
          `[{ name: w, kind: audio, engine: ${engine}, source: o/w, gpu: [RTX_3090], providers: [vastai] }]`,
        ),
      ).toEqual([
        `ai-orchestrator:models[0].engine: ${engine === "tgi" ? "tgi 3.3.4" : "ollama 0.11.4"} serves none of the routes of an audio model (/v1/audio/transcriptions); set engine to vllm`,
      ]);
  });

  it("accepts an image model on vLLM-Omni; refuses it on any other engine, naming models[i].engine", () => {
    expect(
      problemsOf(
        "[{ name: p, kind: image, engine: vllm-omni, source: Tongyi-MAI/Z-Image-Turbo, gpu: [RTX_4090], providers: [vastai] }]",
      ),
    ).toEqual([]);
    for (const [engine, label] of [
      ["vllm", "vllm 0.10.1.1"],
      ["ollama", "ollama 0.11.4"],
      ["tgi", "tgi 3.3.4"],
    ])
      expect(
        problemsOf(
          `[{ name: p, kind: image, engine: ${engine}, source: o/p, gpu: [RTX_4090], providers: [vastai] }]`,
        ),
      ).toEqual([
        `ai-orchestrator:models[0].engine: ${label} serves none of the routes of an image model (/v1/images/generations); set engine to vllm-omni`,
      ]);
  });

  it("takes vLLM-Omni on RunPod serverless (a load-balancing endpoint runs it; components/runpod-worker-settings.ts)", () => {
    const models =
      "[{ name: p, kind: image, engine: vllm-omni, source: o/p, gpu: [RTX_4090], providers: [vastai, runpod-serverless] }]";
    const yaml = stackYaml({ models, providers: '{ vastai: {}, "runpod-serverless": {} }' });
    const config = loadStackConfig(parseStackFile(yaml, "test.yaml"));
    expect(config.config.models[0]?.providers).toEqual(["vastai", "runpod-serverless"]);
  });
});
