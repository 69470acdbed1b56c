/**
 * The gateway's app factory: an OpenAI-compatible HTTP surface over fastify. `main.ts` only reads the
 * environment and calls this; tests call it with their own Redis and fakes and use `inject()` or a real port.
 * `/metrics`, `/healthz` and `/readyz` are not on this (public) app: `buildOpsServer` serves them on the ops
 * port, which the Ingress never routes.
 */
import { randomUUID } from "node:crypto";
import { STATUS_CODES } from "node:http";
import Fastify, { type FastifyError, type FastifyInstance, type FastifyRequest } from "fastify";
import type { Redis } from "ioredis";
import { ApiKeyStore, ApiKeyVerifier, type AuthResult } from "../core/api-keys";
import type { RuntimeConfig } from "../core/config";
import type { KeyRing } from "../core/envelope";
import type { ApiKeyRecord } from "../core/protocol";
import { type RedisKeys, redisKeys } from "../core/redis-keys";
import type { AuditEntry } from "../core/request-audit";
import { CounterBatch, InflightBoard } from "./accounting";
import { AuditLog, type AuditSink, isoTimestamp, NOT_SERVED } from "./audit";
import { KeyBudgetGuard } from "./budget";
import { forbidden, GatewayError, modelNotFound, toGatewayError, unauthorized } from "./errors";
import type { InferenceDeps } from "./inference";
import { JobQueue, JobRunner } from "./jobs";
import { RateLimiter } from "./limits";
import { GatewayMetrics } from "./metrics";
import { PausedModels } from "./pauses";
import { RecentRequests } from "./recent-requests";
import { checkRouteServed } from "./route-check";
import { inferenceRoutes, jobRoutes, modelRoutes, type RouteContext, transcriptionRoutes } from "./routes";
import { BackendRegistry } from "./routing";
import { SpendView } from "./spend";
import { restorePending, StackStateWatch } from "./stack-state";
import { GatewayTracing, randomHex, type TracingOptions } from "./tracing";
import { UpstreamClient } from "./upstream";
import { ENDPOINT_PATHS, type Endpoint, endpointRoute, scanJson } from "./validate";
import { type UnitConfig, VariantRouter } from "./variants";

export interface GatewayDeps {
  /** The runtime config (`aiorch config` output / the stack's ConfigMap). */
  readonly config: RuntimeConfig;
  /** Redis for commands; a second connection is duplicated from it for pub/sub and job reads. */
  readonly redis: Redis;
  /** Provider API keys by env var name (RUNPOD_API_KEY), injected into provider-key routes only. */
  readonly providerKeys?: Readonly<Record<string, string | undefined>>;
  /** Where audit lines go. @default process.stdout */
  readonly auditSink?: AuditSink;
  /** Process async jobs in this replica. @default true */
  readonly runJobs?: boolean;
  /** Clock, for tests. @default Date.now */
  readonly now?: () => number;
  /** Collect Node.js process metrics. @default true */
  readonly defaultMetrics?: boolean;
  /** A job delivered but not acknowledged this long is retried by another consumer. @default 60000 */
  readonly jobVisibilityMs?: number;
  /**
   * Key ring sealing queued job bodies and results in Redis (AIORCH_ENCRYPTION_KEYS). Required when the config
   * says `security.encryptQueued` (buildGateway throws without it), unless `allowPlaintextQueue`. @default none
   */
  readonly encryption?: KeyRing;
  /** Store job bodies in clear although `security.encryptQueued` is on (local runs only). @default false */
  readonly allowPlaintextQueue?: boolean;
  /** Span export (OTLP endpoint, sampling); without an endpoint the gateway only propagates trace context. @default propagate only */
  readonly tracing?: TracingOptions;
  /** The metrics to count into, when made before the gateway (the ops server serves them while it starts). @default new ones */
  readonly metrics?: GatewayMetrics;
  /** About how many recent requests' audit lines Redis keeps for `request_story` (MCP); 0: none. @default 10000 */
  readonly recentRequests?: number;
}

