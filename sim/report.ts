/**
 * Forecast output: a text table per model × provider, a JSON document, and an SVG chart of cost against
 * p95 wait per policy (hand-written SVG, no dependency).
 */

import { renderTable as table } from "../core/table";
import type { Forecast, SimResult } from "./forecast";
import { POLICY_IDS, POLICY_LABELS, type PolicyId } from "./simulate";

const money = (usd: number): string => usd.toFixed(2);
const secs = (s: number): string => (s >= 100 ? s.toFixed(0) : s >= 10 ? s.toFixed(1) : s.toFixed(2));
/** A duration in the largest unit that keeps it short: 5.00s, 10.0m, 2.5h, 30.0d. */
const duration = (s: number): string =>
  s < 100
    ? `${secs(s)}s`
    : s < 6000
      ? `${(s / 60).toFixed(1)}m`
      : s < 172_800
        ? `${(s / 3600).toFixed(1)}h`
        : `${(s / 86_400).toFixed(1)}d`;
const keepAliveText = (r: SimResult): string =>
  r.policy === "bound" ? "oracle" : r.keepAliveSeconds === null ? "∞" : duration(r.keepAliveSeconds);

/** Group results by model × provider, keeping their order. */
function groups(results: readonly SimResult[]): SimResult[][] {
  const byKey = new Map<string, SimResult[]>();
  for (const r of results) {
    const key = `${r.model}\u0000${r.provider}`;
    const list = byKey.get(key);
    if (list) list.push(r);
    else byKey.set(key, [r]);
  }
  return [...byKey.values()];
}

/** Share of requests a policy may let time out and still count as serving the load. */
const SERVED_SHARE = 0.99;

/**
 * For each pattern of a group: the cheapest runnable policy that serves at least 99 % of requests (one that
 * lets more time out is not cheaper, it is broken), and the one with the lowest p95 wait.
 */
function winners(rows: readonly SimResult[]): string[] {
  const lines: string[] = [];
  const patterns = [...new Set(rows.map((r) => r.pattern))];
  for (const pattern of patterns) {
    const runnable = rows.filter((r) => r.pattern === pattern && r.policy !== "bound");
    if (runnable.length === 0) continue;
    const serving = runnable.filter((r) => r.timedOut <= (1 - SERVED_SHARE) * r.requests);
    const pool = serving.length > 0 ? serving : runnable;
    const cheapest = pool.reduce((a, b) => (b.costUsd < a.costUsd ? b : a));
    const fastest = runnable.reduce((a, b) =>
      b.waitP95Seconds < a.waitP95Seconds || (b.waitP95Seconds === a.waitP95Seconds && b.costUsd < a.costUsd)
        ? b
        : a,
    );
    const ratio = cheapest.costRatioToBound === null ? "" : `, ${cheapest.costRatioToBound}× bound`;
    const dropped = cheapest.timedOut > 0 ? `, ${cheapest.timedOut} timed out` : "";
    const losing = runnable
      .filter((r) => r.costUsd < cheapest.costUsd)
      .map((r) => `${r.policy} (${r.timedOut} of ${r.requests} timed out)`);
    const indent = " ".repeat(pattern.length + 4);
    lines.push(
      `  ${pattern}: cheapest ${cheapest.policy} $${money(cheapest.costUsd)} (p95 wait ${secs(cheapest.waitP95Seconds)}s${ratio}${dropped})` +
        (serving.length > 0 ? "" : " — every policy loses more than 1% of requests"),
      `${indent}shortest p95 wait: ${fastest.policy} ${secs(fastest.waitP95Seconds)}s at $${money(fastest.costUsd)}`,
    );
    if (losing.length > 0)
      lines.push(`${indent}cheaper but losing more than 1% of requests: ${losing.join(", ")}`);
  }
  return lines;
}

