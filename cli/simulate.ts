/**
 * `aiorch simulate`: what a stack's models cost and how long users wait, per provider, usage pattern and
 * keep-alive policy, through the real scaling policy on a virtual clock. Offline and deterministic for a seed.
 * Exit codes: 0 done, 2 bad usage, config or trace (the message names the flag, key or line).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { PROVIDER_IDS, type ProviderId } from "../core/catalog";
import { type RuntimeConfig, StackConfigError } from "../core/config";
import type { UsagePatternId } from "../core/usage-patterns";
import { type Forecast, type ForecastOptions, forecastForStack } from "../sim/forecast";
import { forecastJson, renderChart, renderForecastText } from "../sim/report";
import { POLICY_IDS, type PolicyId } from "../sim/simulate";
import { TraceError, TraceFile } from "../sim/trace";
import { renderSuite, renderSuiteCharts, runSuite, suiteJson } from "../sim/traces/run";
import { PATTERN_IDS } from "../sim/workloads";
import { stackRuntimeConfig, UsageError } from "./plan/run";
import { asksForHelp, commandUsage, isParseArgsError, parseArgsMessage, usageErrorText } from "./usage";

export type { SimResult } from "../sim/forecast";
export { type Forecast, type ForecastOptions, forecastForStack } from "../sim/forecast";

export interface SimulateIo {
  out(text: string): void;
  err(text: string): void;
  /** Whether to draw the progress bar on `err`; the CLI sets it only when stderr is a terminal. Absent: drawn. */
  readonly showProgress?: boolean;
}

/** Values of a list flag: repeated and/or comma-separated. */
const listOf = (values: readonly string[] | undefined): string[] | undefined =>
  values
    ?.flatMap((v) => v.split(","))
    .map((v) => v.trim())
    .filter((v) => v !== "");

function checkList<T extends string>(
  flag: string,
  values: string[] | undefined,
  known: readonly string[],
  noun: string,
): T[] | undefined {
  if (values === undefined) return undefined;
  if (values.length === 0)
    throw new UsageError(`--${flag} needs at least one ${noun}; known: ${known.join(", ")}`);
  for (const v of values) {
    if (!known.includes(v))
      throw new UsageError(`--${flag} "${v}" is not a known ${noun}; known: ${known.join(", ")}`);
  }
  return [...new Set(values)] as T[];
}

/** A progress bar on stderr, shown only once a run has taken more than a second, and only where it may be. */
function progressBar(io: SimulateIo) {
  if (io.showProgress === false) return { update(): void {}, done(): void {} };
  const started = Date.now();
  let lastDraw = 0;
  let lastWidth = 0;
  return {
    update(fraction: number, label: string): void {
      const now = Date.now();
      if (now - started < 1000 || now - lastDraw < 100) return;
      lastDraw = now;
      const width = 30;
      const filled = Math.max(0, Math.min(width, Math.round(fraction * width)));
      const text = `simulating [${"#".repeat(filled)}${".".repeat(width - filled)}] ${String(
        Math.floor(fraction * 100),
      ).padStart(3)}%  ${label.length > 60 ? `${label.slice(0, 59)}…` : label}`;
      io.err(`\r${text.padEnd(lastWidth)}`);
      lastWidth = text.length;
    },
    done(): void {
      if (lastWidth > 0) io.err(`\r${" ".repeat(lastWidth)}\r`);
    },
  };
}

interface Parsed {
  /** `--suite`: the trace suite instead of the stack, with `--hindsight`. */
  readonly suite: { readonly hindsight: boolean } | undefined;
  readonly stack: string;
  readonly dir: string;
  readonly json: boolean;
  readonly chart: string | undefined;
  readonly tracePath: string | undefined;
  readonly models: string[] | undefined;
  readonly options: Omit<ForecastOptions, "trace" | "onProgress" | "models">;
}

