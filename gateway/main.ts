/**
 * Gateway process entry: read the runtime config and the environment, serve the ops port, wait for Redis,
 * listen. In the cluster this file is the bundle's entry (`node gateway.js --config /etc/aiorch/runtime.json`);
 * locally `aiorch gateway`.
 *
 * Order of start: the ops server (`/metrics`, `/healthz`, `/readyz` on `--metrics-port`, default OPS_PORT) first,
 * so liveness and startup probes pass while Redis is not answering yet; then Redis, waited for with one log line
 * per attempt (`/readyz` answers 503 meanwhile); then the public API on `--port` (GATEWAY_PORT).
 */
import { readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import {
  parseRuntimeConfig,
  type RuntimeConfig,
  redisClientOptions,
  redisConnectionFromEnv,
} from "../core/config/runtime";
import { CREDENTIAL_ENV } from "../core/config/schema";
import { parseKeyRing } from "../core/envelope";
import { GATEWAY_PORT, OPS_PORT } from "../core/process-env";
import { runUntilSignal, StartAborted, waitForRedisConnection } from "../core/redis-wait";
import { buildGateway, buildOpsServer, type Gateway, type Readiness } from "./app";
import { GatewayMetrics } from "./metrics";
import { tracingFromEnv } from "./tracing";

export interface GatewayProcessOptions {
  readonly config: RuntimeConfig;
  /** Port of the public API; 0 picks a free one. */
  readonly port: number;
  readonly host: string;
  /** Port of `/metrics`, `/healthz`, `/readyz` (on `host` too); 0 picks a free one. @default OPS_PORT */
  readonly metricsPort?: number;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly log?: (line: string) => void;
  /** Aborting it while the gateway still waits for Redis stops the start: it rejects with `StartAborted`. */
  readonly signal?: AbortSignal;
  /** Pauses between Redis attempts (tests shorten them). @default 500 ms doubling to 5 s */
  readonly redisRetry?: { readonly firstDelayMs?: number; readonly maxDelayMs?: number };
  /**
   * Run without AIORCH_ENCRYPTION_KEYS although `security.encryptQueued` is on, storing job bodies in clear (a
   * warning is logged): `aiorch gateway|dev --plaintext-jobs` on a workstation, never the cluster. @default false
   */
  readonly allowPlaintextQueue?: boolean;
}

/** The gateway refuses to start: a protection the config asks for cannot be applied. */
export class StartRefused extends Error {
  override name = "StartRefused";
}

export interface GatewayHandle {
  /** The public API's port. */
  readonly port: number;
  /** The ops server's port (`/metrics`, `/healthz`, `/readyz`). */
  readonly metricsPort: number;
  close(): Promise<void>;
}

export async function startGateway(options: GatewayProcessOptions): Promise<GatewayHandle> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const connection = redisConnectionFromEnv(options.env, (path) => readFileSync(path, "utf8"));
  const { url } = connection;
  // the stack's setting, unless the standard OTEL_* variables say otherwise
  const configured = options.config.gateway.tracing;
  const tracing = {
    ...(configured ? { otlpEndpoint: configured.otlpEndpoint, sampleRatio: configured.sampleRatio } : {}),
    ...tracingFromEnv(options.env),
  };
  const providerKeys = Object.fromEntries(
    Object.values(CREDENTIAL_ENV).map((name) => [name, options.env[name]]),
  );
  const encryption = parseKeyRing(options.env.AIORCH_ENCRYPTION_KEYS);
  // a configured protection that cannot be applied is a refusal to start, never a silent downgrade
  if (options.config.security.encryptQueued && !encryption) {
    if (!options.allowPlaintextQueue) {
      throw new StartRefused(
        "security.encryptQueued is on in the runtime config but AIORCH_ENCRYPTION_KEYS is not set: queued job bodies would be stored in Redis in clear text. " +
          'Set AIORCH_ENCRYPTION_KEYS to "id:base64key" (e.g. k1:$(openssl rand -base64 32); in the cluster the stack\'s queue-encryption Secret sets it), ' +
          "or set ai-orchestrator:security.encryptQueued: false for a stack that needs no sealing (on a workstation: aiorch gateway or aiorch dev with --plaintext-jobs)",
      );
    }
    log(
      "gateway: WARNING security.encryptQueued is on but AIORCH_ENCRYPTION_KEYS is not set (--plaintext-jobs): job bodies are stored in Redis in clear text",
    );
  }

  // 1. the ops port, at once: probes pass and Prometheus scrapes while Redis is not answering yet
  const metrics = new GatewayMetrics(new Set(options.config.models.map((m) => m.name)));
  /** Set once the public API listens: /readyz asks it (Redis, pub/sub) from then on. */
  let serving: Gateway | undefined;
  let starting: Readiness = { ready: false, reason: "starting" };
  const ops = buildOpsServer({
    metrics,
    readiness: () => (serving ? serving.readiness() : Promise.resolve(starting)),
  });
  const opsAddress = await ops.listen({ port: options.metricsPort ?? OPS_PORT, host: options.host });
  const metricsPort = (ops.server.address() as AddressInfo).port;
  log(`gateway: /metrics, /healthz and /readyz on ${opsAddress}`);

  let redis: Redis | undefined;
  let gateway: Gateway | undefined;
  try {
    // 2. Redis: wait until it answers, one line per attempt
    const answered = await waitForRedisConnection(connection, {
      role: "gateway",
      log,
      signal: options.signal,
      onFailure: (reason) => {
        starting = { ready: false, reason };
      },
      ...options.redisRetry,
    });
    if (!answered) throw new StartAborted("gateway");
    starting = { ready: false, reason: "starting" };
    redis = new Redis(url, {
      ...redisClientOptions(connection),
      enableAutoPipelining: true,
      maxRetriesPerRequest: 2,
      lazyConnect: false,
    });
    redis.on("error", (error: Error) => log(`gateway: redis: ${error.message}`));

    // 3. the public API
    gateway = await buildGateway({
      config: options.config,
      redis,
      providerKeys,
      encryption,
      allowPlaintextQueue: options.allowPlaintextQueue,
      tracing,
      metrics,
    });
    const address = await gateway.app.listen({ port: options.port, host: options.host });
    const port = Number(new URL(address).port);
    log(
      `gateway: stack ${options.config.stack}, ${options.config.models.length} model(s), listening on ${address}${tracing.otlpEndpoint ? `, spans to ${tracing.otlpEndpoint}` : ""}`,
    );
    if (options.signal?.aborted) throw new StartAborted("gateway"); // a signal while it was starting
    serving = gateway;
    const started = gateway;
    const client = redis;
    return {
      port,
      metricsPort,
      close: async () => {
        await started.app.close(); // readiness turns 503 first, in-flight requests finish
        await ops.close();
        client.disconnect();
      },
    };
  } catch (error) {
    await gateway?.app.close().catch(() => undefined);
    await ops.close().catch(() => undefined);
    redis?.disconnect();
    throw error;
  }
}