export interface Gateway {
  /** The public API (the Ingress routes here). */
  readonly app: FastifyInstance;
  readonly metrics: GatewayMetrics;
  readonly registry: BackendRegistry;
  readonly audit: AuditLog;
  readonly keys: RedisKeys;
  /** Whether this replica should get traffic: Redis answers and the pub/sub connection is up; not once closing. */
  readiness(): Promise<Readiness>;
}

/** What `/readyz` reports: 200 when ready, else 503 with the reason. */
export interface Readiness {
  readonly ready: boolean;
  /** Why not ready (`redis unavailable`, `waiting for Redis at …`, `shutting down`). */
  readonly reason?: string;
}

/** A client's `x-request-id` kept as a label: bounded length, characters safe in a header and a log line. */
const REQUEST_ID = /^[\w.:-]{1,128}$/;

declare module "fastify" {
  interface FastifyRequest {
    /** The gateway's own id (`req_` + 32 hex digits): the only one stored, counted or sent upstream. */
    requestId: string;
    /** The client's `x-request-id` when it fits REQUEST_ID: a label for the audit line, never stored or counted. */
    clientRequestId: string | undefined;
    /** The API key's verdict, judged in onRequest (before the body is read and parsed) on `/v1/` routes. */
    auth: AuthResult | undefined;
    /** A JSON body's text as received (see the JSON parser in buildGateway). */
    rawJson?: string;
    /** Its audit line is written (by inference or the jobs route); a refusal's is written by the error handler. */
    audited: boolean;
  }
}

/** The audit line's `endpoint` of a URL: inference's names for its routes, else the path (bounded). */
function auditEndpointOf(url: string): string {
  const path = url.split("?")[0] ?? "";
  for (const [endpoint, suffix] of Object.entries(ENDPOINT_PATHS))
    if (path === `/v1${suffix}`) return endpoint;
  if (path === "/v1/jobs") return "jobs";
  return path.slice(0, 100);
}

function bearer(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (typeof header !== "string") return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}

