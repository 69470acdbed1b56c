/**
 * Simulator benchmark: a month of the 24/7 pattern at 1 request/s (Poisson, ~2.6 M chat requests) through
 * the real scaling policy and the break-even keep-alive, on an RTX 4090 RunPod pod.
 *
 * Prints simulated requests per second of wall time and peak RSS. Memory must not grow with the length of
 * the simulated period: the same run over one day first gives the peak RSS to compare with. As a baseline
 * measured in the same run, the arrival generator alone (no events, no policy) shows what the simulation
 * itself costs on top of producing the requests.
 *
 * `--suite` runs the keep-alive trace suite instead (sim/traces/): every trace × provider × policy, its cost and
 * waits against the lower bound (issue 21's figures).
 *
 *   node -r tsx/cjs bench/sim.ts [--suite [--hindsight]] [--wait-price USD] [--json] [--help]
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { providerProfile } from "../sim/profiles";
import { type RunResult, simulateRun } from "../sim/simulate";
import { renderSuite, renderSuiteCharts, runSuite, suiteJson } from "../sim/traces/run";
import { MONTH_SECONDS, patternWorkload, REQUEST_SHAPES, type Workload } from "../sim/workloads";
import { benchArgs } from "./args";

const USAGE = `Simulator benchmark: a month of 24/7 traffic at 1 request/s (Poisson, ~2.6 M chat requests) through the real
scaling policy and the break-even keep-alive; prints simulated requests per second of wall time and peak RSS, against
one simulated day and the arrival generator alone as baselines.

usage: npm run bench:sim -- [options]
       node -r tsx/cjs bench/sim.ts [options]

  --suite           the keep-alive trace suite instead: every trace × provider × policy against the
                    lower bound (cost, total with waiting priced, ratio, cold starts, p95/p99 wait, dropped)
  --wait-price USD  with --suite: what a request's waited second costs (default: the worker's own price
                    per second, the least the bound allows)
  --seed N          with --suite: the seed (default 1)
  --chart DIR       with --suite: write one SVG per trace into DIR (total cost against p95 wait)
  --hindsight       with --suite: also the best fixed keep-alive window per trace × provider, chosen after
                    seeing the trace (a sweep of 24 windows: what no fixed window can beat)
  --json      print the figures as one JSON object
  -h, --help  this text
`;

const { json, suite, ...args } = benchArgs("bench:sim", USAGE, {
  json: { type: "boolean", default: false },
  suite: { type: "boolean", default: false },
  hindsight: { type: "boolean", default: false },
  "wait-price": { type: "string" },
  seed: { type: "string" },
  chart: { type: "string" },
});

if (suite) {
  const waitUsdPerSecond = args["wait-price"] === undefined ? undefined : Number(args["wait-price"]);
  const seed = args.seed === undefined ? 1 : Number(args.seed);
  if ((waitUsdPerSecond !== undefined && !(waitUsdPerSecond >= 0)) || !Number.isInteger(seed)) {
    process.stderr.write("bench:sim: --wait-price must be a number ≥ 0 and --seed an integer; see --help\n");
    process.exit(2);
  }
  const tty = process.stderr.isTTY === true;
  const result = runSuite({
    seed,
    waitUsdPerSecond,
    hindsight: args.hindsight,
    onProgress: tty
      ? (f, label) => process.stderr.write(`\r\x1b[K${Math.round(f * 100)}% ${label}`)
      : undefined,
  });
  if (tty) process.stderr.write("\r\x1b[K");
  process.stdout.write(json ? `${JSON.stringify(suiteJson(result))}\n` : renderSuite(result));
  if (args.chart !== undefined) {
    mkdirSync(args.chart, { recursive: true });
    for (const [trace, svg] of renderSuiteCharts(result))
      writeFileSync(join(args.chart, `${trace}.svg`), svg);
    process.stderr.write(`charts written to ${args.chart}/<trace>.svg\n`);
  }
  process.exit(0);
}

const workload = (horizonSeconds: number): Workload =>
  patternWorkload({
    pattern: "always-on",
    arrivals: { kind: "poisson", ratePerSecond: 1 },
    shape: REQUEST_SHAPES.chat,
    seed: 42,
    label: "bench",
    horizonSeconds,
  });

const run = (horizonSeconds: number): { result: RunResult; seconds: number } => {
  const started = performance.now();
  const result = simulateRun({
    model: {
      name: "bench-8b",
      minWorkers: 0,
      maxWorkers: 4,
      targetConcurrency: 8,
      queueTimeoutSeconds: 180,
    },
    profile: providerProfile("runpod-pod", "RTX_4090"),
    policy: "auto",
    workload: workload(horizonSeconds),
    seed: 42,
  });
  return { result, seconds: (performance.now() - started) / 1000 };
};

const peakRssMb = (): number => Math.round((process.resourceUsage().maxRSS / 1024) * 10) / 10;

// Baseline: generate the month's arrivals only.
const baselineStarted = performance.now();
const source = workload(MONTH_SECONDS).open();
let generated = 0;
while (source.next()) generated++;
const baselineSeconds = (performance.now() - baselineStarted) / 1000;

const day = run(86_400);
const rssAfterDay = peakRssMb();
const month = run(MONTH_SECONDS);
const rssAfterMonth = peakRssMb();

const simulatedRequests = month.result.requests;
const perSecond = Math.round(simulatedRequests / month.seconds);
const report = {
  simulatedRequests,
  simulatedRequestsPerSecond: perSecond,
  peakRssMb: rssAfterMonth,
  peakRssMbAfterOneDay: rssAfterDay,
  oneDayRequests: day.result.requests,
  wallSeconds: Math.round(month.seconds * 1000) / 1000,
  events: month.result.events,
  decisions: month.result.decisions,
  coldStarts: month.result.coldStarts,
  costUsd: Math.round(month.result.bill.usd * 100) / 100,
  baselineArrivalsPerSecond: Math.round(generated / baselineSeconds),
  simulationCostVsGeneration: Math.round((generated / baselineSeconds / perSecond) * 100) / 100,
};

if (json) process.stdout.write(`${JSON.stringify(report)}\n`);
else {
  process.stdout.write(
    [
      `simulated month, 24/7 at 1 request/s through decideScale + break-even keep-alive`,
      `  requests            ${simulatedRequests.toLocaleString("en-US")} in ${report.wallSeconds} s wall`,
      `  simulated req/s     ${perSecond.toLocaleString("en-US")} (target ≥ 500,000)`,
      `  events              ${report.events.toLocaleString("en-US")}, ${report.decisions} scaling decisions, ${report.coldStarts} cold starts`,
      `  peak RSS            ${rssAfterMonth} MB after the month, ${rssAfterDay} MB after one day`,
      `  baseline            arrival generation alone ${report.baselineArrivalsPerSecond.toLocaleString("en-US")} req/s (simulation ${report.simulationCostVsGeneration}× slower)`,
      "",
    ].join("\n"),
  );
}
