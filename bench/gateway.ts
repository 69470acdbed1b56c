/**
 * Gateway benchmark (issue 5, "Benchmark"): the same fake vLLM upstream reached three ways — directly, through
 * nginx `proxy_pass` with upstream keep-alive, and through the gateway with auth and rate limits on — each server
 * in its own process so the load generator, the proxies and the upstream never share an event loop. A fourth
 * path is the reference: a bare fastify + undici pass-through (`bench/bare-proxy.ts`), what a Node proxy costs on
 * this machine before it does anything (in the table; the JSON report keeps the three paths the issue names).
 *
 *   1. Latency at a fixed rate (open loop, 1,000 req/s, non-streaming chat completions): a small generator on an
 *      undici Pool that sends on schedule whether or not earlier answers came back, timed with
 *      `process.hrtime.bigint()` from just before dispatch to the last body byte (wrk from Debian cannot hold a
 *      constant rate, and wrk2 is not packaged). p50/p99 after a warm-up.
 *   2. Saturation throughput: wrk (one thread, a few connections) with a Lua script posting the same JSON, three
 *      10-second runs per path with the paths taking turns; each path's median run counts.
 *   3. Streaming: time to first token, gateway vs direct (difference of medians over sequential streams, the
 *      paths taking turns in a shuffled order), then 1,000 concurrent streams held open through a fresh gateway process (so its memory
 *      shows what the streams cost, not the heap the saturation run left behind) with its RSS sampled from
 *      /proc/<pid>/status (start, peak, end; "flat" compares the last quarter of the hold with the first).
 *      `concurrent` counts streams delivering tokens at the same moment, not requests merely sent.
 *
 *   node -r tsx/cjs bench/gateway.ts [--json] [--quick] [--soak] [--streams-only] [--hold-seconds N] [--from-source]
 *                                    [--gateway-node-flags="--flag …"] [--cpu-prof DIR] [--ttft-only] [--latency-only [--rounds N]]
 *                                    [--against REV [--rounds N] [--stream]]
 *
 * `--against REV` compares this checkout's gateway with revision REV's (built from a git worktree): saturation
 * throughput and the gateway's CPU time per request, both processes up at once, alternate runs, pinned to a CPU
 * of their own with taskset when there are two, then time to first token with direct and both builds taking
 * turns stream by stream — how each change of the gateway's hot path was judged.
 * With `--stream` the saturation runs send streamed requests (16 tokens) instead.
 *
 * The gateway runs as it is deployed: an esbuild bundle of `gateway/main.ts` under plain `node`, with the
 * Deployment's environment (`MALLOC_ARENA_MAX=2`); `--from-source` runs the sources through tsx instead (about
 * 15 MB more resident memory for the transpiler and source maps). During the streams the gateway's own V8 heap and
 * external memory are read from its `/metrics`, so growth can be told apart: heap growth is a leak, RSS growth
 * with a flat heap is allocator fragmentation.
 *
 * `--latency-only` runs only step 1, `--rounds N` times (default 3), and tables each path's p50/p99 per round.
 * `--ttft-only` runs only the time-to-first-token step, on every path (latency experiments), and splits each
 * path's streams at the fake: the way there (client → the fake's handler) and the way back (the fake's first token
 * → client), from hrtime stamps the fake records (CLOCK_MONOTONIC, one clock for all processes); the full run
 * prints the same split on its progress line. `--streams-only` runs only step 3's concurrent streams (memory experiments); `--hold-seconds` sets how long the streams are held; `--gateway-node-flags` replaces the Deployment's node flags
 * (GATEWAY_NODE_FLAGS) to try others against the same load; `=""` runs without any. `--quick` is a seconds-long smoke run; `--soak` holds the streams for 5 minutes, recycling each one every
 * 30 s; `--cpu-prof DIR` runs both gateway processes under `node --cpu-prof` and prints where their CPU time
 * went (self time by package and by function; the first profile is the latency + saturation one). Progress
 * goes to stderr; stdout gets the table, or with `--json` exactly `{ direct, nginx, gateway, addedP50Ms,
 * addedP99Ms, throughputRatio, ttftOverheadMs, streams: { concurrent, rssMb } }`. Needs wrk and nginx
 * (`apt-get install wrk nginx-light`) and Redis at REDIS_URL (default redis://127.0.0.1:6379).
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { cpus, loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { buildSync } from "esbuild";
import { Redis } from "ioredis";
import { Pool, request } from "undici";
import { loadStackConfig, parseStackFile, renderRuntimeConfig } from "../core/config";
import { newKeyRingEntry } from "../core/envelope";
import { GATEWAY_NODE_FLAGS, GATEWAY_PROCESS_ENV } from "../core/process-env";
import { redisKeys } from "../core/redis-keys";
import { runtimeBuildOptions } from "../core/runtime-build";
import { ApiKeyStore } from "../gateway/keys";
import { stackYaml } from "../test/stack-yaml";

// ── settings ──────────────────────────────────────────────────────────────────────────────────────────────

const ROOT = resolve(__dirname, "..");
const FAKE_ENTRY = join(ROOT, "test/fakes/vllm-upstream.ts");
const BARE_ENTRY = join(ROOT, "bench/bare-proxy.ts");
const GATEWAY_ENTRY = join(ROOT, "gateway/main.ts");
const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const MODEL = "chat";
const CHAT_PATH = "/v1/chat/completions";

const { values: args } = parseArgs({
  options: {
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
  },
});

interface Plan {
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
}

const plan: Plan = {
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
};

/** The non-streaming request every path gets (16 completion tokens, ~0.5 KB answer). */
const CHAT_BODY = JSON.stringify({
  model: MODEL,
  messages: [{ role: "user", content: "Write one short sentence about the sea, please." }],
  max_tokens: 16,
});

const TARGETS = { addedP50Ms: 0.5, addedP99Ms: 2, throughputRatio: 0.3, ttftOverheadMs: 1, rssMb: 150 };

// ── small helpers ─────────────────────────────────────────────────────────────────────────────────────────

const progress = (line: string): void => {
  process.stderr.write(`[bench] ${line}\n`);
};
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const round = (n: number, digits: number): number => Math.round(n * 10 ** digits) / 10 ** digits;
const nowNs = (): bigint => process.hrtime.bigint();
const f3 = (n: number) => n.toFixed(3);
/** A difference with its sign, three decimals: "+0.123" or "-0.123". */
const signedMs = (ms: number) => (ms >= 0 ? `+${f3(ms)}` : f3(ms));

/** `--rounds N`, or `defaultRounds` (1 with `--quick`). */
function roundsArg(defaultRounds: number): number {
  const rounds = Number(args.rounds ?? (args.quick ? 1 : defaultRounds));
  if (!(Number.isInteger(rounds) && rounds > 0)) throw new Error("--rounds must be a positive whole number");
  return rounds;
}

/** Nearest-rank percentile of an ascending array. */
function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1]!;
}

function median(values: number[]): number {
  return percentile(Float64Array.from(values).sort(), 50);
}

function which(tool: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(":").concat(["/usr/sbin", "/usr/local/sbin", "/sbin"])) {
    const candidate = join(dir, tool);
    if (dir && existsSync(candidate)) return candidate;
  }
  return undefined;
}

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

/** Resident set size of a process, MB (VmRSS of /proc/<pid>/status). */
function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!match) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]) / 1024;
}

// ── child processes and cleanup ───────────────────────────────────────────────────────────────────────────

interface Child {
  readonly name: string;
  readonly proc: ChildProcess;
  /** Last lines of stderr (and stdout when not parsed), for failure messages. */
  readonly tail: string[];
  exited: boolean;
  readonly exit: Promise<void>;
}

const children: Child[] = [];
let tmpDir: string | undefined;
let cleanupRedis: (() => Promise<void>) | undefined;

function startChild(
  name: string,
  command: string,
  argv: string[],
  options: { env?: NodeJS.ProcessEnv; stdout?: "pipe" | "ignore" } = {},
): Child {
  const proc = spawn(command, argv, {
    cwd: ROOT,
    env: options.env ?? process.env,
    stdio: ["ignore", options.stdout ?? "pipe", "pipe"],
  });
  const tail: string[] = [];
  const keep = (data: Buffer) => {
    for (const line of data.toString("utf8").split("\n")) {
      if (!line.trim()) continue;
      tail.push(line);
      if (tail.length > 30) tail.shift();
    }
  };
  proc.stderr?.on("data", keep);
  let markExited: () => void = () => undefined;
  const exit = new Promise<void>((r) => {
    markExited = r;
  });
  const child: Child = { name, proc, tail, exited: false, exit };
  proc.once("exit", () => {
    child.exited = true;
    markExited();
  });
  proc.once("error", (error) => {
    tail.push(`spawn failed: ${error.message}`);
    child.exited = true;
    markExited();
  });
  children.push(child);
  return child;
}

