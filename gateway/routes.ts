/**
 * The OpenAI-compatible routes as fastify plugins: models, inference (chat, completions, responses, embeddings,
 * rerank, score, images; audio transcriptions, the one multipart route) and async jobs. They share one context (authentication, the serving unit a request goes to, the inference and jobs
 * machinery) and inherit the app's hooks and handlers: the API key judged before the body is read, the JSON
 * parser's bounds, OpenAI-shaped errors and the refusals' audit lines (`app.ts`).
 */
import type { FastifyInstance, FastifyPluginCallback, FastifyReply, FastifyRequest } from "fastify";
import type { RuntimeConfig } from "../core/config";
import type { ApiKeyRecord } from "../core/protocol";
import { VARIANT_HEADER } from "../core/variants";
import { badRequest, GatewayError, modelNotFound, toGatewayError } from "./errors";
import { type InferenceDeps, serveInference } from "./inference";
import { type JobQueue, jobEndpoint, jobView } from "./jobs";
import { MAX_AUDIO_BODY_BYTES, parseMultipart, validateTranscription } from "./multipart";
import type { GatewayTracing } from "./tracing";
import { type Endpoint, type InferenceRequest, validateInference } from "./validate";
import type { UnitConfig } from "./variants";

export interface RouteContext {
  readonly config: RuntimeConfig;
  readonly inference: InferenceDeps;
  readonly jobs: JobQueue;
  readonly tracing: GatewayTracing;
  /** The request's API key, or the 401 (counted as an auth failure). */
  readonly authenticate: (request: FastifyRequest) => Promise<ApiKeyRecord>;
  /** The key without a promise when the verifier's cache answers (the hot path); else undefined. */
  readonly authenticateCached: (request: FastifyRequest) => ApiKeyRecord | undefined;
  /** The serving unit that answers a model for a key on an endpoint, or the 403/404/400/503. */
  readonly servingUnitFor: (name: string, key: ApiKeyRecord, endpoint: Endpoint) => UnitConfig;
}

const modelView = (m: RuntimeConfig["models"][number]) => ({
  id: m.name,
  object: "model",
  created: 0,
  owned_by: "ai-orchestrator",
});

/** `GET /v1/models` and `GET /v1/models/{id}`: the models the key may use. */
export const modelRoutes: FastifyPluginCallback<RouteContext> = (app, ctx, done) => {
  const models = new Map(ctx.config.models.map((m) => [m.name, m]));
  app.get("/v1/models", async (request) => {
    const key = await ctx.authenticate(request);
    const allowed = ctx.config.models.filter((m) => key.models.length === 0 || key.models.includes(m.name));
    return { object: "list", data: allowed.map(modelView) };
  });
  app.get("/v1/models/*", async (request) => {
    const key = await ctx.authenticate(request);
    const name = (request.params as Record<string, string>)["*"] ?? "";
    const model = models.get(name);
    if (!model || (key.models.length > 0 && !key.models.includes(name))) throw modelNotFound(name);
    return modelView(model);
  });
  done();
};

/** How a route reads its body into a request (the JSON routes' `validateInference`, or an upload's). */
type RequestReader = (endpoint: Endpoint, body: unknown, json: string | undefined) => InferenceRequest;

/** One inference route, served by `serveInference` (admission, waiting, attempts, relay, accounting). */
function inferenceRoute(
  app: FastifyInstance,
  ctx: RouteContext,
  path: string,
  endpoint: Endpoint,
  read: RequestReader = validateInference,
  options: { bodyLimit?: number } = {},
): void {
  const spanName = `POST ${path}`;
  app.post(path, options, async (request: FastifyRequest, reply: FastifyReply) => {
    const traceparent =
      typeof request.headers.traceparent === "string" ? request.headers.traceparent : undefined;
    const trace = ctx.tracing.begin(spanName, traceparent, { "aiorch.request_id": request.requestId });
    let model: UnitConfig;
    let key: ApiKeyRecord;
    let req: InferenceRequest;
    const authStep = trace.step("auth");
    try {
      key = ctx.authenticateCached(request) ?? (await ctx.authenticate(request));
      authStep.end();
      req = read(endpoint, request.body, request.rawJson);
      model = ctx.servingUnitFor(req.model, key, endpoint);
    } catch (error) {
      authStep.end("refused");
      trace.end(toGatewayError(error).status);
      throw error;
    }
    if (model.variant) reply.header(VARIANT_HEADER, model.variant);
    try {
      await serveInference(ctx.inference, req, model, key, reply, request.requestId, trace);
    } catch (error) {
      trace.end(toGatewayError(error).status); // refused before it was served (budget, limits)
      throw error;
    }
    return reply;
  });
}

