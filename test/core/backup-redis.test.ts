/**
 * Export and restore against real Redis: every durable family comes back with its expiry, the audit chain
 * continues with a restore entry, a non-empty Redis and a bad backup are refused with Redis untouched.
 */
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { ApiKeyStore, hashApiKey } from "../../core/api-keys";
import { AuditTrail } from "../../core/audit-trail";
import { openBackup, sealBackup } from "../../core/backup";
import { exportBackup, FENCE_MARGIN, restoreBackup, stackDataKeys } from "../../core/backup-redis";
import { newKeyRingEntry, parseKeyRing } from "../../core/envelope";
import { JOBS_GROUP, redisKeys } from "../../core/redis-keys";
import { markStateLost } from "../../core/stack-epoch";
import { REDIS_URL } from "../gateway/harness";

const redis = new Redis(REDIS_URL);
const used: string[] = [];
const newPrefix = () => {
  const prefix = `bkr${randomBytes(4).toString("hex")}:`;
  used.push(prefix);
  return prefix;
};
afterEach(async () => {
  for (const prefix of used.splice(0)) {
    const found = await redis.keys(`${prefix}*`);
    if (found.length > 0) await redis.del(...found);
  }
});
afterAll(() => redis.disconnect());

/** A stack's Redis with something in every backed-up family, and some rebuilt ones. */
async function populate(prefix: string) {
  const keys = redisKeys(prefix);
  const store = new ApiKeyStore(redis, keys);
  const trail = new AuditTrail(redis, keys);
  const created = await store.create({ name: "ci", models: [], nowMs: Date.now() });
  await trail.append({ actor: "alice", action: "key.created", target: created.record.id, reason: "ci" });
  await trail.append({ actor: "bob", action: "weights.changed", target: "chat", reason: "canary" });
  await redis.hset(keys.spendMonth("2026-12"), { total: "1234567", "model:chat": "1234567" });
  await redis.hset(keys.worker("w-1"), { id: "w-1", model: "chat", provider: "runpod", state: "ready" });
  await redis.sadd(keys.liveWorkers, "w-1");
  await redis.hset(keys.routes("chat"), "w-1", '{"baseUrl":"http://w"}');
  await redis.hset(keys.variantWeights("chat"), "v2", "10");
  await redis.hset(keys.job("job_1"), { status: "queued", body: "enc:v1:k1:sealed" });
  await redis.expire(keys.job("job_1"), 3600);
  await redis.xgroup("CREATE", keys.jobs("chat"), JOBS_GROUP, "0", "MKSTREAM");
  await redis.xadd(keys.jobs("chat"), "*", "job", "job_1");
  await redis.zadd(keys.queuedJobsOfModel("chat"), "1765141200000.5", "job_1");
  await redis.set(keys.jobResult("chat", "job_0"), "done", "PX", 60_000);
  await redis.set(keys.leaderFence, "7");
  // rebuilt families and a foreign key: not in the backup
  await redis.set(keys.leaderLock, "controller-a");
  await redis.zadd(keys.waiting("chat"), 1, "req_1");
  await redis.set(`${prefix}someone-else:thing`, "x");
  return { keys, store, trail, rawKey: created.key };
}

const wipe = async (prefix: string) => {
  const found = await redis.keys(`${prefix}*`);
  if (found.length > 0) await redis.del(...found);
};