const USAGE = `usage: node gateway.js [--config FILE] [--port ${GATEWAY_PORT}] [--metrics-port ${OPS_PORT}] [--host 0.0.0.0]

  --config FILE        runtime config JSON (env AIORCH_CONFIG; default /etc/aiorch/runtime.json)
  --port N             public API port (env PORT; default ${GATEWAY_PORT})
  --metrics-port N     /metrics, /healthz, /readyz port (env METRICS_PORT; default ${OPS_PORT}); 0 picks a free one
  --host ADDR          address both listen on (default 0.0.0.0)
Redis from REDIS_URL (REDIS_PASSWORD, REDIS_TLS_*); waited for at start, /readyz answers 503 until it answers.
AIORCH_ENCRYPTION_KEYS (id:base64key, current first) seals queued jobs; required when security.encryptQueued is on.
`;

if (require.main === module) {
  const { values } = parseArgs({
    options: {
      config: { type: "string" },
      port: { type: "string" },
      "metrics-port": { type: "string" },
      host: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const configPath = values.config ?? process.env.AIORCH_CONFIG ?? "/etc/aiorch/runtime.json";
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const config = parseRuntimeConfig(JSON.parse(readFileSync(configPath, "utf8")));
  runUntilSignal(
    "gateway",
    (signal) =>
      startGateway({
        config,
        port: Number(values.port ?? process.env.PORT ?? GATEWAY_PORT),
        metricsPort: Number(values["metrics-port"] ?? process.env.METRICS_PORT ?? OPS_PORT),
        host: values.host ?? "0.0.0.0",
        env: process.env,
        log,
        signal,
      }),
    log,
  );
}
