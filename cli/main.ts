/**
 * `aiorch`: the command line of ai-orchestrator. Exit codes: 0 clean, 1 a mandatory policy violation,
 * 2 invalid config or usage (the message on stderr names the key or flag).
 */
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { StackConfigError } from "../core/config";

const USAGE = `usage: aiorch <command> [options]

commands:
  plan     [--stack NAME] [--json] [--policy-config FILE]
           evaluate the stack offline: resources, policy verdict, cost forecast
  config   [--stack NAME]
           print the runtime config JSON the gateway and controller read
  gateway  [--stack NAME | --config FILE] [--port 8080] [--host 0.0.0.0]
           run the OpenAI-compatible gateway (Redis from REDIS_URL)
  controller [--stack NAME | --config FILE] [--port 9090]
           run the GPU controller (Redis from REDIS_URL, provider keys from the environment)
  dev      [--stack NAME | --config FILE] [--port 8080] [--metrics-port 9090]
           gateway and controller together on this machine (local Redis)
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

/** Options both runtime processes take: where their config comes from and where they listen. */
function runtimeProcessArgs(argv: string[], dir: string, defaultPort: number) {
  const { values } = parseArgs({
    args: argv,
    options: {
      stack: { type: "string" },
      config: { type: "string" },
      port: { type: "string" },
      host: { type: "string" },
    },
    strict: true,
  });
  const port = Number(values.port ?? defaultPort);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new UsageError(`--port must be 0-65535; got "${values.port}"`);
  const { runtimeConfigFrom } = lazy<typeof import("./runtime-source")>("./runtime-source");
  return {
    config: runtimeConfigFrom({ stack: values.stack, config: values.config, dir }),
    port,
    host: values.host ?? "127.0.0.1",
  };
}

/** Run until SIGTERM/SIGINT, then close. */
function untilSignal(close: () => Promise<void>): Promise<void> {
  return new Promise((resolve) => {
    const stop = () => void close().then(resolve, resolve);
    process.once("SIGTERM", stop);
    process.once("SIGINT", stop);
  });
}

async function gateway(argv: string[], io: Io, dir: string): Promise<number> {
  const { config, port, host } = runtimeProcessArgs(argv, dir, Number(process.env.PORT ?? 8080));
  const { startGateway } = lazy<typeof import("../gateway/main")>("../gateway/main");
  const handle = await startGateway({
    config,
    port,
    host,
    env: process.env,
    log: (line) => io.err(`${line}\n`),
  });
  await untilSignal(handle.close);
  return EXIT.ok;
}

async function controller(argv: string[], io: Io, dir: string): Promise<number> {
  const { config, port, host } = runtimeProcessArgs(argv, dir, 9090);
  const { startController } = lazy<typeof import("../controller/main")>("../controller/main");
  const handle = await startController({
    config,
    env: process.env,
    port,
    host,
    log: (line) => io.err(`${line}\n`),
  });
  await untilSignal(handle.close);
  return EXIT.ok;
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
    },
    strict: true,
  });
  const { runtimeConfigFrom } = lazy<typeof import("./runtime-source")>("./runtime-source");
  const { startGateway } = lazy<typeof import("../gateway/main")>("../gateway/main");
  const { startController } = lazy<typeof import("../controller/main")>("../controller/main");
  const config = runtimeConfigFrom({ stack: values.stack, config: values.config, dir });
  const log = (line: string) => io.err(`${line}\n`);
  const controllerHandle = await startController({
    config,
    env: process.env,
    port: Number(values["metrics-port"] ?? 9090),
    host: "127.0.0.1",
    log,
  });
  const gatewayHandle = await startGateway({
    config,
    port: Number(values.port ?? 8080),
    host: "127.0.0.1",
    env: process.env,
    log,
  });
  await untilSignal(async () => {
    await Promise.allSettled([gatewayHandle.close(), controllerHandle.close()]);
  });
  return EXIT.ok;
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
    if (error instanceof StackConfigError || name === "UsageError") {
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
