import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { EventQueue, Simulation } from "../../sim/engine";
import { Random } from "../../sim/random";
import { Histogram } from "../../sim/stats";

describe("EventQueue", () => {
  it("pops events by time; events at the same time in the order they were scheduled", () => {
    const q = new EventQueue<string>();
    q.push(5, 0, "e");
    q.push(1, 0, "a");
    q.push(3, 1, "c1");
    q.push(3, 2, "c2");
    q.push(1, 3, "b");
    q.push(3, 0, "c3");
    const out: string[] = [];
    while (q.pop()) out.push(`${q.time}:${q.ref}:${q.kind}`);
    expect(out).toEqual(["1:a:0", "1:b:3", "3:c1:1", "3:c2:2", "3:c3:0", "5:e:0"]);
    expect(q.size).toBe(0);
    expect(q.peekTime()).toBe(Number.POSITIVE_INFINITY);
    expect(() => q.push(Number.NaN, 0)).toThrow(RangeError);
  });

  it("matches a stable sort of any schedule (property)", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 20 }), { maxLength: 300 }), (times) => {
        const q = new EventQueue<number>();
        times.forEach((t, i) => {
          q.push(t, 0, i);
        });
        const popped: number[] = [];
        while (q.pop()) popped.push(q.ref!);
        const expected = times.map((t, i) => ({ t, i })).sort((a, b) => a.t - b.t || a.i - b.i);
        expect(popped).toEqual(expected.map((e) => e.i));
      }),
    );
  });

  it("interleaves pushes and pops correctly", () => {
    const q = new EventQueue<number>();
    const rng = new Random(7);
    let now = 0;
    let last = -1;
    for (let i = 0; i < 10_000; i++) {
      q.push(now + rng.next() * 100, 0, i);
      if (i % 3 === 0 && q.pop()) {
        expect(q.time).toBeGreaterThanOrEqual(last);
        last = q.time;
        now = q.time;
      }
    }
  });
});

describe("Simulation", () => {
  it("advances a virtual clock, dispatches by kind and stops at `until`", () => {
    const sim = new Simulation<string>();
    const log: string[] = [];
    sim
      .on(0, (t, ref) => {
        log.push(`tick ${t} ${ref}`);
        if (t < 30) sim.after(10, 0, ref);
      })
      .on(1, (t) => log.push(`stop ${t}`));
    sim.at(0, 0, "x");
    sim.at(25, 1);
    expect(sim.run(20)).toBe(3);
    expect(sim.now).toBe(20);
    sim.run();
    expect(log).toEqual(["tick 0 x", "tick 10 x", "tick 20 x", "stop 25", "tick 30 x"]);
    expect(() => sim.at(1, 0)).toThrow(/before now/);
    sim.at(40, 9);
    expect(() => sim.run()).toThrow(/no handler for event kind 9/);
  });
});

describe("Random", () => {
  it("is deterministic for a seed; streams with different labels differ", () => {
    const draw = (r: Random) => Array.from({ length: 5 }, () => r.nextUint32());
    expect(draw(new Random(42))).toEqual(draw(new Random(42)));
    expect(draw(new Random(42))).not.toEqual(draw(new Random(43)));
    expect(draw(Random.stream(1, "arrivals"))).toEqual(draw(Random.stream(1, "arrivals")));
    expect(draw(Random.stream(1, "arrivals"))).not.toEqual(draw(Random.stream(1, "cold")));
  });

  it("draws with the right means", () => {
    const r = new Random(1);
    const n = 100_000;
    let u = 0;
    let e = 0;
    let z = 0;
    let z2 = 0;
    let lo = 1;
    let hi = 0;
    for (let i = 0; i < n; i++) {
      const x = r.next();
      lo = Math.min(lo, x);
      hi = Math.max(hi, x);
      u += x;
      e += r.exponential(2);
      const g = r.normal();
      z += g;
      z2 += g * g;
    }
    expect(lo).toBeGreaterThanOrEqual(0);
    expect(hi).toBeLessThan(1);
    expect(u / n).toBeCloseTo(0.5, 2);
    expect(e / n).toBeCloseTo(0.5, 2);
    expect(z / n).toBeCloseTo(0, 1);
    expect(z2 / n).toBeCloseTo(1, 1);
    const l = Array.from({ length: 20_001 }, () => r.lognormal(Math.log(30), 0.5)).sort((a, b) => a - b);
    expect(l[10_000]!).toBeGreaterThan(28.5);
    expect(l[10_000]!).toBeLessThan(31.5);
  });
});

describe("Histogram", () => {
  it("gives quantiles within 1% in constant memory", () => {
    const h = new Histogram();
    for (let i = 1; i <= 100_000; i++) h.add(i / 1000); // 0.001 … 100 s uniformly
    expect(h.count).toBe(100_000);
    expect(Math.abs(h.quantile(0.5) / 50 - 1)).toBeLessThan(0.01);
    expect(Math.abs(h.quantile(0.95) / 95 - 1)).toBeLessThan(0.01);
    expect(Math.abs(h.quantile(0.99) / 99 - 1)).toBeLessThan(0.01);
    expect(h.max).toBe(100);
    expect(h.mean).toBeCloseTo(50.0005, 3);
  });

  it("counts zero waits as zero and handles the empty and bulk cases", () => {
    const h = new Histogram();
    expect(h.quantile(0.5)).toBe(0);
    h.addMany(0, 96);
    h.addMany(30, 4);
    expect(h.quantile(0.5)).toBe(0);
    expect(h.quantile(0.96)).toBe(0);
    expect(Math.abs(h.quantile(0.97) / 30 - 1)).toBeLessThan(0.01);
    expect(h.quantile(1)).toBe(30);
  });
});