async function stopChild(child: Child): Promise<void> {
  if (child.exited) return;
  child.proc.kill("SIGTERM");
  await Promise.race([child.exit, sleep(5_000)]);
  if (!child.exited) {
    child.proc.kill("SIGKILL");
    await Promise.race([child.exit, sleep(2_000)]);
  }
}

let cleaning: Promise<void> | undefined;
/** Stop every child (last started first), delete the Redis keys and the temp dir. Safe to call twice. */
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const child of [...children].reverse()) await stopChild(child);
    removeWorktree?.();
    await cleanupRedis?.().catch((error: Error) => progress(`redis cleanup failed: ${error.message}`));
    if (tmpDir) rmSync(tmpDir, { recursive: true, force: true });
  })();
  return cleaning;
}

// Last resort when the process leaves without `cleanup()` finishing (an uncaught throw, process.exit).
process.on("exit", () => {
  for (const child of children) if (!child.exited) child.proc.kill("SIGKILL");
  if (tmpDir) rmSync(tmpDir, { recursive: true, force: true });
});
let interrupted = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    interrupted = true;
    progress(`${signal}: cleaning up`);
    cleanup().finally(() => process.exit(130));
  });
}

function describeExit(child: Child): string {
  const code = child.proc.exitCode ?? child.proc.signalCode;
  return `${child.name} exited (${code}):\n  ${child.tail.join("\n  ")}`;
}

/** Poll until `probe` resolves true; fails early when `child` exits. */
async function waitFor(what: string, child: Child, probe: () => Promise<boolean>, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exited) throw new Error(`${what}: ${describeExit(child)}`);
    if (await probe().catch(() => false)) return;
    await sleep(100);
  }
  throw new Error(`${what}: not ready after ${timeoutMs} ms\n  ${child.tail.join("\n  ")}`);
}

async function httpOk(url: string): Promise<boolean> {
  const res = await request(url, { headersTimeout: 2_000, bodyTimeout: 2_000 });
  await res.body.dump();
  return res.statusCode === 200;
}

// ── the three servers ─────────────────────────────────────────────────────────────────────────────────────

async function startFake(): Promise<{ child: Child; origin: string }> {
  // records of every TTFT stream (four paths × 330), for the split of each into its way there and back
  return startPrintingPort("fake vLLM", [
    FAKE_ENTRY,
    ...["--host", "127.0.0.1", "--port", "0", "--model", MODEL, "--record-limit", "5000"],
  ]);
}

/** The reference path: a bare fastify + undici pass-through to the fake (bench/bare-proxy.ts). */
async function startBare(fakeOrigin: string): Promise<{ child: Child; origin: string }> {
  return startPrintingPort("bare proxy", [BARE_ENTRY, fakeOrigin, "0"]);
}

/** A TypeScript server run through tsx that prints `{"port":N}` as its first line once it listens. */
async function startPrintingPort(name: string, argv: string[]): Promise<{ child: Child; origin: string }> {
  const child = startChild(name, process.execPath, ["-r", "tsx/cjs", ...argv]);
  const port = await new Promise<number>((resolvePort, reject) => {
    let buffered = "";
    const timer = setTimeout(
      () => reject(new Error(`${name} did not start: ${child.tail.join(" ")}`)),
      30_000,
    );
    child.proc.stdout?.on("data", (data: Buffer) => {
      buffered += data.toString("utf8");
      const line = buffered.split("\n")[0];
      if (!buffered.includes("\n") || line === undefined) return;
      clearTimeout(timer);
      try {
        resolvePort((JSON.parse(line) as { port: number }).port);
      } catch {
        reject(new Error(`${name} printed ${line}`));
      }
    });
    void child.exit.then(() => reject(new Error(describeExit(child))));
  });
  return { child, origin: `http://127.0.0.1:${port}` };
}

async function configureFake(origin: string, tuning: Record<string, number>): Promise<void> {
  const res = await request(`${origin}/__config`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(tuning),
  });
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`fake /__config answered ${res.statusCode}: ${text}`);
}

async function startNginx(dir: string, upstreamPort: number): Promise<{ child: Child; origin: string }> {
  const nginx = which("nginx");
  if (!nginx) throw new Error("nginx not found (apt-get install nginx-light)");
  const port = await freePort();
  const prefix = join(dir, "nginx");
  mkdirSync(join(prefix, "logs"), { recursive: true });
  const temp = (name: string) => `${name}_temp_path ${join(prefix, name)};`;
  // One worker, like the one gateway process it is compared with; as root the worker stays root so it can
  // use the 0700 temp dir.
  const conf = `
daemon off;
master_process on;
worker_processes 1;
${process.getuid?.() === 0 ? "user root;" : ""}
pid ${join(prefix, "nginx.pid")};
error_log ${join(prefix, "logs/error.log")} warn;
events { worker_connections 8192; }
http {
  access_log off;
  ${temp("client_body")} ${temp("proxy")} ${temp("fastcgi")} ${temp("uwsgi")} ${temp("scgi")}
  upstream fake {
    server 127.0.0.1:${upstreamPort};
    keepalive 64;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://fake;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`;
  const confPath = join(prefix, "nginx.conf");
  writeFileSync(confPath, conf);
  const child = startChild("nginx", nginx, [
    "-p",
    prefix,
    "-e",
    join(prefix, "logs/error.log"),
    "-c",
    confPath,
  ]);
  const origin = `http://127.0.0.1:${port}`;
  await waitFor("nginx", child, () => httpOk(`${origin}/health`));
  return { child, origin };
}

/**
 * The gateway bundled as the RuntimeBundle component bundles it for the cluster (esbuild, CommonJS, minified),
 * targeting this machine's Node; identifiers stay readable when profiling. Built once per run.
 */
function gatewayBundle(
  dir: string,
  readableNames: boolean,
  entry = GATEWAY_ENTRY,
  outfile = join(dir, "gateway.js"),
): string {
  if (existsSync(outfile)) return outfile;
  buildSync({
    ...runtimeBuildOptions(entry, `node${process.versions.node.split(".")[0]}`),
    // readable names in profiles: every minification but the identifiers'
    ...(readableNames ? { minify: false, minifyWhitespace: true, minifySyntax: true } : {}),
    outfile,
  });
  return outfile;
}

/**
 * A gateway process: its API on `origin`, its /metrics, /healthz, /readyz on `opsOrigin` (a port of its own,
 * given as METRICS_PORT; a revision from before the ops port ignores that and serves them on `origin`).
 */
/** The bench's stack: one chat model on the fake upstream, limits out of the way. */
function benchStackYaml(fakeOrigin: string, prefix: string): string {
  return stackYaml({
    providers: `{ local: { url: "${fakeOrigin}/v1" } }`,
    models: `[{ name: ${MODEL}, kind: chat, source: bench/chat, gpu: [RTX_3090], providers: [local] }]`,
    redis: `{ keyPrefix: "${prefix}" }`,
    gateway: "{ host: bench.invalid, limits: { rpm: 1000000000, tpm: 1000000000000 } }",
  });
}

async function startGateway(
  dir: string,
  fakeOrigin: string,
  prefix: string,
  options: { bundle?: string; cpu?: number; runtimeJson?: string } = {},
): Promise<{ child: Child; origin: string; opsOrigin: string }> {
  // another revision's gateway reads the config its own code renders (its schema may lack today's fields)
  const runtimeJson =
    options.runtimeJson ??
    JSON.stringify(
      renderRuntimeConfig(
        loadStackConfig(parseStackFile(benchStackYaml(fakeOrigin, prefix), "bench.yaml")),
        "bench",
      ),
    );
  const configPath = join(dir, options.runtimeJson ? "runtime-against.json" : "runtime.json");
  writeFileSync(configPath, runtimeJson);
  const port = await freePort();
  const metricsPort = await freePort();
  const profDir = args["cpu-prof"];
  const nodeFlags = [
    ...(args["gateway-node-flags"]?.split(/\s+/).filter(Boolean) ?? GATEWAY_NODE_FLAGS),
    ...(profDir ? ["--cpu-prof", `--cpu-prof-dir=${resolve(profDir)}`] : []),
  ];
  const entry = args["from-source"]
    ? ["-r", "tsx/cjs", GATEWAY_ENTRY]
    : [options.bundle ?? gatewayBundle(dir, profDir !== undefined)];
  const argv = [
    ...nodeFlags,
    ...entry,
    "--config",
    configPath,
    "--port",
    String(port),
    "--host",
    "127.0.0.1",
  ];
  // The audit log (one JSON line per request on stdout) goes to /dev/null.
  const child = startChild("gateway", ...pinned(options.cpu, process.execPath, argv), {
    env: {
      ...process.env,
      ...GATEWAY_PROCESS_ENV,
      REDIS_URL,
      METRICS_PORT: String(metricsPort),
      // the stack seals queued jobs (security.encryptQueued, on by default) and the gateway refuses without a ring
      AIORCH_ENCRYPTION_KEYS: newKeyRingEntry("bench"),
    },
    stdout: "ignore",
  });
  const origin = `http://127.0.0.1:${port}`;
  let opsOrigin = `http://127.0.0.1:${metricsPort}`;
  await waitFor("gateway", child, async () => {
    if (await httpOk(`${opsOrigin}/readyz`).catch(() => false)) return true;
    // an older revision (--against): health and metrics on its API port
    if (!(await httpOk(`${origin}/readyz`).catch(() => false))) return false;
    opsOrigin = origin;
    return true;
  });
  return { child, origin, opsOrigin };
}

