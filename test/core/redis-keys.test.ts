import { describe, expect, it } from "vitest";
import { canTransition, hashSlotTag, redisKeys, WORKER_STATES } from "../../core/redis-keys";

describe("redis keys", () => {
  const keys = redisKeys("aiorch:");

  it("puts every key under the prefix", () => {
    expect(keys.waiting("llama")).toBe("aiorch:queue:{llama}:waiting");
    expect(redisKeys("stack2:").worker("w1")).toBe("stack2:worker:w1");
  });

  it("keys a script touches together share a hash slot", () => {
    expect(hashSlotTag(keys.waiting("m/1"))).toBe(hashSlotTag(keys.inflight("m/1")));
    expect(hashSlotTag(keys.jobs("m"))).toBe(hashSlotTag(keys.jobResult("m", "j1")));
    expect(hashSlotTag(keys.rateBucket("k1", "rpm"))).toBe(hashSlotTag(keys.rateBucket("k1", "tpm")));
    expect(hashSlotTag(keys.waiting("a"))).not.toBe(hashSlotTag(keys.waiting("b")));
  });

  it("a model name with braces cannot break out of its hash tag", () => {
    expect(hashSlotTag(keys.waiting("x}y{z"))).toBe("x_y_z");
  });

  it("refuses a prefix Redis tooling would choke on", () => {
    expect(() => redisKeys("bad prefix")).toThrow(/may only contain/);
  });

  it("worker states move only forward, and terminated is final", () => {
    expect(canTransition("requested", "provisioning")).toBe(true);
    expect(canTransition("booting", "ready")).toBe(true);
    expect(canTransition("ready", "booting")).toBe(false);
    expect(canTransition("failed", "terminated")).toBe(true);
    for (const to of WORKER_STATES) expect(canTransition("terminated", to)).toBe(false);
  });
});
