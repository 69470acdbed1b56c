/**
 * Runs the trace suite: every trace × provider profile × keep-alive policy through `simulateRun`, each ratio taken
 * to the lower bound under the same draws and wait pricing (sim/bound.ts). What issue 21's targets are read from:
 * the default policy's worst and median ratio, its p95 wait against fixed-10m's.
 */

import { restartCostSeconds } from "../../controller/keep-alive";
import { GPU_IDS, PROVIDER_IDS, type ProviderId } from "../../core/catalog";
import { renderTable } from "../../core/table";
import { cheapestProfile, medianColdStartSeconds, type SimProfile } from "../profiles";
import { type ChartPoint, renderPointsChart } from "../report";
import { POLICY_IDS, type PolicyId, type RunResult, type SimModel, simulateRun } from "../simulate";
import { arrivalsWorkload, type Workload } from "../workloads";
import { SUITE, SUITE_HORIZON_SECONDS, type SuiteTrace, suiteArrivals } from "./suite";

/** The policy the controller runs by default (`idleTimeoutSeconds: auto`, with its idle-gap history). */
export const DEFAULT_POLICY: PolicyId = "adaptive";

/** One model as the suite serves it: a chat model on up to two workers, the stack's default queue timeout. */
export const SUITE_MODEL: SimModel = {
  name: "suite",
  minWorkers: 0,
  maxWorkers: 2,
  targetConcurrency: 8,
  queueTimeoutSeconds: 180,
};

export interface SuiteRow {
  readonly trace: string;
  readonly provider: ProviderId;
  readonly policy: PolicyId;
  readonly requests: number;
  readonly costUsd: number;
  readonly totalUsd: number;
  /** totalUsd / the bound's. */
  readonly ratio: number;
  /** The lower bound's cost for this trace × provider. */
  readonly boundUsd: number;
  readonly coldStarts: number;
  readonly p95WaitSeconds: number;
  readonly p99WaitSeconds: number;
  readonly dropped: number;
}

export interface SuiteOptions {
  readonly seed?: number;
  readonly policies?: readonly PolicyId[];
  readonly traces?: readonly string[];
  readonly providers?: readonly ProviderId[];
  readonly waitUsdPerSecond?: number;
  readonly horizonSeconds?: number;
  /**
   * Also sweep fixed keep-alive windows (`HINDSIGHT_WINDOWS`) on each trace × provider and report the best in
   * hindsight: what no fixed window can beat even chosen after seeing the trace. @default false (24 runs more a row)
   */
  readonly hindsight?: boolean;
  readonly onProgress?: (fraction: number, label: string) => void;
}

/**
 * The fixed windows the hindsight sweep tries, in seconds: 0 (let go at once) up to 12 h, and "never" (1e9 s).
 * Fine enough near the cold starts of the catalog (tens of seconds to minutes) and coarse beyond.
 */
export const HINDSIGHT_WINDOWS = [
  0, 1, 2, 5, 10, 20, 30, 60, 90, 120, 180, 240, 300, 450, 600, 900, 1200, 1800, 2700, 3600, 7200, 14_400,
  43_200, 1e9,
] as const;

/** The best fixed keep-alive window for one trace × provider, chosen after seeing the trace. */
export interface HindsightRow {
  readonly trace: string;
  readonly provider: ProviderId;
  readonly keepAliveSeconds: number;
  /** Its total / the bound's. */
  readonly ratio: number;
  /** The default policy's ratio on the same trace × provider; absent when the run left that policy out. */
  readonly defaultRatio?: number;
}

export interface SuiteResult {
  readonly rows: SuiteRow[];
  /** With `hindsight`: the best fixed window per trace × provider. */
  readonly hindsight?: HindsightRow[];
  /** With `hindsight`: the default policy's total over the best fixed window's, worst and median over the rows. */
  readonly versusHindsight?: { readonly worstRatio: number; readonly medianRatio: number };
  /** The default policy's worst and median ratio over every trace × provider. */
  readonly worstRatio: number;
  readonly medianRatio: number;
}

/** One priced profile per catalog provider that can be rented by the hour (the cheapest GPU it has a price for). */
export function suiteProfiles(providers: readonly ProviderId[] = PROVIDER_IDS): SimProfile[] {
  const out: SimProfile[] = [];
  for (const provider of providers) {
    if (provider === "local") continue; // the team's own hardware: nothing to save
    const profile = cheapestProfile(provider, GPU_IDS);
    if (profile && !profile.billing.monthlyRental) out.push(profile);
  }
  return out;
}

