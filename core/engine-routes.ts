/**
 * Which API routes a model answers: its `kind` decides the routes it may be asked through, and its engine — at the
 * version the stack pins (`ENGINE_IMAGES`) — decides which of those it can actually serve. The gateway answers a
 * route only where both agree (404 naming the kinds for a route the kind does not serve, 400 naming the engine for
 * a route the engine does not serve), and the stack config refuses a kind/engine pair with no route in common.
 *
 * Rules:
 * 1. A route is listed for an engine only when the engine's own source or docs at the pinned version serve it
 *    (the source of each fact is the comment beside it). A provider's `image` setting may run another version;
 *    the table still describes the pinned one.
 * 2. A kind's first route is its own (what `aiorch` and the README name for it); `chat` models also answer the
 *    completions and Responses routes, as every engine that serves chat templates does.
 * 3. Where a provider puts something other than the engine's own server in front of it (`PROVIDER_PATHS`), a model
 *    answers only the routes every one of its providers passes (`modelServedRoutes`); the config refuses a model
 *    left with none and the plan warns about the routes one loses, and the gateway answers 400 naming the provider.
 */
import type { ConfigurableProviderId } from "./catalog";
import type { Engine, MODEL_KINDS } from "./config/schema";

/** The inference routes the gateway serves, as clients call them. */
export const API_ROUTES = [
  "/v1/chat/completions",
  "/v1/completions",
  "/v1/responses",
  "/v1/embeddings",
  "/v1/rerank",
  "/v1/score",
  "/v1/images/generations",
  "/v1/audio/transcriptions",
] as const;
export type ApiRoute = (typeof API_ROUTES)[number];

/** Model kinds, as the stack config names them (`models[].kind`). */
export type ModelKind = (typeof MODEL_KINDS)[number];

/** Routes each kind of model may be asked through. */
export const KIND_ROUTES: Readonly<Record<ModelKind, readonly ApiRoute[]>> = {
  chat: ["/v1/chat/completions", "/v1/completions", "/v1/responses"],
  completion: ["/v1/completions"],
  // rerank and score: cross-encoder (reranker) and embedding models, as vLLM's docs put it
  embedding: ["/v1/embeddings", "/v1/rerank", "/v1/score"],
  image: ["/v1/images/generations"],
  // speech-to-text (Whisper and the like): multipart uploads, OpenAI's `audio.transcriptions.create`
  audio: ["/v1/audio/transcriptions"],
};

export interface EngineRoutes {
  /** The version the facts below are about (the pinned image's tag). */
  readonly version: string;
  readonly routes: readonly ApiRoute[];
}

/** Routes each engine serves at the version the stack pins (`ENGINE_IMAGES` in `core/config/schema.ts`). */
export const ENGINE_ROUTES: Readonly<Record<Engine, EngineRoutes>> = {
  vllm: {
    version: "0.10.1.1",
    routes: [
      // https://github.com/vllm-project/vllm/blob/v0.10.1.1/vllm/entrypoints/openai/api_server.py
      // (`@router.post("/v1/chat/completions")`, `"/v1/completions"`, `"/v1/embeddings"`, `"/v1/responses"`);
      // docs: https://docs.vllm.ai/en/stable/serving/online_serving/ ("Responses API (/v1/responses) — only
      // applicable to text generation models"). vLLM serves no /v1/images/generations.
      "/v1/chat/completions",
      "/v1/completions",
      "/v1/responses",
      "/v1/embeddings",
      // same file: `@router.post("/v1/rerank")` (Jina/Cohere shape: query, documents, top_n → results with
      // relevance_score) and `@router.post("/v1/score")` (text_1, text_2 → data[].score); docs (same page):
      // "Re-rank API (/rerank, /v1/rerank, /v2/rerank)", "Score API (/score, /v1/score)", for cross-encoder and
      // embedding models.
      "/v1/rerank",
      "/v1/score",
      // same file: `@router.post("/v1/audio/transcriptions")` with `request: Annotated[TranscriptionRequest,
      // Form()]` (multipart/form-data, `audio_data = await request.file.read()`), answered by
      // serving_transcription.py for a speech-to-text model such as Whisper (`TranscriptionResponse`: `text`).
      "/v1/audio/transcriptions",
    ],
  },
  ollama: {
    version: "0.11.4",
    routes: [
      // https://github.com/ollama/ollama/blob/v0.11.4/docs/openai.md ("Endpoints": /v1/chat/completions,
      // /v1/completions, /v1/models, /v1/embeddings); /v1/responses came in a later release; no audio route.
      "/v1/chat/completions",
      "/v1/completions",
      "/v1/embeddings",
    ],
  },
  tgi: {
    version: "3.3.4",
    routes: [
      // https://github.com/huggingface/text-generation-inference/blob/v3.3.4/router/src/server.rs
      // (`.route("/v1/chat/completions", …)`, `.route("/v1/completions", …)`); embeddings are a separate server
      // (text-embeddings-inference), images, audio transcriptions and the Responses API are not served.
      "/v1/chat/completions",
      "/v1/completions",
    ],
  },
  "vllm-omni": {
    version: "0.16.0",
    routes: [
      // https://github.com/vllm-project/vllm-omni/blob/v0.16.0/vllm_omni/entrypoints/openai/api_server.py
      // (`@router.post("/v1/images/generations")`, added by vllm-project/vllm-omni#292 after v0.12.0rc1; read at
      // main be81443c, 2025-12-28): `ImageGenerationRequest` → `ImageGenerationResponse` (`data[].b64_json`),
      // for a diffusion model served with `vllm serve <model> --omni` (docs: serving/image_generation_api.md).
      // For a diffusion model its /v1/chat/completions answers with images inline
      // (`OmniOpenAIServingChat.for_diffusion`), not a chat answer, so no chat route is listed.
      "/v1/images/generations",
    ],
  },
};

