/**
 * The usage text of `aiorch`: one table of every command and subcommand, rendered as the whole usage
 * (`aiorch --help`), one command's (`aiorch keys --help`) or one subcommand's (`aiorch keys create --help`), and
 * the one shape of a usage error (what is wrong, then which `--help` to read). main.ts pairs each command here with
 * the function that runs it; its type makes the two tables name the same commands.
 *
 * Loads nothing heavy: every `aiorch` run reads this module.
 */

/** How to call a command or subcommand, and what it does. */
export interface Usage {
  /** The arguments and options after its name, one line per alternative form (none for a command of subcommands). */
  readonly synopsis: readonly string[];
  /** What it does, a line each. */
  readonly about: readonly string[];
}

export interface CommandUsage extends Usage {
  /** Its subcommands by name; each has its own synopsis (then the command's is empty). */
  readonly subcommands?: Readonly<Record<string, Usage>>;
  /** More text for `aiorch <command> --help` alone, built when asked (it lists ids other modules own). */
  readonly details?: () => string;
}

/** Load a module only when its text is asked for (the simulator's ids live with the simulator). */
const lazy = <T>(path: string): T => require(path) as T;

/** What every subcommand working on the stack's Redis takes. */
const STACK_REDIS = "each subcommand takes [--stack NAME | --config FILE]; Redis from REDIS_URL";