function workloadOf(trace: SuiteTrace, profile: SimProfile, seed: number, horizonSeconds: number): Workload {
  const arrivals = suiteArrivals(trace, {
    seed,
    horizonSeconds,
    restartCostSeconds: restartCostSeconds(medianColdStartSeconds(profile.coldStart), profile.billing),
  });
  return arrivalsWorkload(arrivals, horizonSeconds);
}

const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;

export function runSuite(options: SuiteOptions = {}): SuiteResult {
  const seed = options.seed ?? 1;
  const horizon = options.horizonSeconds ?? SUITE_HORIZON_SECONDS;
  const policies = options.policies ?? POLICY_IDS.filter((p) => p !== "bound");
  const traces = options.traces ? SUITE.filter((t) => options.traces!.includes(t.name)) : SUITE;
  const profiles = suiteProfiles(options.providers);
  const rows: SuiteRow[] = [];
  const hindsight: HindsightRow[] = [];
  const total = traces.length * profiles.length;
  let done = 0;
  for (const trace of traces) {
    for (const profile of profiles) {
      options.onProgress?.(done / total, `${trace.name} on ${profile.provider}`);
      const workload = workloadOf(trace, profile, seed, horizon);
      const run = (policy: PolicyId, fixedKeepAliveSeconds?: number): RunResult =>
        simulateRun({
          model: SUITE_MODEL,
          profile,
          policy,
          workload,
          seed,
          waitUsdPerSecond: options.waitUsdPerSecond,
          fixedKeepAliveSeconds,
        });
      const bound = run("bound");
      let best: HindsightRow | undefined;
      if (options.hindsight) {
        for (const window of HINDSIGHT_WINDOWS) {
          const ratio = run("fixed-5s", window).totalUsd / bound.totalUsd;
          if (!best || ratio < best.ratio)
            best = { trace: trace.name, provider: profile.provider, keepAliveSeconds: window, ratio };
        }
      }
      for (const policy of policies) {
        const r = run(policy);
        const row: SuiteRow = {
          trace: trace.name,
          provider: profile.provider,
          policy,
          requests: r.requests,
          costUsd: round(r.bill.usd, 4),
          totalUsd: round(r.totalUsd, 4),
          ratio: bound.totalUsd > 0 ? round(r.totalUsd / bound.totalUsd, 3) : 1,
          boundUsd: round(bound.totalUsd, 4),
          coldStarts: r.coldStarts,
          p95WaitSeconds: round(r.wait.quantile(0.95), 2),
          p99WaitSeconds: round(r.wait.quantile(0.99), 2),
          dropped: r.timedOut,
        };
        rows.push(row);
        if (best && policy === DEFAULT_POLICY) best = { ...best, defaultRatio: row.ratio };
      }
      if (best) hindsight.push({ ...best, ratio: round(best.ratio, 3) });
      done += 1;
    }
  }
  options.onProgress?.(1, "done");
  const ratios = rows
    .filter((r) => r.policy === DEFAULT_POLICY)
    .map((r) => r.ratio)
    .sort((a, b) => a - b);
  const versus = hindsight
    .flatMap((h) => (h.defaultRatio === undefined ? [] : [h.defaultRatio / h.ratio]))
    .sort((a, b) => a - b);
  return {
    rows,
    ...(options.hindsight
      ? {
          hindsight,
          versusHindsight: {
            worstRatio: round(versus.at(-1) ?? Number.NaN, 3),
            medianRatio: round(medianOf(versus), 3),
          },
        }
      : {}),
    worstRatio: ratios.at(-1) ?? Number.NaN,
    medianRatio: round(medianOf(ratios), 3),
  };
}

