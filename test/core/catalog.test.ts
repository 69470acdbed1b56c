import { describe, expect, it } from "vitest";
import {
  CONFIGURABLE_PROVIDER_IDS,
  GPU_IDS,
  GPUS,
  HOURS_PER_MONTH,
  PRICES,
  PROVIDERS,
  priceOf,
  resolvePrices,
} from "../../core/catalog";

describe("catalog", () => {
  it("prices only GPUs their provider offers", () => {
    for (const price of PRICES) {
      expect(PROVIDERS[price.provider].gpus[price.gpu], `${price.provider}/${price.gpu}`).toBeDefined();
      expect(price.usdPerHour).toBeGreaterThan(0);
      expect(price.source.length).toBeGreaterThan(0);
    }
  });

  it("carries the published figures the stacks start from", () => {
    expect(priceOf(PRICES, "runpod-pod", "RTX_4090")?.usdPerHour).toBe(0.34);
    expect(priceOf(PRICES, "runpod-pod", "A100_80GB")?.usdPerHour).toBe(1.74);
    expect(priceOf(PRICES, "datacrunch", "A100_80GB")?.usdPerHour).toBe(0.75);
    expect(priceOf(PRICES, "coreweave", "A100_80GB")?.usdPerHour).toBe(1.1);
    expect(priceOf(PRICES, "tensordock", "RTX_4090")?.usdPerHour).toBe(0.35);
    expect(priceOf(PRICES, "vastai", "RTX_3090")?.usdPerHourRange).toEqual([0.1, 0.3]);
    // RunPod serverless bills per second: $0.00031/s is $1.116/h
    expect(priceOf(PRICES, "runpod-serverless", "RTX_4090")?.usdPerHour).toBe(1.116);
    expect(PROVIDERS["runpod-serverless"].coldStart.p95Seconds).toBe(2.3);
    expect(PROVIDERS.datacrunch.coldStart.p50Seconds).toBe(30);
  });

  it("an always-on RTX 4090 at $0.34/h costs $248.20 a month", () => {
    expect(Math.round(0.34 * HOURS_PER_MONTH * 100) / 100).toBe(248.2);
  });

  it("tiers: RunPod secure and DataCrunch are certified; community and Vast.ai are marketplace", () => {
    expect(PROVIDERS["runpod-serverless"].clouds.secure?.tier).toBe("certified");
    expect(PROVIDERS["runpod-serverless"].clouds.community?.tier).toBe("marketplace");
    expect(PROVIDERS.datacrunch.clouds.default?.tier).toBe("certified");
    expect(PROVIDERS.datacrunch.clouds.default?.certifications).toContain("ISO 27001");
    expect(PROVIDERS.vastai.clouds.default?.tier).toBe("marketplace");
    expect(PROVIDERS.tensordock.clouds.default?.tier).toBe("marketplace");
    expect(PROVIDERS.coreweave.clouds.default?.tier).toBe("certified");
  });

  it("every configurable provider has an adapter and its default cloud exists", () => {
    for (const id of CONFIGURABLE_PROVIDER_IDS) {
      expect(PROVIDERS[id].hasAdapter).toBe(true);
      expect(PROVIDERS[id].clouds[PROVIDERS[id].defaultCloud]).toBeDefined();
    }
  });

  it("every GPU has a VRAM size", () => {
    for (const id of GPU_IDS) expect(GPUS[id].vramGb).toBeGreaterThan(0);
  });

  it("a stack's overrides win and can add prices the catalog lacks", () => {
    const prices = resolvePrices({ vastai: { RTX_3090: 0.12, RTX_4090: 0.4 } });
    expect(priceOf(prices, "vastai", "RTX_3090")).toMatchObject({
      usdPerHour: 0.12,
      usdPerHourRange: undefined,
    });
    expect(priceOf(prices, "vastai", "RTX_4090")?.usdPerHour).toBe(0.4);
    expect(priceOf(prices, "datacrunch", "A100_80GB")?.usdPerHour).toBe(0.75);
    expect(priceOf(PRICES, "vastai", "RTX_3090")?.usdPerHour).toBe(0.2); // the catalog itself is untouched
  });
});