describe("backup export and restore", () => {
  it("bring back every durable key with its expiry; the audit chain goes on with the restore", async () => {
    const prefix = newPrefix();
    const { keys, store, trail, rawKey } = await populate(prefix);
    const ring = parseKeyRing(newKeyRingEntry("k1"))!;
    const content = await exportBackup(redis, { prefix, stack: "dev", nowMs: Date.now() });
    expect(content.skipped).toBe(1);
    const names = content.records.map((r) => r.key);
    expect(names).not.toContain("leader");
    expect(names).not.toContain("queue:{chat}:waiting");
    expect(names).toContain("audit");
    const text = sealBackup(content, "b1", ring);
    const before = {
      spend: await redis.hgetall(keys.spendMonth("2026-12")),
      zset: await redis.zrange(keys.queuedJobsOfModel("chat"), 0, -1, "WITHSCORES"),
      stream: await redis.xrange(keys.jobs("chat"), "-", "+"),
      audit: await trail.list(),
    };

    await wipe(prefix);
    const { header, content: opened } = openBackup(text, ring);
    // restored two minutes later: the job result's minute has run out, the job's hour has not
    const result = await restoreBackup(redis, header, opened, {
      prefix,
      force: false,
      actor: "ops",
      nowMs: Date.now() + 120_000,
    });
    expect(result.expired).toBe(1);
    expect(await redis.exists(keys.jobResult("chat", "job_0"))).toBe(0);
    expect(await store.byHash(hashApiKey(rawKey))).toMatchObject({ name: "ci", revoked: false });
    expect(await redis.hgetall(keys.spendMonth("2026-12"))).toEqual(before.spend);
    expect(await redis.zrange(keys.queuedJobsOfModel("chat"), 0, -1, "WITHSCORES")).toEqual(before.zset);
    expect(await redis.xrange(keys.jobs("chat"), "-", "+")).toEqual(before.stream);
    expect(await redis.smembers(keys.liveWorkers)).toEqual(["w-1"]);
    expect(await redis.hget(keys.routes("chat"), "w-1")).toBe('{"baseUrl":"http://w"}');
    const ttl = await redis.pttl(keys.job("job_1"));
    expect(ttl).toBeGreaterThan(3_500_000);
    expect(ttl).toBeLessThanOrEqual(3_600_000);
    // the group is back at the start: the unfinished job is delivered again
    const read = (await redis.xreadgroup("GROUP", JOBS_GROUP, "c1", "STREAMS", keys.jobs("chat"), ">")) as [
      string,
      [string, string[]][],
    ][];
    expect(read[0]![1][0]![1]).toEqual(["job", "job_1"]);
    expect(Number(await redis.get(keys.leaderFence))).toBe(7 + FENCE_MARGIN);
    expect(await redis.exists(keys.leaderLock)).toBe(0);

    const verified = await trail.verify();
    expect(verified).toEqual({ ok: true, entries: 3, head: result.auditHead });
    const after = await trail.list();
    expect(after.slice(0, 2)).toEqual(before.audit);
    expect(after[2]).toMatchObject({ action: "backup.restored", actor: "ops", target: "b1" });
    expect(after[2]!.reason).toContain(`taken ${content.takenAt}`);
  });

  it("refuse a Redis holding stack data, untouched, unless forced; rebuilt keys do not count", async () => {
    const prefix = newPrefix();
    const { keys } = await populate(prefix);
    const content = await exportBackup(redis, { prefix, stack: "dev", nowMs: Date.now() });
    const { header, content: opened } = openBackup(sealBackup(content, "b2", undefined), undefined);
    await redis.hset(keys.spendMonth("2026-12"), "total", "999");
    const snapshot = async () => {
      const all = (await redis.keys(`${prefix}*`)).sort();
      return {
        all,
        spend: await redis.hgetall(keys.spendMonth("2026-12")),
        audit: await redis.xlen(keys.auditStream),
      };
    };
    const untouched = await snapshot();
    await expect(
      restoreBackup(redis, header, opened, { prefix, force: false, actor: "ops", nowMs: Date.now() }),
    ).rejects.toThrow(/already holds \d+ key\(s\) of stack data .* pass --force/);
    expect(await snapshot()).toEqual(untouched);

    const forced = await restoreBackup(redis, header, opened, {
      prefix,
      force: true,
      actor: "ops",
      nowMs: Date.now(),
    });
    expect(forced.replaced).toBeGreaterThan(5);
    expect(await redis.hget(keys.spendMonth("2026-12"), "total")).toBe("1234567");

    // a Redis where only live processes wrote again (a lock, a waiter, an empty job stream) is empty enough
    await wipe(prefix);
    await redis.set(keys.leaderLock, "controller-b");
    await redis.set(keys.leaderFence, String(FENCE_MARGIN * 3));
    await redis.zadd(keys.waiting("chat"), 1, "req_2");
    await redis.xgroup("CREATE", keys.jobs("chat"), JOBS_GROUP, "0", "MKSTREAM");
    expect(await stackDataKeys(redis, prefix)).toEqual([]);
    const again = await restoreBackup(redis, header, opened, {
      prefix,
      force: false,
      actor: "ops",
      nowMs: Date.now(),
    });
    expect(again.fence).toBe(FENCE_MARGIN * 4); // above the controller's token of the outage
    expect(await redis.xlen(keys.jobs("chat"))).toBe(1);
  });

  it("adds the backup's ledger to what gateways booked since the loss, instead of refusing or losing it", async () => {
    const prefix = newPrefix();
    const { keys } = await populate(prefix);
    const content = await exportBackup(redis, { prefix, stack: "dev", nowMs: Date.now() });
    const { header, content: opened } = openBackup(sealBackup(content, "b4", undefined), undefined);
    await wipe(prefix);
    // requests a gateway served from its key cache after the loss
    await redis.hset(keys.spendMonth("2026-12"), { "model:chat": "10", "key:key_9": "10" });
    await redis.hset(keys.spendDay("2026-12-08"), { total: "3" });
    const result = await restoreBackup(redis, header, opened, {
      prefix,
      force: false,
      actor: "ops",
      nowMs: Date.now(),
    });
    expect(result.merged).toBe(1);
    expect(await redis.hgetall(keys.spendMonth("2026-12"))).toEqual({
      total: "1234567",
      "model:chat": "1234577",
      "key:key_9": "10",
    });
    expect(await redis.hgetall(keys.spendDay("2026-12-08"))).toEqual({ total: "3" });

    // a ledger that is not counters is refused, untouched
    await wipe(prefix);
    await redis.hset(keys.spendMonth("2026-12"), { total: "1.5" });
    await expect(
      restoreBackup(redis, header, opened, { prefix, force: false, actor: "ops", nowMs: Date.now() }),
    ).rejects.toThrow(/not a whole number, so the backup's cannot be added to it; pass --force/);
    expect(await redis.keys(`${prefix}*`)).toEqual([keys.spendMonth("2026-12")]);
  });

  it("brings the stack epoch back and lifts the lost mark; an epoch or mark written during the outage does not block", async () => {
    const prefix = newPrefix();
    const { keys } = await populate(prefix);
    const epoch = await redis.get(keys.stackEpoch);
    expect(epoch).toMatch(/^epoch_/); // the first key wrote it
    const content = await exportBackup(redis, { prefix, stack: "dev", nowMs: Date.now() });
    const { header, content: opened } = openBackup(sealBackup(content, "b-epoch", undefined), undefined);
    await redis.del(...(await redis.keys(`${prefix}*`)));
    await markStateLost(redis, keys, { epoch: epoch!, sinceMs: Date.now(), by: "gateway" });
    await redis.set(keys.stackEpoch, "epoch_written_meanwhile");
    await restoreBackup(redis, header, opened, { prefix, force: false, actor: "ops", nowMs: Date.now() });
    expect(await redis.get(keys.stackEpoch)).toBe(epoch);
    expect(await redis.exists(keys.stateLost)).toBe(0);

    // a backup from before epochs: the restored stack gets one, so gateways do not take it for lost again
    const old = { ...content, records: content.records.filter((r) => r.key !== "stack:epoch") };
    const before = openBackup(sealBackup(old, "b-old", undefined), undefined);
    await redis.del(...(await redis.keys(`${prefix}*`)));
    await restoreBackup(redis, before.header, before.content, {
      prefix,
      force: false,
      actor: "ops",
      nowMs: Date.now(),
    });
    expect(await redis.get(keys.stackEpoch)).toMatch(/^epoch_/);
  });
});
