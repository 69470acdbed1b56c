import { describe, expect, it } from "vitest";
import {
  decideScale,
  inLastStretchOfPaidUnit,
  lastStretchOfPaidUnitAtMs,
  type ModelScalingInput,
  paidUnitOf,
  type WorkerView,
} from "../../controller/policy";
import { PROVIDERS } from "../../core/catalog";
import { providerProfile } from "../../sim/profiles";
import { simulateRun } from "../../sim/simulate";
import { arrivalsWorkload } from "../../sim/workloads";

const MODEL = { name: "llama", minWorkers: 0, maxWorkers: 4, targetConcurrency: 8 };
const NOW = 1_000_000;

const worker = (over: Partial<WorkerView> & { id: string }): WorkerView => ({
  provider: "runpod-pod",
  phase: "ready",
  inFlight: 0,
  createdAtMs: 0,
  readyAtMs: 100,
  lastActiveAtMs: NOW,
  ...over,
});

const input = (over: Partial<ModelScalingInput> = {}): ModelScalingInput => ({
  nowMs: NOW,
  model: MODEL,
  waiting: 0,
  workers: [],
  keepAliveSeconds: 60,
  budgetExhausted: false,
  ...over,
});

describe("decideScale", () => {
  it("scales 0 → 1 on the first waiting request", () => {
    const d = decideScale(input({ waiting: 1 }));
    expect(d).toMatchObject({ desired: 1, provision: 1, drain: [] });
    expect(d.reason).toContain("llama: demand 1 (1 waiting + 0 in flight)");
    expect(d.reason).toContain("provision 1");
  });

  it("stays at zero with no demand and minWorkers 0", () => {
    expect(decideScale(input())).toMatchObject({ desired: 0, provision: 0, drain: [] });
  });

  it("desired = ceil(demand / targetConcurrency), within [minWorkers, maxWorkers]", () => {
    // 20 waiting + 5 in flight = 25 → ceil(25/8) = 4
    const busy = worker({ id: "a", inFlight: 5 });
    expect(decideScale(input({ waiting: 20, workers: [busy] }))).toMatchObject({ desired: 4, provision: 3 });
    // 100 waiting would want 13: capped at maxWorkers 4
    const capped = decideScale(input({ waiting: 100 }));
    expect(capped).toMatchObject({ desired: 4, provision: 4 });
    expect(capped.reason).toContain("capped by maxWorkers");
    // minWorkers is a floor even without demand
    expect(decideScale(input({ model: { ...MODEL, minWorkers: 2 } }))).toMatchObject({
      desired: 2,
      provision: 2,
    });
    // maxWorkers 0: nothing is ever started
    expect(decideScale(input({ waiting: 3, model: { ...MODEL, maxWorkers: 0 } }))).toMatchObject({
      desired: 0,
      provision: 0,
    });
  });

  it("alwaysOn keeps at least one worker", () => {
    expect(decideScale(input({ model: { ...MODEL, alwaysOn: true } }))).toMatchObject({
      desired: 1,
      provision: 1,
    });
    const idle = worker({ id: "a", lastActiveAtMs: 0 });
    expect(decideScale(input({ model: { ...MODEL, alwaysOn: true }, workers: [idle] })).drain).toEqual([]);
  });

  it("counts loading workers as capacity and never drains them", () => {
    const loading = (["requested", "provisioning", "booting"] as const).map((phase, i) =>
      worker({ id: `l${i}`, phase, readyAtMs: undefined, createdAtMs: 0, lastActiveAtMs: 0 }),
    );
    // 1 waiting, 3 loading: nothing more to start
    expect(decideScale(input({ waiting: 1, workers: loading }))).toMatchObject({ provision: 0, drain: [] });
    // nothing waiting, loading for ages: still not idle, not drained
    expect(decideScale(input({ workers: loading, keepAliveSeconds: 0 })).drain).toEqual([]);
  });

  it("never scales down while anything waits", () => {
    const idle = [worker({ id: "a", lastActiveAtMs: 0 }), worker({ id: "b", lastActiveAtMs: 0 })];
    const d = decideScale(input({ waiting: 1, workers: idle, keepAliveSeconds: 0 }));
    expect(d.drain).toEqual([]);
    expect(d.reason).toContain("no scale-down");
  });

  it("drains a ready worker idle at least keepAliveSeconds, not one idle less", () => {
    const justIdle = worker({ id: "a", lastActiveAtMs: NOW - 59_000 });
    expect(decideScale(input({ workers: [justIdle] })).drain).toEqual([]);
    const longIdle = worker({ id: "a", lastActiveAtMs: NOW - 60_000 });
    const d = decideScale(input({ workers: [longIdle] }));
    expect(d.drain).toEqual([{ workerId: "a", reason: "idle 60s ≥ keep-alive 60s" }]);
    expect(d.desired).toBe(0);
    // a worker with requests in flight is never idle
    const busy = worker({ id: "b", inFlight: 1, lastActiveAtMs: 0 });
    expect(decideScale(input({ workers: [busy] })).drain).toEqual([]);
  });

  it("keeps minWorkers and what the in-flight load needs", () => {
    const idle = [worker({ id: "a", lastActiveAtMs: 0 }), worker({ id: "b", lastActiveAtMs: 0 })];
    const d = decideScale(input({ workers: idle, model: { ...MODEL, minWorkers: 1 } }));
    expect(d.drain).toHaveLength(1);
    expect(d.reason).toContain("1 kept");
    // 10 in flight on one worker (target 8) needs two: the idle one stays
    const overloaded = [worker({ id: "busy", inFlight: 10 }), worker({ id: "idle", lastActiveAtMs: 0 })];
    expect(decideScale(input({ workers: overloaded })).drain).toEqual([]);
  });

  it("drains the most expensive first, then the longest idle, then by id", () => {
    const workers = [
      worker({ id: "cheap-old", usdPerHour: 0.3, lastActiveAtMs: 0 }),
      worker({ id: "dear-new", usdPerHour: 1.7, lastActiveAtMs: NOW - 120_000 }),
      worker({ id: "dear-old", usdPerHour: 1.7, lastActiveAtMs: NOW - 500_000 }),
      worker({ id: "busy", inFlight: 1 }),
    ];
    const d = decideScale(input({ workers }));
    // in flight 1 → desired 1; capacity 4 → up to 3 drained, all three idle ones, in order
    expect(d.drain.map((o) => o.workerId)).toEqual(["dear-old", "dear-new", "cheap-old"]);
    const one = decideScale(input({ workers, model: { ...MODEL, minWorkers: 3 } }));
    expect(one.drain.map((o) => o.workerId)).toEqual(["dear-old"]);
  });

  it("does not count draining workers as capacity nor their in-flight requests as demand", () => {
    const draining = worker({ id: "d", phase: "draining", inFlight: 3 });
    expect(decideScale(input({ workers: [draining] }))).toMatchObject({ desired: 0, provision: 0 });
    expect(decideScale(input({ waiting: 1, workers: [draining] }))).toMatchObject({ provision: 1 });
  });

  it("an infinite or NaN keep-alive never drains", () => {
    const idle = worker({ id: "a", lastActiveAtMs: 0 });
    expect(decideScale(input({ workers: [idle], keepAliveSeconds: Number.POSITIVE_INFINITY })).drain).toEqual(
      [],
    );
    expect(decideScale(input({ workers: [idle], keepAliveSeconds: Number.NaN })).drain).toEqual([]);
    expect(decideScale(input({ workers: [idle], keepAliveSeconds: 0 })).drain).toHaveLength(1);
  });

  it("stops provisioning when the budget is exhausted, and says so", () => {
    const d = decideScale(input({ waiting: 5, budgetExhausted: true }));
    expect(d).toMatchObject({ desired: 1, provision: 0, drain: [] });
    expect(d.reason).toContain("budget exhausted: 1 more worker(s) wanted, none provisioned");
    // scaling down still happens under an exhausted budget
    const idle = worker({ id: "a", lastActiveAtMs: 0 });
    expect(decideScale(input({ workers: [idle], budgetExhausted: true })).drain).toHaveLength(1);
  });

  it("is pure: the same input gives the same decision and the input is not changed", () => {
    const workers = [worker({ id: "b", lastActiveAtMs: 0 }), worker({ id: "a", lastActiveAtMs: 0 })];
    const snapshot = JSON.stringify(workers);
    const first = decideScale(input({ workers }));
    expect(decideScale(input({ workers }))).toEqual(first);
    expect(JSON.stringify(workers)).toBe(snapshot);
    expect(first.drain.map((o) => o.workerId)).toEqual(["a", "b"]);
  });
});