// ── load: fixed rate (open loop) ──────────────────────────────────────────────────────────────────────────

interface PathResult {
  rps: number;
  p50Ms: number;
  p99Ms: number;
}

interface LatencyResult {
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly requests: number;
  readonly achievedRps: number;
  /** How late the generator dispatched, p99, ms (its own health, not the server's). */
  readonly sendLagP99Ms: number;
  /** Requests slower than 10 ms in each 100 ms of the measurement: when the tail happened (stalls vs spread). */
  readonly slowPerTenth: number[];
}

/**
 * Send `rate` requests per second on a fixed schedule: first for the warm-up time, then — once every warm-up
 * request has been answered and after a short pause — for the measured time. A request is sent when it is due,
 * whatever happened to the earlier ones (open loop); the latency of each is measured from just before dispatch
 * to its last body byte. The schedule is kept with a 1 ms timer that sends whatever has come due, so the
 * generator does not spin on a CPU the servers need. The warm-up is a run of its own because a cold process
 * (JIT not yet warm) may fall behind the schedule at first; on a slow machine the backlog it builds would
 * otherwise spill into the measured run and report the process's start-up, not its steady state.
 */
async function fixedRate(origin: string, headers: Record<string, string>): Promise<LatencyResult> {
  const pool = new Pool(origin, { connections: 128, keepAliveTimeout: 30_000 });
  try {
    await openLoop(pool, headers, Math.round((plan.warmupMs / 1000) * plan.rate));
    await sleep(500);
    const run = await openLoop(pool, headers, Math.round((plan.measureMs / 1000) * plan.rate));
    const sorted = run.latencies.slice().sort();
    const slowPerTenth = new Array<number>(Math.ceil(plan.measureMs / 100)).fill(0);
    run.latencies.forEach((ms, i) => {
      const tenth = Math.floor((run.sentAtMs[i] ?? 0) / 100);
      if (ms > 10 && tenth >= 0 && tenth < slowPerTenth.length) slowPerTenth[tenth]! += 1;
    });
    return {
      p50Ms: percentile(sorted, 50),
      p99Ms: percentile(sorted, 99),
      maxMs: sorted[sorted.length - 1] ?? Number.NaN,
      requests: sorted.length,
      achievedRps: sorted.length / run.seconds,
      sendLagP99Ms: percentile(run.lags.slice().sort(), 99),
      slowPerTenth,
    };
  } catch (error) {
    throw new Error(`${origin}: ${(error as Error).message}`);
  } finally {
    await pool.close();
  }
}

/** `count` requests at `plan.rate` per second, open loop; resolves when every one has been answered. */
async function openLoop(
  pool: Pool,
  headers: Record<string, string>,
  count: number,
): Promise<{ latencies: Float64Array; lags: Float64Array; sentAtMs: Float64Array; seconds: number }> {
  const intervalNs = 1e9 / plan.rate;
  const latencies = new Float64Array(count);
  const lags = new Float64Array(count);
  const sentAtMs = new Float64Array(count);
  let sent = 0;
  let done = 0;
  let failure: Error | undefined;
  const start = nowNs();
  let end = start;

  await new Promise<void>((resolveRun) => {
    const fire = (i: number, due: bigint) => {
      const t0 = nowNs();
      pool
        .request({ path: CHAT_PATH, method: "POST", headers, body: CHAT_BODY })
        .then(async (res) => {
          const text = await res.body.text();
          const t1 = nowNs();
          if (res.statusCode !== 200)
            failure ??= new Error(`answered ${res.statusCode}: ${text.slice(0, 300)}`);
          latencies[i] = Number(t1 - t0) / 1e6;
          lags[i] = Number(t0 - due) / 1e6;
          sentAtMs[i] = Number(t0 - start) / 1e6;
          if (t1 > end) end = t1;
        })
        .catch((error: Error) => {
          failure ??= error;
        })
        .finally(() => {
          done += 1;
          if (done === count) resolveRun();
        });
    };
    const tick = () => {
      const elapsed = nowNs() - start;
      const due = Math.min(count, Number(elapsed / BigInt(Math.round(intervalNs))) + 1);
      while (sent < due) {
        fire(sent, start + BigInt(Math.round(sent * intervalNs)));
        sent += 1;
      }
      if (sent < count) setTimeout(tick, 1);
    };
    tick();
  });
  if (failure) throw failure;
  return { latencies, lags, sentAtMs, seconds: Number(end - start) / 1e9 };
}

// ── load: saturation (wrk) ────────────────────────────────────────────────────────────────────────────────

function writeWrkScript(dir: string, apiKey: string, body = CHAT_BODY): string {
  const path = join(dir, body === CHAT_BODY ? "chat.lua" : "chat-stream.lua");
  // JSON string literals are valid Lua string literals for this ASCII content.
  writeFileSync(
    path,
    `wrk.method = "POST"
wrk.body = ${JSON.stringify(body)}
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = ${JSON.stringify(`Bearer ${apiKey}`)}

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"durationUs":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50Us":%d,"p99Us":%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
`,
    { mode: 0o600 },
  );
  return path;
}

interface WrkResult {
  readonly rps: number;
  readonly requests: number;
  readonly errors: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

async function saturate(origin: string, script: string, cpu?: number): Promise<WrkResult> {
  const wrk = which("wrk");
  if (!wrk) throw new Error("wrk not found (apt-get install wrk)");
  const child = startChild(
    "wrk",
    ...pinned(cpu, wrk, [
      "-t1",
      `-c${plan.wrkConnections}`,
      `-d${plan.saturationSeconds}s`,
      "--timeout",
      "5s",
      "-s",
      script,
      `${origin}${CHAT_PATH}`,
    ]),
  );
  let out = "";
  child.proc.stdout?.on("data", (data: Buffer) => {
    out += data.toString("utf8");
  });
  await child.exit;
  children.splice(children.indexOf(child), 1);
  const line = out.split("\n").find((l) => l.startsWith("BENCH_JSON "));
  if (child.proc.exitCode !== 0 || !line) throw new Error(`wrk failed:\n${out}\n${child.tail.join("\n")}`);
  const r = JSON.parse(line.slice("BENCH_JSON ".length)) as Record<string, number>;
  const errors = r.connect! + r.read! + r.write! + r.status! + r.timeout!;
  if (r.status! > 0) throw new Error(`wrk against ${origin}: ${r.status} non-2xx answers`);
  return {
    rps: r.requests! / (r.durationUs! / 1e6),
    requests: r.requests!,
    errors,
    p50Ms: r.p50Us! / 1000,
    p99Ms: r.p99Us! / 1000,
  };
}

// ── streaming ─────────────────────────────────────────────────────────────────────────────────────────────

const CONTENT_TOKEN = /"content":"[^"]/;

const streamBody = (maxTokens: number) =>
  JSON.stringify({
    model: MODEL,
    messages: [{ role: "user", content: "Tell me a story about the sea." }],
    max_tokens: maxTokens,
    stream: true,
  });

/** One stream, read to its end: when it was sent and when its first content token arrived (hrtime, ns). */
async function timeToFirstToken(
  pool: Pool,
  headers: Record<string, string>,
  body: string,
): Promise<{ sentNs: bigint; firstTokenNs: bigint }> {
  const sentNs = nowNs();
  const res = await pool.request({ path: CHAT_PATH, method: "POST", headers, body });
  let firstTokenNs = -1n;
  let seen = "";
  for await (const chunk of res.body) {
    if (firstTokenNs >= 0n) continue;
    seen += (chunk as Buffer).toString("latin1");
    if (CONTENT_TOKEN.test(seen)) firstTokenNs = nowNs();
    else seen = seen.slice(-64);
  }
  if (res.statusCode !== 200 || firstTokenNs < 0n)
    throw new Error(`stream failed (${res.statusCode}): ${seen}`);
  return { sentNs, firstTokenNs };
}

