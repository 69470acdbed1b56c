import { describe, expect, it } from "vitest";
import { MODEL_KINDS } from "../../core/config";
import { USAGE_PATTERNS } from "../../core/usage-patterns";
import { Random } from "../../sim/random";
import {
  type ActivePeriod,
  ArrivalTimes,
  activePeriods,
  burstyArrivals,
  MONTH_SECONDS,
  type PATTERN_IDS,
  patternActiveSeconds,
  patternWorkload,
  REQUEST_SHAPES,
} from "../../sim/workloads";

const HOUR = 3600;

const periodsOf = (pattern: (typeof PATTERN_IDS)[number], seed = 1): ActivePeriod[] => [
  ...activePeriods(pattern, new Random(seed)),
];

const hours = (periods: ActivePeriod[]) => periods.reduce((s, p) => s + p.end - p.start, 0) / HOUR;

describe("usage patterns as active periods", () => {
  it("match the active hours of core/usage-patterns: 730, 240, 60, 20 per month", () => {
    for (const pattern of USAGE_PATTERNS) {
      const periods = periodsOf(pattern.id);
      expect(hours(periods), pattern.id).toBeCloseTo(pattern.activeHoursPerMonth, 6);
      expect(patternActiveSeconds(pattern.id) / HOUR, pattern.id).toBe(pattern.activeHoursPerMonth);
    }
  });

  it("business hours are 09:00–17:00 on each of 30 days", () => {
    const periods = periodsOf("business-hours");
    expect(periods).toHaveLength(30);
    for (const p of periods) {
      expect(p.start % (24 * HOUR)).toBe(9 * HOUR);
      expect(p.end - p.start).toBe(8 * HOUR);
    }
  });

  it("on-demand is one 2 h session a day, burst one 5 h burst a week; both within a day, in order", () => {
    const onDemand = periodsOf("on-demand");
    expect(onDemand).toHaveLength(30);
    const bursts = periodsOf("burst");
    expect(bursts).toHaveLength(4);
    for (const list of [onDemand, bursts]) {
      let last = -1;
      for (const p of list) {
        expect(p.start).toBeGreaterThanOrEqual(last);
        expect(Math.floor(p.start / (24 * HOUR))).toBe(Math.floor((p.end - 1) / (24 * HOUR)));
        expect(p.end).toBeLessThanOrEqual(MONTH_SECONDS);
        last = p.end;
      }
    }
    expect(periodsOf("on-demand", 2)).not.toEqual(onDemand);
  });
});

describe("arrivals", () => {
  it("Poisson: the rate over the active hours, only inside the periods", () => {
    const workload = patternWorkload({
      pattern: "business-hours",
      arrivals: { kind: "poisson", ratePerSecond: 0.5 },
      shape: REQUEST_SHAPES.chat,
      seed: 3,
    });
    const source = workload.open();
    let n = 0;
    let last = 0;
    let outside = 0;
    let backwards = 0;
    for (let a = source.next(); a; a = source.next()) {
      const hourOfDay = (a.time % (24 * HOUR)) / HOUR;
      if (hourOfDay < 9 || hourOfDay >= 17) outside++;
      if (a.time < last) backwards++;
      last = a.time;
      n++;
    }
    expect(outside).toBe(0);
    expect(backwards).toBe(0);
    expect(n / (240 * HOUR)).toBeCloseTo(0.5, 2);
    expect(workload.expectedRequests).toBe(240 * HOUR * 0.5);
  });

  it("bursty: the same mean rate, but counts per minute far more variable than Poisson", () => {
    const perMinute = (process: Parameters<typeof patternWorkload>[0]["arrivals"]) => {
      const times = new ArrivalTimes(
        [{ start: 0, end: 200 * HOUR }][Symbol.iterator](),
        process,
        new Random(11),
      );
      const counts = new Float64Array(200 * 60);
      for (let t = times.next(); t !== undefined; t = times.next()) counts[Math.floor(t / 60)]!++;
      const mean = counts.reduce((s, c) => s + c, 0) / counts.length;
      const variance = counts.reduce((s, c) => s + (c - mean) ** 2, 0) / counts.length;
      return { mean, dispersion: variance / mean };
    };
    const poisson = perMinute({ kind: "poisson", ratePerSecond: 0.2 });
    const bursty = perMinute(burstyArrivals(0.2));
    expect(poisson.mean).toBeCloseTo(12, 0);
    expect(bursty.mean / 12).toBeGreaterThan(0.9);
    expect(bursty.mean / 12).toBeLessThan(1.1);
    expect(poisson.dispersion).toBeGreaterThan(0.9);
    expect(poisson.dispersion).toBeLessThan(1.1);
    expect(bursty.dispersion).toBeGreaterThan(5);
  });

  it("request sizes and service times follow the model kind; the same seed replays the same requests", () => {
    const make = () =>
      patternWorkload({
        pattern: "burst",
        arrivals: { kind: "poisson", ratePerSecond: 0.2 },
        shape: REQUEST_SHAPES.chat,
        seed: 9,
        label: "m",
      });
    const a = make().open();
    const b = make().open();
    const tokens: number[] = [];
    for (let x = a.next(), y = b.next(); x || y; x = a.next(), y = b.next()) {
      expect(x).toEqual(y);
      tokens.push(x!.tokens);
      expect(x!.serviceSeconds).toBeCloseTo(0.3 + x!.tokens / 50, 10);
    }
    tokens.sort((p, q) => p - q);
    const median = tokens[Math.floor(tokens.length / 2)]!;
    expect(median).toBeGreaterThan(225);
    expect(median).toBeLessThan(275);
    const other = patternWorkload({
      pattern: "burst",
      arrivals: { kind: "poisson", ratePerSecond: 0.2 },
      shape: REQUEST_SHAPES.chat,
      seed: 9,
      label: "another-model",
    }).open();
    expect(other.next()).not.toEqual(make().open().next());
  });

  it("every model kind has a shape; audio: seconds of audio, a median 20 s clip keeps a worker ~4.3 s", () => {
    expect(Object.keys(REQUEST_SHAPES).sort()).toEqual([...MODEL_KINDS].sort());
    const source = patternWorkload({
      pattern: "burst",
      arrivals: { kind: "poisson", ratePerSecond: 0.2 },
      shape: REQUEST_SHAPES.audio,
      seed: 3,
      label: "whisper",
    }).open();
    const service: number[] = [];
    for (let x = source.next(); x; x = source.next()) {
      expect(x.serviceSeconds).toBeCloseTo(0.3 + x.tokens / 5, 10);
      service.push(x.serviceSeconds);
    }
    service.sort((p, q) => p - q);
    const median = service[Math.floor(service.length / 2)]!;
    expect(median).toBeGreaterThan(3.8);
    expect(median).toBeLessThan(4.8);
  });
});
