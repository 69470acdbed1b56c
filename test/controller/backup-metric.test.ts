/** The backup-age metric: read from Redis at each scrape, absent before the first backup, kept when Redis fails. */
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { ControllerMetrics } from "../../controller/metrics";
import { lastBackupOf } from "../../core/backup-redis";
import { redisKeys } from "../../core/redis-keys";
import { REDIS_URL } from "../gateway/harness";

const redis = new Redis(REDIS_URL);
const keys = redisKeys(`bm${randomBytes(4).toString("hex")}:`);
afterAll(async () => {
  await redis.del(keys.lastBackup);
  redis.disconnect();
});

const line = async (metrics: ControllerMetrics) =>
  (await metrics.registry.metrics())
    .split("\n")
    .find((l) => l.startsWith("aiorch_backup_last_success_timestamp_seconds"));

describe("aiorch_backup_last_success_timestamp_seconds", () => {
  it("is absent before the first backup and follows what the backup command records", async () => {
    const metrics = new ControllerMetrics({ defaultMetrics: false });
    metrics.readLastBackup(() => lastBackupOf(redis, keys));
    expect(await line(metrics)).toBeUndefined();
    await redis.hset(keys.lastBackup, {
      atMs: "1765141200000",
      url: "s3://aiorch-backups/aiorch/prod/20261207T210000Z-abcdef.json",
    });
    expect(await line(metrics)).toBe(
      'aiorch_backup_last_success_timestamp_seconds{bucket="aiorch-backups"} 1765141200',
    );
    await redis.hset(keys.lastBackup, { atMs: "1765144800000" });
    expect(await line(metrics)).toMatch(/ 1765144800$/);
  });

  it("keeps the last value when Redis cannot be read, and /metrics still renders", async () => {
    const metrics = new ControllerMetrics({ defaultMetrics: false });
    let fail = false;
    metrics.readLastBackup(async () => {
      if (fail) throw new Error("redis down");
      return { bucket: "b", atMs: 1_000_000 };
    });
    expect(await line(metrics)).toMatch(/ 1000$/);
    fail = true;
    expect(await line(metrics)).toMatch(/ 1000$/);
  });
});