/** The forecast as text: one table per model × provider, where each policy wins, the assumptions. */
export function renderForecastText(forecast: Forecast): string {
  const out: string[] = [];
  for (const rows of groups(forecast.results)) {
    const first = rows[0]!;
    // With a weight cache, the cold starts split into hits (weights from the volume) and misses (from the Hub).
    const cached = rows.some((r) => r.weightCache);
    const headers = [
      "pattern",
      "policy",
      "keep-alive",
      "active h",
      "billed h",
      "cost $",
      "+wait $",
      "active $",
      "overhead $",
      "vs 24/7",
      "×bound",
      "cold starts",
      ...(cached ? ["hit/miss"] : []),
      "wait p50",
      "p95",
      "p99",
      "$/1k req",
      "timed out",
    ];
    out.push(
      `${first.model} on ${first.provider} (${first.gpu}, $${first.usdPerHour}/h${cached ? ", weight cache" : ""}):`,
      table(
        headers,
        rows.map((r) => [
          r.pattern,
          r.policy,
          keepAliveText(r),
          r.activeHours.toFixed(1),
          r.billedHours.toFixed(1),
          money(r.costUsd),
          money(r.waitUsd),
          money(r.activeCostUsd),
          money(r.overheadUsd),
          `${r.savingsVsAlwaysOnPct.toFixed(1)}%`,
          r.costRatioToBound === null ? "—" : r.costRatioToBound.toFixed(2),
          r.coldStarts,
          ...(cached ? [`${r.coldStartHits}/${r.coldStartMisses}`] : []),
          `${secs(r.waitP50Seconds)}s`,
          `${secs(r.waitP95Seconds)}s`,
          `${secs(r.waitP99Seconds)}s`,
          r.costPer1000Requests === null ? "—" : r.costPer1000Requests.toFixed(3),
          r.timedOut,
        ]),
      ),
      "where each policy wins:",
      ...winners(rows),
      "",
    );
  }
  if (forecast.results.length === 0) out.push("no model × provider could be simulated", "");
  if (forecast.unpriced.length > 0) out.push("not simulated:", ...forecast.unpriced.map((u) => `  ${u}`), "");
  out.push(
    "policies: " + POLICY_IDS.map((p) => `${p} = ${POLICY_LABELS[p]}`).join("; "),
    "×bound = (cost + waiting + dropped requests, priced) / the lower bound: nobody waits, the same cold-start draws, the cheapest idle gaps bridged; no policy can go under 1.00×",
    "assumptions:",
    ...forecast.assumptions.map((a) => `  ${a}`),
    "",
  );
  return out.join("\n");
}

/** The `--json` document: `{ results: [...] }` plus what the numbers assume. */
export function forecastJson(forecast: Forecast): {
  results: SimResult[];
  unpriced: string[];
  assumptions: string[];
  seed: number;
} {
  return {
    results: forecast.results,
    unpriced: forecast.unpriced,
    assumptions: forecast.assumptions,
    seed: forecast.seed,
  };
}

// ── chart ─────────────────────────────────────────────────────────────────────────────────────────────────

const COLORS: Readonly<Record<PolicyId, string>> = {
  "always-on": "#d62728",
  "fixed-5s": "#ff7f0e",
  "fixed-10m": "#9467bd",
  auto: "#1f77b4",
  adaptive: "#2ca02c",
  bound: "#111111",
};

const esc = (s: string): string =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/** x position of a wait on a symmetric-log scale (0 s at the left edge). */
const waitScale = (s: number): number => Math.log10(1 + Math.max(0, s));

function niceStep(max: number): number {
  const raw = max / 4;
  const mag = 10 ** Math.floor(Math.log10(raw || 1));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * mag >= raw) return m * mag;
  return 10 * mag;
}

/** One dot of a chart: a policy's cost and p95 wait in one panel. */
export interface ChartPoint {
  /** The panel: its heading and the line under it. */
  readonly heading: string;
  readonly subheading: string;
  readonly policy: PolicyId;
  readonly usd: number;
  readonly waitP95Seconds: number;
  /** Shown on hover. */
  readonly tip: string;
}

/**
 * Cost (y) against p95 wait (x, log scale) per policy: one panel per model × provider × pattern, one dot
 * per policy. Down and left is better; the bound marks the cheapest zero-wait point.
 */
export function renderChart(results: readonly SimResult[], title = "Monthly cost against p95 wait"): string {
  return renderPointsChart(
    results.map((r) => {
      const cache = r.weightCache ? ` (${r.coldStartHits} cache hits, ${r.coldStartMisses} misses)` : "";
      return {
        heading: `${r.model} · ${r.provider}`,
        subheading: r.pattern,
        policy: r.policy,
        usd: r.costUsd,
        waitP95Seconds: r.waitP95Seconds,
        tip: `${r.policy}: $${money(r.costUsd)}, p95 wait ${secs(r.waitP95Seconds)}s, ${r.coldStarts} cold starts${cache}`,
      };
    }),
    title,
  );
}