export const COMMAND_USAGE = {
  plan: {
    synopsis: ["[--stack NAME] [--json] [--policy-config FILE]"],
    about: ["evaluate the stack offline: resources, policy verdict, cost forecast"],
  },
  config: {
    synopsis: ["[--stack NAME]"],
    about: ["print the runtime config JSON the gateway and controller read"],
  },
  gateway: {
    synopsis: [
      "[--stack NAME | --config FILE] [--port 8080] [--metrics-port 9091] [--host 127.0.0.1] [--plaintext-jobs]",
    ],
    about: [
      "run the OpenAI-compatible gateway (Redis from REDIS_URL, waited for; /readyz 503 meanwhile):",
      "the API on --port (env PORT), /metrics, /healthz, /readyz on --metrics-port (env METRICS_PORT);",
      "AIORCH_ENCRYPTION_KEYS seals queued jobs (required when security.encryptQueued is on, unless",
      "--plaintext-jobs: job bodies in clear in Redis, for a workstation only)",
    ],
  },
  controller: {
    synopsis: ["[--stack NAME | --config FILE] [--port 9090] [--host 127.0.0.1]"],
    about: [
      "run the GPU controller (Redis from REDIS_URL, provider keys from the environment);",
      "/metrics, /healthz, /readyz on --port (env METRICS_PORT)",
    ],
  },
  dev: {
    synopsis: [
      "[--stack NAME | --config FILE] [--port 8080] [--metrics-port 9090] [--gateway-metrics-port 9091] [--plaintext-jobs]",
    ],
    about: [
      "gateway and controller together on this machine (local Redis); --metrics-port is the",
      "controller's /metrics, /healthz, /readyz port, --gateway-metrics-port the gateway's;",
      "--plaintext-jobs as for gateway",
    ],
  },
  keys: {
    synopsis: [],
    about: [
      "API keys of the stack's gateways, kept in its Redis;",
      `${STACK_REDIS};`,
      "--actor NAME (default $AIORCH_ACTOR, else $USER) and --reason TEXT go into the audit trail",
    ],
    subcommands: {
      create: {
        synopsis: [
          "--name N [--scope inference|read|admin] [--models a,b] [--rpm R] [--tpm T] [--monthly-budget USD] [--expires DATE] [--actor NAME] [--reason TEXT] [--json]",
        ],
        about: [
          "create a key and print it once, on stdout; --models limits it to those models;",
          "--scope: inference (default) the OpenAI API only, read the read-only MCP tools, admin the acting ones too",
        ],
      },
      list: {
        synopsis: ["[--json]"],
        about: ["the keys by id and prefix (never the key): models, limits, budget, expiry, status"],
      },
      rotate: {
        synopsis: ["ID [--grace 24h] [--actor NAME] [--reason TEXT] [--json]"],
        about: ["replace key ID with a new one, printed once; ID keeps working until the grace ends"],
      },
      revoke: {
        synopsis: ["ID [--actor NAME] [--reason TEXT]"],
        about: ["stop key ID; gateways refuse it within seconds"],
      },
    },
  },
  audit: {
    synopsis: [],
    about: ["the administrative audit trail (hash-chained);", STACK_REDIS],
    subcommands: {
      list: { synopsis: ["[--json]"], about: ["every entry: time, actor, action, target, reason"] },
      verify: { synopsis: ["[--json]"], about: ["check the hash chain; exits 1 if it is broken"] },
    },
  },
  backup: {
    synopsis: [],
    about: [
      "the stack's Redis to object storage (ai-orchestrator:backup); credentials from",
      "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, sealed with AIORCH_ENCRYPTION_KEYS when the stack encrypts;",
      STACK_REDIS,
    ],
    subcommands: {
      now: {
        synopsis: ["[--json]"],
        about: ["back up the durable keys now; prints the object's s3:// address; prunes past retentionDays"],
      },
      list: { synopsis: ["[--json]"], about: ["the stack's backups: time, size, s3:// address"] },
    },
  },
  restore: {
    synopsis: [
      "--from s3://BUCKET/KEY [--stack NAME | --config FILE] [--force] [--actor NAME] [--json]",
      "--at TIME [--stack NAME | --config FILE] [--force] [--actor NAME] [--json]",
    ],
    about: [
      "restore a backup into the stack's Redis (REDIS_URL): checked whole first, refused if corrupted,",
      "sealed with another key or Redis already holds stack data (--force replaces it); the audit trail",
      "gets a backup.restored entry marking the gap; --at restores the newest backup taken at or before TIME",
    ],
  },
  models: {
    synopsis: [],
    about: ["variants of each model and their traffic weights;", STACK_REDIS],
    subcommands: {
      list: {
        synopsis: ["[--json]"],
        about: ["each variant: weights source, revision, declared and current weight, share of traffic"],
      },
      "set-weight": {
        synopsis: [
          "MODEL VARIANT WEIGHT [--reason TEXT] [--actor NAME] [--json]",
          "MODEL VARIANT --reset [--reason TEXT] [--actor NAME] [--json]",
        ],
        about: [
          "change a variant's weight at run time (every gateway follows; audited);",
          "--reset drops the change, back to the declared weight",
        ],
      },
    },
  },
  status: {
    synopsis: ["[--stack NAME | --config FILE] [--json] [--decisions N]"],
    about: ["workers by model, provider and state, queue depth, spend vs budget, last scale decisions"],
  },
  mcp: {
    synopsis: [
      "[--stack NAME | --config FILE] [--scope read|admin] [--actor NAME]",
      "[--stack NAME | --config FILE] --http [--port 8090] [--host 127.0.0.1]",
    ],
    about: [
      "the stack's MCP server for an AI assistant (Redis from REDIS_URL): status, scaling decisions, request",
      "stories, spend, forecasts, audit, errors, worker health; acting tools (bounds, drain, weights, revoke, pause,",
      "budget) need scope admin and a reason, each audited. Over stdio (a local client starts it) --scope sets",
      "the caller's scope (default read); with --http, POST /mcp with 'Authorization: Bearer <read or admin key>'",
    ],
  },
  simulate: {
    synopsis: [
      "[--stack NAME] [--pattern …] [--trace FILE] [--policy …] [--seed N] [--json] [--chart FILE]",
      "--suite [--hindsight] [--provider …] [--policy …] [--wait-price USD] [--seed N] [--json] [--chart DIR]",
    ],
    about: ["monthly cost and user wait per model × provider × usage pattern × keep-alive policy"],
    details: () => {
      const { PATTERN_IDS } = lazy<typeof import("../sim/workloads")>("../sim/workloads");
      const { POLICY_IDS } = lazy<typeof import("../sim/simulate")>("../sim/simulate");
      return `
Simulates a month of each model on each of its providers under the usage patterns (or a trace) and
compares keep-alive policies: cost, billed hours, cold starts, wait p50/p95/p99, and the ratio of each total (cost
plus waiting and dropped requests, priced) to a true lower bound (sim/bound.ts).
With providers.runpod-serverless.weightCache, RunPod serverless cold starts split into cache hits and misses
(the first cold start of a model downloads its weights, later ones load them from the volume).
A progress bar is drawn on stderr when it is a terminal and a run takes more than a second.

options:
  --stack NAME        stack to use (Pulumi.NAME.yaml); default: dev
  --dir PATH          project folder; default: the current folder
  --pattern LIST      usage patterns, comma-separated or repeated: ${PATTERN_IDS.join(", ")}; default: all
  --trace FILE        replay a trace (JSON lines or CSV of timestamp, model, tokens) instead of the patterns
  --policy LIST       policies to show: ${POLICY_IDS.join(", ")}; default: all
  --model LIST        only these models of the stack
  --provider LIST     simulate these providers instead of each model's own (catalog prices fill gaps)
  --rate N            mean requests per second during active hours; default: 0.1
  --wait-price USD    what a request's waited second costs in the totals; default and least: the worker's
                      price per second
  --arrivals KIND     poisson or bursty; default: bursty
  --seed N            random seed (same seed, same result); default: 1
  --json              print { results: [...] } as JSON
  --chart FILE        write an SVG chart of cost against p95 wait per policy

  --suite             the keep-alive trace suite instead of the stack (sim/traces/: Poisson at break-even, a cron,
                      ON/OFF, business hours, two periods, daily, Pareto gaps, an adversary, flash crowds, doubling)
                      on every hourly provider of the catalog: per trace × provider × policy the cost, the ratio to
                      the bound, cold starts, p95/p99 wait and dropped requests; --json prints { traces, worstRatio,
                      medianRatio }, --chart DIR one SVG per trace
  --hindsight         with --suite: also the best of 24 fixed keep-alive windows per trace × provider, chosen
                      after seeing the trace, and the default policy against it
`;
    },
  },
} satisfies Record<string, CommandUsage>;

