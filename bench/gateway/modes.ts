/**
 * The runs of the gateway benchmark on the four paths: the full run (latency at a fixed rate, saturation, time to
 * first token, concurrent streams on a fresh gateway) and the single steps `--ttft-only`, `--latency-only` and
 * `--streams-only`.
 */
import { loadavg } from "node:os";
import { resolve } from "node:path";
import { residentMb } from "../../devkit/process";
import { gatewayPauses } from "./gateway-metrics";
import { fixedRate, type LatencyResult, saturate, type WrkResult, writeWrkScript } from "./load";
import { f3, median, round, signedMs } from "./numbers";
import { cleanup, configureFake, stopChild } from "./processes";
import {
  human,
  latencyLine,
  type PathResult,
  type Report,
  streamsLine,
  summarizeProfiles,
  table,
} from "./report";
import { PATH_NAMES, type PathName, progress, type Run, roundsOf } from "./settings";
import type { Ground, Paths } from "./setup";
import { streamsOnFreshGateway, ttftStep } from "./streams";

/** `--ttft-only`: time to first token on every path, each split into the way there and the way back. */
export async function ttftOnly(run: Run, ground: Ground, paths: Paths): Promise<void> {
  const { args, plan } = run;
  await configureFake(ground.fake.origin, { ttftMs: plan.ttftMs, interTokenDelayMs: 2 });
  const { ttft, legs } = await ttftStep(paths.origins, ground.headers, plan);
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
}

/**
 * `--latency-only`: step 1 alone, `--rounds N` times (default 3) with the paths taking turns, and a table of each
 * path's p50/p99 per round and their medians — to tell a change of the tail from a noisy run. The gateway's
 * event-loop delay and GC pauses are read per round (the scrape before each run resets the delay histogram).
 */
export async function latencyOnly(run: Run, ground: Ground, paths: Paths): Promise<void> {
  const { args, plan } = run;
  const { origins } = paths;
  const gatewayOps = paths.gateway.opsOrigin;
  const rounds = roundsOf(args, 3);
  await configureFake(origins.direct, { ttftMs: 0, interTokenDelayMs: 0 });
  const runs = { direct: [], nginx: [], bare: [], gateway: [] } as Record<PathName, LatencyResult[]>;
  for (let round = 0; round < rounds; round++) {
    const order = PATH_NAMES.map((_, i) => PATH_NAMES[(i + round) % PATH_NAMES.length]!);
    for (const p of order) {
      if (p === "gateway") await gatewayPauses(gatewayOps);
      const r = await fixedRate(origins[p], ground.headers, plan);
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
  await cleanup();
}

/** `--streams-only`: the concurrent streams through a fresh gateway and its memory while they are held. */
export async function streamsOnly(run: Run, ground: Ground, paths: Paths): Promise<void> {
  const { args, plan, launch } = run;
  const { dir, fake, prefix, headers } = ground;
  const streams = await streamsOnFreshGateway(dir, fake.origin, prefix, headers, plan, launch);
  await stopChild(paths.gateway.child);
  await cleanup();
  process.stdout.write(
    args.json
      ? `${JSON.stringify({ streams })}\n`
      : `${streamsLine(streams)}\nRSS samples, MB: ${streams.rssSamplesMb.map((mb) => mb.toFixed(0)).join(" ")}\n`,
  );
}

/** The full run: steps 1 to 3 on every path, then the table (or the JSON report). */
export async function fullRun(run: Run, ground: Ground, paths: Paths): Promise<void> {
  const { args, plan, launch } = run;
  const { dir, fake, prefix, key, headers } = ground;
  const { origins, gateway, bare, idleRssMb } = paths;
  const gatewayPid = gateway.child.proc.pid!;

  // 1. Latency at a fixed rate.
  await configureFake(fake.origin, { ttftMs: 0, interTokenDelayMs: 0 });
  const latency = {} as Record<PathName, LatencyResult>;
  for (const p of PATH_NAMES) {
    progress(`fixed rate ${plan.rate} req/s → ${p} (${(plan.warmupMs + plan.measureMs) / 1000} s)`);
    const r = await fixedRate(origins[p], headers, plan);
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
      const r = await saturate(origins[p], script, plan);
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

  const loadedRssMb = residentMb(gatewayPid);

  // 3. Time to first token.
  await configureFake(fake.origin, { ttftMs: plan.ttftMs, interTokenDelayMs: 2 });
  const { ttft } = await ttftStep(origins, headers, plan);

  // 4. Concurrent streams and memory, on a fresh gateway process: its RSS then shows what the streams cost,
  // not the heap the saturation run left behind (reported separately).
  progress(`restarting the gateway (RSS after the saturation run: ${loadedRssMb.toFixed(1)} MB)`);
  await stopChild(gateway.child);
  const streams = await streamsOnFreshGateway(dir, fake.origin, prefix, headers, plan, launch);

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
  const profDir = launch.cpuProfDir;
  if (profDir) process.stderr.write(`${summarizeProfiles(resolve(profDir))}\n`);
  process.stdout.write(
    args.json
      ? `${JSON.stringify(report)}\n`
      : `${human(report, plan, { streams, ttft, bare: result("bare"), idleRssMb, loadedRssMb, load })}\n`,
  );
}