/** Medians of one path's streams split at the fake: client → fake's handler, and fake's first token → client. */
interface TtftLegs {
  readonly thereMs: number;
  readonly backMs: number;
}

/**
 * Split each measured stream at the fake upstream: its records carry hrtime stamps of the request's arrival and
 * of the first token's write (CLOCK_MONOTONIC, shared by every process here), and a stream's pair lies within the
 * client's own [sent, first token] (streams run one at a time). Tells which way a proxy's time goes: reading the
 * request and calling upstream, or relaying the first token back.
 */
async function ttftLegs(
  fakeOrigin: string,
  streams: ReadonlyArray<{ path: number; sentNs: bigint; firstTokenNs: bigint }>,
  paths: number,
): Promise<TtftLegs[]> {
  const res = await request(`${fakeOrigin}/__stats`);
  const stats = (await res.body.json()) as {
    streams: Array<{ receivedNs: string; firstTokenNs: string | null }>;
  };
  const marks = stats.streams
    .filter((s) => s.firstTokenNs !== null)
    .map((s) => ({ received: BigInt(s.receivedNs), firstToken: BigInt(s.firstTokenNs!) }));
  const there = Array.from({ length: paths }, (): number[] => []);
  const back = Array.from({ length: paths }, (): number[] => []);
  let m = 0;
  for (const s of [...streams].sort((a, b) => (a.sentNs < b.sentNs ? -1 : 1))) {
    while (m < marks.length && marks[m]!.received < s.sentNs) m++;
    const mark = marks[m];
    if (!mark || mark.firstToken > s.firstTokenNs) continue;
    there[s.path]!.push(Number(mark.received - s.sentNs) / 1e6);
    back[s.path]!.push(Number(s.firstTokenNs - mark.firstToken) / 1e6);
  }
  return there.map((t, k) => ({ thereMs: median(t), backMs: median(back[k]!) }));
}

/**
 * Median time to first token through each origin, the origins taking turns stream by stream (so drift on the
 * machine affects them alike), in a shuffled order each turn: a stream is faster right after one through another
 * Node process than after a pause (caches and the CPU still warm — measured: +1.13 against +0.99 ms for the same
 * gateway build in a fixed order), so no origin may always follow the same one.
 */
async function medianTtfts(
  origins: readonly string[],
  headers: Record<string, string>,
  fakeOrigin?: string,
): Promise<{ medians: number[]; legs: TtftLegs[] | undefined }> {
  const pools = origins.map((origin) => new Pool(origin, { connections: 1 }));
  const body = streamBody(4);
  const samples = origins.map((): number[] => []);
  const measured: Array<{ path: number; sentNs: bigint; firstTokenNs: bigint }> = [];
  const warmup = Math.ceil(plan.ttftStreams / 10);
  let seed = 0x2545f491; // a fixed seed: the same orders every run
  const random = () => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed / 2 ** 32;
  };
  const order = origins.map((_, k) => k);
  for (let i = 0; i < warmup + plan.ttftStreams; i++) {
    for (let k = order.length - 1; k > 0; k--) {
      const j = Math.floor(random() * (k + 1));
      [order[k], order[j]] = [order[j]!, order[k]!];
    }
    for (const k of order) {
      const stream = await timeToFirstToken(pools[k]!, headers, body);
      if (i < warmup) continue;
      samples[k]!.push(Number(stream.firstTokenNs - stream.sentNs) / 1e6);
      measured.push({ path: k, ...stream });
    }
  }
  await Promise.all(pools.map((p) => p.close()));
  const legs = fakeOrigin ? await ttftLegs(fakeOrigin, measured, origins.length) : undefined;
  return { medians: samples.map(median), legs };
}

/** The paths every step measures, in the order the latency step runs them. */
const PATH_NAMES = ["direct", "nginx", "bare", "gateway"] as const;
type PathName = (typeof PATH_NAMES)[number];

/** Step 3: median time to first token on every path (streams in shuffled turns, see `medianTtfts`). */
async function ttftStep(
  origins: Readonly<Record<PathName, string>>,
  headers: Record<string, string>,
): Promise<{ ttft: Record<PathName, number>; legs: Record<PathName, TtftLegs> }> {
  const names = PATH_NAMES;
  progress(
    `TTFT: ${plan.ttftStreams} sequential streams per path (${names.join(", ")}) in shuffled turns, fake TTFT ${plan.ttftMs} ms`,
  );
  const { medians, legs } = await medianTtfts(
    names.map((p) => origins[p]),
    headers,
    origins.direct,
  );
  const ttft = Object.fromEntries(names.map((p, k) => [p, medians[k]!])) as Record<PathName, number>;
  const byPath = Object.fromEntries(names.map((p, k) => [p, legs![k]!])) as Record<PathName, TtftLegs>;
  progress(
    `  median TTFT ${names.map((p) => `${p} ${f3(ttft[p])} ms`).join(", ")}; gateway − direct ` +
      `${signedMs(ttft.gateway - ttft.direct)} ms, bare − direct ${signedMs(ttft.bare - ttft.direct)} ms`,
  );
  progress(
    `  way there (client → fake) / way back (fake's first token → client), medians: ${names
      .map((p) => `${p} ${f3(byPath[p].thereMs)} / ${f3(byPath[p].backMs)} ms`)
      .join(", ")}`,
  );
  return { ttft, legs: byPath };
}

interface StreamsResult {
  /** Most streams delivering tokens at the same moment. */
  readonly concurrent: number;
  readonly rssStartMb: number;
  readonly rssFullMb: number;
  readonly rssPeakMb: number;
  readonly rssEndMb: number;
  /** Every RSS sample of the hold, MB, in order. */
  readonly rssSamplesMb: number[];
  /** The gateway's V8 heap in use (`nodejs_heap_size_used_bytes`), MB: mean of the first and last quarter. */
  readonly heapFirstMb: number;
  readonly heapLastMb: number;
  /** The V8 heap committed (`nodejs_heap_size_total_bytes`), MB: first and last quarter. */
  readonly heapTotalFirstMb: number;
  readonly heapTotalLastMb: number;
  /** Memory outside the V8 heap that V8 knows of (buffers), MB: first and last quarter. */
  readonly externalFirstMb: number;
  readonly externalLastMb: number;
  readonly flat: boolean;
  /** Growth of the mean RSS from the first to the last quarter of the hold, MB. */
  readonly growthMb: number;
  readonly completed: number;
  readonly failed: number;
  readonly rampMs: number;
}

/** Means of the first and of the last quarter of a series (a quarter holds at least one value; 0 when empty). */
function quarterMeans(values: readonly number[]): [number, number] {
  const quarter = Math.max(1, Math.floor(values.length / 4));
  const mean = (xs: readonly number[]) => xs.reduce((a, x) => a + x, 0) / Math.max(1, xs.length);
  return [mean(values.slice(0, quarter)), mean(values.slice(-quarter))];
}

/** V8 heap in use and external memory of the gateway, MB, from its Prometheus default metrics. */
async function gatewayHeap(
  opsOrigin: string,
): Promise<{ heapMb: number; heapTotalMb: number; externalMb: number }> {
  const value = await scrapeGateway(opsOrigin);
  const gauge = (name: string): number => {
    const bytes = value(name);
    if (Number.isNaN(bytes)) throw new Error(`${name} missing from /metrics`);
    return bytes / 1024 / 1024;
  };
  return {
    heapMb: gauge("nodejs_heap_size_used_bytes"),
    heapTotalMb: gauge("nodejs_heap_size_total_bytes"),
    externalMb: gauge("nodejs_external_memory_bytes"),
  };
}

/**
 * `--latency-only`: step 1 alone, `--rounds N` times (default 3) with the paths taking turns, and a table of each
 * path's p50/p99 per round and their medians — to tell a change of the tail from a noisy run. The gateway's
 * event-loop delay and GC pauses are read per round (the scrape before each run resets the delay histogram).
 */
