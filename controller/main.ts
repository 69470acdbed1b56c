/**
 * Controller process entry: read the runtime config and credentials from the environment, build the providers
 * (one registry, `providers/index.ts`), run the loop, serve /metrics, /healthz and /readyz. In the cluster the bundle's entry
 * (`node controller.js --config /etc/aiorch/runtime.json`); locally `aiorch controller`.
 */
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import {
  parseRuntimeConfig,
  type RuntimeConfig,
  redisClientOptions,
  redisConnectionFromEnv,
} from "../core/config/runtime";
import { Controller } from "./controller";
import { ControllerMetrics } from "./metrics";
import { buildProviders } from "./providers";

type Env = Readonly<Record<string, string | undefined>>;

export interface ControllerProcessOptions {
  readonly config: RuntimeConfig;
  readonly env: Env;
  /** Port of /metrics, /healthz, /readyz. */
  readonly port: number;
  readonly host: string;
  readonly log?: (line: string) => void;
  readonly tickMs?: number;
  readonly reconcileMs?: number;
}

export async function startController(
  options: ControllerProcessOptions,
): Promise<{ controller: Controller; port: number; close(): Promise<void> }> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const connection = redisConnectionFromEnv(options.env, (path) => readFileSync(path, "utf8"));
  const { url } = connection;
  const redis = new Redis(url, {
    ...redisClientOptions(connection),
    maxRetriesPerRequest: 2,
  });
  redis.on("error", (error: Error) => log(`controller: redis: ${error.message}`));
  const metrics = new ControllerMetrics();
  const { adapters, managed } = buildProviders(options.config, options.env, log);
  const workerEnv: Record<string, string> = {};
  if (options.env.HF_TOKEN) workerEnv.HF_TOKEN = options.env.HF_TOKEN;
  const controller = new Controller({
    config: options.config,
    redis,
    adapters,
    managed,
    metrics,
    workerEnv,
    log,
    tickMs: options.tickMs,
    reconcileMs: options.reconcileMs,
  });
  await controller.start();

  const server: Server = createServer((req, res) => {
    if (req.url === "/metrics") {
      metrics.registry.metrics().then(
        (text) => res.writeHead(200, { "content-type": metrics.registry.contentType }).end(text),
        () => res.writeHead(500).end(),
      );
    } else if (req.url === "/healthz")
      res.writeHead(200, { "content-type": "application/json" }).end('{"status":"ok"}');
    else if (req.url === "/readyz") {
      // a standby is healthy but not the one acting; both report ready so a rollout can proceed
      res.writeHead(redis.status === "ready" ? 200 : 503, { "content-type": "application/json" });
      res.end(JSON.stringify({ status: redis.status, leader: controller.isLeader }));
    } else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(options.port, options.host, resolve));
  const port = (server.address() as { port: number }).port;
  log(
    `controller: stack ${options.config.stack}, providers ${
      [...Object.keys(adapters), ...Object.keys(managed)].join(", ") || "(none)"
    }, metrics on ${options.host}:${port}`,
  );
  return {
    controller,
    port,
    close: async () => {
      await controller.stop();
      await new Promise((resolve) => server.close(resolve));
      redis.disconnect();
    },
  };
}

if (require.main === module) {
  const { values } = parseArgs({
    options: { config: { type: "string" }, port: { type: "string" }, host: { type: "string" } },
  });
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const configPath = values.config ?? process.env.AIORCH_CONFIG ?? "/etc/aiorch/runtime.json";
  startController({
    config: parseRuntimeConfig(JSON.parse(readFileSync(configPath, "utf8"))),
    env: process.env,
    port: Number(values.port ?? process.env.METRICS_PORT ?? 9090),
    host: values.host ?? "0.0.0.0",
    log,
  }).then(
    (handle) => {
      const stop = () =>
        handle.close().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      process.once("SIGTERM", stop);
      process.once("SIGINT", stop);
    },
    (error: Error) => {
      log(`controller: failed to start: ${error.message}`);
      process.exit(1);
    },
  );
}
