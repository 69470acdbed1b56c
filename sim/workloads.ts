/**
 * Workloads: when requests arrive and how long each keeps a worker busy.
 *
 * The four usage patterns of `core/usage-patterns.ts` become active periods over a month (730 h):
 * - always-on: the whole month;
 * - business-hours: 09:00–17:00 on each of the month's 30 full days (240 h);
 * - on-demand: one 2 h session a day at a random time between 08:00 and 22:00 (60 h);
 * - burst: one 5 h burst a week on a random day, starting between 08:00 and 19:00 (20 h).
 * Inside the active periods requests arrive as a Poisson process, or bursty: an on/off modulated Poisson
 * process (exponential bursts and quiet spells, no requests while quiet) with the same mean rate.
 * Every request draws a token count (lognormal per model kind) and its service time follows from it.
 *
 * Everything streams: periods and arrivals are generated one at a time, so memory does not grow with the
 * length of the month. `open()` restarts the same sequence, so every policy sees identical arrivals.
 */
import { HOURS_PER_MONTH } from "../core/catalog";
import type { ModelKind } from "../core/engine-routes";
import { USAGE_PATTERNS, type UsagePatternId } from "../core/usage-patterns";
import { Random } from "./random";

export const PATTERN_IDS: readonly UsagePatternId[] = USAGE_PATTERNS.map((p) => p.id);
export const MONTH_SECONDS = HOURS_PER_MONTH * 3600;

const HOUR = 3600;
const DAY = 24 * HOUR;
const WEEK = 7 * DAY;

export interface ActivePeriod {
  readonly start: number;
  readonly end: number;
}

export type ArrivalProcess =
  | { readonly kind: "poisson"; readonly ratePerSecond: number }
  | {
      readonly kind: "bursty";
      /** Mean rate over the active period (bursts and quiet spells together). */
      readonly ratePerSecond: number;
      readonly meanBurstSeconds: number;
      readonly meanQuietSeconds: number;
    };

/** Default bursty process: one-minute bursts, four-minute quiet spells (mean rate given). */
export function burstyArrivals(ratePerSecond: number): ArrivalProcess {
  return { kind: "bursty", ratePerSecond, meanBurstSeconds: 60, meanQuietSeconds: 240 };
}

/** Request size and service time of one kind of model. */
export interface RequestShape {
  /** Median tokens per request (generated tokens for chat and completion, input tokens for embeddings, audio seconds). */
  readonly medianTokens: number;
  /** Log-standard-deviation of the token count. */
  readonly tokensSigma: number;
  /** Fixed seconds per request (queueing in the engine, prefill, time to first token). */
  readonly baseSeconds: number;
  /** Tokens per second one request gets while the worker runs up to targetConcurrency of them. */
  readonly tokensPerSecond: number;
  /** The kind's usual mean rate during active hours, where it differs from the forecast's default. */
  readonly defaultRatePerSecond?: number;
}

/**
 * Shapes per model kind: a chat answer of ~250 tokens at ~50 tokens/s per stream (an 8B model on one
 * 24–80 GB GPU with vLLM batching), a short embedding, one image, a transcription. Service time does not depend
 * on the GPU or on how many requests share the worker (up to targetConcurrency): a simplification.
 *
 * Audio: a "token" is one second of audio. Assumed: a median upload of 20 s (a voice note; Whisper reads audio in
 * 30 s windows) transcribed at 5 s of audio per second of work. Source of the rate: the faster-whisper README
 * (github.com/SYSTRAN/faster-whisper, "Benchmarks", "Large-v2 model on GPU"): 13 minutes of audio took openai/whisper
 * 2m23s (≈5.5× real time) and faster-whisper 1m03s (≈12×) in fp16, beam 5, on an RTX 3070 Ti. Taken just below
 * the low end: a short clip still costs a whole 30 s window of the encoder, and those figures are for one long file.
 *
 * Image: a "token" is one image (a request's `n`, the count its audit line records as `images`; the gateway bills
 * the worker's busy time, so a request of n images costs n of these). Assumed: one image per request, 4 s of work
 * each plus 0.5 s — a few-step distilled model such as Z-Image-Turbo (8 steps; its model card: "sub-second" on an
 * H800) on a 24 GB consumer GPU; not measured here.
 */
