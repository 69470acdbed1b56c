/**
 * One backup, start to end: export the stack's durable keys, seal, store, record the success for the backup-age
 * metric, then apply retention. Shared by `aiorch backup now` and the backup CronJob's process (backup/main.ts).
 *
 * Rules: the success marker is written only once the object is stored, so a backup that cannot be written leaves
 * the metric where it was and the alert ("no successful backup in N hours") comes; retention runs after the new
 * backup is stored and never deletes the newest one.
 */
import { randomBytes } from "node:crypto";
import type { Redis } from "ioredis";
import { backupId, sealBackup } from "./backup";
import { exportBackup } from "./backup-redis";
import { type BackupStorage, backupKey, expiredBackups } from "./backup-storage";
import type { KeyRing } from "./envelope";
import { redisKeys } from "./redis-keys";

export interface TakenBackup {
  readonly url: string;
  readonly keys: number;
  /** Keys under the prefix no family claims, left out. */
  readonly skipped: number;
  readonly bytes: number;
  readonly sealedWith: string | null;
  /** Backups retention deleted. */
  readonly deleted: number;
  readonly ms: number;
}

export async function takeBackup(o: {
  readonly redis: Redis;
  readonly storage: BackupStorage;
  readonly stack: string;
  readonly keyPrefix: string;
  readonly retentionDays: number;
  readonly ring: KeyRing | undefined;
  readonly now?: () => number;
}): Promise<TakenBackup> {
  const now = o.now ?? Date.now;
  const started = now();
  const keys = redisKeys(o.keyPrefix);
  const content = await exportBackup(o.redis, { prefix: keys.prefix, stack: o.stack, nowMs: started });
  const id = backupId(started, randomBytes(3).toString("hex"));
  const text = sealBackup(content, id, o.ring);
  const bytes = Buffer.byteLength(text);
  const url = await o.storage.put(backupKey(o.storage.target, o.stack, id), text);
  await o.redis.hset(keys.lastBackup, {
    atMs: String(started),
    url,
    keys: String(content.records.length),
    bytes: String(bytes),
  });
  const expired = expiredBackups(await o.storage.list(o.stack), now(), o.retentionDays);
  await o.storage.delete(expired);
  return {
    url,
    keys: content.records.length,
    skipped: content.skipped,
    bytes,
    sealedWith: o.ring?.currentId ?? null,
    deleted: expired.length,
    ms: now() - started,
  };
}

/** One line saying what a backup did (never a secret). */
export function describeTaken(stack: string, taken: TakenBackup, retentionDays: number): string {
  return (
    `backed up ${taken.keys} keys of stack ${stack} (${taken.sealedWith ? `sealed with key "${taken.sealedWith}"` : "not encrypted"}, ${Math.ceil(taken.bytes / 1024)} KiB) in ${taken.ms} ms` +
    (taken.skipped > 0
      ? `; ${taken.skipped} key(s) under the prefix belong to no known family, left out`
      : "") +
    (taken.deleted > 0 ? `; deleted ${taken.deleted} backup(s) older than ${retentionDays} days` : "")
  );
}
