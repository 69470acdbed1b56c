/**
 * Export a stack's durable Redis keys into backup content, and restore content into Redis (formats and key
 * families: `core/backup.ts`).
 *
 * Rules:
 * - Export reads with SCAN under the prefix, each key whole in one command: not a point-in-time snapshot of
 *   the whole Redis, but every key is consistent in itself and the audit trail is always a whole prefix of its
 *   chain. Values are read as UTF-8 text (every value the stack writes is text: JSON, numbers, base64).
 * - Restore goes into a Redis without stack data: "without" ignores the families that are rebuilt (a controller
 *   and gateways that kept running through the outage recreate their lock, fence, buckets and queues at once) and
 *   empty job streams (gateways recreate those on start). Otherwise it refuses, naming a few of the keys, unless
 *   `force`: then the stack's durable keys are replaced.
 * - Ledger hashes (spend per month and day) booked since the loss do not count either: gateways that kept serving
 *   keys they had cached booked those requests into a Redis that held nothing else, so they came after the
 *   backup, and the backup's counters are added to them (HINCRBY) instead of replacing them. With `force` they
 *   are replaced like everything else.
 * - Everything is written in one MULTI/EXEC transaction, so other clients see Redis before or after the
 *   restore, never half of it; the content was checked whole before (`openBackup`).
 * - The audit trail gets a `backup.restored` entry chained to the backup's last entry, in the same transaction,
 *   so `aiorch audit verify` passes and the entry marks the gap.
 * - The leader fence is set FENCE_MARGIN above both the backup's and the current value, and the leader lock is
 *   dropped: every controller elects anew, and no token handed out before the restore (even one issued after
 *   the backup) matches, so a paused former leader cannot write.
 * - The stack epoch comes back with the backup and the lost marker goes (core/stack-epoch.ts): gateways that
 *   answered 503 "restore pending" serve again.
 * - Consumer groups of job streams are recreated at the start of the stream: jobs pending at the backup are
 *   delivered again (at least once, as jobs always are; a finished job is skipped by its status).
 * - Gateways are told on their channels that keys, routes, weights and budget blocks changed.
 */
import type { Redis } from "ioredis";
import { type AuditRecord, entryHash } from "./audit-trail";
import { type BackupContent, type BackupHeader, type BackupRecord, BackupRefused, familyOf } from "./backup";
import { JOBS_GROUP, type RedisKeys, redisKeys } from "./redis-keys";
import { newStackEpoch } from "./stack-epoch";

/** The ledger families: hashes of whole-number counters (micro-USD, request counts) that only ever grow. */
const LEDGER = /^spend:(month|day):/;
const INTEGER = /^-?\d+$/;

/** How far above every known fencing token a restore sets the fence (more elections than any outage has). */
export const FENCE_MARGIN = 1_000_000;

const SCAN_COUNT = 500;

/** Every key under the prefix (SCAN, so a big Redis is not blocked). */
async function scanPrefix(redis: Redis, prefix: string): Promise<string[]> {
  const found = new Set<string>();
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", SCAN_COUNT);
    for (const key of keys) found.add(key);
    cursor = next;
  } while (cursor !== "0");
  return [...found].sort();
}

const pairs = (flat: string[]): [string, string][] => {
  const out: [string, string][] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push([flat[i]!, flat[i + 1]!]);
  return out;
};

/** Read one key whole; undefined when it vanished (or has a type no family uses) meanwhile. */
async function readKey(
  redis: Redis,
  key: string,
  relative: string,
  nowMs: number,
): Promise<BackupRecord | undefined> {
  const [[, type], [, pttl]] = (await redis.multi().type(key).pttl(key).exec()) as [
    [null, string],
    [null, number],
  ];
  const expireAtMs = pttl > 0 ? { expireAtMs: nowMs + pttl } : {};
  switch (type) {
    case "string": {
      const value = await redis.get(key);
      return value === null ? undefined : { key: relative, ...expireAtMs, type, value };
    }
    case "hash":
      return { key: relative, ...expireAtMs, type, value: await redis.hgetall(key) };
    case "set":
      return { key: relative, ...expireAtMs, type, value: (await redis.smembers(key)).sort() };
    case "list":
      return { key: relative, ...expireAtMs, type, value: await redis.lrange(key, 0, -1) };
    case "zset":
      return {
        key: relative,
        ...expireAtMs,
        type,
        value: pairs(await redis.zrange(key, 0, -1, "WITHSCORES")),
      };
    case "stream": {
      const entries = (await redis.xrange(key, "-", "+")) as [string, string[]][];
      const groups = (await redis.xinfo("GROUPS", key)) as unknown[][];
      const names = groups.map((g) => String(g[g.indexOf("name") + 1]));
      return { key: relative, ...expireAtMs, type, value: entries, groups: names };
    }
    default:
      return undefined;
  }
}

