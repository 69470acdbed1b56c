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
 */
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