/**
 * A provider's serving path where it passes fewer routes than the engine serves: the gateway reaches something
 * other than the engine's own server there. Only RunPod serverless's queue endpoints differ today; every other
 * provider (and RunPod's load-balancing endpoints, which run vLLM-Omni's own server) passes the engine's routes.
 */
export interface ProviderPath {
  readonly provider: ConfigurableProviderId;
  /** What answers there instead of the engine's server, as messages name it: "worker-vllm v2.25.2". */
  readonly runs: string;
  /** The image that runs it (the provider's default image; a provider `image` setting may run another). */
  readonly image: string;
  /** Engines whose models take this path on the provider (`components/runpod-worker-settings.ts`). */
  readonly engines: readonly Engine[];
  /** The routes the path passes to the engine. */
  readonly routes: readonly ApiRoute[];
  /** Why the routes it does not pass fail there, for the config's error. */
  readonly why: string;
}

/**
 * RunPod serverless QUEUE endpoints (every engine but vLLM-Omni: `components/runpod-worker-settings.ts`) run
 * worker-vllm (`RUNPOD_WORKER_IMAGE` in `core/config/schema.ts`); the gateway calls
 * `https://api.runpod.ai/v2/{id}/openai/v1/<route>`, which RunPod turns into a job whose input carries the route
 * and the JSON body. Facts from runpod-workers/worker-vllm at tag v2.25.2 (commit 7a925039):
 * - `src/handler.py:9-10`: the platform's `/openai/v1/...` passthrough arrives as
 *   `{"openai_route": "/v1/chat/completions", "openai_input": {...}}`; `:74-75` takes any `openai_route` with
 *   `openai_input` as a POST of that body; `:123,138` send it to the local `vllm serve` (`src/main.py:56`) as
 *   `json=body` with `Content-Type: application/json`. So any JSON route of the worker's vLLM passes (the image
 *   runs vLLM v0.27.1, `Dockerfile:4`; the table below still intersects with `ENGINE_ROUTES.vllm`). Answers: the
 *   parsed JSON once, or the raw SSE chunks with `"stream": true` (`:145-150`); an error is
 *   `{"error": {"message", "type": "worker_error", "code": null}}` (`:106-107`).
 * - Documented on that path: chat/completions, completions, models (`.runpod/README.md:125-172`; runpod/docs
 *   `serverless/vllm/openai-compatibility.mdx:38-44`), responses (`README.md:353-357`, `.runpod/README.md:174-178`)
 *   and Anthropic's messages (`README.md:378-380`) — the last added in the worker alone (commit 4c4e039), so by
 *   inference RunPod forwards any path under `/openai/` (runpod/docs `serverless/endpoints/send-requests.mdx:195`
 *   rate-limits `/openai/*`; no RunPod doc lists embeddings, rerank or score there). Embeddings: "embeddings now supported" (maintainer, closing runpod-workers/worker-vllm#312 on
 *   2026-08-13, after the proxy rewrite of v2.24.0, commit 1e396e1); rerank and score pass by the same proxy.
 * - Not passed: /v1/audio/transcriptions — a job input is JSON, and the handler posts JSON, while vLLM's route
 *   takes a multipart upload (`Form()`, `request.file.read()`; see `ENGINE_ROUTES.vllm`). (worker-vllm v2.23.0,
 *   `src/engine.py:383-395`, passed only models, chat/completions, completions, responses and messages.)
 */
