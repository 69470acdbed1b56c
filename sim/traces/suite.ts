/**
 * The keep-alive trace suite (issue 21): week-long request traces that no policy was tuned for, as generators
 * (seeded, deterministic), not files. Each trace is one model's requests; service times follow the chat shape.
 *
 * Some shapes are defined against the provider's restart cost C (the break-even idle seconds of its cold start
 * and billing): Poisson with mean gap C, and the adversary whose every gap lands just after a break-even
 * keep-alive has let the worker go. The rest are absolute:
 * a 20-minute cron, ON/OFF bursts with heavy-tailed quiet spells, diurnal business hours, two periodicities,
 * one request a day, Pareto gaps; and two of ours: flash crowds over a quiet trickle, and a rate that doubles
 * every day.
 */
import { Random } from "../random";
import { type Arrival, REQUEST_SHAPES, serviceSecondsFor } from "../workloads";

export const SUITE_HORIZON_SECONDS = 7 * 24 * 3600;

const MINUTE = 60;
const HOUR = 3600;
const DAY = 24 * HOUR;

export interface TraceContext {
  /** The provider's restart cost in seconds of its running price (`restartCostSeconds` at its median cold start). */
  readonly restartCostSeconds: number;
  readonly seed: number;
  /** @default SUITE_HORIZON_SECONDS */
  readonly horizonSeconds?: number;
}

export interface SuiteTrace {
  readonly name: string;
  readonly description: string;
  /** Arrival times in seconds, ascending, within the horizon (service times are added by `suiteArrivals`). */
  times(ctx: Required<TraceContext>, rng: Random): number[];
}

/** Times from gaps drawn by `gap` until the horizon. */
function fromGaps(horizon: number, gap: () => number, start = 0): number[] {
  const out: number[] = [];
  for (let t = start + gap(); t < horizon; t += gap()) out.push(t);
  return out;
}

/** Pareto with shape `alpha` and scale `xm`, capped at `cap`. */
const pareto = (rng: Random, alpha: number, xm: number, cap: number): number =>
  Math.min(cap, xm / rng.nextOpen() ** (1 / alpha));

/** Poisson arrivals at `rate` per second inside [from, to). */
function poissonBetween(rng: Random, rate: number, from: number, to: number, out: number[]): void {
  for (let t = from + rng.exponential(rate); t < to; t += rng.exponential(rate)) out.push(t);
}