function parse(argv: readonly string[]): Parsed {
  let values: {
    stack?: string;
    dir?: string;
    pattern?: string[];
    trace?: string;
    policy?: string[];
    model?: string[];
    provider?: string[];
    rate?: string;
    "wait-price"?: string;
    arrivals?: string;
    seed?: string;
    json?: boolean;
    chart?: string;
    suite?: boolean;
    hindsight?: boolean;
  };
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        stack: { type: "string" },
        dir: { type: "string" },
        pattern: { type: "string", multiple: true },
        trace: { type: "string" },
        policy: { type: "string", multiple: true },
        model: { type: "string", multiple: true },
        provider: { type: "string", multiple: true },
        rate: { type: "string" },
        "wait-price": { type: "string" },
        arrivals: { type: "string" },
        seed: { type: "string" },
        json: { type: "boolean" },
        chart: { type: "string" },
        suite: { type: "boolean" },
        hindsight: { type: "boolean" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw isParseArgsError(error) ? new UsageError(parseArgsMessage(error)) : error;
  }
  if (values.hindsight && !values.suite) throw new UsageError("--hindsight goes with --suite");
  if (values.suite) {
    // the suite replays its own traces on the catalog's providers: nothing of a stack applies
    for (const flag of ["stack", "pattern", "trace", "model", "rate", "arrivals"] as const)
      if (values[flag] !== undefined)
        throw new UsageError(
          `--${flag} does not go with --suite (the suite runs its own traces, not a stack)`,
        );
  }
  const patterns = checkList<UsagePatternId>("pattern", listOf(values.pattern), PATTERN_IDS, "usage pattern");
  if (patterns && values.trace !== undefined)
    throw new UsageError("--pattern and --trace exclude each other: a trace replaces the usage patterns");
  const policies = checkList<PolicyId>("policy", listOf(values.policy), POLICY_IDS, "policy");
  const providers = checkList<ProviderId>("provider", listOf(values.provider), PROVIDER_IDS, "provider");
  let seed: number | undefined;
  if (values.seed !== undefined) {
    if (!/^\d+$/.test(values.seed) || !Number.isSafeInteger(Number(values.seed)))
      throw new UsageError(`--seed "${values.seed}" is not a whole number ≥ 0`);
    seed = Number(values.seed);
  }
  let rate: number | undefined;
  if (values.rate !== undefined) {
    rate = Number(values.rate);
    if (!/^\d*\.?\d+(e-?\d+)?$/i.test(values.rate) || !(rate > 0) || rate > 1000)
      throw new UsageError(`--rate "${values.rate}" is not a rate in requests per second (0 < rate ≤ 1000)`);
  }
  let waitUsdPerSecond: number | undefined;
  const waitPrice = values["wait-price"];
  if (waitPrice !== undefined) {
    waitUsdPerSecond = Number(waitPrice);
    if (!/^\d*\.?\d+(e-?\d+)?$/i.test(waitPrice) || !(waitUsdPerSecond >= 0))
      throw new UsageError(
        `--wait-price "${waitPrice}" is not a price in USD per waited second (e.g. 0.0005)`,
      );
  }
  if (values.arrivals !== undefined && values.arrivals !== "poisson" && values.arrivals !== "bursty")
    throw new UsageError(`--arrivals "${values.arrivals}" is not an arrival process; known: poisson, bursty`);
  if (values.chart === "")
    throw new UsageError(
      `--chart needs a ${values.suite ? "folder, e.g. --chart charts" : "file name, e.g. --chart cost.svg"}`,
    );
  return {
    suite: values.suite ? { hindsight: values.hindsight ?? false } : undefined,
    stack: values.stack ?? "dev",
    dir: resolve(values.dir ?? process.cwd()),
    json: values.json ?? false,
    chart: values.chart,
    tracePath: values.trace,
    models: listOf(values.model),
    options: {
      patterns,
      policies,
      providers,
      seed,
      ratePerSecond: rate,
      waitUsdPerSecond,
      arrivals: values.arrivals as "poisson" | "bursty" | undefined,
    },
  };
}

function checkModels(runtime: RuntimeConfig, models: string[] | undefined): string[] | undefined {
  if (!models) return undefined;
  const known = runtime.models.map((m) => m.name);
  for (const m of models)
    if (!known.includes(m))
      throw new UsageError(`--model "${m}" is not a model of this stack; models: ${known.join(", ")}`);
  return models;
}

