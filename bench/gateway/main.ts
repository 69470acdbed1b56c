/**
 * Gateway benchmark (issue 5, "Benchmark"): the same fake vLLM upstream reached three ways — directly, through
 * nginx `proxy_pass` with upstream keep-alive, and through the gateway with auth and rate limits on — each server
 * in its own process so the load generator, the proxies and the upstream never share an event loop. A fourth
 * path is the reference: a bare fastify + undici pass-through (`bench/gateway/bare-proxy.ts`), what a Node proxy
 * costs on this machine before it does anything (in the table; the JSON report keeps the three paths the issue names).
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
 *   node -r tsx/cjs bench/gateway/main.ts [--json] [--quick] [--soak] [--streams-only] [--hold-seconds N] [--from-source]
 *                                         [--gateway-node-flags="--flag …"] [--cpu-prof DIR] [--ttft-only] [--latency-only [--rounds N]]
 *                                         [--against REV [--rounds N] [--stream]] [--help]
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
 *
 * This file reads the options and picks the mode; the folder holds the rest: `settings.ts` (options, plan,
 * requests), `processes.ts` (starting and stopping the servers), `setup.ts` (the key, the fake and the paths),
 * `load.ts` (fixed rate, wrk), `streams.ts` (TTFT, held streams), `modes.ts` and `against.ts` (the runs),
 * `report.ts` (lines and tables).
 */
import { againstRevision } from "./against";
import { fullRun, latencyOnly, streamsOnly, ttftOnly } from "./modes";
import { cleanup, installCleanupHooks, wasInterrupted } from "./processes";
import { launchOf, planOf, progress, type Run, readArgs } from "./settings";
import { prepareGround, startPaths } from "./setup";

async function main(): Promise<void> {
  const args = readArgs();
  const run: Run = { args, plan: planOf(args), launch: launchOf(args) };
  installCleanupHooks();
  const ground = await prepareGround(run.plan);
  if (args.against) return againstRevision(run, ground, args.against);
  const paths = await startPaths(ground, run.launch);
  if (args["ttft-only"]) return ttftOnly(run, ground, paths);
  if (args["latency-only"]) return latencyOnly(run, ground, paths);
  if (args["streams-only"]) return streamsOnly(run, ground, paths);
  return fullRun(run, ground, paths);
}

main().then(
  () => process.exit(0),
  (error: Error) => {
    // After a signal the children are being stopped under main's feet; that failure is not news.
    if (!wasInterrupted()) progress(`failed: ${error.stack ?? error.message}`);
    cleanup().finally(() => process.exit(wasInterrupted() ? 130 : 1));
  },
);