/** The median of ascending values (NaN for none). */
function medianOf(sorted: readonly number[]): number {
  if (sorted.length === 0) return Number.NaN;
  const mid = sorted.length / 2;
  return sorted.length % 2 === 1 ? sorted[(sorted.length - 1) / 2]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** What `npm run bench:sim -- --suite --json` prints (issue 21's targets are read from it). */
export function suiteJson(result: SuiteResult) {
  return {
    traces: result.rows.map((r) => ({
      name: r.trace,
      provider: r.provider,
      policy: r.policy,
      ratio: r.ratio,
      p95WaitSeconds: r.p95WaitSeconds,
      dropped: r.dropped,
    })),
    worstRatio: result.worstRatio,
    medianRatio: result.medianRatio,
    ...(result.hindsight
      ? {
          hindsight: result.hindsight.map((h) => ({
            name: h.trace,
            provider: h.provider,
            keepAliveSeconds: h.keepAliveSeconds,
            ratio: h.ratio,
          })),
          versusHindsight: result.versusHindsight,
        }
      : {}),
  };
}

const windowText = (seconds: number) => (seconds >= 1e9 ? "never" : `${seconds}s`);

/** One table per trace: provider × policy with the ratio to the bound, cold starts, waits and drops. */
export function renderSuite(result: SuiteResult): string {
  const out: string[] = [];
  const traces = [...new Set(result.rows.map((r) => r.trace))];
  for (const name of traces) {
    const trace = SUITE.find((t) => t.name === name);
    out.push(`${name}: ${trace?.description ?? ""}`);
    out.push(
      renderTable(
        [
          "provider",
          "policy",
          "requests",
          "cost $",
          "total $",
          "×bound",
          "cold starts",
          "p95 wait",
          "p99 wait",
          "dropped",
        ],
        result.rows
          .filter((r) => r.trace === name)
          .map((r) => [
            r.provider,
            r.policy,
            r.requests,
            r.costUsd.toFixed(2),
            r.totalUsd.toFixed(2),
            r.ratio.toFixed(2),
            r.coldStarts,
            `${r.p95WaitSeconds}s`,
            `${r.p99WaitSeconds}s`,
            r.dropped,
          ]),
      ),
    );
    const best = result.hindsight?.filter((h) => h.trace === name);
    if (best && best.length > 0)
      out.push(
        `best fixed window in hindsight: ${best.map((h) => `${h.provider} ${h.ratio.toFixed(2)}× (${windowText(h.keepAliveSeconds)})`).join(", ")}`,
      );
    out.push("");
  }
  if (result.hindsight) {
    const over = result.hindsight.filter((h) => h.ratio > 1.5).length;
    const beaten = result.hindsight.filter(
      (h) => h.defaultRatio !== undefined && h.defaultRatio < h.ratio,
    ).length;
    out.push(
      `best fixed window in hindsight: over 1.5× the bound on ${over} of ${result.hindsight.length} trace × provider rows; ${DEFAULT_POLICY} beats it on ${beaten}`,
      `${DEFAULT_POLICY} against the best fixed window in hindsight: worst ${result.versusHindsight?.worstRatio}×, median ${result.versusHindsight?.medianRatio}×`,
    );
  }
  out.push(
    `default policy (${DEFAULT_POLICY}): worst ${result.worstRatio}× the bound, median ${result.medianRatio}× (total = cost + waiting + dropped requests, priced; sim/bound.ts)`,
    "",
  );
  return out.join("\n");
}

/**
 * One SVG per trace: a panel per provider, each policy's total (cost + waiting, priced) against its p95 wait, and
 * the bound's square at zero wait.
 */
export function renderSuiteCharts(result: SuiteResult): Map<string, string> {
  const charts = new Map<string, string>();
  for (const name of new Set(result.rows.map((r) => r.trace))) {
    const rows = result.rows.filter((r) => r.trace === name);
    const points: ChartPoint[] = rows.map((r) => ({
      heading: r.provider,
      subheading: `${r.requests} requests`,
      policy: r.policy,
      usd: r.totalUsd,
      waitP95Seconds: r.p95WaitSeconds,
      tip: `${r.policy}: $${r.totalUsd.toFixed(2)} total ($${r.costUsd.toFixed(2)} billed), ${r.ratio}× the bound, p95 wait ${r.p95WaitSeconds}s, ${r.coldStarts} cold starts, ${r.dropped} dropped`,
    }));
    for (const provider of new Set(rows.map((r) => r.provider))) {
      const first = rows.find((r) => r.provider === provider)!;
      points.push({
        heading: provider,
        subheading: `${first.requests} requests`,
        policy: "bound",
        usd: first.boundUsd,
        waitP95Seconds: 0,
        tip: `lower bound: $${first.boundUsd.toFixed(2)}, nobody waits`,
      });
    }
    charts.set(name, renderPointsChart(points, `${name}: total cost (waiting priced) against p95 wait`));
  }
  return charts;
}