/** `aiorch simulate …`: prints the forecast; returns the exit code. */
export async function runSimulate(argv: string[], io: SimulateIo): Promise<number> {
  // `aiorch simulate --help` is answered by main; this is for callers of runSimulate itself
  if (asksForHelp(argv)) {
    io.out(commandUsage("simulate"));
    return 0;
  }
  const progress = progressBar(io);
  try {
    const parsed = parse(argv);
    if (parsed.suite) return runTraceSuite(parsed, parsed.suite.hindsight, io, progress);
    const runtime = stackRuntimeConfig(parsed.dir, parsed.stack);
    const models = checkModels(runtime, parsed.models);
    let trace: TraceFile | undefined;
    if (parsed.tracePath !== undefined) {
      try {
        trace = TraceFile.open(resolve(parsed.tracePath), parsed.tracePath);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "ENOENT")
          throw new UsageError(`--trace ${parsed.tracePath}: no such file`);
        throw error;
      }
      const stackModels = (models ?? runtime.models.map((m) => m.name)).filter((m) => trace!.models.has(m));
      if (stackModels.length === 0)
        throw new UsageError(
          `--trace ${parsed.tracePath} has no requests for this stack's models (${runtime.models
            .map((m) => m.name)
            .join(", ")}); it has: ${[...trace.models.keys()].join(", ")}`,
        );
    }
    const forecast: Forecast = forecastForStack(runtime, {
      ...parsed.options,
      models: trace
        ? (models ?? runtime.models.map((m) => m.name)).filter((m) => trace!.models.has(m))
        : models,
      trace,
      onProgress: (fraction, label) => progress.update(fraction, label),
    });
    progress.done();
    if (parsed.chart !== undefined) {
      try {
        writeFileSync(resolve(parsed.chart), renderChart(forecast.results));
      } catch (error) {
        throw new UsageError(`--chart ${parsed.chart}: cannot write the chart (${(error as Error).message})`);
      }
    }
    if (parsed.json) io.out(`${JSON.stringify(forecastJson(forecast), null, 2)}\n`);
    else {
      io.out(
        `Simulated cost forecast for stack ${parsed.stack} (seed ${forecast.seed}):\n\n${renderForecastText(forecast)}`,
      );
    }
    if (parsed.chart !== undefined) (parsed.json ? io.err : io.out)(`chart written to ${parsed.chart}\n`);
    return 0;
  } catch (error) {
    progress.done();
    if (error instanceof UsageError) {
      io.err(usageErrorText(["simulate"], error.message));
      return 2;
    }
    if (error instanceof StackConfigError || error instanceof TraceError) {
      io.err(`aiorch simulate: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
}

/** `aiorch simulate --suite`: the keep-alive trace suite (sim/traces/) on the catalog's hourly providers. */
function runTraceSuite(
  parsed: Parsed,
  hindsight: boolean,
  io: SimulateIo,
  progress: ReturnType<typeof progressBar>,
): number {
  const { policies, providers, seed, waitUsdPerSecond } = parsed.options;
  const result = runSuite({
    seed,
    waitUsdPerSecond,
    hindsight,
    providers,
    // the bound is every row's reference already, not a row of its own
    policies: policies?.filter((p) => p !== "bound"),
    onProgress: (fraction, label) => progress.update(fraction, label),
  });
  progress.done();
  if (parsed.chart !== undefined) {
    try {
      mkdirSync(resolve(parsed.chart), { recursive: true });
      for (const [trace, svg] of renderSuiteCharts(result))
        writeFileSync(join(resolve(parsed.chart), `${trace}.svg`), svg);
    } catch (error) {
      throw new UsageError(`--chart ${parsed.chart}: cannot write the charts (${(error as Error).message})`);
    }
  }
  if (parsed.json) io.out(`${JSON.stringify(suiteJson(result), null, 2)}\n`);
  else io.out(`Keep-alive trace suite (seed ${seed ?? 1}):\n\n${renderSuite(result)}`);
  if (parsed.chart !== undefined)
    (parsed.json ? io.err : io.out)(`charts written to ${parsed.chart}/<trace>.svg\n`);
  return 0;
}
