/**
 * Gateway process entry: read the runtime config and the environment, connect Redis, listen. In the cluster this
 * file is the bundle's entry (`node gateway.js --config /etc/aiorch/runtime.json`); locally `aiorch gateway`.
 */
import { readFileSync } from "node:fs";
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
import { buildGateway } from "./app";
import { tracingFromEnv } from "./tracing";

export interface GatewayProcessOptions {
  readonly config: RuntimeConfig;
  readonly port: number;
  readonly host: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly log?: (line: string) => void;
}

export async function startGateway(
  options: GatewayProcessOptions,
): Promise<{ close(): Promise<void>; port: number }> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const connection = redisConnectionFromEnv(options.env, (path) => readFileSync(path, "utf8"));
  const { url } = connection;
  const redis = new Redis(url, {
    ...redisClientOptions(connection),
    enableAutoPipelining: true,
    maxRetriesPerRequest: 2,
    lazyConnect: false,
  });
  redis.on("error", (error: Error) => log(`gateway: redis: ${error.message}`));
  // the stack's setting, unless the standard OTEL_* variables say otherwise
  const configured = options.config.gateway.tracing;
  const tracing = {
    ...(configured ? { otlpEndpoint: configured.otlpEndpoint, sampleRatio: configured.sampleRatio } : {}),
    ...tracingFromEnv(options.env),
  };
  const providerKeys = Object.fromEntries(
    Object.values(CREDENTIAL_ENV).map((name) => [name, options.env[name]]),
  );
  const { app } = await buildGateway({
    config: options.config,
    redis,
    providerKeys,
    encryption: parseKeyRing(options.env.AIORCH_ENCRYPTION_KEYS),
    tracing,
  });
  const address = await app.listen({ port: options.port, host: options.host });
  const port = Number(new URL(address).port);
  log(
    `gateway: stack ${options.config.stack}, ${options.config.models.length} model(s), listening on ${address}${tracing.otlpEndpoint ? `, spans to ${tracing.otlpEndpoint}` : ""}`,
  );
  return {
    port,
    close: async () => {
      await app.close();
      redis.disconnect();
    },
  };
}

/** Close on SIGTERM/SIGINT: stop accepting, let in-flight requests finish (fastify closes gracefully). */
export function closeOnSignals(handle: { close(): Promise<void> }, log: (line: string) => void): void {
  let closing = false;
  const stop = (signal: string) => {
    if (closing) return;
    closing = true;
    log(`gateway: ${signal}, closing`);
    handle.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once("SIGTERM", () => stop("SIGTERM"));
  process.once("SIGINT", () => stop("SIGINT"));
}

if (require.main === module) {
  const { values } = parseArgs({
    options: { config: { type: "string" }, port: { type: "string" }, host: { type: "string" } },
  });
  const configPath = values.config ?? process.env.AIORCH_CONFIG ?? "/etc/aiorch/runtime.json";
  const log = (line: string) => process.stderr.write(`${line}\n`);
  startGateway({
    config: parseRuntimeConfig(JSON.parse(readFileSync(configPath, "utf8"))),
    port: Number(values.port ?? process.env.PORT ?? 8080),
    host: values.host ?? "0.0.0.0",
    env: process.env,
    log,
  }).then(
    (handle) => closeOnSignals(handle, log),
    (error: Error) => {
      log(`gateway: failed to start: ${error.message}`);
      process.exit(1);
    },
  );
}