export const REQUEST_SHAPES: Readonly<Record<ModelKind, RequestShape>> = {
  chat: { medianTokens: 250, tokensSigma: 0.8, baseSeconds: 0.3, tokensPerSecond: 50 },
  completion: { medianTokens: 250, tokensSigma: 0.8, baseSeconds: 0.3, tokensPerSecond: 50 },
  embedding: { medianTokens: 400, tokensSigma: 0.6, baseSeconds: 0.02, tokensPerSecond: 40_000 },
  // "occasional image generation" (the platform's users): 0.02/s keeps a worker serving one image at a time about
  // as busy in a burst (≈ 45 %) as the chat default (0.1/s of ~7 s answers) keeps a chat worker of 8 streams
  image: {
    medianTokens: 1,
    tokensSigma: 0,
    baseSeconds: 0.5,
    tokensPerSecond: 0.25,
    defaultRatePerSecond: 0.02,
  },
  audio: { medianTokens: 20, tokensSigma: 0.8, baseSeconds: 0.3, tokensPerSecond: 5 },
};

export function serviceSecondsFor(shape: RequestShape, tokens: number): number {
  return shape.baseSeconds + tokens / shape.tokensPerSecond;
}

export interface Arrival {
  /** Seconds since the start of the simulated period. */
  readonly time: number;
  readonly tokens: number;
  readonly serviceSeconds: number;
}

export interface ArrivalSource {
  /** The next arrival in time order, or undefined when there are no more. */
  next(): Arrival | undefined;
}

export interface Workload {
  readonly id: UsagePatternId | "trace";
  /** Length of the simulated period in seconds. */
  readonly horizonSeconds: number;
  /** Seconds the pattern is active; undefined for a trace (then the measured busy time is reported). */
  readonly activeSeconds: number | undefined;
  /** Requests the generator produces on average (for progress reporting). */
  readonly expectedRequests: number;
  /** A fresh source of the same arrivals. */
  open(): ArrivalSource;
}

/** Active seconds of a pattern over a horizon (what `activePeriods` generates, without generating it). */
export function patternActiveSeconds(pattern: UsagePatternId, horizonSeconds = MONTH_SECONDS): number {
  switch (pattern) {
    case "always-on":
      return horizonSeconds;
    case "business-hours":
      return fullDays(horizonSeconds, 17 * HOUR) * 8 * HOUR;
    case "on-demand":
      return fullDays(horizonSeconds, DAY) * 2 * HOUR;
    case "burst":
      return Math.floor(horizonSeconds / WEEK) * 5 * HOUR;
  }
}

/** Days whose period (ending `endOfDay` seconds after midnight) fits in the horizon. */
function fullDays(horizonSeconds: number, endOfDay: number): number {
  return Math.max(0, Math.floor((horizonSeconds - endOfDay) / DAY) + 1);
}

/** The active periods of a pattern in time order, generated lazily. */
export function* activePeriods(
  pattern: UsagePatternId,
  rng: Random,
  horizonSeconds = MONTH_SECONDS,
): Generator<ActivePeriod> {
  switch (pattern) {
    case "always-on":
      yield { start: 0, end: horizonSeconds };
      return;
    case "business-hours":
      for (let d = 0; d * DAY + 17 * HOUR <= horizonSeconds; d++) {
        yield { start: d * DAY + 9 * HOUR, end: d * DAY + 17 * HOUR };
      }
      return;
    case "on-demand":
      for (let d = 0; (d + 1) * DAY <= horizonSeconds; d++) {
        const start = d * DAY + 8 * HOUR + rng.uniform(0, 12 * HOUR);
        yield { start, end: start + 2 * HOUR };
      }
      return;
    case "burst":
      for (let w = 0; (w + 1) * WEEK <= horizonSeconds; w++) {
        const start = w * WEEK + rng.int(7) * DAY + 8 * HOUR + rng.uniform(0, 11 * HOUR);
        yield { start, end: start + 5 * HOUR };
      }
      return;
  }
}

/**
 * Arrival times inside a sequence of periods. Poisson: exponential gaps at the rate. Bursty: bursts and
 * quiet spells alternate (exponential lengths, each period starts in a burst); inside a burst arrivals come
 * at rate × (burst + quiet) / burst, so the mean over the period is the rate.
 */
