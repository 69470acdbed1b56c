/**
 * Controller process entry: read the runtime config and credentials from the environment, build the provider
 * adapters, run the loop, serve /metrics, /healthz and /readyz. In the cluster the bundle's entry
 * (`node controller.js --config /etc/aiorch/runtime.json`); locally `aiorch controller`.
 */
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import type { ConfigurableProviderId } from "../core/catalog";
import {
  parseRuntimeConfig,
  type RuntimeConfig,
  redisClientOptions,
  redisConnectionFromEnv,
} from "../core/config/runtime";
import { Controller } from "./controller";
import { ControllerMetrics } from "./metrics";
import { DatacrunchAdapter } from "./providers/datacrunch";
import { LocalAdapter } from "./providers/local";
import { RunpodPodAdapter } from "./providers/runpod-pod";
import { RunPodServerlessManager } from "./providers/runpod-serverless";
import type { ProviderAdapter } from "./providers/types";
import { VastAiAdapter } from "./providers/vastai";

type Env = Readonly<Record<string, string | undefined>>;

/**
 * Adapters for the configured providers. A provider whose credentials are missing is left out with a log line:
 * the controller then fails over to the next provider instead of failing every request.
 */
export function buildAdapters(
  config: RuntimeConfig,
  env: Env,
  log: (line: string) => void,
): {
  adapters: Partial<Record<ConfigurableProviderId, ProviderAdapter>>;
  runpodServerless?: RunPodServerlessManager;
} {
  const adapters: Partial<Record<ConfigurableProviderId, ProviderAdapter>> = {};
  let runpodServerless: RunPodServerlessManager | undefined;
  const p = config.providers;
  const attempt = (id: ConfigurableProviderId, build: () => void) => {
    try {
      build();
    } catch (error) {
      log(`controller: provider ${id} disabled: ${(error as Error).message}`);
    }
  };
  if (p.vastai)
    attempt(
      "vastai",
      () => (adapters.vastai = new VastAiAdapter({ settings: p.vastai!, apiKey: env.VASTAI_API_KEY ?? "" })),
    );
  if (p.datacrunch) {
    attempt("datacrunch", () => {
      adapters.datacrunch = new DatacrunchAdapter({
        settings: p.datacrunch!,
        clientId: env.DATACRUNCH_CLIENT_ID ?? "",
        clientSecret: env.DATACRUNCH_CLIENT_SECRET ?? "",
        prices: config.prices,
      });
    });
  }
  if (p["runpod-pod"]) {
    attempt("runpod-pod", () => {
      adapters["runpod-pod"] = new RunpodPodAdapter({
        settings: p["runpod-pod"]!,
        apiKey: env.RUNPOD_API_KEY ?? "",
        prices: config.prices,
      });
    });
  }
  if (p.local) attempt("local", () => (adapters.local = new LocalAdapter({ settings: p.local! })));
  if (p["runpod-serverless"]) {
    attempt("runpod-serverless", () => {
      runpodServerless = new RunPodServerlessManager({
        settings: p["runpod-serverless"]!,
        apiKey: env.RUNPOD_API_KEY,
        jobApiBase: env.RUNPOD_JOB_API_BASE,
      });
    });
  }
  return { adapters, runpodServerless };
}

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
  const { adapters, runpodServerless } = buildAdapters(options.config, options.env, log);
  const workerEnv: Record<string, string> = {};
  if (options.env.HF_TOKEN) workerEnv.HF_TOKEN = options.env.HF_TOKEN;
  const controller = new Controller({
    config: options.config,
    redis,
    adapters,
    runpodServerless,
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
      Object.keys(adapters)
        .concat(runpodServerless ? ["runpod-serverless"] : [])
        .join(", ") || "(none)"
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