/** The JSON inference endpoints. */
export const inferenceRoutes: FastifyPluginCallback<RouteContext> = (app, ctx, done) => {
  inferenceRoute(app, ctx, "/v1/chat/completions", "chat");
  inferenceRoute(app, ctx, "/v1/completions", "completion");
  inferenceRoute(app, ctx, "/v1/responses", "response");
  inferenceRoute(app, ctx, "/v1/embeddings", "embedding");
  inferenceRoute(app, ctx, "/v1/rerank", "rerank");
  inferenceRoute(app, ctx, "/v1/score", "score");
  inferenceRoute(app, ctx, "/v1/images/generations", "image");
  done();
};

/**
 * `POST /v1/audio/transcriptions`: the one route that takes multipart/form-data, with its own body limit (25 MB of
 * audio, `multipart.ts`); parsed in this plugin only, so every other route still answers a non-JSON body with 400.
 * Past the parser it is served as every inference route is.
 */
export const transcriptionRoutes: FastifyPluginCallback<RouteContext> = (app, ctx, done) => {
  app.addContentTypeParser(
    "multipart/form-data",
    { parseAs: "buffer", bodyLimit: MAX_AUDIO_BODY_BYTES },
    (request, body, next) => {
      // a refused API key (judged in onRequest): the body is not parsed, the route answers the 401
      if (request.auth !== undefined && !request.auth.ok) {
        next(null, undefined);
        return;
      }
      try {
        next(null, parseMultipart(body as Buffer, String(request.headers["content-type"] ?? "")));
      } catch (error) {
        next(error as Error, undefined);
      }
    },
  );
  // a declared length past the limit is refused before a byte of the body is read, naming the limit
  app.addHook("onRequest", (request, _reply, next) => {
    const length = Number(request.headers["content-length"]);
    if (Number.isFinite(length) && length > MAX_AUDIO_BODY_BYTES) {
      next(
        new GatewayError(
          413,
          "invalid_request_error",
          "The upload is larger than 25 MB of audio (and 1 MB of form fields); split or compress the audio",
          "request_too_large",
          "file",
        ),
      );
      return;
    }
    next();
  });
  inferenceRoute(app, ctx, "/v1/audio/transcriptions", "transcription", validateTranscription, {
    bodyLimit: MAX_AUDIO_BODY_BYTES,
  });
  done();
};

/** `POST /v1/jobs` (admitted as inference is, then queued durably) and `GET /v1/jobs/{id}`. */
export const jobRoutes: FastifyPluginCallback<RouteContext> = (app, ctx, done) => {
  app.post("/v1/jobs", async (request, reply) => {
    const key = await ctx.authenticate(request);
    const body = request.body as Record<string, unknown> | null;
    if (body === null || typeof body !== "object" || Array.isArray(body))
      throw badRequest("The request body must be a JSON object");
    const endpoint = jobEndpoint(body.endpoint);
    if (!endpoint) {
      throw badRequest(
        'endpoint must be one of "/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/images/generations"',
        "endpoint",
      );
    }
    const idempotencyKey = body.idempotencyKey ?? request.headers["idempotency-key"];
    if (
      idempotencyKey !== undefined &&
      (typeof idempotencyKey !== "string" || !/^[\w.:-]{1,128}$/.test(idempotencyKey))
    ) {
      throw badRequest("idempotencyKey must be 1-128 letters, digits or . _ : -", "idempotencyKey");
    }
    const req = validateInference(endpoint, body.body);
    if (req.stream) throw badRequest("jobs cannot stream; drop stream: true", "body.stream");
    const model = ctx.servingUnitFor(req.model, key, endpoint);
    // limits (the body's bytes count as tokens), queued-jobs caps, the submission's audit line and metrics
    const submission = {
      unit: model,
      requestId: request.requestId,
      idempotencyKey: idempotencyKey as string | undefined,
      bodyBytes: Buffer.byteLength(request.rawJson ?? JSON.stringify(body)),
    };
    request.audited = true; // from here the submission writes its own line, refused or not
    const { job, created, headers } = await ctx.jobs.submit(key, { ...req, model: model.name }, submission);
    reply.headers(headers).code(created ? 202 : 200);
    return jobView(job);
  });
  app.get<{ Params: { id: string } }>("/v1/jobs/:id", async (request) => {
    const key = await ctx.authenticate(request);
    const job = await ctx.jobs.get(request.params.id, key.id);
    if (!job)
      throw new GatewayError(404, "not_found_error", `No job ${request.params.id}`, "job_not_found", "id");
    return jobView(job);
  });
  done();
};