export class ArrivalTimes {
  private period: ActivePeriod | undefined;
  private t = 0;
  private burstEnd = 0;
  private readonly burstRate: number;

  constructor(
    private readonly periods: Iterator<ActivePeriod>,
    private readonly process: ArrivalProcess,
    private readonly rng: Random,
  ) {
    this.burstRate =
      process.kind === "bursty"
        ? (process.ratePerSecond * (process.meanBurstSeconds + process.meanQuietSeconds)) /
          process.meanBurstSeconds
        : process.ratePerSecond;
    this.enterNextPeriod();
  }

  private enterNextPeriod(): void {
    const next = this.periods.next();
    this.period = next.done ? undefined : next.value;
    if (!this.period) return;
    this.t = this.period.start;
    if (this.process.kind === "bursty")
      this.burstEnd = this.t + this.rng.exponential(1 / this.process.meanBurstSeconds);
  }

  /** The next arrival time, or undefined after the last period. */
  next(): number | undefined {
    if (this.process.ratePerSecond <= 0) return undefined;
    for (;;) {
      const period = this.period;
      if (!period) return undefined;
      let t = this.t + this.rng.exponential(this.burstRate);
      if (this.process.kind === "bursty") {
        const { meanBurstSeconds, meanQuietSeconds } = this.process;
        while (t > this.burstEnd && this.burstEnd < period.end) {
          // The burst ended before this arrival: skip the quiet spell, start a new burst (memoryless).
          const burstStart = this.burstEnd + this.rng.exponential(1 / meanQuietSeconds);
          this.burstEnd = burstStart + this.rng.exponential(1 / meanBurstSeconds);
          t = burstStart + this.rng.exponential(this.burstRate);
        }
      }
      if (t < period.end) {
        this.t = t;
        return t;
      }
      this.enterNextPeriod();
    }
  }
}

export interface PatternWorkloadOptions {
  readonly pattern: UsagePatternId;
  readonly arrivals: ArrivalProcess;
  readonly shape: RequestShape;
  readonly seed: number;
  /** Distinguishes the random streams of different models under the same seed. */
  readonly label?: string;
  readonly horizonSeconds?: number;
}

/** A usage pattern with arrivals inside its active periods. */
export function patternWorkload(options: PatternWorkloadOptions): Workload {
  const { pattern, arrivals, shape, seed } = options;
  const horizonSeconds = options.horizonSeconds ?? MONTH_SECONDS;
  const label = `${options.label ?? ""}:${pattern}`;
  const activeSeconds = patternActiveSeconds(pattern, horizonSeconds);
  return {
    id: pattern,
    horizonSeconds,
    activeSeconds,
    expectedRequests: activeSeconds * arrivals.ratePerSecond,
    open(): ArrivalSource {
      const periods = activePeriods(pattern, Random.stream(seed, `periods${label}`), horizonSeconds);
      const times = new ArrivalTimes(periods, arrivals, Random.stream(seed, `arrivals${label}`));
      const sizes = Random.stream(seed, `sizes${label}`);
      const mu = Math.log(Math.max(shape.medianTokens, 1e-9));
      return {
        next(): Arrival | undefined {
          const time = times.next();
          if (time === undefined) return undefined;
          const tokens = Math.max(
            1,
            Math.round(shape.tokensSigma > 0 ? sizes.lognormal(mu, shape.tokensSigma) : shape.medianTokens),
          );
          return { time, tokens, serviceSeconds: serviceSecondsFor(shape, tokens) };
        },
      };
    },
  };
}

/** Arrivals at given times with a fixed service time (tests, property checks). */
export function fixedWorkload(
  times: readonly number[],
  serviceSeconds: number,
  horizonSeconds: number,
): Workload {
  return arrivalsWorkload(
    times.map((time) => ({ time, tokens: 0, serviceSeconds })),
    horizonSeconds,
  );
}

/** A workload of given arrivals (in time order), e.g. a generated suite trace. */
export function arrivalsWorkload(arrivals: readonly Arrival[], horizonSeconds: number): Workload {
  return {
    id: "trace",
    horizonSeconds,
    activeSeconds: undefined,
    expectedRequests: arrivals.length,
    open(): ArrivalSource {
      let i = 0;
      return { next: () => arrivals[i++] };
    },
  };
}
