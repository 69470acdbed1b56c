/**
 * What a run of the gateway benchmark is told and what follows from it: the options and their usage text, the
 * load each step puts on the paths (`Plan`), the requests it sends and the targets the table judges against.
 */
import { join } from "node:path";
import { ROOT } from "../../devkit/process";
import { benchArgs } from "../args";

export const FAKE_ENTRY = join(ROOT, "test/fakes/vllm-upstream.ts");
export const BARE_ENTRY = join(ROOT, "bench/gateway/bare-proxy.ts");
export const GATEWAY_ENTRY = join(ROOT, "gateway/main.ts");
export const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
export const MODEL = "chat";
export const CHAT_PATH = "/v1/chat/completions";

export const USAGE = `Gateway benchmark: the same fake vLLM upstream reached directly, through nginx, through a bare fastify + undici
pass-through (the reference) and through the gateway, each its own process. Progress goes to stderr, the table
(or with --json the result object) to stdout. Needs wrk and nginx (apt-get install wrk nginx-light) and Redis at
REDIS_URL (default redis://127.0.0.1:6379).

usage: npm run bench:gateway -- [options]
       node -r tsx/cjs bench/gateway/main.ts [options]

  --json                      print the result object instead of the table
  --quick                     a seconds-long smoke run
  --soak                      hold the concurrent streams for 5 minutes, recycling each every 30 s
  --hold-seconds N            how long the concurrent streams are held
  --streams-only              only the concurrent streams and the gateway's memory
  --ttft-only                 only time to first token, each path's split into the way there and back
  --latency-only              only the fixed-rate latency step, --rounds N times (default 3)
  --rounds N                  rounds of --latency-only or --against (1 with --quick)
  --from-source               run the gateway's sources through tsx instead of the esbuild bundle
  --gateway-node-flags="…"    node flags for the gateway instead of the Deployment's ("" for none)
  --cpu-prof DIR              profile both gateway processes and print where their CPU time went
  --against REV               compare this checkout's gateway with revision REV's (throughput, CPU per
                              request, time to first token)
  --stream                    with --against: saturate with streamed requests (16 tokens)
  -h, --help                  this text
`;

const OPTIONS = {
  json: { type: "boolean", default: false },
  quick: { type: "boolean", default: false },
  soak: { type: "boolean", default: false },
  "from-source": { type: "boolean", default: false },
  "hold-seconds": { type: "string" },
  "streams-only": { type: "boolean", default: false },
  "ttft-only": { type: "boolean", default: false },
  "latency-only": { type: "boolean", default: false },
  stream: { type: "boolean", default: false },
  "gateway-node-flags": { type: "string" },
  "cpu-prof": { type: "string" },
  against: { type: "string" },
  rounds: { type: "string" },
} as const;

/** The options as given; `--help` and a wrong option end the process here. */
export const readArgs = (argv?: readonly string[]) => benchArgs("bench:gateway", USAGE, OPTIONS, argv);
export type BenchArgs = ReturnType<typeof readArgs>;

export interface Plan {
  readonly rate: number;
  readonly warmupMs: number;
  readonly measureMs: number;
  readonly saturationSeconds: number;
  /** Saturation runs per path, the paths taking turns (the median counts: one run swings ±5 % here). */
  readonly saturationRounds: number;
  readonly wrkConnections: number;
  readonly ttftStreams: number;
  readonly ttftMs: number;
  readonly streams: number;
  /** How long one held stream lasts (tokens × inter-token delay). */
  readonly streamMs: number;
  /** How long the streams are kept open; longer than `streamMs` means each is reopened when it ends. */
  readonly holdMs: number;
  readonly interTokenMs: number;
  /** While the streams are held: the gateway's RSS, its heap (a scrape costs it a little work) and a progress line. */
  readonly rssSampleMs: number;
  readonly heapSampleMs: number;
  readonly streamsProgressMs: number;
}

export function planOf(args: BenchArgs): Plan {
  return {
    rate: 1_000,
    warmupMs: args.quick ? 500 : 2_000,
    measureMs: args.quick ? 2_000 : 10_000,
    saturationSeconds: args.quick ? 2 : 10,
    saturationRounds: args.quick ? 1 : 3,
    wrkConnections: 16,
    ttftStreams: args.quick ? 40 : 300,
    ttftMs: 5,
    streams: 1_000,
    streamMs: args.quick ? 4_000 : 30_000,
    holdMs: args["hold-seconds"]
      ? Number(args["hold-seconds"]) * 1000
      : args.quick
        ? 4_000
        : args.soak
          ? 300_000
          : 30_000,
    interTokenMs: args.quick ? 100 : 200,
    rssSampleMs: args.soak ? 1_000 : 250,
    heapSampleMs: args.soak ? 10_000 : 2_000,
    streamsProgressMs: args.soak ? 30_000 : 5_000,
  };
}

/** `--rounds N`, or `defaultRounds` (1 with `--quick`). */
export function roundsOf(args: BenchArgs, defaultRounds: number): number {
  const rounds = Number(args.rounds ?? (args.quick ? 1 : defaultRounds));
  if (!(Number.isInteger(rounds) && rounds > 0)) throw new Error("--rounds must be a positive whole number");
  return rounds;
}

/** How the gateway processes are started: the Deployment's way unless the options say otherwise. */
export interface GatewayLaunch {
  /** The sources through tsx instead of the esbuild bundle. */
  readonly fromSource: boolean;
  /** Node flags replacing the Deployment's (GATEWAY_NODE_FLAGS); undefined keeps those. */
  readonly nodeFlags: string | undefined;
  /** Where `node --cpu-prof` writes the profiles; undefined for no profiling. */
  readonly cpuProfDir: string | undefined;
}

export const launchOf = (args: BenchArgs): GatewayLaunch => ({
  fromSource: args["from-source"],
  nodeFlags: args["gateway-node-flags"],
  cpuProfDir: args["cpu-prof"],
});

/** What a mode is told: the options as given, the load they set and how gateways are started. */
export interface Run {
  readonly args: BenchArgs;
  readonly plan: Plan;
  readonly launch: GatewayLaunch;
}

/** The paths every step measures, in the order the latency step runs them. */
export const PATH_NAMES = ["direct", "nginx", "bare", "gateway"] as const;
export type PathName = (typeof PATH_NAMES)[number];

/** The non-streaming request every path gets (16 completion tokens, ~0.5 KB answer). */
export const CHAT_BODY = JSON.stringify({
  model: MODEL,
  messages: [{ role: "user", content: "Write one short sentence about the sea, please." }],
  max_tokens: 16,
});

/** A streamed request of `maxTokens` tokens. */
export const streamBody = (maxTokens: number) =>
  JSON.stringify({
    model: MODEL,
    messages: [{ role: "user", content: "Tell me a story about the sea." }],
    max_tokens: maxTokens,
    stream: true,
  });

export const TARGETS = {
  addedP50Ms: 0.5,
  addedP99Ms: 2,
  throughputRatio: 0.3,
  ttftOverheadMs: 1,
  rssMb: 150,
};

/** Progress goes to stderr; stdout is the report's alone. */
export const progress = (line: string): void => {
  process.stderr.write(`[bench] ${line}\n`);
};