async function latencyRounds(
  origins: Record<PathName, string>,
  gatewayOps: string,
  headers: Record<string, string>,
): Promise<void> {
  const rounds = roundsArg(3);
  await configureFake(origins.direct, { ttftMs: 0, interTokenDelayMs: 0 });
  const runs = { direct: [], nginx: [], bare: [], gateway: [] } as Record<PathName, LatencyResult[]>;
  for (let round = 0; round < rounds; round++) {
    const order = PATH_NAMES.map((_, i) => PATH_NAMES[(i + round) % PATH_NAMES.length]!);
    for (const p of order) {
      if (p === "gateway") await gatewayPauses(gatewayOps);
      const r = await fixedRate(origins[p], headers);
      runs[p].push(r);
      progress(`round ${round + 1}/${rounds} ${p}: ${latencyLine(r)}`);
      if (p === "gateway") progress(`  gateway process: ${await gatewayPauses(gatewayOps)}`);
    }
  }
  const rows = PATH_NAMES.map((p) => {
    const p50s = runs[p].map((r) => r.p50Ms);
    const p99s = runs[p].map((r) => r.p99Ms);
    return [
      p,
      f3(median(p50s)),
      f3(median(p99s)),
      runs[p].map((r) => `${f3(r.p50Ms)}/${f3(r.p99Ms)}`).join("  "),
    ];
  });
  const added = (p: PathName, pick: (r: LatencyResult) => number) =>
    signedMs(median(runs[p].map(pick)) - median(runs.direct.map(pick)));
  process.stdout.write(
    args.json
      ? `${JSON.stringify(Object.fromEntries(PATH_NAMES.map((p) => [p, runs[p].map(({ p50Ms, p99Ms, maxMs }) => ({ p50Ms, p99Ms, maxMs }))])))}\n`
      : `latency at ${plan.rate} req/s, ${rounds} round(s) of ${plan.measureMs / 1000} s per path (paths take turns)\n\n` +
          `${table([["path", "median p50 ms", "median p99 ms", "each round p50/p99"], ...rows])}\n\n` +
          `gateway − direct: p50 ${added("gateway", (r) => r.p50Ms)} ms, p99 ${added("gateway", (r) => r.p99Ms)} ms; ` +
          `bare − direct: p50 ${added("bare", (r) => r.p50Ms)} ms, p99 ${added("bare", (r) => r.p99Ms)} ms\n`,
  );
}

function latencyLine(r: LatencyResult): string {
  const slow = r.slowPerTenth
    .map((n, tenth) => (n > 0 ? `${(tenth / 10).toFixed(1)}s:${n}` : ""))
    .filter(Boolean);
  return (
    `p50 ${r.p50Ms.toFixed(3)} ms, p99 ${r.p99Ms.toFixed(3)} ms, max ${r.maxMs.toFixed(1)} ms, ` +
    `${r.requests} requests at ${r.achievedRps.toFixed(0)}/s, generator lag p99 ${r.sendLagP99Ms.toFixed(2)} ms` +
    (slow.length > 0 ? `; over 10 ms by send time: ${slow.join(" ")}` : "")
  );
}

/** The gateway's event-loop delay (max, p99) and GC pauses by kind since it started, from its default metrics. */
async function gatewayPauses(opsOrigin: string): Promise<string> {
  const value = await scrapeGateway(opsOrigin);
  const ms = (seconds: number) => `${(seconds * 1000).toFixed(1)} ms`;
  const gc = ["minor", "major", "incremental", "weakcb"].map((kind) => {
    const count = value(`nodejs_gc_duration_seconds_count{kind="${kind}"}`);
    const sum = value(`nodejs_gc_duration_seconds_sum{kind="${kind}"}`);
    return Number.isNaN(count) ? `${kind} —` : `${kind} ${count}× ${ms(sum)}`;
  });
  return (
    `event-loop delay max ${ms(value("nodejs_eventloop_lag_max_seconds"))}, ` +
    `p99 ${ms(value("nodejs_eventloop_lag_p99_seconds"))}; GC ${gc.join(", ")}`
  );
}

/** One scrape of the gateway's `/metrics` (on its ops origin): a series' value by its name and labels as printed, NaN when absent. */
async function scrapeGateway(opsOrigin: string): Promise<(series: string) => number> {
  const text = await (await request(`${opsOrigin}/metrics`)).body.text();
  const values = new Map<string, number>();
  for (const line of text.split("\n")) {
    const space = line.lastIndexOf(" ");
    if (!line.startsWith("#") && space > 0) values.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return (series) => values.get(series) ?? Number.NaN;
}

/**
 * Hold `plan.streams` streams open through the gateway for `plan.holdMs` (each reopened when it ends, until the
 * hold is over) while sampling the gateway's RSS.
 */
async function holdStreams(
  gateway: { origin: string; opsOrigin: string },
  gatewayPid: number,
  headers: Record<string, string>,
): Promise<StreamsResult> {
  const gatewayOrigin = gateway.origin;
  const n = plan.streams;
  const tokens = Math.max(2, Math.round(plan.streamMs / plan.interTokenMs));
  const body = streamBody(tokens);
  const pool = new Pool(gatewayOrigin, {
    connections: n,
    headersTimeout: plan.holdMs + 120_000,
    bodyTimeout: 60_000,
    keepAliveTimeout: 60_000,
  });
  const samples: Array<{ at: number; mb: number }> = [];
  const heap: Array<{ at: number; heapMb: number; heapTotalMb: number; externalMb: number }> = [];
  const t0 = Date.now();
  const holdEnd = t0 + plan.holdMs;
  let active = 0;
  let maxActive = 0;
  let fullAt: number | undefined;
  let completed = 0;
  let failed = 0;
  let firstError: string | undefined;
  const rssStartMb = rssMb(gatewayPid);
  const sampler = setInterval(
    () => {
      try {
        samples.push({ at: Date.now(), mb: rssMb(gatewayPid) });
      } catch {
        // the gateway died; the streams will fail and say so
      }
    },
    args.soak ? 1_000 : 250,
  );
  // The heap from the gateway's own metrics, less often: a scrape costs the gateway a little work.
  const heapSampler = setInterval(
    () => {
      void gatewayHeap(gateway.opsOrigin).then(
        (h) => heap.push({ at: Date.now(), ...h }),
        () => undefined,
      );
    },
    args.soak ? 10_000 : 2_000,
  );
  const reportTimer = setInterval(
    () =>
      progress(
        `  streams: ${active} active, ${completed} done, ${failed} failed, gateway RSS ${samples.at(-1)?.mb.toFixed(1)} MB`,
      ),
    args.soak ? 30_000 : 5_000,
  );

  const one = async (): Promise<void> => {
    let started = false;
    try {
      const res = await pool.request({ path: CHAT_PATH, method: "POST", headers, body });
      let tail = "";
      for await (const chunk of res.body) {
        const text = tail + (chunk as Buffer).toString("latin1");
        if (!started && res.statusCode === 200 && CONTENT_TOKEN.test(text)) {
          started = true;
          active += 1;
          if (active > maxActive) maxActive = active;
          if (active === n && fullAt === undefined) fullAt = Date.now();
        }
        tail = text.slice(-64);
      }
      if (res.statusCode === 200 && tail.includes("[DONE]")) completed += 1;
      else {
        failed += 1;
        firstError ??= `status ${res.statusCode}: ${tail}`;
      }
    } catch (error) {
      failed += 1;
      firstError ??= (error as Error).message;
    } finally {
      if (started) active -= 1;
    }
  };
  const lane = async (): Promise<void> => {
    do await one();
    while (Date.now() + plan.streamMs / 2 < holdEnd);
  };

  // Open them over about a second, as clients arriving, not one burst.
  const lanes: Array<Promise<void>> = [];
  for (let i = 0; i < n; i++) {
    lanes.push(lane());
    if (i % 10 === 9) await sleep(10);
  }
  await Promise.all(lanes);
  await sleep(1_000);
  clearInterval(sampler);
  clearInterval(heapSampler);
  clearInterval(reportTimer);
  const rssEndMb = rssMb(gatewayPid);
  await pool.close();
  if (failed > 0) progress(`  ${failed} stream(s) failed; first: ${firstError}`);

  const rampEnd = fullAt ?? t0 + 2_000;
  const inHold = <T extends { at: number }>(xs: T[]) =>
    xs.filter((s) => s.at >= rampEnd && s.at <= Math.max(holdEnd, rampEnd + 1_000));
  const hold = inHold(samples);
  const heapHold = inHold(heap);
  const [firstQ, lastQ] = quarterMeans(hold.map((s) => s.mb));
  const growthMb = lastQ - firstQ;
  const [heapFirstMb, heapLastMb] = quarterMeans(heapHold.map((h) => h.heapMb));
  const [heapTotalFirstMb, heapTotalLastMb] = quarterMeans(heapHold.map((h) => h.heapTotalMb));
  const [externalFirstMb, externalLastMb] = quarterMeans(heapHold.map((h) => h.externalMb));
  const rssPeakMb = Math.max(rssStartMb, rssEndMb, ...samples.map((s) => s.mb));
  return {
    concurrent: maxActive,
    rssStartMb,
    rssFullMb: fullAt === undefined ? Number.NaN : (hold[0]?.mb ?? Number.NaN),
    rssPeakMb,
    rssEndMb,
    rssSamplesMb: samples.map((s) => s.mb),
    heapFirstMb,
    heapLastMb,
    heapTotalFirstMb,
    heapTotalLastMb,
    externalFirstMb,
    externalLastMb,
    flat: hold.length >= 2 && growthMb <= Math.max(10, firstQ * 0.1),
    growthMb,
    completed,
    failed,
    rampMs: (fullAt ?? Number.NaN) - t0,
  };
}

/** Step 3's memory part: a fresh gateway process, `plan.streams` streams held through it for `plan.holdMs`. */
async function streamsOnFreshGateway(
  dir: string,
  fakeOrigin: string,
  prefix: string,
  headers: Record<string, string>,
): Promise<StreamsResult> {
  const gateway = await startGateway(dir, fakeOrigin, prefix);
  const pid = gateway.child.proc.pid!;
  progress(`gateway on ${gateway.origin} (pid ${pid}, idle RSS ${rssMb(pid).toFixed(1)} MB)`);
  await configureFake(fakeOrigin, { ttftMs: 0, interTokenDelayMs: plan.interTokenMs });
  progress(
    `streams: ${plan.streams} concurrent through the gateway, ${plan.streamMs / 1000} s each (a token every ${plan.interTokenMs} ms), held ${plan.holdMs / 1000} s`,
  );
  const streams = await holdStreams(gateway, pid, headers);
  progress(
    `  ${streams.concurrent} concurrent (${Number.isNaN(streams.rampMs) ? "never all open" : `all open after ${streams.rampMs.toFixed(0)} ms`}), RSS peak ${streams.rssPeakMb.toFixed(1)} MB, ` +
      `growth over the hold ${streams.growthMb.toFixed(1)} MB`,
  );
  return streams;
}

function streamsLine(s: StreamsResult): string {
  return (
    `streams (fresh gateway process): ${s.completed} completed, ${s.failed} failed; RSS start ${s.rssStartMb.toFixed(1)} MB, ` +
    `all open ${Number.isNaN(s.rssFullMb) ? "never" : `${s.rssFullMb.toFixed(1)} MB`}, peak ${s.rssPeakMb.toFixed(1)} MB, ` +
    `end ${s.rssEndMb.toFixed(1)} MB; V8 heap used ${s.heapFirstMb.toFixed(1)} → ${s.heapLastMb.toFixed(1)} MB ` +
    `(committed ${s.heapTotalFirstMb.toFixed(1)} → ${s.heapTotalLastMb.toFixed(1)} MB), ` +
    `external ${s.externalFirstMb.toFixed(1)} → ${s.externalLastMb.toFixed(1)} MB (first → last quarter of the hold)`
  );
}

// ── CPU profile summary (--cpu-prof) ──────────────────────────────────────────────────────────────────────

interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number } }>;
  samples: number[];
  timeDeltas: number[];
}

