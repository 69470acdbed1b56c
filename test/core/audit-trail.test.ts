import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { AuditTrail, entryHash } from "../../core/audit-trail";
import { type RedisKeys, redisKeys } from "../../core/redis-keys";

const redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
let keys: RedisKeys;
let trail: AuditTrail;
afterAll(() => redis.disconnect());
beforeEach(async () => {
  keys = redisKeys(`au${randomBytes(4).toString("hex")}:`);
  trail = new AuditTrail(redis, keys);
});

const fill = async (n: number) => {
  for (let i = 0; i < n; i++)
    await trail.append({ actor: "alice", action: "key.created", target: `key_${i}`, reason: `entry ${i}` });
};

describe("audit trail", () => {
  it("chains every entry to the one before and verifies", async () => {
    await fill(3);
    const entries = await trail.list();
    expect(entries.map((e) => e.target)).toEqual(["key_0", "key_1", "key_2"]);
    expect(entries[0]!.prev).toBe("");
    expect(entries[1]!.prev).toBe(entries[0]!.hash);
    expect(entries[2]!.hash).toBe(entryHash(entries[1]!.hash, entries[2]!));
    expect(await trail.verify()).toEqual({ ok: true, entries: 3, head: entries[2]!.hash });
    await redis.del(keys.auditStream);
  });

  it("concurrent writers never fork the chain", async () => {
    await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        trail.append({ actor: `w${i}`, action: "budget.changed", target: "*", reason: "r" }),
      ),
    );
    expect(await trail.verify()).toMatchObject({ ok: true, entries: 12 });
    await redis.del(keys.auditStream);
  });

  it("a removed entry breaks the chain where it was", async () => {
    await fill(4);
    const entries = await trail.list();
    await redis.xdel(keys.auditStream, entries[1]!.id);
    const result = await trail.verify();
    expect(result.ok).toBe(false);
    expect(result.broken).toMatchObject({
      id: entries[2]!.id,
      why: expect.stringMatching(/removed or reordered/),
    });
    await redis.del(keys.auditStream);
  });

  it("an edited entry is caught by its hash", async () => {
    await fill(2);
    const [first] = await trail.list();
    // forge: same links, different reason
    await redis.xadd(
      keys.auditStream,
      "*",
      "ts",
      first!.ts,
      "actor",
      "mallory",
      "action",
      "key.revoked",
      "target",
      "key_9",
      "reason",
      "nothing to see",
      "prev",
      (await trail.list())[1]!.hash,
      "hash",
      "0".repeat(64),
    );
    const result = await trail.verify();
    expect(result).toMatchObject({ ok: false, entries: 2, broken: { why: expect.stringMatching(/edited/) } });
    await redis.del(keys.auditStream);
  });
});
