/**
 * Streaming: time to first token on every path (sequential streams, the paths taking turns in a shuffled order,
 * each stream split at the fake into its way there and its way back), and concurrent streams held open through a
 * fresh gateway process while its memory is sampled — the soak when held long.
 */
import { Pool, request } from "undici";
import { residentMb, sleep } from "../../devkit/process";
import { gatewayHeap } from "./gateway-metrics";
import { f3, median, nowNs, signedMs } from "./numbers";
import { configureFake, startGateway } from "./processes";
import {
  CHAT_PATH,
  type GatewayLaunch,
  PATH_NAMES,
  type PathName,
  type Plan,
  progress,
  streamBody,
} from "./settings";

const CONTENT_TOKEN = /"content":"[^"]/;

// ── time to first token ───────────────────────────────────────────────────────────────────────────────────

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
export interface TtftLegs {
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
export async function medianTtfts(
  origins: readonly string[],
  headers: Record<string, string>,
  ttftStreams: number,
  fakeOrigin?: string,
): Promise<{ medians: number[]; legs: TtftLegs[] | undefined }> {
  const pools = origins.map((origin) => new Pool(origin, { connections: 1 }));
  const body = streamBody(4);
  const samples = origins.map((): number[] => []);
  const measured: Array<{ path: number; sentNs: bigint; firstTokenNs: bigint }> = [];
  const warmup = Math.ceil(ttftStreams / 10);
  let seed = 0x2545f491; // a fixed seed: the same orders every run
  const random = () => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed / 2 ** 32;
  };
  const order = origins.map((_, k) => k);
  for (let i = 0; i < warmup + ttftStreams; i++) {
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

/** Step 3: median time to first token on every path (streams in shuffled turns, see `medianTtfts`). */
export async function ttftStep(
  origins: Readonly<Record<PathName, string>>,
  headers: Record<string, string>,
  plan: Plan,
): Promise<{ ttft: Record<PathName, number>; legs: Record<PathName, TtftLegs> }> {
  const names = PATH_NAMES;
  progress(
    `TTFT: ${plan.ttftStreams} sequential streams per path (${names.join(", ")}) in shuffled turns, fake TTFT ${plan.ttftMs} ms`,
  );
  const { medians, legs } = await medianTtfts(
    names.map((p) => origins[p]),
    headers,
    plan.ttftStreams,
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

// ── concurrent streams and memory ─────────────────────────────────────────────────────────────────────────

export interface StreamsResult {
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

/**
 * Hold `plan.streams` streams open through the gateway for `plan.holdMs` (each reopened when it ends, until the
 * hold is over) while sampling the gateway's RSS.
 */
async function holdStreams(
  gateway: { origin: string; opsOrigin: string },
  gatewayPid: number,
  headers: Record<string, string>,
  plan: Plan,
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
  const rssStartMb = residentMb(gatewayPid);
  const sampler = setInterval(() => {
    try {
      samples.push({ at: Date.now(), mb: residentMb(gatewayPid) });
    } catch {
      // the gateway died; the streams will fail and say so
    }
  }, plan.rssSampleMs);
  // The heap from the gateway's own metrics, less often: a scrape costs the gateway a little work.
  const heapSampler = setInterval(() => {
    void gatewayHeap(gateway.opsOrigin).then(
      (h) => heap.push({ at: Date.now(), ...h }),
      () => undefined,
    );
  }, plan.heapSampleMs);
  const reportTimer = setInterval(
    () =>
      progress(
        `  streams: ${active} active, ${completed} done, ${failed} failed, gateway RSS ${samples.at(-1)?.mb.toFixed(1)} MB`,
      ),
    plan.streamsProgressMs,
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
  const rssEndMb = residentMb(gatewayPid);
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
export async function streamsOnFreshGateway(
  dir: string,
  fakeOrigin: string,
  prefix: string,
  headers: Record<string, string>,
  plan: Plan,
  launch: GatewayLaunch,
): Promise<StreamsResult> {
  const gateway = await startGateway(dir, fakeOrigin, prefix, launch);
  const pid = gateway.child.proc.pid!;
  progress(`gateway on ${gateway.origin} (pid ${pid}, idle RSS ${residentMb(pid).toFixed(1)} MB)`);
  await configureFake(fakeOrigin, { ttftMs: 0, interTokenDelayMs: plan.interTokenMs });
  progress(
    `streams: ${plan.streams} concurrent through the gateway, ${plan.streamMs / 1000} s each (a token every ${plan.interTokenMs} ms), held ${plan.holdMs / 1000} s`,
  );
  const streams = await holdStreams(gateway, pid, headers, plan);
  progress(
    `  ${streams.concurrent} concurrent (${Number.isNaN(streams.rampMs) ? "never all open" : `all open after ${streams.rampMs.toFixed(0)} ms`}), RSS peak ${streams.rssPeakMb.toFixed(1)} MB, ` +
      `growth over the hold ${streams.growthMb.toFixed(1)} MB`,
  );
  return streams;
}