/** Read the stack's durable keys into backup content. */
export async function exportBackup(
  redis: Redis,
  options: { prefix: string; stack: string; nowMs: number },
): Promise<BackupContent> {
  const records: BackupRecord[] = [];
  let skipped = 0;
  for (const key of await scanPrefix(redis, options.prefix)) {
    const relative = key.slice(options.prefix.length);
    const family = familyOf(relative);
    if (!family) {
      skipped += 1;
      continue;
    }
    if (!family.backedUp) continue;
    const record = await readKey(redis, key, relative, options.nowMs);
    if (record) records.push(record);
  }
  return {
    stack: options.stack,
    prefix: options.prefix,
    takenAt: new Date(options.nowMs).toISOString(),
    records,
    skipped,
  };
}

/** Keys of stack data (backed-up families) in Redis now, empty job streams aside. */
export async function stackDataKeys(redis: Redis, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for (const key of await scanPrefix(redis, prefix)) {
    const family = familyOf(key.slice(prefix.length));
    // the fence is stack data, but a controller that kept running recreates it with its next election
    // the epoch too (a key created during the outage starts one), and how far managed units are booked (a
    // controller that kept running writes it): the restore puts the backup's back
    if (!family?.backedUp || ["leaderFence", "stackEpoch", "managedBookedUntil"].includes(family.name))
      continue;
    if (family.name === "jobs" && (await redis.xlen(key)) === 0) continue;
    out.push(key);
  }
  return out;
}

export interface RestoreOptions {
  /** The target stack's key prefix. */
  readonly prefix: string;
  readonly force: boolean;
  /** Who restores (for the audit entry). */
  readonly actor: string;
  readonly nowMs: number;
}

export interface RestoreResult {
  /** Keys written. */
  readonly restored: number;
  /** Keys whose expiry passed between the backup and now, not written. */
  readonly expired: number;
  /** Stack-data keys that were in Redis before and were replaced (force). */
  readonly replaced: number;
  /** Ledger hashes booked since the loss whose counters the backup's were added to. */
  readonly merged: number;
  /** The audit trail's new head: the `backup.restored` entry's hash. */
  readonly auditHead: string;
  readonly fence: number;
}

const flatten = (record: Record<string, string>): string[] => Object.entries(record).flat();

/**
 * Restore checked content (from `openBackup`) into Redis in one transaction.
 * @throws BackupRefused when Redis holds stack data and `force` is off (nothing is written then)
 */
