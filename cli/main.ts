/**
 * `aiorch`: the command line of ai-orchestrator. Exit codes: 0 clean, 1 a mandatory policy violation,
 * 2 invalid config or usage (the message on stderr names the key or flag).
 */
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { StackConfigError } from "../core/config";
import { GATEWAY_PORT, OPS_PORT } from "../core/process-env";

const USAGE = `usage: aiorch <command> [options]

commands:
  plan     [--stack NAME] [--json] [--policy-config FILE]
           evaluate the stack offline: resources, policy verdict, cost forecast
  config   [--stack NAME]
           print the runtime config JSON the gateway and controller read
  gateway  [--stack NAME | --config FILE] [--port 8080] [--metrics-port 9091] [--host 127.0.0.1] [--plaintext-jobs]
           run the OpenAI-compatible gateway (Redis from REDIS_URL, waited for; /readyz 503 meanwhile):
           the API on --port (env PORT), /metrics, /healthz, /readyz on --metrics-port (env METRICS_PORT);
           AIORCH_ENCRYPTION_KEYS seals queued jobs (required when security.encryptQueued is on, unless
           --plaintext-jobs: job bodies in clear in Redis, for a workstation only)
  controller [--stack NAME | --config FILE] [--port 9090] [--host 127.0.0.1]
           run the GPU controller (Redis from REDIS_URL, provider keys from the environment);
           /metrics, /healthz, /readyz on --port (env METRICS_PORT)
  dev      [--stack NAME | --config FILE] [--port 8080] [--metrics-port 9090] [--gateway-metrics-port 9091]
           [--plaintext-jobs]
           gateway and controller together on this machine (local Redis); --metrics-port is the
           controller's /metrics, /healthz, /readyz port, --gateway-metrics-port the gateway's;
           --plaintext-jobs as for gateway
  keys     create --name N [--models a,b] [--rpm R] [--tpm T] [--monthly-budget USD] [--expires DATE]
           list [--json] | rotate ID [--grace 24h] | revoke ID   (API keys; same --stack/--config and REDIS_URL)
  audit    list [--json] | verify       the administrative audit trail (hash-chained); verify exits 1 if broken
  models   list [--json] | set-weight MODEL VARIANT WEIGHT [--reason TEXT] | set-weight MODEL VARIANT --reset
           variants of each model and their traffic weights; set-weight changes them at run time (audited)
  status   [--stack NAME | --config FILE] [--json] [--decisions N]
           workers by model, provider and state, queue depth, spend vs budget, last scale decisions
  simulate [--stack NAME] [--pattern …] [--trace FILE] [--policy …] [--seed N] [--json] [--chart FILE]
           monthly cost and user wait per model × provider × usage pattern × keep-alive policy

options:
  --stack NAME   stack to use (Pulumi.NAME.yaml); default: dev
  --config FILE  runtime config JSON (what 'aiorch config' prints) instead of a stack
  --dir PATH     project folder; default: the current folder
  --json         machine-readable output
`;

export const EXIT = { ok: 0, policy: 1, usage: 2 } as const;

export interface Io {
  out(text: string): void;
  err(text: string): void;
}

/**
 * The gateway's ops port on this machine: beside a local controller, which has the cluster's ops port (9090).
 * (In the cluster each runs in its own pod, both on OPS_PORT.)
 */
const LOCAL_GATEWAY_OPS_PORT = OPS_PORT + 1;

const processIo: Io = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };

/** Load a command's module only when it runs: `plan` pulls in Pulumi, `gateway` fastify, and so on. */
const lazy = <T>(path: string): T => require(path) as T;

/** Split off `--dir`, which every command takes. */
function takeDir(argv: readonly string[]): { dir: string; rest: string[] } {
  const rest = [...argv];
  const at = rest.findIndex((a) => a === "--dir" || a.startsWith("--dir="));
  if (at === -1) return { dir: resolve(process.cwd()), rest };
  const arg = rest[at]!;
  const value = arg.includes("=") ? arg.slice(arg.indexOf("=") + 1) : rest[at + 1];
  rest.splice(at, arg.includes("=") ? 1 : 2);
  return { dir: resolve(value ?? "."), rest };
}

async function plan(argv: string[], io: Io, dir: string): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { stack: { type: "string" }, json: { type: "boolean" }, "policy-config": { type: "string" } },
    strict: true,
  });
  const { buildPlan, readPackConfig } = lazy<typeof import("./plan/run")>("./plan/run");
  const { planJson, renderPlan } = lazy<typeof import("./plan/render")>("./plan/render");
  const report = await buildPlan(dir, values.stack ?? "dev", readPackConfig(values["policy-config"]));
  io.out(values.json ? `${JSON.stringify(planJson(report), null, 2)}\n` : renderPlan(report));
  return report.policy.violations.some((v) => v.level === "mandatory") ? EXIT.policy : EXIT.ok;
}

