/** Issue 23: the anomaly rules, each at its edge (core/anomalies.ts). */
import { describe, expect, it } from "vitest";
import { type AnomalyInput, detectAnomalies } from "../../core/anomalies";

const NOW = Date.UTC(2026, 11, 10, 12); // the 10th, noon
const base: AnomalyInput = {
  nowMs: NOW,
  workers: [],
  catalogBootSeconds: (p) => (p === "vastai" ? 90 : undefined),
  providerErrors: [],
  spend: { todayUsd: 0, monthBeforeTodayUsd: 0 },
  requests: [],
};
const kinds = (input: Partial<AnomalyInput>) => detectAnomalies({ ...base, ...input }).map((a) => a.kind);
const loading = (ageSeconds: number, provider = "vastai") => ({
  id: "w1",
  model: "m",
  provider,
  state: "booting",
  createdAtMs: NOW - ageSeconds * 1000,
  readyAtMs: null,
});
const booted = (seconds: number, i: number) => ({
  id: `r${i}`,
  model: "m",
  provider: "vastai",
  state: "ready",
  createdAtMs: NOW - 3_600_000,
  readyAtMs: NOW - 3_600_000 + seconds * 1000,
});

describe("anomaly rules", () => {
  it("slow boot: against the catalog's p50 (3 × 90 s), then against the provider's own median once 3 are seen", () => {
    expect(kinds({ workers: [loading(269)] })).toEqual([]);
    expect(kinds({ workers: [loading(271)] })).toEqual(["slow-boot"]);
    const history = [booted(20, 1), booted(30, 2), booted(40, 3)];
    expect(kinds({ workers: [...history, loading(181)] })).toEqual(["slow-boot"]); // max(180, 3 × 30)
    expect(kinds({ workers: [...history, loading(179)] })).toEqual([]);
    expect(detectAnomalies({ ...base, workers: [loading(300)] })[0]?.suggestion).toContain("drain_worker w1");
  });

  it("a provider erroring: 3 errors within 10 minutes", () => {
    const at = (minutesAgo: number) => ({
      atMs: NOW - minutesAgo * 60_000,
      provider: "vastai",
      kind: "capacity",
    });
    expect(kinds({ providerErrors: [at(1), at(2)] })).toEqual([]);
    expect(kinds({ providerErrors: [at(1), at(2), at(11)] })).toEqual([]);
    expect(kinds({ providerErrors: [at(1), at(2), at(9)] })).toEqual(["provider-erroring"]);
  });

  it("spend rate: today's hourly rate above 3 × the month's before today", () => {
    // 9 days before today = 216 h; $216 → $1/h average; 12 h today
    expect(kinds({ spend: { todayUsd: 35, monthBeforeTodayUsd: 216 } })).toEqual([]); // 2.9/h
    expect(kinds({ spend: { todayUsd: 37, monthBeforeTodayUsd: 216 } })).toEqual(["spend-rate"]); // 3.08/h
    expect(
      kinds({ nowMs: Date.UTC(2026, 11, 1, 12), spend: { todayUsd: 50, monthBeforeTodayUsd: 0 } }),
    ).toEqual([]);
  });

  it("error spike: ≥ 10 requests in 5 minutes, ≥ 20 % 5xx, ≥ 3 × the hour before", () => {
    const req = (minutesAgo: number, status: number) => ({ atMs: NOW - minutesAgo * 60_000, status });
    const recent = (failed: number, total = 10) =>
      Array.from({ length: total }, (_, i) => req(1, i < failed ? 503 : 200));
    expect(kinds({ requests: recent(2) })).toEqual(["error-spike"]);
    expect(kinds({ requests: recent(1) })).toEqual([]);
    expect(kinds({ requests: recent(2, 9) })).toEqual([]);
    const hourBefore = Array.from({ length: 10 }, (_, i) => req(30, i < 1 ? 500 : 200)); // 10 %
    expect(kinds({ requests: [...recent(2), ...hourBefore] })).toEqual([]); // 20 % < 3 × 10 %
    expect(kinds({ requests: [...recent(4), ...hourBefore] })).toEqual(["error-spike"]);
  });
});