export async function restoreBackup(
  redis: Redis,
  header: BackupHeader,
  content: BackupContent,
  options: RestoreOptions,
): Promise<RestoreResult> {
  const keys: RedisKeys = redisKeys(options.prefix);
  for (const record of content.records)
    if (record.type === "stream")
      for (let i = 1; i < record.value.length; i++)
        if (!streamIdAfter(record.value[i]![0], record.value[i - 1]![0]))
          throw new BackupRefused(
            `backup ${header.id}: stream "${record.key}" lists its entries out of order; the backup is damaged`,
          );
  const present = await stackDataKeys(redis, options.prefix);
  // ledger counters booked since the loss (gateways keep serving keys they have cached) are added to, not lost
  const ledger = options.force ? [] : present.filter((key) => LEDGER.test(key.slice(options.prefix.length)));
  const blocking = present.filter((key) => !ledger.includes(key));
  if (blocking.length > 0 && !options.force)
    throw new BackupRefused(
      `Redis already holds ${blocking.length} key(s) of stack data under "${options.prefix}" (e.g. ${blocking
        .slice(0, 3)
        .join(
          ", ",
        )}); a restore goes into an empty Redis — pass --force to replace them with the backup (what was written since the backup is then lost)`,
    );
  const booked = new Map<string, Record<string, string>>();
  for (const key of ledger) {
    const fields = await redis.hgetall(key);
    if (!Object.values(fields).every((v) => INTEGER.test(v)))
      throw new BackupRefused(
        `ledger ${key} holds a value that is not a whole number, so the backup's cannot be added to it; pass --force to replace it`,
      );
    booked.set(key, fields);
  }
  for (const record of content.records)
    if (booked.has(options.prefix + record.key)) {
      const values = record.type === "hash" ? Object.values(record.value) : ["not a hash"];
      if (!values.every((v) => INTEGER.test(v)))
        throw new BackupRefused(
          `backup ${header.id}: ledger "${record.key}" holds a value that is not a whole number; pass --force to replace the ledger booked since instead of adding to it`,
        );
    }
  const fenceRecord = content.records.find((r) => r.key === "leader:fence");
  const backupFence = fenceRecord?.type === "string" ? Number(fenceRecord.value) || 0 : 0;
  const currentFence = Number(await redis.get(keys.leaderFence)) || 0;
  const fence = Math.max(backupFence, currentFence) + FENCE_MARGIN;

  const multi = redis.multi();
  const stale = new Set(present);
  for (const record of content.records) stale.add(options.prefix + record.key);
  for (const key of stale) if (!booked.has(key)) multi.del(key);
  let restored = 0;
  let expired = 0;
  let merged = 0;
  let auditPrev = "";
  const keyHashes: string[] = [];
  const routedModels: string[] = [];
  for (const record of content.records) {
    if (record.key === "leader:fence") continue;
    if (record.expireAtMs !== undefined && record.expireAtMs <= options.nowMs) {
      expired += 1;
      continue;
    }
    const key = options.prefix + record.key;
    if (booked.has(key) && record.type === "hash") {
      for (const [field, value] of Object.entries(record.value)) multi.hincrby(key, field, value);
      merged += 1;
    } else if (!writeRecord(multi, key, record)) continue;
    if (record.expireAtMs !== undefined) multi.pexpireat(key, record.expireAtMs);
    restored += 1;
    if (record.key === "audit" && record.type === "stream") {
      const last = record.value.at(-1);
      if (last) auditPrev = pairs(last[1]).find(([f]) => f === "hash")?.[1] ?? "";
    }
    if (record.key.startsWith("apikey:")) keyHashes.push(record.key.slice("apikey:".length));
    const routes = /^routes:\{(.*)\}$/.exec(record.key);
    if (routes) routedModels.push(routes[1]!);
  }
  multi.set(keys.leaderFence, String(fence));
  multi.del(keys.leaderLock);
  // the stack has its state again: gateways stop answering 503 (core/stack-epoch.ts); a backup from before
  // epochs gets one (kept when a key created during the outage wrote one)
  multi.del(keys.stateLost);
  multi.set(keys.stackEpoch, newStackEpoch(), "NX");

  const entry: AuditRecord = {
    ts: new Date(options.nowMs).toISOString(),
    actor: options.actor,
    action: "backup.restored",
    target: header.id,
    reason: `restored from backup ${header.id} taken ${content.takenAt}; actions between then and now are not in this trail`,
  };
  const auditHead = entryHash(auditPrev, entry);
  multi.xadd(
    keys.auditStream,
    "*",
    "ts",
    entry.ts,
    "actor",
    entry.actor,
    "action",
    entry.action,
    "target",
    entry.target,
    "reason",
    entry.reason,
    "prev",
    auditPrev,
    "hash",
    auditHead,
  );
  // gateways drop what they cached from before (message shapes: gateway/app.ts subscriber)
  for (const hash of keyHashes) multi.publish(keys.apiKeysChannel, hash);
  for (const model of routedModels) multi.publish(keys.routesChannel, JSON.stringify({ model }));
  multi.publish(keys.variantWeightsChannel, "");
  multi.publish(keys.budgetChannel, "changed");
  multi.publish(keys.pausesChannel, "changed");
  const results = await multi.exec();
  const failed = results?.find(([error]) => error);
  if (!results || failed)
    throw new Error(
      `the restore transaction failed${failed ? `: ${(failed[0] as Error).message}` : ""}; Redis may hold part of the backup — run the restore again with --force`,
    );
  return {
    restored,
    expired,
    replaced: options.force ? present.length : 0,
    merged,
    auditHead,
    fence,
  };
}

/** Queue the commands writing one record; false when there is nothing to write (an empty collection). */
function writeRecord(multi: ReturnType<Redis["multi"]>, key: string, record: BackupRecord): boolean {
  switch (record.type) {
    case "string":
      multi.set(key, record.value);
      return true;
    case "hash":
      if (Object.keys(record.value).length === 0) return false;
      multi.hset(key, ...flatten(record.value));
      return true;
    case "set":
      if (record.value.length === 0) return false;
      multi.sadd(key, ...record.value);
      return true;
    case "list":
      if (record.value.length === 0) return false;
      multi.rpush(key, ...record.value);
      return true;
    case "zset":
      if (record.value.length === 0) return false;
      multi.zadd(key, ...record.value.flatMap(([member, score]) => [score, member]));
      return true;
    case "stream": {
      if (record.value.length === 0 && record.groups.length === 0) return false;
      for (const [id, fields] of record.value) multi.xadd(key, id, ...fields);
      // job streams always get the gateways' group, even when the backup caught one without it
      const groups = new Set(record.groups);
      if (record.key.startsWith("jobs:")) groups.add(JOBS_GROUP);
      for (const group of groups) multi.xgroup("CREATE", key, group, "0", "MKSTREAM");
      return true;
    }
  }
}

/** Whether stream id `a` comes after `b` (`ms-seq`). */
function streamIdAfter(a: string, b: string): boolean {
  const [am, as] = a.split("-").map(BigInt) as [bigint, bigint];
  const [bm, bs] = b.split("-").map(BigInt) as [bigint, bigint];
  return am > bm || (am === bm && as > bs);
}

/** The last successful backup the backup command recorded, if any. */
export async function lastBackupOf(
  redis: Redis,
  keys: Pick<RedisKeys, "lastBackup">,
): Promise<{ bucket: string; atMs: number } | undefined> {
  const fields = await redis.hgetall(keys.lastBackup);
  const atMs = Number(fields.atMs);
  if (!fields.url || !Number.isFinite(atMs) || atMs <= 0) return undefined;
  return { bucket: /^s3:\/\/([^/]+)\//.exec(fields.url)?.[1] ?? "", atMs };
}