async function config(argv: string[], io: Io, dir: string): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { stack: { type: "string" } }, strict: true });
  const { stackRuntimeConfig } = lazy<typeof import("./plan/run")>("./plan/run");
  io.out(`${JSON.stringify(stackRuntimeConfig(dir, values.stack ?? "dev"), null, 2)}\n`);
  return EXIT.ok;
}

/** A port flag's value (0 picks a free port). */
function portArg(flag: string, value: string | undefined, fallback: number): number {
  const port = Number(value ?? fallback);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new UsageError(`--${flag} must be 0-65535; got "${value}"`);
  return port;
}

/** The usage text's lines of one command (its entry and the indented lines under it). */
function commandUsage(command: string): string {
  const lines = USAGE.split("\n");
  const at = lines.findIndex((l) => l.startsWith(`  ${command} `));
  if (at === -1) return USAGE;
  const end = lines.findIndex((l, i) => i > at && !/^ {11}/.test(l));
  return `usage: aiorch ${lines
    .slice(at, end === -1 ? undefined : end)
    .map((l) => l.trim().replace(/ {2,}/g, " "))
    .join("\n       ")}\n`;
}

/**
 * Options both runtime processes take: where their config comes from and where they listen. `--metrics-port`
 * is the gateway's ops port; the controller has only that port, `--port`.
 */
function runtimeProcessArgs(argv: string[], dir: string, defaultPort: number) {
  const { values } = parseArgs({
    args: argv,
    options: {
      stack: { type: "string" },
      config: { type: "string" },
      port: { type: "string" },
      "metrics-port": { type: "string" },
      host: { type: "string" },
      "plaintext-jobs": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) return { help: true as const };
  const { runtimeConfigFrom } = lazy<typeof import("./runtime-source")>("./runtime-source");
  return {
    help: false as const,
    config: runtimeConfigFrom({ stack: values.stack, config: values.config, dir }),
    port: portArg("port", values.port, defaultPort),
    metricsPort: values["metrics-port"],
    host: values.host ?? "127.0.0.1",
    plaintextJobs: values["plaintext-jobs"] === true,
  };
}

/**
 * Start (given a signal that stops a start still waiting for Redis), then run until SIGTERM/SIGINT and close.
 * A signal during the start ends it cleanly too: exit 0 either way.
 */
async function runUntilSignal(
  start: (signal: AbortSignal) => Promise<{ close(): Promise<void> }>,
): Promise<number> {
  const abort = new AbortController();
  const stopped = new Promise<void>((resolve) => abort.signal.addEventListener("abort", () => resolve()));
  const stop = () => abort.abort();
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
  try {
    const handle = await start(abort.signal);
    await stopped;
    await handle.close().catch(() => undefined);
  } catch (error) {
    if ((error as Error).name !== "StartAborted") throw error;
  } finally {
    process.off("SIGTERM", stop);
    process.off("SIGINT", stop);
  }
  return EXIT.ok;
}

async function gateway(argv: string[], io: Io, dir: string): Promise<number> {
  const args = runtimeProcessArgs(argv, dir, Number(process.env.PORT ?? GATEWAY_PORT));
  if (args.help) {
    io.out(commandUsage("gateway"));
    return EXIT.ok;
  }
  const metricsPort = portArg(
    "metrics-port",
    args.metricsPort,
    Number(process.env.METRICS_PORT ?? LOCAL_GATEWAY_OPS_PORT),
  );
  const { startGateway } = lazy<typeof import("../gateway/main")>("../gateway/main");
  return runUntilSignal((signal) =>
    startGateway({
      config: args.config,
      port: args.port,
      metricsPort,
      host: args.host,
      env: process.env,
      log: (line) => io.err(`${line}\n`),
      signal,
      allowPlaintextQueue: args.plaintextJobs,
    }),
  );
}

async function controller(argv: string[], io: Io, dir: string): Promise<number> {
  const args = runtimeProcessArgs(argv, dir, Number(process.env.METRICS_PORT ?? OPS_PORT));
  if (args.help) {
    io.out(commandUsage("controller"));
    return EXIT.ok;
  }
  if (args.metricsPort !== undefined)
    throw new UsageError(
      "the controller serves /metrics, /healthz and /readyz on --port; there is no --metrics-port",
    );
  if (args.plaintextJobs)
    throw new UsageError(
      "--plaintext-jobs is a gateway option (aiorch gateway, aiorch dev); the controller stores no jobs",
    );
  const { startController } = lazy<typeof import("../controller/main")>("../controller/main");
  return runUntilSignal((signal) =>
    startController({
      config: args.config,
      env: process.env,
      port: args.port,
      host: args.host,
      log: (line) => io.err(`${line}\n`),
      signal,
    }),
  );
}

/** Gateway and controller in one process against local Redis: the whole runtime of a stack on this machine. */
async function dev(argv: string[], io: Io, dir: string): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      stack: { type: "string" },
      config: { type: "string" },
      port: { type: "string" },
      "metrics-port": { type: "string" },
      "gateway-metrics-port": { type: "string" },
      "plaintext-jobs": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    io.out(commandUsage("dev"));
    return EXIT.ok;
  }
  const port = portArg("port", values.port, GATEWAY_PORT);
  const controllerPort = portArg("metrics-port", values["metrics-port"], OPS_PORT);
  const gatewayMetricsPort = portArg(
    "gateway-metrics-port",
    values["gateway-metrics-port"],
    LOCAL_GATEWAY_OPS_PORT,
  );
  const { runtimeConfigFrom } = lazy<typeof import("./runtime-source")>("./runtime-source");
  const { startGateway } = lazy<typeof import("../gateway/main")>("../gateway/main");
  const { startController } = lazy<typeof import("../controller/main")>("../controller/main");
  const config = runtimeConfigFrom({ stack: values.stack, config: values.config, dir });
  const log = (line: string) => io.err(`${line}\n`);
  return runUntilSignal(async (signal) => {
    const controllerHandle = await startController({
      config,
      env: process.env,
      port: controllerPort,
      host: "127.0.0.1",
      log,
      signal,
    });
    try {
      const gatewayHandle = await startGateway({
        config,
        port,
        metricsPort: gatewayMetricsPort,
        host: "127.0.0.1",
        env: process.env,
        log,
        signal,
        allowPlaintextQueue: values["plaintext-jobs"] === true,
      });
      return {
        close: async () => {
          await Promise.allSettled([gatewayHandle.close(), controllerHandle.close()]);
        },
      };
    } catch (error) {
      await controllerHandle.close().catch(() => undefined);
      throw error;
    }
  });
}