describe("billing units: an idle worker keeps the rest of the unit it has paid for", () => {
  const HOUR = 3_600_000;
  const hourly = { granularitySeconds: 3_600, billsBoot: true };

  it("paidUnitOf: units from creation when the boot is billed, from ready otherwise, none per second", () => {
    expect(paidUnitOf(hourly, 1_000, 5_000)).toEqual({ seconds: 3_600, sinceMs: 1_000 });
    expect(paidUnitOf({ ...hourly, billsBoot: false }, 1_000, 5_000)).toEqual({
      seconds: 3_600,
      sinceMs: 5_000,
    });
    expect(paidUnitOf({ ...hourly, billsBoot: false }, 1_000, undefined)).toBeUndefined();
    expect(paidUnitOf(PROVIDERS["runpod-pod"].billing, 1_000, 5_000)).toBeUndefined();
  });

  it("the last stretch is the unit's last minute (a quarter of a short unit), in every unit", () => {
    const w = { paidUnit: { seconds: 3_600, sinceMs: 0 } };
    expect(inLastStretchOfPaidUnit(w, HOUR - 61_000)).toBe(false);
    expect(inLastStretchOfPaidUnit(w, HOUR - 60_000)).toBe(true);
    expect(inLastStretchOfPaidUnit(w, 2 * HOUR - 30_000)).toBe(true);
    expect(inLastStretchOfPaidUnit(w, 2 * HOUR + 1)).toBe(false);
    expect(lastStretchOfPaidUnitAtMs(w, 2 * HOUR + 1)).toBe(3 * HOUR - 60_000);
    expect(inLastStretchOfPaidUnit({ paidUnit: { seconds: 60, sinceMs: 0 } }, 44_000)).toBe(false);
    expect(inLastStretchOfPaidUnit({ paidUnit: { seconds: 60, sinceMs: 0 } }, 45_000)).toBe(true);
    expect(inLastStretchOfPaidUnit({}, 123)).toBe(true);
  });

  it("decideScale drains an idle worker past its keep-alive only in the last stretch of its paid unit", () => {
    const w = worker({ id: "w1", createdAtMs: 0, lastActiveAtMs: 0, paidUnit: paidUnitOf(hourly, 0, 100) });
    const early = decideScale(input({ nowMs: 20 * 60_000, workers: [w] }));
    expect(early.drain).toEqual([]);
    expect(early.reason).toMatch(
      /1 idle past keep-alive kept to the end of the billing unit it has paid for/,
    );
    const late = decideScale(input({ nowMs: HOUR - 30_000, workers: [w] }));
    expect(late.drain.map((d) => d.workerId)).toEqual(["w1"]);
  });

  it("in the simulator, requests 20 minutes apart on an hourly-billed provider find the paid-for worker warm", () => {
    const arrivals = [0, 1_200, 2_400].map((time) => ({ time, tokens: 0, serviceSeconds: 5 }));
    const run = (provider: "coreweave" | "runpod-pod") =>
      simulateRun({
        model: { name: "m", minWorkers: 0, maxWorkers: 1, targetConcurrency: 1, queueTimeoutSeconds: 600 },
        profile: providerProfile(provider, provider === "coreweave" ? "A100_80GB" : "RTX_4090", {
          usdPerHour: 2,
        }),
        policy: "fixed-5s",
        workload: arrivalsWorkload(arrivals, 10_000),
        seed: 1,
      });
    const hourly = run("coreweave");
    expect(hourly.coldStarts).toBe(1);
    expect(hourly.bill.billedSeconds).toBe(3_600); // one hour, the one it paid for anyway
    expect(run("runpod-pod").coldStarts).toBe(3); // per second: each request after 5 s idle is a restart
  });
});
