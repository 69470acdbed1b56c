/**
 * `aiorch`: the command line of ai-orchestrator. Exit codes: 0 clean, 1 a mandatory policy violation,
 * 2 invalid config or usage (the message on stderr names the key).
 */
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { StackConfigError } from "../core/config";

const USAGE = `usage: aiorch <command> [options]

commands:
  plan   [--stack NAME] [--json] [--policy-config FILE]
                                   evaluate the stack offline: resources, policy verdict, cost forecast
  config [--stack NAME]            print the runtime config JSON the gateway and controller read

options:
  --stack NAME   stack to use (Pulumi.NAME.yaml); default: dev
  --json         machine-readable output
  --dir PATH     project folder; default: the current folder
  --policy-config FILE   policy pack config (the JSON pulumi up --policy-pack-config takes)
`;

/** Load a command's module only when it runs: `plan` pulls in Pulumi, which other commands do not need. */
const lazy = <T>(path: string): T => require(path) as T;

export const EXIT = { ok: 0, policy: 1, usage: 2 } as const;

interface Io {
  out(text: string): void;
  err(text: string): void;
}

const processIo: Io = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };

export async function main(argv: readonly string[], io: Io = processIo): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === "help" || command === "--help" || command === "-h") {
    (command ? io.out : io.err)(USAGE);
    return command ? EXIT.ok : EXIT.usage;
  }
  let values: { stack?: string; json?: boolean; dir?: string; "policy-config"?: string };
  try {
    ({ values } = parseArgs({
      args: [...rest],
      options: {
        stack: { type: "string" },
        json: { type: "boolean" },
        dir: { type: "string" },
        "policy-config": { type: "string" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    io.err(`aiorch ${command}: ${(error as Error).message}\n\n${USAGE}`);
    return EXIT.usage;
  }
  const stack = values.stack ?? "dev";
  const dir = resolve(values.dir ?? process.cwd());
  try {
    switch (command) {
      case "plan": {
        const { buildPlan, readPackConfig } = lazy<typeof import("./plan/run")>("./plan/run");
        const { planJson, renderPlan } = lazy<typeof import("./plan/render")>("./plan/render");
        const report = await buildPlan(dir, stack, readPackConfig(values["policy-config"]));
        io.out(values.json ? `${JSON.stringify(planJson(report), null, 2)}\n` : renderPlan(report));
        return report.policy.violations.some((v) => v.level === "mandatory") ? EXIT.policy : EXIT.ok;
      }
      case "config": {
        const { stackRuntimeConfig } = lazy<typeof import("./plan/run")>("./plan/run");
        io.out(`${JSON.stringify(stackRuntimeConfig(dir, stack), null, 2)}\n`);
        return EXIT.ok;
      }
      default:
        io.err(`aiorch: unknown command "${command}"\n\n${USAGE}`);
        return EXIT.usage;
    }
  } catch (error) {
    if (error instanceof StackConfigError) {
      io.err(`aiorch ${command}: ${error.message}\n`);
      return EXIT.usage;
    }
    if ((error as Error).name === "ProgramError") {
      io.err(`aiorch ${command}: the Pulumi program failed: ${(error as Error).message}\n`);
      return EXIT.usage;
    }
    if ((error as Error).name === "UsageError") {
      io.err(`aiorch ${command}: ${(error as Error).message}\n`);
      return EXIT.usage;
    }
    throw error;
  }
}