function summarizeProfiles(dir: string): string {
  const files = readdirSync(dir).filter((f) => f.endsWith(".cpuprofile"));
  const lines: string[] = [];
  for (const file of files) {
    const profile = JSON.parse(readFileSync(join(dir, file), "utf8")) as CpuProfile;
    const byId = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
    const byFunction = new Map<string, number>();
    const byArea = new Map<string, number>();
    let total = 0;
    profile.samples.forEach((id, i) => {
      const us = profile.timeDeltas[i] ?? 0;
      const frame = byId.get(id);
      if (!frame || frame.functionName === "(idle)") return;
      total += us;
      const url = frame.url.replace(/^file:\/\//, "").replace(`${ROOT}/`, "");
      const where = url ? `${url}:${frame.lineNumber + 1}` : "";
      const fn = `${frame.functionName || "(anonymous)"} ${where}`.trim();
      byFunction.set(fn, (byFunction.get(fn) ?? 0) + us);
      const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1];
      const area = pkg
        ? pkg
        : url.startsWith("node:")
          ? "node internals"
          : url
            ? url.split("/")[0]!
            : frame.functionName || "(native)";
      byArea.set(area, (byArea.get(area) ?? 0) + us);
    });
    const top = (m: Map<string, number>, k: number) =>
      [...m.entries()]
        .sort((a, b) => b[1] - a[1])
        .slice(0, k)
        .map(([name, us]) => `  ${((100 * us) / total).toFixed(1).padStart(5)}%  ${name}`);
    lines.push(
      `${join(dir, file)}: ${(total / 1e6).toFixed(1)} s busy (percentages of busy time)`,
      "self time by area:",
      ...top(byArea, 14),
      "self time by function:",
      ...top(byFunction, 30),
    );
  }
  return lines.join("\n");
}

// ── output ────────────────────────────────────────────────────────────────────────────────────────────────

interface Report {
  direct: PathResult;
  nginx: PathResult;
  gateway: PathResult;
  addedP50Ms: number;
  addedP99Ms: number;
  throughputRatio: number;
  ttftOverheadMs: number;
  streams: { concurrent: number; rssMb: number };
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? "").length)));
  return rows
    .map((r) =>
      r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join("   "),
    )
    .join("\n");
}

function human(
  report: Report,
  extra: {
    streams: StreamsResult;
    ttft: Record<PathName, number>;
    /** The reference path (bare fastify + undici), which the JSON report leaves out. */
    bare: PathResult;
    idleRssMb: number;
    loadedRssMb: number;
    load: string;
  },
): string {
  const paths = (["direct", "nginx", "bare", "gateway"] as const).map((p) => {
    const r = p === "bare" ? extra.bare : report[p];
    const added =
      p === "direct"
        ? ["", ""]
        : [signedMs(r.p50Ms - report.direct.p50Ms), signedMs(r.p99Ms - report.direct.p99Ms)];
    return [p, Math.round(r.rps).toLocaleString("en-US"), f3(r.p50Ms), f3(r.p99Ms), ...added];
  });
  const verdict = (ok: boolean) => (ok ? "PASS" : "MISS");
  const s = extra.streams;
  // Memory with fewer streams open than asked for says nothing about the target.
  const streamsVerdict = (ok: boolean) => (s.concurrent >= plan.streams ? verdict(ok) : "n/a");
  const targets = [
    ["target", "measured", "goal", ""],
    [
      `added p50 at ${plan.rate.toLocaleString("en-US")} req/s (gateway − direct)`,
      `${f3(report.addedP50Ms)} ms`,
      `≤ ${TARGETS.addedP50Ms} ms`,
      verdict(report.addedP50Ms <= TARGETS.addedP50Ms),
    ],
    [
      `added p99 at ${plan.rate.toLocaleString("en-US")} req/s (gateway − direct)`,
      `${f3(report.addedP99Ms)} ms`,
      `≤ ${TARGETS.addedP99Ms} ms`,
      verdict(report.addedP99Ms <= TARGETS.addedP99Ms),
    ],
    [
      "saturation throughput gateway ÷ nginx",
      `${(report.throughputRatio * 100).toFixed(1)} %`,
      `≥ ${TARGETS.throughputRatio * 100} %`,
      verdict(report.throughputRatio >= TARGETS.throughputRatio),
    ],
    [
      `TTFT overhead (median ${f3(extra.ttft.gateway)} − ${f3(extra.ttft.direct)} ms)`,
      `${f3(report.ttftOverheadMs)} ms`,
      `≤ ${TARGETS.ttftOverheadMs} ms`,
      verdict(report.ttftOverheadMs <= TARGETS.ttftOverheadMs),
    ],
    // what any Node proxy pays on this machine at this moment: the share of the overhead that is the gateway's own
    [
      "  for scale: bare fastify + undici, nginx",
      `${f3(extra.ttft.bare - extra.ttft.direct)}, ${f3(extra.ttft.nginx - extra.ttft.direct)} ms`,
      "",
      "",
    ],
    [
      `concurrent streams through the gateway`,
      `${s.concurrent}`,
      `${plan.streams}`,
      verdict(s.concurrent >= plan.streams),
    ],
    [
      `gateway RSS peak with ${s.concurrent} streams open`,
      `${report.streams.rssMb.toFixed(1)} MB`,
      `< ${TARGETS.rssMb} MB`,
      streamsVerdict(report.streams.rssMb < TARGETS.rssMb),
    ],
    [
      `RSS flat over the ${Math.round(plan.holdMs / 1000)} s hold (last − first quarter)`,
      `${s.growthMb >= 0 ? "+" : ""}${s.growthMb.toFixed(1)} MB`,
      "≤ 10 MB / 10 %",
      streamsVerdict(s.flat),
    ],
  ];
  return [
    `fixed rate ${plan.rate} req/s open loop (p50/p99, ${plan.measureMs / 1000} s after a ${plan.warmupMs / 1000} s warm-up run); ` +
      `saturation: wrk -t1 -c${plan.wrkConnections} ${plan.saturationSeconds} s, median of ${plan.saturationRounds} run(s) per path, taking turns`,
    "",
    table([["path", "rps (saturated)", "p50 ms", "p99 ms", "added p50", "added p99"], ...paths]),
    "",
    table(targets),
    "",
    streamsLine(s),
    `gateway RSS idle ${extra.idleRssMb.toFixed(1)} MB, after the latency and saturation runs ${extra.loadedRssMb.toFixed(1)} MB; ` +
      `load average at the end ${extra.load} (${cpus().length} CPUs)`,
  ].join("\n");
}

