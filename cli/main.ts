/**
 * `aiorch`: the command line of ai-orchestrator. Exit codes: 0 clean, 1 a mandatory policy violation,
 * 2 invalid config or usage (the message on stderr names the key or flag).
 *
 * Every command and subcommand answers `--help` and `-h` with its usage on stdout (exit 0); an unknown command,
 * subcommand or option exits 2 naming it and the `--help` to read. The usage text lives in usage.ts.
 */
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { StackConfigError } from "../core/config";
import { GATEWAY_PORT, OPS_PORT } from "../core/process-env";
import { version } from "../package.json";
import {
  asksForHelp,
  COMMAND_USAGE,
  type CommandName,
  commandUsage,
  isCommandName,
  isParseArgsError,
  parseArgsMessage,
  subcommandsOf,
  USAGE,
  usageErrorText,
} from "./usage";

export const EXIT = { ok: 0, policy: 1, usage: 2 } as const;

export interface Io {
  out(text: string): void;
  err(text: string): void;
  /**
   * Whether long runs (simulate) may draw progress on `err`: only on a terminal, since a pipe or a log would keep
   * every redraw. Absent, they do (a caller capturing `err` sees it).
   */
  readonly showProgress?: boolean;
}

/**
 * The gateway's ops port on this machine: beside a local controller, which has the cluster's ops port (9090).
 * (In the cluster each runs in its own pod, both on OPS_PORT.)
 */
const LOCAL_GATEWAY_OPS_PORT = OPS_PORT + 1;

const processIo: Io = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  showProgress: process.stderr.isTTY === true,
};

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
    },
    strict: true,
  });
  const { runtimeConfigFrom } = lazy<typeof import("./runtime-source")>("./runtime-source");
  return {
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
    },
    strict: true,
  });
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

async function backup(argv: string[], io: Io, dir: string): Promise<number> {
  const { runBackup } = lazy<typeof import("./backup")>("./backup");
  return runBackup(argv, io, dir);
}

async function restore(argv: string[], io: Io, dir: string): Promise<number> {
  const { runRestore } = lazy<typeof import("./backup")>("./backup");
  return runRestore(argv, io, dir);
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

async function mcp(argv: string[], io: Io, dir: string): Promise<number> {
  const { runMcp } = lazy<typeof import("./mcp")>("./mcp");
  return runMcp(argv, io, dir);
}

async function simulate(argv: string[], io: Io, dir: string): Promise<number> {
  const { runSimulate } = lazy<typeof import("./simulate")>("./simulate");
  return runSimulate([...argv, "--dir", dir], io);
}

type Runner = (argv: string[], io: Io, dir: string) => Promise<number>;

/** What runs each command of the usage table (the type makes both name the same commands). */
const COMMANDS: { readonly [C in CommandName]: Runner } = {
  plan,
  config,
  gateway,
  controller,
  dev,
  keys,
  audit,
  backup,
  restore,
  models,
  status,
  simulate,
  mcp,
};

/** Every command with its subcommands (none: it has none), for whatever walks them all (the help test). */
export function commandTable(): { command: CommandName; subcommands: string[] }[] {
  return (Object.keys(COMMANDS) as CommandName[]).map((command) => ({
    command,
    subcommands: subcommandsOf(command),
  }));
}

class UsageError extends Error {
  override name = "UsageError";
}

/** `aiorch help [command [subcommand]]`: the usage it names, on stdout. */
function help(words: readonly string[], io: Io): number {
  const [command, subcommand] = words;
  if (command === undefined || command === "--help" || command === "-h") {
    io.out(USAGE);
    return EXIT.ok;
  }
  if (!isCommandName(command)) return unknownCommand(command, io);
  const subcommands = subcommandsOf(command);
  if (subcommand !== undefined && !subcommands.includes(subcommand)) {
    io.err(usageErrorText([command], unknownSubcommand(command, subcommand)));
    return EXIT.usage;
  }
  io.out(commandUsage(command, subcommand));
  return EXIT.ok;
}

function unknownCommand(word: string, io: Io): number {
  const what = word.startsWith("-")
    ? `unknown option '${word}' (options go after the command: aiorch <command> [options])`
    : `unknown command '${word}'; commands: ${Object.keys(COMMAND_USAGE).join(", ")}`;
  io.err(usageErrorText([], what));
  return EXIT.usage;
}

const unknownSubcommand = (command: CommandName, word: string) =>
  `unknown subcommand '${word}'; ${command} has: ${subcommandsOf(command).join(", ")}`;

export async function main(argv: readonly string[], io: Io = processIo): Promise<number> {
  const [command, ...args] = argv;
  if (command === undefined) {
    io.err(USAGE);
    return EXIT.usage;
  }
  if (command === "--help" || command === "-h") return help([], io);
  if (command === "help") return help(args, io);
  if (command === "--version" || command === "-V") {
    io.out(`${version}\n`);
    return EXIT.ok;
  }
  if (!isCommandName(command)) return unknownCommand(command, io);

  // a command of subcommands needs one first: `aiorch keys create …`
  const subcommands = subcommandsOf(command);
  const [first] = args;
  const subcommand =
    subcommands.length > 0 && first !== undefined && !first.startsWith("-") ? first : undefined;
  if (subcommand !== undefined && !subcommands.includes(subcommand)) {
    io.err(usageErrorText([command], unknownSubcommand(command, subcommand)));
    return EXIT.usage;
  }
  if (asksForHelp(args)) {
    io.out(commandUsage(command, subcommand));
    return EXIT.ok;
  }
  if (subcommands.length > 0 && subcommand === undefined) {
    const names = subcommands.join(", ");
    io.err(
      usageErrorText(
        [command],
        first === undefined
          ? `needs a subcommand: ${names}`
          : `expected a subcommand (${names}) before '${first}'`,
      ),
    );
    return EXIT.usage;
  }

  const words = subcommand === undefined ? [command] : [command, subcommand];
  try {
    const { dir, rest } = takeDir(args);
    return await COMMANDS[command](rest, io, dir);
  } catch (error) {
    const name = (error as Error).name;
    if (name === "UsageError" || isParseArgsError(error)) {
      const message = isParseArgsError(error) ? parseArgsMessage(error) : (error as Error).message;
      io.err(usageErrorText(words, message));
      return EXIT.usage;
    }
    // a gateway refusing to start (StartRefused) says why and what to set: a config problem, not a crash
    if (error instanceof StackConfigError || name === "StartRefused") {
      io.err(`aiorch ${words.join(" ")}: ${(error as Error).message}\n`);
      return EXIT.usage;
    }
    if (name === "ProgramError") {
      io.err(`aiorch ${words.join(" ")}: the Pulumi program failed: ${(error as Error).message}\n`);
      return EXIT.usage;
    }
    throw error;
  }
}