/** The chart of `renderChart` over any points (the trace suite draws one per trace: sim/traces/run.ts). */
export function renderPointsChart(points: readonly ChartPoint[], title: string): string {
  const panels = new Map<string, ChartPoint[]>();
  for (const r of points) {
    const key = `${r.heading}\u0000${r.subheading}`;
    const list = panels.get(key);
    if (list) list.push(r);
    else panels.set(key, [r]);
  }
  const cols = Math.max(1, Math.min(4, panels.size));
  const rowsCount = Math.max(1, Math.ceil(panels.size / cols));
  const pw = 300;
  const ph = 230;
  const margin = { left: 58, right: 14, top: 36, bottom: 40 };
  const top = 70;
  const width = cols * pw + 20;
  const height = top + rowsCount * ph + 20;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="10" y="22" font-size="16" font-weight="bold">${esc(title)}</text>`,
  ];
  // Legend
  let lx = 10;
  for (const policy of POLICY_IDS) {
    parts.push(
      policy === "bound"
        ? `<rect x="${lx + 1}" y="39" width="10" height="10" fill="none" stroke="${COLORS.bound}" stroke-width="2"/>`
        : `<circle cx="${lx + 6}" cy="44" r="5" fill="${COLORS[policy]}"/>`,
      `<text x="${lx + 15}" y="48">${esc(policy)}</text>`,
    );
    lx += 30 + policy.length * 7;
  }
  [...panels.entries()].forEach(([name, rows], index) => {
    const ox = 10 + (index % cols) * pw;
    const oy = top + Math.floor(index / cols) * ph;
    const x0 = ox + margin.left;
    const x1 = ox + pw - margin.right;
    const y0 = oy + ph - margin.bottom;
    const y1 = oy + margin.top;
    const maxWait = Math.max(10, ...rows.map((r) => r.waitP95Seconds));
    const xMax = waitScale(maxWait) * 1.05;
    const step = niceStep(Math.max(1, ...rows.map((r) => r.usd)) * 1.05);
    const yMax = Math.ceil((Math.max(1, ...rows.map((r) => r.usd)) * 1.05) / step) * step;
    const px = (wait: number) => x0 + (waitScale(wait) / xMax) * (x1 - x0);
    const py = (usd: number) => y0 - (usd / yMax) * (y0 - y1);
    const [heading = "", pattern = ""] = name.split("\u0000");
    parts.push(
      `<g>`,
      `<text x="${ox + 6}" y="${oy + 13}" font-weight="bold">${esc(heading)}</text>`,
      `<text x="${ox + 6}" y="${oy + 26}" fill="#555">${esc(pattern)}</text>`,
      `<line x1="${x0}" y1="${y0}" x2="${x1}" y2="${y0}" stroke="#333"/>`,
      `<line x1="${x0}" y1="${y0}" x2="${x0}" y2="${y1}" stroke="#333"/>`,
    );
    for (let v = 0; v <= yMax + 1e-9; v += step) {
      const y = py(v).toFixed(1);
      parts.push(
        `<line x1="${x0}" y1="${y}" x2="${x1}" y2="${y}" stroke="#eee"/>`,
        `<text x="${x0 - 4}" y="${y}" text-anchor="end" dominant-baseline="middle">$${Number(v.toFixed(2))}</text>`,
      );
    }
    for (const tick of [0, 1, 10, 100, 1000, 10_000]) {
      if (waitScale(tick) > xMax) break;
      const x = px(tick).toFixed(1);
      parts.push(
        `<line x1="${x}" y1="${y0}" x2="${x}" y2="${y0 + 4}" stroke="#333"/>`,
        `<text x="${x}" y="${y0 + 15}" text-anchor="middle">${tick}s</text>`,
      );
    }
    parts.push(
      `<text x="${(x0 + x1) / 2}" y="${y0 + 30}" text-anchor="middle" fill="#555">p95 wait (log scale)</text>`,
    );
    for (const r of rows) {
      const x = px(r.waitP95Seconds).toFixed(1);
      const y = py(r.usd).toFixed(1);
      const tip = r.tip;
      parts.push(
        r.policy === "bound"
          ? `<rect x="${Number(x) - 5}" y="${Number(y) - 5}" width="10" height="10" fill="none" stroke="${COLORS.bound}" stroke-width="2"><title>${esc(tip)}</title></rect>`
          : `<circle cx="${x}" cy="${y}" r="5" fill="${COLORS[r.policy]}" fill-opacity="0.85"><title>${esc(tip)}</title></circle>`,
      );
    }
    parts.push(`</g>`);
  });
  parts.push(`</svg>`, "");
  return parts.join("\n");
}
