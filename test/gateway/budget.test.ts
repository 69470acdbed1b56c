/** KeyBudgetGuard as a plain object: what concurrent requests of a budgeted key may hold, with time passed in. */
import { describe, expect, it } from "vitest";
import { type BudgetHold, KeyBudgetGuard } from "../../gateway/budget";

describe("KeyBudgetGuard", () => {
  it("before any cost is known, one request at a time; then as many as the expected costs fit", () => {
    const g = new KeyBudgetGuard();
    const first = g.hold("k", "m", 0.01, 0, 0)!;
    expect(first.usd).toBeCloseTo(0.01); // may cost everything that is left
    expect(g.hold("k", "m", 0.01, 0, 0)).toBeUndefined();
    g.release(first, 0.002, true, 10);
    // 0.008 left; each expected at 0.002: four fit, the fifth does not
    const held: BudgetHold[] = [];
    for (let i = 0; i < 4; i++) held.push(g.hold("k", "m", 0.01, 0, 20)!);
    expect(held.every(Boolean)).toBe(true);
    expect(g.hold("k", "m", 0.01, 0, 20)).toBeUndefined();
    expect(g.heldBy("k").count).toBe(4);
  });

  it("a burst of 30 on a $0.01 key books at most the budget plus one request's cost", () => {
    const g = new KeyBudgetGuard();
    const cost = 0.0067; // what each of the attack's requests cost
    // learn the model's cost from another key first
    g.release(g.hold("other", "m", 100, 0, 0)!, cost, true, 0);
    let booked = 0;
    let admitted = 0;
    const holds = Array.from({ length: 30 }, () => g.hold("k", "m", 0.01, booked, 1));
    for (const h of holds) {
      if (!h) continue;
      admitted += 1;
      booked += cost;
      g.release(h, cost, true, 2);
    }
    expect(admitted).toBe(1); // 0.01 holds one request of 0.0067, not two
    expect(booked).toBeLessThanOrEqual(0.01 + cost);
  });

  it("costs booked here count at once, until the Redis view can hold them", () => {
    const g = new KeyBudgetGuard(6_000);
    g.release(g.hold("k", "m", 1, 0, 0)!, 0.9, true, 0);
    // Redis still says 0 spent (not flushed/read yet): 0.1 left, one request of expected 0.9 → capped at what is left
    const h = g.hold("k", "m", 1, 0, 1_000)!;
    expect(h.usd).toBeCloseTo(0.1);
    g.release(h, 0.1, true, 1_100);
    expect(g.hold("k", "m", 1, 0, 2_000)).toBeUndefined(); // spent as far as this replica knows
    expect(g.hold("k", "m", 1, 0, 7_200)).toBeDefined(); // after the window the Redis view is trusted
  });

  it("refused and failed requests give their hold back without teaching a cost", () => {
    const g = new KeyBudgetGuard();
    const h = g.hold("k", "m", 1, 0, 0)!;
    g.release(h, 0, false, 0);
    expect(g.heldBy("k")).toEqual({ count: 0, usd: 0 });
    expect(g.hold("k", "m", 1, 0, 0)!.usd).toBe(1); // still unknown: everything that is left
  });

  it("a key at or over its budget holds nothing", () => {
    const g = new KeyBudgetGuard();
    expect(g.hold("k", "m", 1, 1, 0)).toBeUndefined();
    expect(g.hold("k", "m", 1, 2, 0)).toBeUndefined();
  });
});
