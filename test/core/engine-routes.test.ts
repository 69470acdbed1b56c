/**
 * The table of routes per kind and engine (core/engine-routes.ts), the routes a provider's serving path passes
 * (`PROVIDER_PATHS`), and the config checks built on them.
 */
import { describe, expect, it } from "vitest";
import { runpodWorkerSettings } from "../../components/runpod-worker-settings";
import {
  ENGINES,
  loadStackConfig,
  MODEL_KINDS,
  parseStackFile,
  providerRouteWarnings,
  RUNPOD_WORKER_IMAGE,
  StackConfigError,
} from "../../core/config";
import {
  API_ROUTES,
  ENGINE_ROUTES,
  enginesServing,
  KIND_ROUTES,
  kindsServing,
  modelServedRoutes,
  PROVIDER_PATHS,
  type ProviderPath,
  providerPath,
  providerRouteGaps,
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

describe("routes per provider path (RunPod serverless's queue: worker-vllm v2.25.2)", () => {
  const queue = PROVIDER_PATHS.find((p) => p.provider === "runpod-serverless")!;

  it("describes the image the stack runs there, for the engines that run it (QUEUE endpoints)", () => {
    expect(queue.image).toBe(RUNPOD_WORKER_IMAGE);
    expect(queue.runs).toBe(`worker-vllm ${RUNPOD_WORKER_IMAGE.split(":")[1]}`);
    const unit = {
      source: "o/m",
      revision: undefined,
      engineArgs: [],
      gpuCount: 1,
      maxModelLen: undefined,
      targetConcurrency: 4,
      queueTimeoutSeconds: 60,
      publicName: "m",
    };
    for (const engine of ENGINES) {
      const onQueue = runpodWorkerSettings({ ...unit, engine }, undefined).endpointType === "QUEUE";
      expect(providerPath("runpod-serverless", engine) !== undefined, engine).toBe(onQueue);
    }
    for (const route of queue.routes) expect(API_ROUTES).toContain(route);
  });

  it("passes vLLM's JSON routes, not the multipart upload of /v1/audio/transcriptions", () => {
    expect(ENGINE_ROUTES.vllm.routes.filter((r) => !queue.routes.includes(r))).toEqual([
      "/v1/audio/transcriptions",
    ]);
    expect(providerPath("vastai", "vllm")).toBeUndefined();
    expect(providerPath("runpod-serverless", "vllm-omni")).toBeUndefined(); // a load-balancing endpoint
  });

  it("a model answers the routes every one of its providers passes", () => {
    const model = (
      kind: (typeof MODEL_KINDS)[number],
      engine: (typeof ENGINES)[number],
      providers: string[],
    ) => modelServedRoutes({ kind, engine, providers: providers as ["vastai"] });
    expect(model("chat", "vllm", ["runpod-serverless"])).toEqual(KIND_ROUTES.chat);
    expect(model("embedding", "vllm", ["vastai", "runpod-serverless"])).toEqual(KIND_ROUTES.embedding);
    expect(model("image", "vllm-omni", ["runpod-serverless"])).toEqual(["/v1/images/generations"]);
    expect(model("audio", "vllm", ["vastai"])).toEqual(["/v1/audio/transcriptions"]);
    expect(model("audio", "vllm", ["vastai", "runpod-serverless"])).toEqual([]);
    expect(providerRouteGaps("audio", "vllm", ["vastai", "runpod-serverless"])).toEqual([
      { provider: "runpod-serverless", index: 1, path: queue, lacks: ["/v1/audio/transcriptions"] },
    ]);
  });
});

describe("stack config: a model's providers", () => {
  const runpod = { providers: '{ vastai: {}, "runpod-serverless": {} }' };
  const loadWith = (models: string) =>
    loadStackConfig(parseStackFile(stackYaml({ models, ...runpod }), "test.yaml"));

  it("refuses an audio model on RunPod serverless, naming models[i].providers[j], the image and the fix", () => {
    let problems: string[] = [];
    try {
      loadWith(
        "[{ name: stt, kind: audio, source: openai/whisper-large-v3, gpu: [RTX_4090], providers: [vastai, runpod-serverless] }]",
      );
    } catch (error) {
      if (!(error instanceof StackConfigError)) throw error;
      problems = error.problems.map((p) => `${p.key}: ${p.message}`);
    }
    expect(problems).toEqual([
      'ai-orchestrator:models[0].providers[1]: "runpod-serverless" runs this model on worker-vllm v2.25.2 (image runpod/worker-v1-vllm:v2.25.2), which does not serve /v1/audio/transcriptions (RunPod\'s queue carries a JSON job, so no multipart upload reaches vLLM), so this audio model would answer nothing; serve it from another provider (runpod-pod, vastai, datacrunch or local)',
    ]);
  });

  it("takes chat and embedding models on RunPod serverless with no route warning (worker-vllm passes their routes)", () => {
    const loaded = loadWith(`[
      { name: c, kind: chat, source: o/c, gpu: [RTX_4090], providers: [runpod-serverless, vastai] },
      { name: e, kind: embedding, source: BAAI/bge-m3, gpu: [RTX_4090], providers: [runpod-serverless] }
    ]`);
    expect(loaded.warnings.filter((w) => w.key.includes(".providers["))).toEqual([]);
  });

  it("warns, naming the routes, when some providers leave out routes the others serve", () => {
    // a narrower path than today's: none does that yet (only the audio route is lost, and audio has no other)
    const narrow: ProviderPath[] = [
      { ...PROVIDER_PATHS[0]!, routes: ["/v1/embeddings"], why: "a test path that passes embeddings only" },
    ];
    const loaded = loadWith(
      "[{ name: e, kind: embedding, source: BAAI/bge-m3, gpu: [RTX_4090], providers: [vastai, runpod-serverless] }]",
    );
    expect(providerRouteWarnings(loaded.config, "ai-orchestrator", narrow)).toEqual([
      {
        key: "ai-orchestrator:models[0].providers[1]",
        message:
          'runpod-serverless (worker-vllm v2.25.2) does not serve /v1/rerank or /v1/score (a test path that passes embeddings only), so the model "e" will not answer them (only /v1/embeddings); to serve them, give the model only providers that do (runpod-pod, vastai, datacrunch or local)',
      },
    ]);
  });
});