export type CommandName = keyof typeof COMMAND_USAGE;

export function isCommandName(word: string): word is CommandName {
  return Object.hasOwn(COMMAND_USAGE, word);
}

/** A command's subcommands, in the order its usage lists them (empty when it has none). */
export function subcommandsOf(command: CommandName): string[] {
  const usage: CommandUsage = COMMAND_USAGE[command];
  return Object.keys(usage.subcommands ?? {});
}

/** The usage lines end here; longer synopses wrap at an option boundary. */
const LINE_WIDTH = 110;
/** Where a command's text starts in the whole usage: `  ` + the name padded to 8 + ` `. */
const TEXT_COLUMN = 11;

/** Lay out a synopsis from `column` on: words and bracketed groups stay whole, continuations start at `hang`. */
function wrap(synopsis: string, column: number, hang: number): string[] {
  const tokens = synopsis.match(/\[[^\]]*\]|\S+/g) ?? [];
  const lines: string[] = [];
  let line = "";
  for (const token of tokens) {
    const start = lines.length === 0 ? column : hang;
    if (line !== "" && start + line.length + 1 + token.length > LINE_WIDTH) {
      lines.push(line);
      line = token;
    } else line = line === "" ? token : `${line} ${token}`;
  }
  lines.push(line);
  return lines.map((l, i) => (i === 0 ? l : `${" ".repeat(hang)}${l}`));
}

/** `prefix` followed by each synopsis form (a form of nothing is just the prefix), wrapped under its arguments. */
function formLines(prefix: string, synopsis: readonly string[], column: number): string[] {
  if (synopsis.length === 0) return [prefix.trimEnd()];
  return synopsis.flatMap((form) => {
    const [first = "", ...rest] = wrap(form, column + prefix.length, column + prefix.length);
    return [`${prefix}${first}`, ...rest.map((l) => l.slice(column))];
  });
}

