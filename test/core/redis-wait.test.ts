/** Waiting for Redis at start-up: backoff, the log line, credentials kept out of it, and stopping. */
import { describe, expect, it } from "vitest";
import {
  pingRedisOnce,
  redisRetryDelayMs,
  redisUrlForLogs,
  StartAborted,
  waitForRedis,
} from "../../core/redis-wait";
import { freePort } from "../private-redis";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

/** A sleep that only records how long it was asked to sleep (virtual time). */
function fakeClock() {
  let at = 0;
  const slept: number[] = [];
  return {
    slept,
    now: () => at,
    sleep: async (ms: number) => {
      slept.push(ms);
      at += ms;
    },
  };
}

/** A ping that fails `failures` times with `error`, then answers. */
function flakyPing(failures: number, error = "connect ECONNREFUSED 127.0.0.1:6390") {
  let calls = 0;
  return {
    get calls() {
      return calls;
    },
    ping: async () => {
      calls += 1;
      if (calls <= failures) throw new Error(error);
      return "PONG";
    },
  };
}

describe("redisRetryDelayMs", () => {
  it("doubles from 0.5 s and stays at 5 s", () => {
    expect([1, 2, 3, 4, 5, 6, 100, 10_000].map((n) => redisRetryDelayMs(n))).toEqual([
      500, 1000, 2000, 4000, 5000, 5000, 5000, 5000,
    ]);
    expect(redisRetryDelayMs(3, 100, 250)).toBe(250);
  });
});

describe("redisUrlForLogs", () => {
  it("keeps scheme, host, port and database; drops user, password and query", () => {
    expect(redisUrlForLogs("redis://127.0.0.1:6379")).toBe("redis://127.0.0.1:6379");
    expect(redisUrlForLogs("redis://:s3cret@redis.aiorch.svc:6379/2")).toBe(
      "redis://redis.aiorch.svc:6379/2",
    );
    expect(redisUrlForLogs("rediss://default:p%40ss@redis:6380?password=other")).toBe("rediss://redis:6380");
    expect(redisUrlForLogs("not a url:pw@host")).not.toContain("pw");
  });
});

describe("waitForRedis", () => {
  it("answers at once without a line when Redis answers the first PING", async () => {
    const clock = fakeClock();
    const lines: string[] = [];
    const ping = flakyPing(0);
    const ok = await waitForRedis({
      role: "gateway",
      url: REDIS_URL,
      ping: ping.ping,
      log: (l) => lines.push(l),
      ...clock,
    });
    expect(ok).toBe(true);
    expect(ping.calls).toBe(1);
    expect(lines).toEqual([]);
    expect(clock.slept).toEqual([]);
  });

  it("logs one line per failed attempt with capped backoff, then how long it took", async () => {
    const clock = fakeClock();
    const lines: string[] = [];
    const reasons: string[] = [];
    const ping = flakyPing(7);
    const ok = await waitForRedis({
      role: "controller",
      url: "redis://:hunter2@redis.ns.svc:6379",
      ping: ping.ping,
      log: (l) => lines.push(l),
      onFailure: (r) => reasons.push(r),
      ...clock,
    });
    expect(ok).toBe(true);
    expect(ping.calls).toBe(8);
    expect(clock.slept).toEqual([500, 1000, 2000, 4000, 5000, 5000, 5000]);
    expect(lines).toHaveLength(8);
    expect(lines[2]).toBe(
      "controller: waiting for Redis at redis://redis.ns.svc:6379 (attempt 3, last error: connect ECONNREFUSED 127.0.0.1:6390); next attempt in 2 s, /readyz answers 503 until Redis answers",
    );
    expect(lines[0]).toMatch(/attempt 1,.*next attempt in 0\.5 s/);
    expect(lines[7]).toBe(
      "controller: Redis at redis://redis.ns.svc:6379 answered after 8 attempts (22.5 s)",
    );
    expect(reasons[2]).toBe(
      "waiting for Redis at redis://redis.ns.svc:6379 (attempt 3, last error: connect ECONNREFUSED 127.0.0.1:6390)",
    );
    for (const line of lines) expect(line).not.toContain("hunter2");
  });

  it("masks the password where an error message repeats it", async () => {
    const lines: string[] = [];
    await waitForRedis({
      role: "gateway",
      url: "redis://user:hunter2@redis:6379",
      secrets: ["envpass"],
      ping: flakyPing(1, "WRONGPASS for hunter2 / envpass at redis://user:hunter2@redis:6379").ping,
      log: (l) => lines.push(l),
      sleep: async () => undefined,
    });
    expect(lines[0]).toContain("last error: WRONGPASS for *** / *** at redis://redis:6379");
    for (const line of lines) {
      expect(line).not.toContain("hunter2");
      expect(line).not.toContain("envpass");
    }
  });

  it("stops between attempts when the signal aborts, and during a sleep at once", async () => {
    const controller = new AbortController();
    const lines: string[] = [];
    const ping = flakyPing(1_000);
    const started = Date.now();
    const waiting = waitForRedis({
      role: "gateway",
      url: REDIS_URL,
      ping: ping.ping,
      log: (l) => lines.push(l),
      signal: controller.signal,
      firstDelayMs: 60_000, // the real sleep: only the abort can end it soon
    });
    await new Promise((r) => setTimeout(r, 50));
    controller.abort();
    expect(await waiting).toBe(false);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(ping.calls).toBe(1);
    expect(lines).toHaveLength(1);
  });

  it("stops without waiting for an attempt that hangs", async () => {
    const controller = new AbortController();
    const waiting = waitForRedis({
      role: "gateway",
      url: REDIS_URL,
      ping: () => new Promise(() => undefined),
      log: () => undefined,
      signal: controller.signal,
    });
    setTimeout(() => controller.abort(), 20);
    expect(await waiting).toBe(false);
  });

  it("does not start when already stopped", async () => {
    const ping = flakyPing(0);
    const controller = new AbortController();
    controller.abort();
    expect(
      await waitForRedis({
        role: "gateway",
        url: REDIS_URL,
        ping: ping.ping,
        log: () => undefined,
        signal: controller.signal,
      }),
    ).toBe(false);
    expect(ping.calls).toBe(0);
  });

  it("against a real unreachable port: the connection's own error, with small real delays", async () => {
    const port = await freePort();
    const lines: string[] = [];
    const controller = new AbortController();
    const ok = await waitForRedis({
      role: "gateway",
      url: `redis://:pw-never-logged@127.0.0.1:${port}`,
      ping: () => pingRedisOnce({ url: `redis://127.0.0.1:${port}`, password: "pw-never-logged" }, 500),
      log: (l) => {
        lines.push(l);
        if (lines.length === 3) controller.abort();
      },
      signal: controller.signal,
      firstDelayMs: 10,
      maxDelayMs: 20,
    });
    expect(ok).toBe(false);
    expect(lines).toHaveLength(3);
    expect(lines[2]).toBe(
      `gateway: waiting for Redis at redis://127.0.0.1:${port} (attempt 3, last error: connect ECONNREFUSED 127.0.0.1:${port}); next attempt in 20 ms, /readyz answers 503 until Redis answers`,
    );
    expect(lines.join("\n")).not.toContain("pw-never-logged");
  });
});

describe("pingRedisOnce", () => {
  it("answers against the real Redis", async () => {
    await expect(pingRedisOnce({ url: REDIS_URL })).resolves.toBeUndefined();
  });
});

describe("StartAborted", () => {
  it("names the role", () => {
    const error = new StartAborted("gateway");
    expect(error.name).toBe("StartAborted");
    expect(error.message).toBe("gateway: stopped while starting");
  });
});