export async function buildGateway(deps: GatewayDeps): Promise<Gateway> {
  const { config, redis } = deps;
  if (config.security.encryptQueued && !deps.encryption && !deps.allowPlaintextQueue) {
    throw new Error(
      "security.encryptQueued is on but no key ring was given: job bodies would be stored in Redis in clear text; pass the ring (AIORCH_ENCRYPTION_KEYS) or turn security.encryptQueued off",
    );
  }
  const now = deps.now ?? Date.now;
  const keys = redisKeys(config.redis.keyPrefix);
  const models = new Map(config.models.map((m) => [m.name, m]));
  const metrics =
    deps.metrics ?? new GatewayMetrics(new Set(models.keys()), { defaultMetrics: deps.defaultMetrics });
  const tracing = new GatewayTracing(deps.tracing);
  const variants = new VariantRouter(redis, keys, config);
  await variants.start();
  const pauses = new PausedModels(redis, keys);
  await pauses.start();
  // Routes, queues and jobs are per serving unit: a model in a rollout has one per variant.
  const unitsConfig: RuntimeConfig = { ...config, models: [...variants.units.values()] };
  const registry = new BackendRegistry(redis, keys, unitsConfig, { now });
  const verifier = new ApiKeyVerifier(new ApiKeyStore(redis, keys), { now });
  // Redis back but empty (lost its state, no restore yet): 503 "restore pending", not 401s (README "Disaster recovery")
  const stackState = new StackStateWatch(redis, keys, { now });
  await stackState.start();
  const limiter = new RateLimiter(redis, keys);
  const upstream = new UpstreamClient({
    providerKeys: deps.providerKeys,
    timeoutMs: config.gateway.upstreamTimeoutSeconds * 1000,
  });
  registry.on("backend-removed", (id: string) => upstream.forget(id));
  const recent =
    deps.recentRequests === 0 ? undefined : new RecentRequests(redis, keys, deps.recentRequests ?? 10_000);
  const audit = new AuditLog(deps.auditSink ?? process.stdout, {
    onDrop: () => metrics.auditDropped.inc(),
    ...(recent ? { onRecord: (entry: AuditEntry) => recent.push(entry) } : {}),
    batch: deps.auditSink === undefined, // stdout: lines written together every few ms, not one write each
  });
  /** This replica, in its job consumer name and its members of the in-flight sets. */
  const replicaId = `gateway-${randomUUID().slice(0, 8)}`;
  const inference: InferenceDeps = {
    config,
    redis,
    keys,
    registry,
    limiter,
    upstream,
    metrics,
    audit,
    now,
    spend: new SpendView(redis, keys, now),
    counters: new CounterBatch(redis, {
      onError: (error) => process.stderr.write(`gateway: spend counters: ${error.message} (kept, retried)\n`),
    }),
    inflight: new InflightBoard(redis, keys, replicaId, { now }),
    budgets: new KeyBudgetGuard(),
  };
  // jobs are admitted as inference requests are (one admission): the same budgets, blocks and limits
  const jobs = new JobQueue({
    redis,
    keys,
    config,
    limiter,
    metrics,
    audit,
    now,
    ring: deps.encryption,
    spend: inference.spend,
    budgets: inference.budgets,
  });
  const runner =
    deps.runJobs === false
      ? undefined
      : new JobRunner({
          redis,
          keys,
          config: unitsConfig,
          registry,
          upstream,
          limiter,
          budgets: inference.budgets,
          inflight: inference.inflight,
          metrics,
          audit,
          now,
          consumer: replicaId,
          visibilityMs: deps.jobVisibilityMs,
          ring: deps.encryption,
          onError: (error) => process.stderr.write(`gateway: job runner: ${(error as Error).message}\n`),
        });

  // Route changes and key revocations arrive over pub/sub, so waiting requests and caches react at once.
  const subscriber = redis.duplicate();
  subscriber.on("message", (channel: string, message: string) => {
    if (channel === keys.routesChannel) {
      try {
        const { model } = JSON.parse(message) as { model?: unknown };
        if (typeof model === "string") registry.routesChanged(model);
      } catch {
        // a malformed announcement is ignored; the periodic refresh catches up
      }
    } else if (channel === keys.apiKeysChannel) verifier.invalidate(message);
    else if (channel === keys.budgetChannel) inference.spend.invalidateBudgetBlocks();
    else if (channel === keys.variantWeightsChannel)
      variants.refresh(message || undefined).catch(() => undefined);
    else if (channel === keys.pausesChannel) pauses.refresh().catch(() => undefined);
  });
  subscriber.on("error", () => undefined); // ioredis reconnects by itself; readiness reports the outage
  await subscriber.subscribe(
    keys.routesChannel,
    keys.apiKeysChannel,
    keys.budgetChannel,
    keys.variantWeightsChannel,
    keys.pausesChannel,
  );

  const app = Fastify({
    logger: false,
    bodyLimit: config.gateway.maxRequestBytes,
    // Slow clients: a request's headers, then all of it, must arrive in time, else 408 and the connection is closed
    // (Node checks every second); an idle connection is closed. Only the request is timed, not the answer: no
    // socket timeout (connectionTimeout stays 0), so a stream or a wait for a cold start runs its course.
    requestTimeout: config.gateway.requestReadTimeoutSeconds * 1000,
    keepAliveTimeout: config.gateway.idleConnectionTimeoutSeconds * 1000,
    http: {
      headersTimeout:
        Math.min(config.gateway.headersTimeoutSeconds, config.gateway.requestReadTimeoutSeconds) * 1000,
      connectionsCheckingInterval: 1_000,
    },
    // Always the gateway's own id: a client's x-request-id is only a label (onRequest), never a Redis member.
    genReqId: () => `req_${randomHex(16)}`,
    // A request Node gave up on before fastify saw it (too slow, malformed, headers too large): an OpenAI-shaped
    // error, one audit line and one count, as every other refusal gets.
    clientErrorHandler: (error, socket) => {
      const code = (error as NodeJS.ErrnoException).code ?? "";
      if (code === "ECONNRESET" || socket.destroyed) return; // nobody left to answer
      const status = code === "ERR_HTTP_REQUEST_TIMEOUT" ? 408 : code === "HPE_HEADER_OVERFLOW" ? 431 : 400;
      const message =
        status === 408
          ? "The request took too long to arrive; send it at once"
          : status === 431
            ? "The request's headers are too large"
            : "The request is not valid HTTP";
      const body = JSON.stringify(
        new GatewayError(
          status,
          "invalid_request_error",
          message,
          status === 408 ? "request_timeout" : "bad_request",
        ).body(),
      );
      const requestId = `req_${randomHex(16)}`;
      metrics.countRequest("", status);
      audit.record({
        ts: isoTimestamp(now()),
        requestId,
        keyId: null,
        model: "",
        endpoint: "",
        ...NOT_SERVED,
        status,
        latencyMs: 0,
        error: status === 408 ? "request_timeout" : code.slice(0, 64) || "bad_request",
      });
      if (socket.writable)
        socket.write(
          `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nx-request-id: ${requestId}\r\nConnection: close\r\n\r\n${body}`,
        );
      socket.destroy();
    },
  });
  app.server.maxConnections = config.gateway.maxConnections; // past it, Node closes a new connection at once
  app.removeContentTypeParser("text/plain"); // the API speaks JSON only; anything else is a clear 400
  // Fastify's own JSON parsing (prototype-poisoning checks included), keeping the text: an unchanged body goes
  // upstream as the client sent it instead of being serialized again.
  const parseJson = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (request, body, done) => {
    // A refused API key (judged in onRequest) or an unknown URL: the body is not parsed, the route answers 401
    // (or the 404 handler) without it.
    const auth = request.auth;
    if ((auth !== undefined && !auth.ok) || request.is404) {
      done(null, undefined);
      return;
    }
    // the parser skips a byte order mark; the text forwarded upstream must not start with one either
    const text = body as string;
    const json = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
    request.rawJson = json;
    // Too deep, or a key twice in one object: a 400 from one pass over the text, before JSON.parse (a 300,000-deep
    // array costs it ~100 ms) and before anything walks the parsed body.
    const refused = scanJson(json);
    if (refused !== undefined) {
      done(refused, undefined);
      return;
    }
    parseJson(request, text, done);
  });
  app.decorateRequest("requestId", "");
  app.decorateRequest("clientRequestId", undefined);
  app.decorateRequest("auth", undefined);
  app.decorateRequest("audited", false);
  app.addHook("onRequest", (request, reply, done) => {
    request.requestId = String(request.id);
    // The response's x-request-id is always the gateway's id (what the audit line, traces and the worker's logs
    // name). A client's own x-request-id is a label: kept when it fits REQUEST_ID, echoed as x-client-request-id
    // and written to the audit line as clientRequestId; it is never stored in Redis, counted or sent upstream.
    reply.header("x-request-id", request.requestId);
    const given = request.headers["x-request-id"];
    if (typeof given === "string" && REQUEST_ID.test(given)) {
      request.clientRequestId = given;
      reply.header("x-client-request-id", given);
    }
    // Every route under /v1/ needs an API key: it is judged here, before the body is read, so a refused key's body
    // is never parsed (see the JSON parser); the route answers the 401 (its trace and audit line included).
    if (request.is404 || !request.url.startsWith("/v1/")) {
      done();
      return;
    }
    if (stackState.lost) {
      done(restorePending());
      return;
    }
    const raw = bearer(request);
    const cached = verifier.verifyCached(raw);
    if (cached !== undefined) {
      request.auth = cached;
      done();
      return;
    }
    verifier
      .verify(raw)
      .then(
        async (result) => {
          request.auth = result;
          // a key Redis does not know: first make sure Redis has not lost every key
          if (!result.ok && result.failure === "invalid") await stackState.recheck();
        },
        () => undefined, // Redis failing: the route asks again and answers its error
      )
      .then(() => (stackState.lost ? done(restorePending()) : done()));
  });

  app.setErrorHandler((error: FastifyError | GatewayError, request, reply) => {
    const e = toGatewayError(error);
    if (e.status >= 500 && !(error instanceof GatewayError)) {
      process.stderr.write(
        `gateway: unexpected error on ${request.method} ${request.url} (${request.requestId}): ${(error as Error).stack}\n`,
      );
    }
    auditRefusal(request, e.status, e.code ?? e.type, reply.elapsedTime);
    if (reply.raw.headersSent) {
      reply.raw.end();
      return;
    }
    reply
      .code(e.status)
      .headers({ ...e.headers, "x-request-id": request.requestId })
      .send(e.body());
  });
  app.setNotFoundHandler((request, reply) => {
    const e = new GatewayError(
      404,
      "invalid_request_error",
      `Unknown request URL: ${request.method} ${request.url.split("?")[0]}`,
      "unknown_url",
    );
    auditRefusal(request, 404, "unknown_url", reply.elapsedTime);
    reply.code(404).send(e.body());
  });
  /**
   * One audit line and one count for every API request the gateway refuses before it is served (auth, validation,
   * scope, unknown model or URL, limits, budgets): inference and jobs write their own once they admit a request.
   */
  const auditRefusal = (request: FastifyRequest, status: number, error: string, elapsedMs: number) => {
    if (request.audited || !request.url.startsWith("/v1/")) return;
    request.audited = true;
    const body = request.body as { model?: unknown } | null | undefined;
    const model = typeof body?.model === "string" ? body.model.slice(0, 128) : "";
    metrics.countRequest(model, status);
    audit.record({
      ts: isoTimestamp(now() - elapsedMs),
      requestId: request.requestId,
      clientRequestId: request.clientRequestId,
      keyId: request.auth?.ok ? request.auth.key.id : null,
      model,
      endpoint: auditEndpointOf(request.url),
      ...NOT_SERVED,
      status,
      latencyMs: Math.round(elapsedMs),
      error,
    });
  };

  /** A key scoped for MCP (read, admin) may not call the OpenAI API: a 403 naming its scope. */
  const inferenceScoped = (key: ApiKeyRecord): ApiKeyRecord => {
    if (key.scope === "inference") return key;
    throw new GatewayError(
      403,
      "permission_error",
      `This API key has scope "${key.scope}": it may use the MCP tools (aiorch mcp), not the OpenAI API; use a key created with --scope inference`,
      "key_scope_not_allowed",
    );
  };
  const authenticate = async (request: FastifyRequest): Promise<ApiKeyRecord> => {
    const result = request.auth ?? (await verifier.verify(bearer(request)));
    if (!result.ok) {
      metrics.authFailures.inc({ reason: result.failure });
      throw unauthorized(result.reason);
    }
    return inferenceScoped(result.key);
  };
  /** The key without a promise when the verifier's cache answers (the hot path); else undefined. */
  const authenticateCached = (request: FastifyRequest): ApiKeyRecord | undefined => {
    const result = request.auth ?? verifier.verifyCached(bearer(request));
    if (result && !result.ok) {
      metrics.authFailures.inc({ reason: result.failure });
      throw unauthorized(result.reason);
    }
    return result === undefined ? undefined : inferenceScoped(result.key);
  };
  /** The serving unit that answers: the model, or the variant its weights (or the key's stickiness) pick. */
  const servingUnitFor = (name: string, key: ApiKeyRecord, endpoint: Endpoint): UnitConfig => {
    const model = models.get(name);
    if (!model) throw modelNotFound(name);
    const paused = pauses.of(name);
    if (paused) {
      throw new GatewayError(
        503,
        "server_error",
        `The model "${name}" is paused by an operator (${paused.reason}); it serves again once unpaused`,
        "model_paused",
        "model",
        { "x-should-retry": "false" },
      );
    }
    if (key.models.length > 0 && !key.models.includes(name)) {
      throw forbidden(`This API key may not use the model "${name}"`);
    }
    checkRouteServed(name, model, endpointRoute(endpoint)); // 404 for the kind, 400 for the engine or a provider
    const unit = variants.choose(model, key.id);
    if (!unit) {
      throw new GatewayError(
        503,
        "server_error",
        `Every variant of the model "${name}" has weight 0 (aiorch models set-weight); nothing may serve it now`,
        "model_disabled",
        "model",
      );
    }
    return unit;
  };
  // Readiness: Redis answers a PING within a second and the pub/sub connection is up; checked at most once a
  // second however often the probes ask.
  let readyCache: { ok: boolean; at: number } | undefined;
  let closing = false;
  const readiness = async (): Promise<Readiness> => {
    if (closing) return { ready: false, reason: "shutting down" };
    if (!readyCache || now() - readyCache.at > 1_000) {
      const ok = await Promise.race([
        redis.ping().then(() => subscriber.status === "ready"),
        new Promise<boolean>((r) => setTimeout(() => r(false), 1_000).unref()),
      ]).catch(() => false);
      readyCache = { ok, at: now() };
    }
    return readyCache.ok ? { ready: true } : { ready: false, reason: "redis unavailable" };
  };
  app.addHook("preClose", (done) => {
    closing = true;
    done();
  });

  // The API's routes, as plugins over what they share (one admission and accounting underneath: inference.ts,
  // admission.ts); refusals, errors and unknown URLs are answered by the handlers above, which they inherit.
  const routes: RouteContext = {
    config,
    inference,
    jobs,
    tracing,
    authenticate,
    authenticateCached,
    servingUnitFor,
  };
  app.register(modelRoutes, routes);
  app.register(inferenceRoutes, routes);
  app.register(transcriptionRoutes, routes); // the one multipart route, with its own parser and body limit
  app.register(jobRoutes, routes);

  app.addHook("onClose", async () => {
    stackState.stop();
    variants.close();
    pauses.close();
    await tracing.close();
    await runner?.close();
    subscriber.disconnect();
    await upstream.close();
    // the server has closed (no request in flight): write the batched counters, drop this replica's in-flight
    // members, give back the rate-limit slices it holds
    await Promise.all([inference.counters.close(), inference.inflight.close(), limiter.close()]);
    audit.flush();
    await recent?.close();
  });
  runner?.start();

  return { app, metrics, registry, audit, keys, readiness };
}