// ── main ──────────────────────────────────────────────────────────────────────────────────────────────────

// ── A/B against another revision (--against REV) ─────────────────────────────────────────────────────────

/** A command run on one CPU through taskset (same pid: taskset execs it), or as it is without a CPU. */
function pinned(cpu: number | undefined, command: string, argv: string[]): [string, string[]] {
  if (cpu === undefined) return [command, argv];
  return [which("taskset")!, ["-c", String(cpu), command, ...argv]];
}

/** CPU seconds a process has used (user + system), from /proc/<pid>/stat. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // after "pid (comm) ": state is field 3, utime and stime fields 14 and 15
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}
const CLOCK_TICKS = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout.trim()) || 100;

/** REV's gateway bundle, built from a detached git worktree of it (sharing this checkout's node_modules). */
function bundleOfRevision(dir: string, revision: string): { bundle: string; tree: string } {
  const tree = join(dir, "against");
  const git = (argv: string[]) => {
    const r = spawnSync("git", argv, { cwd: ROOT, encoding: "utf8" });
    if (r.status !== 0) throw new Error(`git ${argv.join(" ")}: ${r.stderr.trim()}`);
    return r.stdout.trim();
  };
  const commit = git(["rev-parse", "--verify", `${revision}^{commit}`]);
  git(["worktree", "add", "--detach", tree, commit]);
  removeWorktree = () => {
    spawnSync("git", ["worktree", "remove", "--force", tree], { cwd: ROOT });
  };
  symlinkSync(join(ROOT, "node_modules"), join(tree, "node_modules"), "dir");
  return {
    bundle: gatewayBundle(dir, false, join(tree, "gateway/main.ts"), join(dir, "gateway-against.js")),
    tree,
  };
}

/** The bench stack's runtime config as REV's own code renders it (run in its worktree). */
function runtimeJsonOfRevision(tree: string, yaml: string): string {
  const script = [
    'const c = require("./core/config");',
    "const yaml = require('fs').readFileSync(0, 'utf8');",
    'process.stdout.write(JSON.stringify(c.renderRuntimeConfig(c.loadStackConfig(c.parseStackFile(yaml, "bench.yaml")), "bench")));',
  ].join(" ");
  const r = spawnSync(process.execPath, ["-r", "tsx/cjs", "-e", script], {
    cwd: tree,
    input: yaml,
    encoding: "utf8",
  });
  if (r.status !== 0)
    throw new Error(`rendering the runtime config of the other revision: ${r.stderr.trim()}`);
  return r.stdout;
}
let removeWorktree: (() => void) | undefined;

interface AbRun {
  readonly build: "this" | "against";
  readonly rps: number;
  /** CPU time of the gateway process per answered request, µs. */
  readonly cpuUsPerRequest: number;
}

/**
 * Saturation throughput and CPU time per request of this checkout's gateway against REV's, in one run: both
 * processes up at once, alternate wrk runs (the order swapped every round, so neither always goes first), each
 * gateway pinned to CPU 1 and wrk and the fake upstream to CPU 0 where taskset and two CPUs exist. CPU time per
 * request is steadier than requests per second on a shared machine (a neighbour's load slows both alike).
 */
async function againstRevision(
  dir: string,
  revision: string,
  fake: { child: Child; origin: string },
  prefix: string,
  key: string,
  /** The requests' headers (the bench key), as the other steps send them. */
  headers: Record<string, string>,
): Promise<void> {
  const rounds = roundsArg(4);
  const pin = which("taskset") !== undefined && cpus().length >= 2;
  if (pin) spawnSync(which("taskset")!, ["-p", "-c", "0", String(fake.child.proc.pid)]);
  progress(`building the gateway of ${revision} (git worktree in ${dir})`);
  const builds = {
    this: await startGateway(dir, fake.origin, prefix, { cpu: pin ? 1 : undefined }),
    against: await (async () => {
      const { bundle, tree } = bundleOfRevision(dir, revision);
      return startGateway(dir, fake.origin, prefix, {
        bundle,
        cpu: pin ? 1 : undefined,
        runtimeJson: runtimeJsonOfRevision(tree, benchStackYaml(fake.origin, prefix)),
      });
    })(),
  };
  // --stream: the saturation runs send streamed requests (16 tokens each), for changes to the streaming path
  const script = writeWrkScript(dir, key, args.stream ? streamBody(16) : CHAT_BODY);
  await configureFake(fake.origin, { ttftMs: 0, interTokenDelayMs: 0 });
  for (const b of ["this", "against"] as const) await saturate(builds[b].origin, script, pin ? 0 : undefined); // warm-up
  const runs: AbRun[] = [];
  for (let i = 0; i < rounds; i++) {
    const order = i % 2 === 0 ? (["this", "against"] as const) : (["against", "this"] as const);
    for (const b of order) {
      const pid = builds[b].child.proc.pid!;
      const before = cpuSeconds(pid);
      const r = await saturate(builds[b].origin, script, pin ? 0 : undefined);
      const cpuUsPerRequest = ((cpuSeconds(pid) - before) * 1e6) / r.requests;
      runs.push({ build: b, rps: r.rps, cpuUsPerRequest });
      progress(
        `  round ${i + 1}/${rounds} ${b === "this" ? "this checkout" : revision}: ${r.rps.toFixed(0)} req/s, ${cpuUsPerRequest.toFixed(1)} µs CPU per request`,
      );
    }
  }
  // time to first token: direct and both builds taking turns, stream by stream
  await configureFake(fake.origin, { ttftMs: plan.ttftMs, interTokenDelayMs: 2 });
  progress(`TTFT: ${plan.ttftStreams} sequential streams each, direct and both builds taking turns`);
  const [directTtft, thisTtft, againstTtft] = (
    await medianTtfts([fake.origin, builds.this.origin, builds.against.origin], headers)
  ).medians as [number, number, number];
  const ttft = {
    directMs: round(directTtft, 3),
    thisAddedMs: round(thisTtft - directTtft, 3),
    revisionAddedMs: round(againstTtft - directTtft, 3),
  };
  const summary = (b: AbRun["build"]) => {
    const mine = runs.filter((r) => r.build === b);
    return {
      rps: Math.round(median(mine.map((r) => r.rps))),
      cpuUsPerRequest: round(median(mine.map((r) => r.cpuUsPerRequest)), 1),
    };
  };
  const report = {
    against: revision,
    pinned: pin,
    rounds,
    this: summary("this"),
    revision: summary("against"),
    cpuRatio: round(summary("this").cpuUsPerRequest / summary("against").cpuUsPerRequest, 3),
    rpsRatio: round(summary("this").rps / summary("against").rps, 3),
    ttft,
    runs,
  };
  await cleanup();
  if (args.json) {
    process.stdout.write(`${JSON.stringify(report)}\n`);
    return;
  }
  const rows = [
    ["build", "req/s (median)", "µs CPU / request (median)"],
    ["this checkout", report.this.rps.toLocaleString("en-US"), report.this.cpuUsPerRequest.toFixed(1)],
    [revision, report.revision.rps.toLocaleString("en-US"), report.revision.cpuUsPerRequest.toFixed(1)],
  ];
  process.stdout.write(
    `saturation, wrk -t1 -c${plan.wrkConnections} ${plan.saturationSeconds} s, ${rounds} round(s) each, alternating${pin ? "; gateways on CPU 1, wrk and the fake on CPU 0" : ""}\n\n` +
      `${table(rows)}\n\nthis ÷ ${revision}: CPU per request ${report.cpuRatio.toFixed(3)}, throughput ${report.rpsRatio.toFixed(3)}\n` +
      `TTFT added over direct (median of ${plan.ttftStreams} streams each, fake TTFT ${plan.ttftMs} ms): this checkout ` +
      `${signedMs(ttft.thisAddedMs)} ms, ${revision} ${signedMs(ttft.revisionAddedMs)} ms\n`,
  );
}

