/** The Redis-loss guard: a fencing token going back means a wiped Redis; hold until a restore or the hold time. */
import { describe, expect, it } from "vitest";
import { MarkedLossHold, REDIS_LOSS_HOLD_MS, RedisLossGuard } from "../../controller/redis-loss";

describe("RedisLossGuard", () => {
  it("never holds while tokens only grow (elections, failovers, standby ticks)", () => {
    const guard = new RedisLossGuard();
    for (const [fence, t] of [
      [1, 0],
      [1, 1],
      [0, 2], // lost the lock for a moment: not the leader, nothing to decide
      [3, 3], // another replica led with 2 meanwhile
      [3, 4],
    ] as const)
      expect(guard.observe(fence, t)).toEqual({ hold: false });
  });

  it("holds when the token goes back, through re-elections, until a restore lifts the fence above it", () => {
    const guard = new RedisLossGuard();
    guard.observe(7, 0);
    expect(guard.observe(1, 1_000)).toEqual({ hold: true, event: "lost" });
    expect(guard.observe(2, 2_000)).toEqual({ hold: true }); // lost and regained the new lock: still held
    expect(guard.observe(0, 3_000)).toEqual({ hold: true });
    expect(guard.holding).toBe(true);
    expect(guard.observe(1_000_008, 4_000)).toEqual({ hold: false, event: "restored" });
    expect(guard.observe(1_000_008, 5_000)).toEqual({ hold: false });
    // and a second loss after the restore is noticed again
    expect(guard.observe(1, 6_000)).toEqual({ hold: true, event: "lost" });
  });

  it("lets go after the hold time when no restore comes, and starts comparing afresh", () => {
    const guard = new RedisLossGuard();
    guard.observe(5, 0);
    expect(guard.observe(1, 10)).toEqual({ hold: true, event: "lost" });
    expect(guard.observe(1, 10 + REDIS_LOSS_HOLD_MS - 1)).toEqual({ hold: true });
    expect(guard.observe(1, 10 + REDIS_LOSS_HOLD_MS)).toEqual({ hold: false, event: "released" });
    expect(guard.observe(2, 20 + REDIS_LOSS_HOLD_MS)).toEqual({ hold: false });
  });
});

describe("MarkedLossHold", () => {
  it("holds while the stack's state is marked lost, resumes when the mark goes, lets go after the hold time", () => {
    const hold = new MarkedLossHold();
    expect(hold.observe(undefined, 0)).toEqual({ hold: false });
    expect(hold.observe(100, 200)).toEqual({ hold: true, event: "lost" });
    expect(hold.observe(100, 300)).toEqual({ hold: true });
    expect(hold.observe(undefined, 400)).toEqual({ hold: false, event: "restored" });
    expect(hold.observe(undefined, 500)).toEqual({ hold: false });
    expect(hold.observe(1_000, 1_000)).toEqual({ hold: true, event: "lost" });
    expect(hold.observe(1_000, 1_000 + REDIS_LOSS_HOLD_MS - 1)).toEqual({ hold: true });
    expect(hold.observe(1_000, 1_000 + REDIS_LOSS_HOLD_MS)).toEqual({ hold: false, event: "released" });
  });
});
