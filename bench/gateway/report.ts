/**
 * Report rendering: the progress lines of a latency run and of the held streams, the tables of the full run
 * (paths and targets), and the summary of `--cpu-prof` profiles.
 */
import { readdirSync, readFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { ROOT } from "../../devkit/process";
import type { LatencyResult } from "./load";
import { f3, signedMs } from "./numbers";
import { type PathName, type Plan, TARGETS } from "./settings";
import type { StreamsResult } from "./streams";

/** One path's figures in the JSON report: saturated throughput and the fixed-rate latency. */
export interface PathResult {
  rps: number;
  p50Ms: number;
  p99Ms: number;
}

/** The JSON report of the full run (`--json`): the three paths the issue names and the overheads. */
export interface Report {
  direct: PathResult;
  nginx: PathResult;
  gateway: PathResult;
  addedP50Ms: number;
  addedP99Ms: number;
  throughputRatio: number;
  ttftOverheadMs: number;
  streams: { concurrent: number; rssMb: number };
}

/** Columns padded to the widest cell: the first left-aligned, the others right-aligned. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? "").length)));
  return rows
    .map((r) =>
      r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join("   "),
    )
    .join("\n");
}

export function latencyLine(r: LatencyResult): string {
  const slow = r.slowPerTenth
    .map((n, tenth) => (n > 0 ? `${(tenth / 10).toFixed(1)}s:${n}` : ""))
    .filter(Boolean);
  return (
    `p50 ${r.p50Ms.toFixed(3)} ms, p99 ${r.p99Ms.toFixed(3)} ms, max ${r.maxMs.toFixed(1)} ms, ` +
    `${r.requests} requests at ${r.achievedRps.toFixed(0)}/s, generator lag p99 ${r.sendLagP99Ms.toFixed(2)} ms` +
    (slow.length > 0 ? `; over 10 ms by send time: ${slow.join(" ")}` : "")
  );
}

export function streamsLine(s: StreamsResult): string {
  return (
    `streams (fresh gateway process): ${s.completed} completed, ${s.failed} failed; RSS start ${s.rssStartMb.toFixed(1)} MB, ` +
    `all open ${Number.isNaN(s.rssFullMb) ? "never" : `${s.rssFullMb.toFixed(1)} MB`}, peak ${s.rssPeakMb.toFixed(1)} MB, ` +
    `end ${s.rssEndMb.toFixed(1)} MB; V8 heap used ${s.heapFirstMb.toFixed(1)} → ${s.heapLastMb.toFixed(1)} MB ` +
    `(committed ${s.heapTotalFirstMb.toFixed(1)} → ${s.heapTotalLastMb.toFixed(1)} MB), ` +
    `external ${s.externalFirstMb.toFixed(1)} → ${s.externalLastMb.toFixed(1)} MB (first → last quarter of the hold)`
  );
}

export function human(
  report: Report,
  plan: Plan,
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

// ── CPU profile summary (--cpu-prof) ──────────────────────────────────────────────────────────────────────

interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number } }>;
  samples: number[];
  timeDeltas: number[];
}

/** Where the profiled gateway processes spent their CPU time: self time by package and by function. */
export function summarizeProfiles(dir: string): string {
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