export const PROVIDER_PATHS: readonly ProviderPath[] = [
  {
    provider: "runpod-serverless",
    runs: "worker-vllm v2.25.2",
    image: "runpod/worker-v1-vllm:v2.25.2",
    engines: ["vllm", "ollama", "tgi"],
    routes: [
      "/v1/chat/completions",
      "/v1/completions",
      "/v1/responses",
      "/v1/embeddings",
      "/v1/rerank",
      "/v1/score",
    ],
    why: "RunPod's queue carries a JSON job, so no multipart upload reaches vLLM",
  },
];

/** The path a model of this engine takes on a provider, where it passes fewer routes than the engine serves. */
export function providerPath(
  provider: ConfigurableProviderId,
  engine: Engine,
  paths: readonly ProviderPath[] = PROVIDER_PATHS,
): ProviderPath | undefined {
  return paths.find((p) => p.provider === provider && p.engines.includes(engine));
}

/** "a", "a or b", "a, b or c": routes and providers as messages list them. */
export const orList = (items: readonly string[]): string =>
  items.length <= 1 ? (items[0] ?? "") : `${items.slice(0, -1).join(", ")} or ${items[items.length - 1]}`;

/** `provider (what runs there)`, as messages name a provider path. */
export const providerPathLabel = (path: ProviderPath): string => `${path.provider} (${path.runs})`;

/** A provider of a model that does not pass some of the routes the model's kind and engine serve. */
export interface ProviderRouteGap {
  readonly provider: ConfigurableProviderId;
  /** Index in the model's `providers`. */
  readonly index: number;
  readonly path: ProviderPath;
  /** Routes the kind and engine serve that this provider does not pass. */
  readonly lacks: readonly ApiRoute[];
}

/** The model's providers that leave out routes its kind and engine serve, with what each leaves out. */
export function providerRouteGaps(
  kind: ModelKind,
  engine: Engine,
  providers: readonly ConfigurableProviderId[],
  paths: readonly ProviderPath[] = PROVIDER_PATHS,
): ProviderRouteGap[] {
  const served = servedRoutes(kind, engine);
  return providers.flatMap((provider, index) => {
    const path = providerPath(provider, engine, paths);
    const lacks = path ? served.filter((route) => !path.routes.includes(route)) : [];
    return path && lacks.length > 0 ? [{ provider, index, path, lacks }] : [];
  });
}

/**
 * The routes a model answers: those its kind and engine serve that every one of its providers passes (a route
 * only some pass would fail whenever the controller places the model on the others).
 */
export function modelServedRoutes(
  model: {
    readonly kind: ModelKind;
    readonly engine: Engine;
    readonly providers: readonly ConfigurableProviderId[];
  },
  paths: readonly ProviderPath[] = PROVIDER_PATHS,
): ApiRoute[] {
  const lacking = new Set(
    providerRouteGaps(model.kind, model.engine, model.providers, paths).flatMap((g) => g.lacks),
  );
  return servedRoutes(model.kind, model.engine).filter((route) => !lacking.has(route));
}

/** The kinds whose models may be asked through a route (for the 404 that names them). */
export function kindsServing(route: ApiRoute): ModelKind[] {
  return (Object.keys(KIND_ROUTES) as ModelKind[]).filter((kind) => KIND_ROUTES[kind].includes(route));
}

/** The engines that serve a route at their pinned versions. */
export function enginesServing(route: ApiRoute): Engine[] {
  return (Object.keys(ENGINE_ROUTES) as Engine[]).filter((engine) =>
    ENGINE_ROUTES[engine].routes.includes(route),
  );
}

/** The routes a model of this kind on this engine answers (empty: the pair cannot serve anything). */
export function servedRoutes(kind: ModelKind, engine: Engine): ApiRoute[] {
  const engineRoutes = ENGINE_ROUTES[engine].routes;
  return KIND_ROUTES[kind].filter((route) => engineRoutes.includes(route));
}

/** `engine version`, as messages name it. */
export const engineLabel = (engine: Engine): string => `${engine} ${ENGINE_ROUTES[engine].version}`;
