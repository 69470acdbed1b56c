/**
 * Controller process entry: read the runtime config and credentials from the environment, build the providers
 * (one registry, `providers/index.ts`), serve /metrics, /healthz and /readyz, wait for Redis, run the loop. In the
 * cluster the bundle's entry (`node controller.js --config /etc/aiorch/runtime.json`); locally `aiorch controller`.
 *
 * The ops server starts first, so liveness and startup probes pass while Redis is not answering yet; Redis is
 * then waited for with one log line per attempt, `/readyz` answering 503 meanwhile.
 */
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { lastBackupOf } from "../core/backup-redis";
import {
  parseRuntimeConfig,
  type RuntimeConfig,
  redisClientOptions,
  redisConnectionFromEnv,
} from "../core/config/runtime";
import { OPS_PORT } from "../core/process-env";
import { redisKeys } from "../core/redis-keys";
import { runUntilSignal, StartAborted, waitForRedisConnection } from "../core/redis-wait";
import { startMcpHttp } from "../mcp/http";
import { Controller } from "./controller";
import { ControllerMetrics } from "./metrics";
import { buildProviders } from "./providers";

type Env = Readonly<Record<string, string | undefined>>;

export interface ControllerProcessOptions {
  readonly config: RuntimeConfig;
  readonly env: Env;
  /** Port of /metrics, /healthz, /readyz; 0 picks a free one. */
  readonly port: number;
  readonly host: string;
  readonly log?: (line: string) => void;
  readonly tickMs?: number;
  readonly reconcileMs?: number;
  /** Aborting it while the controller still waits for Redis stops the start: it rejects with `StartAborted`. */
  readonly signal?: AbortSignal;
  /** Pauses between Redis attempts (tests shorten them). @default 500 ms doubling to 5 s */
  readonly redisRetry?: { readonly firstDelayMs?: number; readonly maxDelayMs?: number };
  /**
   * Serve the MCP server (mcp/http.ts: Streamable HTTP, API keys of scope read or admin as bearer) on this port
   * once Redis answers (stack config `mcp`); 0 picks a free one. @default not served
   */
  readonly mcpPort?: number;
}

export async function startController(
  options: ControllerProcessOptions,
): Promise<{ controller: Controller; port: number; mcpPort?: number; close(): Promise<void> }> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const connection = redisConnectionFromEnv(options.env, (path) => readFileSync(path, "utf8"));
  const { url } = connection;
  const metrics = new ControllerMetrics();
  const { adapters, managed } = buildProviders(options.config, options.env, log);

  // 1. the ops server, at once
  let redis: Redis | undefined;
  let built: Controller | undefined;
  let mcp: Awaited<ReturnType<typeof startMcpHttp>> | undefined;
  /** Set once started: /readyz asks Redis from then on. */
  let controller: Controller | undefined;
  let waiting = "starting";
  const server: Server = createServer((req, res) => {
    const path = req.url?.split("?")[0];
    if (path === "/metrics") {
      metrics.registry.metrics().then(
        (text) => res.writeHead(200, { "content-type": metrics.registry.contentType }).end(text),
        () => res.writeHead(500).end(),
      );
    } else if (path === "/healthz")
      res.writeHead(200, { "content-type": "application/json" }).end('{"status":"ok"}');
    else if (path === "/readyz") {
      // a standby is healthy but not the one acting; both report ready so a rollout can proceed
      if (!controller || !redis) {
        res.writeHead(503, { "content-type": "application/json" });
        res.end(JSON.stringify({ status: "starting", reason: waiting }));
        return;
      }
      res.writeHead(redis.status === "ready" ? 200 : 503, { "content-type": "application/json" });
      res.end(JSON.stringify({ status: redis.status, leader: controller.isLeader }));
    } else res.writeHead(404).end();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as { port: number }).port;
  const closeServer = () => new Promise((resolve) => server.close(resolve));
  log(`controller: /metrics, /healthz and /readyz on http://${options.host}:${port}`);

  try {
    // 2. Redis
    const answered = await waitForRedisConnection(connection, {
      role: "controller",
      log,
      signal: options.signal,
      onFailure: (reason) => {
        waiting = reason;
      },
      ...options.redisRetry,
    });
    if (!answered) throw new StartAborted("controller");
    waiting = "starting";
    redis = new Redis(url, {
      ...redisClientOptions(connection),
      maxRetriesPerRequest: 2,
    });
    redis.on("error", (error: Error) => log(`controller: redis: ${error.message}`));
    if (options.config.backup) {
      const backupsIn = redis;
      const keys = redisKeys(options.config.redis.keyPrefix);
      metrics.readLastBackup(() => lastBackupOf(backupsIn, keys));
    }

    // 3. the loop
    const workerEnv: Record<string, string> = {};
    if (options.env.HF_TOKEN) workerEnv.HF_TOKEN = options.env.HF_TOKEN;
    const started = new Controller({
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
    built = started;
    await started.start();
    controller = started;
    const client = redis;
    log(
      `controller: stack ${options.config.stack}, providers ${
        [...Object.keys(adapters), ...Object.keys(managed)].join(", ") || "(none)"
      }, metrics on ${options.host}:${port}`,
    );
    if (options.mcpPort !== undefined) {
      // the MCP tools read and write Redis only: the provider credentials of this process are never reachable
      mcp = await startMcpHttp({
        config: options.config,
        redis,
        port: options.mcpPort,
        host: options.host,
        log,
      });
      log(`controller: MCP server on ${mcp.url} (Authorization: Bearer <read or admin key>)`);
    }
    if (options.signal?.aborted) throw new StartAborted("controller"); // a signal while it was starting
    const served = mcp;
    return {
      controller: started,
      port,
      ...(served ? { mcpPort: served.port } : {}),
      close: async () => {
        await served?.close();
        await started.stop();
        await closeServer();
        client.disconnect();
      },
    };
  } catch (error) {
    await mcp?.close().catch(() => undefined);
    await built?.stop().catch(() => undefined);
    await closeServer();
    redis?.disconnect();
    throw error;
  }
}

const USAGE = `usage: node controller.js [--config FILE] [--port ${OPS_PORT}] [--host 0.0.0.0]

  --config FILE   runtime config JSON (env AIORCH_CONFIG; default /etc/aiorch/runtime.json)
  --port N        /metrics, /healthz, /readyz port (env METRICS_PORT; default ${OPS_PORT}); 0 picks a free one
  --host ADDR     address it listens on (default 0.0.0.0)
  --mcp-port N    also serve MCP over Streamable HTTP on this port (POST /mcp, API key of scope read or admin)
Redis from REDIS_URL (REDIS_PASSWORD, REDIS_TLS_*); waited for at start, /readyz answers 503 until it answers.
Provider credentials from the environment (the variables each provider adapter names).
`;

if (require.main === module) {
  const { values } = parseArgs({
    options: {
      config: { type: "string" },
      port: { type: "string" },
      host: { type: "string" },
      "mcp-port": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const configPath = values.config ?? process.env.AIORCH_CONFIG ?? "/etc/aiorch/runtime.json";
  const config = parseRuntimeConfig(JSON.parse(readFileSync(configPath, "utf8")));
  runUntilSignal(
    "controller",
    (signal) =>
      startController({
        config,
        env: process.env,
        port: Number(values.port ?? process.env.METRICS_PORT ?? OPS_PORT),
        host: values.host ?? "0.0.0.0",
        ...(values["mcp-port"] !== undefined ? { mcpPort: Number(values["mcp-port"]) } : {}),
        log,
        signal,
      }),
    log,
  );
}