export const SUITE: readonly SuiteTrace[] = [
  {
    name: "poisson-break-even",
    description: "single requests, Poisson with the mean gap at the break-even idle time",
    times: (ctx, rng) =>
      fromGaps(ctx.horizonSeconds, () => rng.exponential(1 / Math.max(1, ctx.restartCostSeconds))),
  },
  {
    name: "cron-20m",
    description: "a batch of 3 requests every 20 minutes (a few seconds of jitter)",
    times: (ctx, rng) => {
      const out: number[] = [];
      for (let t = 20 * MINUTE; t < ctx.horizonSeconds; t += 20 * MINUTE)
        for (let i = 0; i < 3; i++) out.push(t + rng.uniform(0, 5));
      return out.sort((a, b) => a - b);
    },
  },
  {
    name: "on-off-heavy-tail",
    description: "ON spells (mean 2 min, 0.5 req/s) and quiet spells with Pareto lengths (α 1.2, from 1 min)",
    times: (ctx, rng) => {
      const out: number[] = [];
      let t = 0;
      while (t < ctx.horizonSeconds) {
        const on = rng.exponential(1 / (2 * MINUTE));
        poissonBetween(rng, 0.5, t, Math.min(ctx.horizonSeconds, t + on), out);
        t += on + pareto(rng, 1.2, MINUTE, DAY);
      }
      return out;
    },
  },
  {
    name: "business-hours",
    description: "weekdays 09:00–17:00, 0.05 req/s with a lunch dip to 0.015 req/s; nights and weekend quiet",
    times: (ctx, rng) => {
      const out: number[] = [];
      for (let day = 0; day * DAY < ctx.horizonSeconds; day++) {
        if (day % 7 >= 5) continue;
        const at = (h: number) => Math.min(ctx.horizonSeconds, day * DAY + h * HOUR);
        poissonBetween(rng, 0.05, at(9), at(12), out);
        poissonBetween(rng, 0.015, at(12), at(13), out);
        poissonBetween(rng, 0.05, at(13), at(17), out);
      }
      return out;
    },
  },
  {
    name: "two-periods",
    description: "one job every 7 minutes and another every 45 minutes",
    times: (ctx) => {
      const out: number[] = [];
      for (let t = 7 * MINUTE; t < ctx.horizonSeconds; t += 7 * MINUTE) out.push(t);
      for (let t = 45 * MINUTE + 13; t < ctx.horizonSeconds; t += 45 * MINUTE) out.push(t);
      return out.sort((a, b) => a - b);
    },
  },
  {
    name: "daily",
    description: "one request a day around 09:00 (± 30 min)",
    times: (ctx, rng) => {
      const out: number[] = [];
      for (let t = 9 * HOUR; t < ctx.horizonSeconds; t += DAY) out.push(t + rng.uniform(-30, 30) * MINUTE);
      return out;
    },
  },
  {
    name: "pareto-gaps",
    description: "independent gaps, Pareto (α 1.5, from 10 s, at most a day)",
    times: (ctx, rng) => fromGaps(ctx.horizonSeconds, () => pareto(rng, 1.5, 10, DAY)),
  },
  {
    name: "just-after-keep-alive",
    description: "every gap 5 % longer than the break-even keep-alive: a cold start per request for it",
    times: (ctx) => fromGaps(ctx.horizonSeconds, () => Math.max(2, ctx.restartCostSeconds * 1.05)),
  },
  {
    name: "flash-crowd",
    description: "one request an hour, and three crowds of 200 requests in 2 minutes",
    times: (ctx, rng) => {
      const out = fromGaps(ctx.horizonSeconds, () => rng.exponential(1 / HOUR));
      for (const day of [1, 3, 5]) {
        const start = day * DAY + rng.uniform(10, 16) * HOUR;
        if (start >= ctx.horizonSeconds) continue;
        for (let i = 0; i < 200; i++)
          out.push(Math.min(ctx.horizonSeconds - 1, start + rng.uniform(0, 2 * MINUTE)));
      }
      return out.sort((a, b) => a - b);
    },
  },
  {
    name: "doubling",
    description: "Poisson whose rate doubles every day, from 1 to 64 requests an hour",
    times: (ctx, rng) => {
      const out: number[] = [];
      for (let day = 0; day * DAY < ctx.horizonSeconds; day++)
        poissonBetween(rng, 2 ** day / HOUR, day * DAY, Math.min(ctx.horizonSeconds, (day + 1) * DAY), out);
      return out;
    },
  },
];

/** A trace's arrivals for a provider: its times, each with a chat-shaped service time (lognormal tokens). */
export function suiteArrivals(trace: SuiteTrace, ctx: TraceContext): Arrival[] {
  const full: Required<TraceContext> = {
    ...ctx,
    horizonSeconds: ctx.horizonSeconds ?? SUITE_HORIZON_SECONDS,
  };
  const times = trace.times(full, Random.stream(ctx.seed, `suite:${trace.name}`));
  const shape = REQUEST_SHAPES.chat;
  const sizes = Random.stream(ctx.seed, `suite:${trace.name}:tokens`);
  return times.map((time) => {
    const tokens = Math.max(1, Math.round(shape.medianTokens * Math.exp(shape.tokensSigma * sizes.normal())));
    return { time, tokens, serviceSeconds: serviceSecondsFor(shape, tokens) };
  });
}
