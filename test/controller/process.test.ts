/**
 * The controller process start: its ops server (/metrics, /healthz, /readyz) first, then Redis, waited for with a
 * line per attempt and /readyz 503 meanwhile; a private redis-server that appears late.
 */
import { randomBytes } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { startController } from "../../controller/main";
import { StartAborted } from "../../core/redis-wait";
import { testRuntimeConfig } from "../gateway/harness";
import { freePort, type PrivateRedis, startPrivateRedis } from "../private-redis";

const servers: PrivateRedis[] = [];
afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop()));
});

const config = testRuntimeConfig("http://127.0.0.1:9/v1", `p${randomBytes(4).toString("hex")}:`);

async function until<T>(what: string, check: () => T | undefined | Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 8_000;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("controller start", () => {
  it("serves /healthz and a 503 /readyz while Redis is down, and starts once Redis answers", async () => {
    const redisPort = await freePort();
    const opsPort = await freePort();
    const lines: string[] = [];
    const starting = startController({
      config,
      env: { REDIS_URL: `redis://:s3cret@127.0.0.1:${redisPort}` },
      port: opsPort,
      host: "127.0.0.1",
      log: (line) => lines.push(line),
      tickMs: 200,
      redisRetry: { firstDelayMs: 50, maxDelayMs: 100 },
    });
    const ops = `http://127.0.0.1:${opsPort}`;
    await until("the waiting line", () => lines.find((l) => l.startsWith("controller: waiting for Redis")));
    expect(lines.find((l) => l.includes("attempt 1,"))).toBe(
      `controller: waiting for Redis at redis://127.0.0.1:${redisPort} (attempt 1, last error: connect ECONNREFUSED 127.0.0.1:${redisPort}); next attempt in 50 ms, /readyz answers 503 until Redis answers`,
    );
    expect((await fetch(`${ops}/healthz`)).status).toBe(200);
    const notReady = await fetch(`${ops}/readyz`);
    expect(notReady.status).toBe(503);
    expect(await notReady.json()).toMatchObject({
      status: "starting",
      reason: expect.stringMatching(
        /^waiting for Redis at redis:\/\/127\.0\.0\.1:\d+ \(attempt \d+, last error: /,
      ),
    });
    expect(await (await fetch(`${ops}/metrics`)).text()).toContain("aiorch_workers");

    servers.push(await startPrivateRedis(redisPort, "s3cret"));
    const handle = await starting;
    try {
      expect(handle.port).toBe(opsPort);
      const ready = await until("ready", async () => {
        const response = await fetch(`${ops}/readyz`);
        return response.status === 200 ? response.json() : undefined;
      });
      expect(ready).toMatchObject({ status: "ready" });
      expect(
        lines.some((l) =>
          /controller: Redis at redis:\/\/127\.0\.0\.1:\d+ answered after \d+ attempts/.test(l),
        ),
      ).toBe(true);
      expect(lines.join("\n")).not.toContain("s3cret");
    } finally {
      await handle.close();
    }
  }, 20_000);

  it("stops while waiting when its signal aborts, and frees its port", async () => {
    const opsPort = await freePort();
    const abort = new AbortController();
    const lines: string[] = [];
    const starting = startController({
      config,
      env: { REDIS_URL: `redis://127.0.0.1:${await freePort()}` },
      port: opsPort,
      host: "127.0.0.1",
      log: (line) => lines.push(line),
      signal: abort.signal,
    });
    await until("the waiting line", () => lines.find((l) => l.startsWith("controller: waiting for Redis")));
    abort.abort();
    await expect(starting).rejects.toBeInstanceOf(StartAborted);
    await expect(fetch(`http://127.0.0.1:${opsPort}/healthz`)).rejects.toThrow();
  });
});
