import { describe, expect, it } from "vitest";
import {
  DEFAULT_RETRY_POLICY,
  errorFields,
  nextRetryDelayMs,
  parseRateLimitReset,
  redact,
} from "../../core/provider-http";

describe("parseRateLimitReset (RFC 9331 RateLimit, as RunPod REST v2 sends it)", () => {
  it("waits for the longest exhausted window", () => {
    expect(parseRateLimitReset('"minute";r=0;t=12, "hour";r=2800;t=1812')).toBe(12_000);
    expect(parseRateLimitReset('"minute";r=0;t=12, "hour";r=0;t=1812')).toBe(1_812_000);
  });
  it("answers undefined when nothing is exhausted or the header is absent or unreadable", () => {
    expect(parseRateLimitReset('"minute";r=5;t=12')).toBeUndefined();
    expect(parseRateLimitReset(undefined)).toBeUndefined();
    expect(parseRateLimitReset(null)).toBeUndefined();
    expect(parseRateLimitReset("garbage")).toBeUndefined();
  });
});

describe("nextRetryDelayMs", () => {
  const policy = { ...DEFAULT_RETRY_POLICY, maxAttempts: 3, maxTotalMs: 10_000 };
  it("never waits less than the provider asked", () => {
    expect(
      nextRetryDelayMs({ failedAttempt: 1, elapsedMs: 0, retryAfterMs: 4_000, policy, random: () => 0 }),
    ).toBe(4_000);
  });
  it("gives up when the attempts are used or the wait would pass the total budget", () => {
    expect(nextRetryDelayMs({ failedAttempt: 3, elapsedMs: 0, policy, random: () => 0 })).toBeUndefined();
    expect(
      nextRetryDelayMs({ failedAttempt: 1, elapsedMs: 9_000, retryAfterMs: 2_000, policy, random: () => 0 }),
    ).toBeUndefined();
  });
});

describe("errorFields", () => {
  it("reads an RFC 9457 problem document with its validation errors (RunPod REST v2 422)", () => {
    expect(
      errorFields({
        title: "Unprocessable Entity",
        status: 422,
        detail: "validation failed",
        errors: ["/publicIp: unknown field", "/gpu/count: must be >= 1"],
      }),
    ).toEqual({ message: "validation failed (/publicIp: unknown field; /gpu/count: must be >= 1)" });
  });
});

describe("redact", () => {
  it("scrubs credential-named parameters with a prefix, as env maps carry them", () => {
    const text = redact('{"env":{"HF_TOKEN":"hf_abcdefgh","MY_API_KEY":"k-123456","MODEL_NAME":"org/m"}}');
    expect(text).not.toContain("hf_abcdefgh");
    expect(text).not.toContain("k-123456");
    expect(text).toContain('"MODEL_NAME":"org/m"');
  });
});