async function main(): Promise<void> {
  if (!(plan.holdMs > 0)) throw new Error(`--hold-seconds must be a positive number of seconds`);
  const missing = ["wrk", "nginx"].filter((t) => !which(t));
  if (missing.length > 0)
    throw new Error(`${missing.join(" and ")} not found: apt-get install wrk nginx-light`);
  tmpDir = mkdtempSync(join(tmpdir(), "aiorch-bench-"));
  const dir = tmpDir;

  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 2, lazyConnect: true });
  redis.on("error", () => undefined);
  await redis.connect().catch((error: Error) => {
    throw new Error(`Redis at ${REDIS_URL} is not reachable: ${error.message}`);
  });
  const prefix = `bench${randomBytes(4).toString("hex")}:`;
  cleanupRedis = async () => {
    let cursor = "0";
    do {
      const [next, found] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 500);
      cursor = next;
      if (found.length > 0) await redis.del(...found);
    } while (cursor !== "0");
    redis.disconnect();
  };
  const { key } = await new ApiKeyStore(redis, redisKeys(prefix)).create({
    name: "bench",
    rpm: 1_000_000_000,
    tpm: 1_000_000_000_000,
  });
  const headers = { "content-type": "application/json", authorization: `Bearer ${key}` };

  progress(
    `node ${process.version}, ${cpus().length} CPU(s), load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}, ` +
      `${spawnSync(which("nginx")!, ["-v"], { encoding: "utf8" }).stderr.trim()}; temp ${dir}`,
  );
  const fake = await startFake();
  progress(`fake vLLM on ${fake.origin} (pid ${fake.child.proc.pid})`);
  if (args.against) {
    await againstRevision(dir, args.against, fake, prefix, key, headers);
    return;
  }
  const nginx = await startNginx(dir, Number(new URL(fake.origin).port));
  progress(`nginx on ${nginx.origin} (pid ${nginx.child.proc.pid}, 1 worker, upstream keepalive 64)`);
  const gateway = await startGateway(dir, fake.origin, prefix);
  const gatewayPid = gateway.child.proc.pid!;
  const idleRssMb = rssMb(gatewayPid);
  progress(
    `gateway on ${gateway.origin} (pid ${gatewayPid}, key prefix ${prefix}, idle RSS ${idleRssMb.toFixed(1)} MB)`,
  );
  const bare = await startBare(fake.origin);
  progress(
    `bare fastify + undici pass-through (the reference) on ${bare.origin} (pid ${bare.child.proc.pid})`,
  );
  const origins = {
    direct: fake.origin,
    nginx: nginx.origin,
    bare: bare.origin,
    gateway: gateway.origin,
  } as const;

  if (args["ttft-only"]) {
    await configureFake(fake.origin, { ttftMs: plan.ttftMs, interTokenDelayMs: 2 });
    const { ttft, legs } = await ttftStep(origins, headers);
    await cleanup();
    const added = (p: PathName, ms: number, direct: number) => (p === "direct" ? "" : signedMs(ms - direct));
    process.stdout.write(
      args.json
        ? `${JSON.stringify({ ttft, legs })}\n`
        : `time to first token, ${plan.ttftStreams} streams per path in shuffled turns (fake TTFT ${plan.ttftMs} ms); ` +
            "the way there is client → the fake's handler, the way back the fake's first token → client (medians)\n\n" +
            `${table([
              ["path", "median TTFT ms", "added ms", "way there ms", "added", "way back ms", "added"],
              ...PATH_NAMES.map((p) => [
                p,
                f3(ttft[p]),
                added(p, ttft[p], ttft.direct),
                f3(legs[p].thereMs),
                added(p, legs[p].thereMs, legs.direct.thereMs),
                f3(legs[p].backMs),
                added(p, legs[p].backMs, legs.direct.backMs),
              ]),
            ])}\n`,
    );
    return;
  }

  if (args["latency-only"]) {
    await latencyRounds(origins, gateway.opsOrigin, headers);
    await cleanup();
    return;
  }

  if (args["streams-only"]) {
    const streams = await streamsOnFreshGateway(dir, fake.origin, prefix, headers);
    await stopChild(gateway.child);
    await cleanup();
    process.stdout.write(
      args.json
        ? `${JSON.stringify({ streams })}\n`
        : `${streamsLine(streams)}\nRSS samples, MB: ${streams.rssSamplesMb.map((mb) => mb.toFixed(0)).join(" ")}\n`,
    );
    return;
  }

  // 1. Latency at a fixed rate.
  await configureFake(fake.origin, { ttftMs: 0, interTokenDelayMs: 0 });
  const latency = {} as Record<PathName, LatencyResult>;
  for (const p of PATH_NAMES) {
    progress(`fixed rate ${plan.rate} req/s → ${p} (${(plan.warmupMs + plan.measureMs) / 1000} s)`);
    const r = await fixedRate(origins[p], headers);
    latency[p] = r;
    progress(`  ${p}: ${latencyLine(r)}`);
    // where a slow tail comes from: the gateway's own event-loop delay and GC pauses so far
    if (p === "gateway") progress(`  gateway process: ${await gatewayPauses(gateway.opsOrigin)}`);
  }

  // 2. Saturation.
  const script = writeWrkScript(dir, key);
  const saturationRuns = { direct: [], nginx: [], bare: [], gateway: [] } as Record<PathName, WrkResult[]>;
  for (let round = 0; round < plan.saturationRounds; round++) {
    // each round starts with another path, so none always runs on a fresh (or a tired) machine
    const order = PATH_NAMES.map((_, i) => PATH_NAMES[(i + round) % PATH_NAMES.length]!);
    for (const p of order) {
      progress(
        `saturation ${round + 1}/${plan.saturationRounds} → ${p}: wrk -t1 -c${plan.wrkConnections} -d${plan.saturationSeconds}s`,
      );
      const r = await saturate(origins[p], script);
      saturationRuns[p].push(r);
      progress(
        `  ${p}: ${r.rps.toFixed(0)} req/s (p50 ${r.p50Ms.toFixed(3)} ms, p99 ${r.p99Ms.toFixed(3)} ms, ${r.errors} socket errors)`,
      );
    }
  }
  // per path, the run with the median throughput
  const saturation = {} as Record<PathName, WrkResult>;
  for (const p of PATH_NAMES) {
    const sorted = [...saturationRuns[p]].sort((a, b) => a.rps - b.rps);
    saturation[p] = sorted[Math.floor(sorted.length / 2)]!;
  }

  const loadedRssMb = rssMb(gatewayPid);

  // 3. Time to first token.
  await configureFake(fake.origin, { ttftMs: plan.ttftMs, interTokenDelayMs: 2 });
  const { ttft } = await ttftStep(origins, headers);

  // 4. Concurrent streams and memory, on a fresh gateway process: its RSS then shows what the streams cost,
  // not the heap the saturation run left behind (reported separately).
  progress(`restarting the gateway (RSS after the saturation run: ${loadedRssMb.toFixed(1)} MB)`);
  await stopChild(gateway.child);
  const streams = await streamsOnFreshGateway(dir, fake.origin, prefix, headers);

  await stopChild(bare.child);
  const result = (p: PathName): PathResult => ({
    rps: Math.round(saturation[p].rps),
    p50Ms: round(latency[p].p50Ms, 3),
    p99Ms: round(latency[p].p99Ms, 3),
  });
  const report: Report = {
    direct: result("direct"),
    nginx: result("nginx"),
    gateway: result("gateway"),
    addedP50Ms: round(latency.gateway.p50Ms - latency.direct.p50Ms, 3),
    addedP99Ms: round(latency.gateway.p99Ms - latency.direct.p99Ms, 3),
    throughputRatio: round(saturation.gateway.rps / saturation.nginx.rps, 3),
    ttftOverheadMs: round(ttft.gateway - ttft.direct, 3),
    streams: { concurrent: streams.concurrent, rssMb: round(streams.rssPeakMb, 1) },
  };

  const load = loadavg()
    .map((l) => l.toFixed(2))
    .join(" ");
  progress(`done; load average ${load}`);
  await cleanup();
  const profDir = args["cpu-prof"];
  if (profDir) process.stderr.write(`${summarizeProfiles(resolve(profDir))}\n`);
  process.stdout.write(
    args.json
      ? `${JSON.stringify(report)}\n`
      : `${human(report, { streams, ttft, bare: result("bare"), idleRssMb, loadedRssMb, load })}\n`,
  );
}

main().then(
  () => process.exit(0),
  (error: Error) => {
    // After a signal the children are being stopped under main's feet; that failure is not news.
    if (!interrupted) progress(`failed: ${error.stack ?? error.message}`);
    cleanup().finally(() => process.exit(interrupted ? 130 : 1));
  },
);