async function audit(argv: string[], io: Io, dir: string): Promise<number> {
  const { runAudit } = lazy<typeof import("./audit")>("./audit");
  return runAudit(argv, io, dir);
}

async function keys(argv: string[], io: Io, dir: string): Promise<number> {
  const { runKeys } = lazy<typeof import("./keys")>("./keys");
  return runKeys(argv, io, dir);
}

async function models(argv: string[], io: Io, dir: string): Promise<number> {
  const { runModels } = lazy<typeof import("./models")>("./models");
  return runModels(argv, io, dir);
}

async function status(argv: string[], io: Io, dir: string): Promise<number> {
  const { runStatus } = lazy<typeof import("./status")>("./status");
  return runStatus(argv, io, dir);
}

async function simulate(argv: string[], io: Io, dir: string): Promise<number> {
  const { runSimulate } = lazy<typeof import("./simulate")>("./simulate");
  return runSimulate([...argv, "--dir", dir], io);
}

const COMMANDS: Record<string, (argv: string[], io: Io, dir: string) => Promise<number>> = {
  plan,
  config,
  gateway,
  controller,
  dev,
  keys,
  audit,
  models,
  status,
  simulate,
};

class UsageError extends Error {
  override name = "UsageError";
}

export async function main(argv: readonly string[], io: Io = processIo): Promise<number> {
  const [command, ...args] = argv;
  if (!command || command === "help" || command === "--help" || command === "-h") {
    (command ? io.out : io.err)(USAGE);
    return command ? EXIT.ok : EXIT.usage;
  }
  const run = COMMANDS[command];
  if (!run) {
    io.err(`aiorch: unknown command "${command}"\n\n${USAGE}`);
    return EXIT.usage;
  }
  try {
    const { dir, rest } = takeDir(args);
    return await run(rest, io, dir);
  } catch (error) {
    const name = (error as Error).name;
    // a gateway refusing to start (StartRefused) says why and what to set: a config problem, not a crash
    if (error instanceof StackConfigError || name === "UsageError" || name === "StartRefused") {
      io.err(`aiorch ${command}: ${(error as Error).message}\n`);
      return EXIT.usage;
    }
    if (name === "ProgramError") {
      io.err(`aiorch ${command}: the Pulumi program failed: ${(error as Error).message}\n`);
      return EXIT.usage;
    }
    if ((error as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      io.err(`aiorch ${command}: ${(error as Error).message}\n\n${USAGE}`);
      return EXIT.usage;
    }
    throw error;
  }
}
