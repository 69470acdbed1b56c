import { describe, expect, it } from "vitest";
import { type BillingModel, PROVIDERS } from "../../core/catalog";
import { alwaysOnUsd, billedSeconds, billLife, cents, roundUpToGranularity } from "../../sim/billing";
import { providerProfile } from "../../sim/profiles";

const PER_SECOND = PROVIDERS["runpod-pod"].billing;

describe("billing arithmetic", () => {
  it("an always-on RTX 4090 at $0.34/h with per-second billing costs exactly $248.20 a month", () => {
    const profile = providerProfile("runpod-pod", "RTX_4090");
    expect(profile.usdPerHour).toBe(0.34);
    expect(cents(alwaysOnUsd(profile))).toBe(248.2);
    expect(billedSeconds({ bootSeconds: 0, upSeconds: 730 * 3600, busySeconds: 0 }, PER_SECOND)).toBe(
      2_628_000,
    );
  });

  it("rounds up to the billing granularity, tolerating floating-point dust", () => {
    expect(roundUpToGranularity(61, 60)).toBe(120);
    expect(roundUpToGranularity(120.0000000001, 60)).toBe(120);
    expect(roundUpToGranularity(0.2, 1)).toBe(1);
    expect(roundUpToGranularity(0, 3600)).toBe(0);
    // CoreWeave bills by the hour: 61 minutes up bill two hours
    const hourly = PROVIDERS.coreweave.billing;
    expect(billedSeconds({ bootSeconds: 45, upSeconds: 61 * 60 - 45, busySeconds: 0 }, hourly)).toBe(7200);
  });

  it("bills the boot at the running rate where the provider does", () => {
    const life = { bootSeconds: 90, upSeconds: 300, busySeconds: 100 };
    const billed = billLife(life, { usdPerHour: 3.6, billing: PER_SECOND });
    expect(billed).toMatchObject({
      billedSeconds: 390,
      bootSeconds: 90,
      busySeconds: 100,
      idleSeconds: 200,
      roundingSeconds: 0,
    });
    expect(billed.usd).toBeCloseTo(0.39, 10);
    const noBoot: BillingModel = { ...PER_SECOND, billsBoot: false };
    expect(billLife(life, { usdPerHour: 3.6, billing: noBoot }).billedSeconds).toBe(300);
  });

  it("bills only busy time where idle is not billed", () => {
    const busyOnly: BillingModel = { ...PER_SECOND, billsBoot: false, billsIdle: false };
    expect(billedSeconds({ bootSeconds: 90, upSeconds: 300, busySeconds: 100.4 }, busyOnly)).toBe(101);
  });

  it("applies the per-start minimum, the monthly rental and the setup fee", () => {
    const tenMinutes: BillingModel = { ...PER_SECOND, minimumSeconds: 600 };
    const short = billLife(
      { bootSeconds: 30, upSeconds: 60, busySeconds: 10 },
      { usdPerHour: 1, billing: tenMinutes },
    );
    expect(short.billedSeconds).toBe(600);
    expect(short.roundingSeconds).toBe(510);

    // Hetzner GEX44: monthly rental, 30-day minimum, one-time setup fee (€41.50)
    const hetzner = providerProfile("hetzner-dedicated", "RTX_4000_SFF_ADA");
    expect(hetzner.setupFeeUsd).toBeCloseTo(41.5 * 1.08, 2);
    const oneDay = billLife({ bootSeconds: 600, upSeconds: 86_400, busySeconds: 3600 }, hetzner);
    expect(oneDay.billedSeconds).toBe(30 * 24 * 3600);
    expect(oneDay.setupUsd).toBeCloseTo(44.82, 2);
    // the whole month costs the monthly price (€184) plus the setup fee
    expect(cents(alwaysOnUsd(hetzner))).toBeCloseTo(184 * 1.08 + 44.82, 1);
  });

  it("bills storage over the whole life where storage bills", () => {
    const vast = providerProfile("vastai", "RTX_3090", { storageUsdPerHour: 0.01 });
    const life = billLife({ bootSeconds: 1800, upSeconds: 1800, busySeconds: 0 }, vast);
    expect(life.storageUsd).toBeCloseTo(0.01, 10);
    expect(life.usd).toBeCloseTo(0.2 + 0.01, 10);
    // providers without storage billing ignore a storage price
    expect(providerProfile("runpod-pod", "RTX_4090", { storageUsdPerHour: 1 }).storageUsdPerHour).toBe(0);
  });
});

describe("provider profiles", () => {
  it("come from the catalog: price, billing, cold start; a price override wins", () => {
    const dc = providerProfile("datacrunch", "A100_80GB");
    expect(dc).toMatchObject({ usdPerHour: 0.75, billing: PROVIDERS.datacrunch.billing });
    expect(dc.coldStart).toEqual({ kind: "lognormal", p50Seconds: 30, p95Seconds: 60 });
    expect(providerProfile("datacrunch", "A100_80GB", { usdPerHour: 0.5, gpuCount: 2 }).usdPerHour).toBe(1);
    expect(
      providerProfile("runpod-pod", "RTX_4090", {
        prices: [{ provider: "runpod-pod", gpu: "RTX_4090", usdPerHour: 0.29, source: "stack" }],
      }).usdPerHour,
    ).toBe(0.29);
    expect(() => providerProfile("datacrunch", "RTX_3090")).toThrow(/no price for RTX_3090 on datacrunch/);
  });

  it("RunPod serverless with FlashBoot starts in seconds, without it in minutes; Hetzner in 3–15 min", () => {
    expect(providerProfile("runpod-serverless", "RTX_4090").coldStart).toEqual({
      kind: "lognormal",
      p50Seconds: 1,
      p95Seconds: 2.3,
    });
    const slow = providerProfile("runpod-serverless", "RTX_4090", { flashboot: false }).coldStart;
    expect(slow.kind === "lognormal" && slow.p50Seconds).toBe(80);
    expect(providerProfile("hetzner-dedicated", "RTX_4000_SFF_ADA").coldStart).toEqual({
      kind: "uniform",
      minSeconds: 180,
      maxSeconds: 900,
    });
  });
});