export interface OpsServerDeps {
  /** The registry `/metrics` serves (the gateway's, `Gateway.metrics`). */
  readonly metrics: GatewayMetrics;
  /** What `/readyz` reports: `Gateway.readiness` once the gateway is built, "starting" (waiting for Redis) before. */
  readonly readiness: () => Promise<Readiness>;
}

/**
 * The gateway's ops server, for the ops port (OPS_PORT) that only probes and Prometheus reach:
 * `/metrics`; `/healthz`, 200 while the process runs (liveness, startup); `/readyz`, 200 only when the gateway
 * is built and Redis is ready, else 503 with `{ status: "not ready", reason }`.
 */
export function buildOpsServer(deps: OpsServerDeps): FastifyInstance {
  const ops = Fastify({ logger: false });
  ops.get("/healthz", async () => ({ status: "ok" }));
  ops.get("/readyz", async (_request, reply) => {
    const state = await deps
      .readiness()
      .catch(
        (error: Error): Readiness => ({ ready: false, reason: `readiness check failed: ${error.message}` }),
      );
    reply.code(state.ready ? 200 : 503);
    return state.ready ? { status: "ready" } : { status: "not ready", reason: state.reason ?? "not ready" };
  });
  ops.get("/metrics", async (_request, reply) => {
    reply.header("content-type", deps.metrics.registry.contentType);
    return deps.metrics.registry.metrics();
  });
  ops.setNotFoundHandler((request, reply) => {
    reply.code(404).send({
      error: `Unknown URL ${request.url.split("?")[0]}: the ops port serves /metrics, /healthz and /readyz`,
    });
  });
  return ops;
}