function overviewEntry(command: CommandName): string[] {
  const usage: CommandUsage = COMMAND_USAGE[command];
  const name = command.padEnd(TEXT_COLUMN - 3);
  const indent = " ".repeat(TEXT_COLUMN);
  const forms = usage.subcommands
    ? Object.entries(usage.subcommands).flatMap(([sub, subUsage]) =>
        formLines(`${sub} `, subUsage.synopsis, TEXT_COLUMN),
      )
    : formLines("", usage.synopsis, TEXT_COLUMN);
  return [...forms, ...usage.about].map((line, i) => (i === 0 ? `  ${name} ${line}` : `${indent}${line}`));
}

/** The whole usage: `aiorch --help`, `aiorch help`. */
export const USAGE = `usage: aiorch <command> [options]
       aiorch <command> --help      the usage of one command (also: aiorch help <command> [subcommand])
       aiorch --version

commands:
${(Object.keys(COMMAND_USAGE) as CommandName[]).flatMap(overviewEntry).join("\n")}

options:
  --stack NAME   stack to use (Pulumi.NAME.yaml); default: dev
  --config FILE  runtime config JSON (what 'aiorch config' prints) instead of a stack
  --dir PATH     project folder; default: the current folder
  --json         machine-readable output
  -h, --help     the usage of aiorch, or of the command or subcommand it follows
  -V, --version  the version of aiorch
`;

/** One command's usage (all its subcommands), or one subcommand's. */
export function commandUsage(command: CommandName, subcommand?: string): string {
  const usage: CommandUsage = COMMAND_USAGE[command];
  const margin = "       "; // under "usage: "
  const sub = subcommand === undefined ? undefined : usage.subcommands?.[subcommand];
  if (sub) {
    const lines = formLines(`aiorch ${command} ${subcommand} `, sub.synopsis, margin.length);
    return `usage: ${[...lines, ...sub.about, ...usage.about].join(`\n${margin}`)}\n`;
  }
  if (usage.subcommands) {
    const entries = Object.entries(usage.subcommands);
    const forms = entries.flatMap(([name, subUsage]) =>
      formLines(`aiorch ${command} ${name} `, subUsage.synopsis, margin.length),
    );
    const width = Math.max(...entries.map(([name]) => name.length)) + 2;
    const abouts = entries.flatMap(([name, subUsage]) =>
      subUsage.about.map((line, i) => `  ${(i === 0 ? name : "").padEnd(width)} ${line}`),
    );
    return `usage: ${[...forms, ...usage.about].join(`\n${margin}`)}\n\n${abouts.join("\n")}\n`;
  }
  const lines = formLines(`aiorch ${command} `, usage.synopsis, margin.length);
  return `usage: ${[...lines, ...usage.about].join(`\n${margin}`)}\n${usage.details?.() ?? ""}`;
}

/**
 * A usage error as every command reports it: `aiorch keys create: <message>`, then the `--help` that shows how
 * to call it. `words` are the command and subcommand it concerns (none: aiorch itself).
 */
export function usageErrorText(words: readonly string[], message: string): string {
  const name = ["aiorch", ...words].join(" ");
  return `${name}: ${message}\nsee '${name} --help' for its usage\n`;
}

/**
 * The message of a `node:util` parseArgs error, shortened where Node's is long: an unknown option is named plainly
 * (Node goes on about positionals starting with a dash, which is rarely what happened).
 */
export function parseArgsMessage(error: Error): string {
  const unknown = /^Unknown option '([^']+)'/.exec(error.message);
  return unknown ? `unknown option '${unknown[1]}'` : error.message;
}

/** Whether `error` is a `node:util` parseArgs rejection of the command line. */
export function isParseArgsError(error: unknown): error is Error {
  return (
    error instanceof Error && (error as NodeJS.ErrnoException).code?.startsWith("ERR_PARSE_ARGS") === true
  );
}

/** Whether the command line asks for help: `--help` or `-h` anywhere before a `--` that ends the options. */
export function asksForHelp(args: readonly string[]): boolean {
  const end = args.indexOf("--");
  return (end === -1 ? args : args.slice(0, end)).some((a) => a === "--help" || a === "-h");
}
