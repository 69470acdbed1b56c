/**
 * The backup of a stack's Redis: which keys are worth keeping, the document they are kept in, and how it is
 * sealed and checked. Pure (no Redis, no network); `core/backup-redis.ts` reads and writes Redis with it and
 * `core/backup-storage.ts` puts documents in object storage.
 *
 * Rules:
 * - Every key family of `core/redis-keys.ts` is either backed up or rebuilt, never silently dropped
 *   (`KEY_FAMILIES`, with the reason for each; a test fails when redis-keys.ts gains a family this list lacks).
 *   Backed up: what nothing else can bring back — API key records, the spend ledger and budget blocks, the audit
 *   trail, variant weights, operators' run-time controls (bounds, pauses, budget overrides, drains), the worker
 *   registry and its routes, async jobs and their results, what the weight caches hold. Rebuilt: what belongs to
 *   live processes and comes back within a tick or a request — rate buckets, waiting and in-flight sets, the
 *   leader lock, the decision log, the recent-requests and provider-error logs, the last-backup marker. The
 *   leader fence is special: kept, and restored above anything handed out since (see backup-redis.ts).
 * - A key under the prefix that no family claims (another stack sharing the prefix, a future key) is skipped
 *   and counted, not guessed at.
 * - Keys are stored without the prefix, so a backup restores into the stack's prefix of the day.
 * - A key's expiry is kept as an absolute time: a job result restored after its TTL would have run out is not
 *   restored at all.
 * - The document: a small clear-text header (format, version, id, stack, time, whether and with which key id it
 *   is sealed) and a payload, the gzipped content. With the stack's key ring the payload is sealed with AES-GCM
 *   (`core/envelope.ts`), its associated data binding the header's id and stack, so a corrupted payload, a
 *   swapped header or a ring without the key is refused. Without a ring the payload carries a SHA-256 that
 *   catches corruption (not tampering: whoever can write the bucket can recompute it — turn encryption on).
 * - A sealed backup needs the ring to open; a plain backup is refused when a ring is configured, as
 *   `envelope.open` refuses plain values: a downgrade cannot slip contents past the stack's setting.
 * - Everything is checked before anything is written: `openBackup` either returns whole, valid content or
 *   throws a `BackupRefused` saying what is wrong and what to do.
 */
import { createHash } from "node:crypto";
import { gunzipSync, gzipSync } from "node:zlib";
import { z } from "zod";
import { isSealed, type KeyRing, open, seal } from "./envelope";

export const BACKUP_FORMAT = "aiorch-backup";
export const BACKUP_VERSION = 1;

/** Why a backup was not written or not restored; the message names the problem and the fix. */
export class BackupRefused extends Error {
  override name = "BackupRefused";
}

export interface KeyFamily {
  readonly name: string;
  /** Matches the key without the stack's prefix. */
  readonly pattern: RegExp;
  readonly backedUp: boolean;
  readonly why: string;
}

// `{…}` is a hash tag (`redis-keys.ts` replaces braces inside it), so `[^{}]*` inside braces is one tag.
const T = "\\{[^{}]*\\}";

/** Every key family of `RedisKeys` (pub/sub channels are not keys and hold nothing). */
export const KEY_FAMILIES: readonly KeyFamily[] = [
  { name: "apiKey", pattern: /^apikey:[^:]+$/, backedUp: true, why: "API key records (hashes of keys only)" },
  { name: "apiKeyIds", pattern: /^apikeys$/, backedUp: true, why: "key id → key hash, for list and revoke" },
  {
    name: "rateBucket",
    pattern: new RegExp(`^limit:${T}:(rpm|tpm)$`),
    backedUp: false,
    why: "token buckets refill within a minute",
  },
  {
    name: "waiting",
    pattern: new RegExp(`^queue:${T}:waiting$`),
    backedUp: false,
    why: "waiters belong to open connections of live gateways",
  },
  {
    name: "inflight",
    pattern: new RegExp(`^queue:${T}:inflight$`),
    backedUp: false,
    why: "leases renewed every second by live gateways",
  },
  {
    name: "routes",
    pattern: new RegExp(`^routes:${T}$`),
    backedUp: true,
    why: "published only when a worker becomes ready; restored workers need theirs",
  },
  { name: "job", pattern: /^job:[^:]+$/, backedUp: true, why: "async job status (bodies stay sealed)" },
  {
    name: "jobs",
    pattern: new RegExp(`^jobs:${T}$`),
    backedUp: true,
    why: "queued async jobs; the consumer group is recreated so unfinished jobs run again",
  },
  {
    name: "jobResult",
    pattern: new RegExp(`^jobs:${T}:result:[^:]+$`),
    backedUp: true,
    why: "results clients have not fetched yet",
  },
  {
    name: "jobIdempotency",
    pattern: new RegExp(`^jobs:${T}:idem:.+$`),
    backedUp: true,
    why: "a retried submission must not run twice",
  },
  {
    name: "queuedJobsOfKey",
    pattern: new RegExp(`^jobs:key:${T}:queued$`),
    backedUp: true,
    why: "per-key job caps",
  },
  {
    name: "queuedJobsOfModel",
    pattern: new RegExp(`^jobs:${T}:queued$`),
    backedUp: true,
    why: "per-model job caps",
  },
  {
    name: "worker",
    pattern: /^worker:[^:]+$/,
    backedUp: true,
    why: "the registry the reconciler adopts running instances by; without it they are orphans",
  },
  { name: "liveWorkers", pattern: /^workers$/, backedUp: true, why: "ids of the workers not terminated" },
  { name: "intent", pattern: /^intent:[^:]+$/, backedUp: true, why: "crash-safe provisioning records" },
  { name: "spendMonth", pattern: /^spend:month:\d{4}-\d{2}$/, backedUp: true, why: "the ledger budgets use" },
  { name: "spendDay", pattern: /^spend:day:\d{4}-\d{2}-\d{2}$/, backedUp: true, why: "the daily ledger" },
  {
    name: "budgetBlocked",
    pattern: /^budget:blocked$/,
    backedUp: true,
    why: "matches the restored ledger; the controller rewrites it only when its verdict changes",
  },
  { name: "auditStream", pattern: /^audit$/, backedUp: true, why: "the hash-chained audit trail" },
  { name: "leaderLock", pattern: /^leader$/, backedUp: false, why: "held by a live controller" },
  {
    name: "leaderFence",
    pattern: /^leader:fence$/,
    backedUp: true,
    why: "restored above every token handed out, so no earlier leader's write passes",
  },
  {
    name: "scaleDecisions",
    pattern: /^decisions$/,
    backedUp: false,
    why: "a capped diagnostic log the controller refills every tick",
  },
  {
    name: "variantWeights",
    pattern: new RegExp(`^weights:${T}$`),
    backedUp: true,
    why: "run-time weights set with models set-weight",
  },
  {
    name: "weightCacheLoaded",
    pattern: /^weight-cache$/,
    backedUp: true,
    why: "which weights the caches hold (keep-alive's cold-start estimates)",
  },
  {
    name: "workerBounds",
    pattern: /^control:bounds$/,
    backedUp: true,
    why: "run-time worker bounds an operator set",
  },
  { name: "pausedModels", pattern: /^control:paused$/, backedUp: true, why: "a paused model stays paused" },
  {
    name: "budgetOverrides",
    pattern: /^control:budgets$/,
    backedUp: true,
    why: "lowered budgets an operator set for the month",
  },
  {
    name: "drainRequests",
    pattern: /^control:drain$/,
    backedUp: true,
    why: "drains an operator asked for and the controller has not finished",
  },
  {
    name: "providerErrors",
    pattern: /^provider-errors$/,
    backedUp: false,
    why: "a capped diagnostic list the controller refills",
  },
  {
    name: "lastBackup",
    pattern: /^backup:last$/,
    backedUp: false,
    why: "the next backup writes it; a restored one would claim a backup newer than the restore",
  },
  {
    name: "managedBookedUntil",
    pattern: /^spend:managed-until$/,
    backedUp: true,
    why: "up to when the restored ledger booked each managed unit: the time since is booked again after a restore",
  },
  {
    name: "stackEpoch",
    pattern: /^stack:epoch$/,
    backedUp: true,
    why: "tells a Redis that lost the stack's state from a new stack's (core/stack-epoch.ts)",
  },
  {
    name: "stateLost",
    pattern: /^stack:lost$/,
    backedUp: false,
    why: "the marker of a loss not yet restored; the restore removes it",
  },
  {
    name: "recentRequests",
    pattern: /^requests$/,
    backedUp: false,
    why: "a capped log of recent requests that traffic refills",
  },
  {
    name: "selfHealingActions",
    pattern: /^self-healing$/,
    backedUp: true,
    why: "the controller's self-healing actions, which its hourly guard rail counts",
  },
];

/** The family of a key (without the prefix), or undefined when none claims it. */
export function familyOf(relativeKey: string): KeyFamily | undefined {
  return KEY_FAMILIES.find((f) => f.pattern.test(relativeKey));
}

const str = z.string();
const expireAtMs = z.number().int().positive().optional();
const recordSchema = z.discriminatedUnion("type", [
  z.strictObject({ key: str, expireAtMs, type: z.literal("string"), value: str }),
  z.strictObject({ key: str, expireAtMs, type: z.literal("hash"), value: z.record(str, str) }),
  z.strictObject({ key: str, expireAtMs, type: z.literal("set"), value: z.array(str) }),
  z.strictObject({ key: str, expireAtMs, type: z.literal("list"), value: z.array(str) }),
  // scores as Redis prints them, so no precision is lost on the way
  z.strictObject({ key: str, expireAtMs, type: z.literal("zset"), value: z.array(z.tuple([str, str])) }),
  z.strictObject({
    key: str,
    expireAtMs,
    type: z.literal("stream"),
    value: z.array(z.tuple([str.regex(/^\d+-\d+$/), z.array(str)])),
    groups: z.array(str),
  }),
]);
export type BackupRecord = z.output<typeof recordSchema>;

const contentSchema = z.strictObject({
  stack: str.min(1),
  /** The prefix the keys were read under (restores go to the target stack's prefix). */
  prefix: str,
  takenAt: z.iso.datetime(),
  records: z.array(recordSchema),
  /** Keys under the prefix no family claims, left out. */
  skipped: z.number().int().min(0),
});
export type BackupContent = z.output<typeof contentSchema>;

const headerSchema = z.strictObject({
  format: z.literal(BACKUP_FORMAT),
  version: z.literal(BACKUP_VERSION),
  id: str.regex(/^[A-Za-z0-9_-]{1,64}$/),
  stack: str.min(1),
  takenAt: z.iso.datetime(),
  /** Id of the ring key that sealed the payload; null when it is not sealed. */
  sealedWith: str.nullable(),
  /** SHA-256 (hex) of the payload of an unsealed backup. */
  sha256: str.regex(/^[0-9a-f]{64}$/).optional(),
  payload: str,
});
export type BackupHeader = Omit<z.output<typeof headerSchema>, "payload">;

const associatedData = (id: string, stack: string) => `${BACKUP_FORMAT}:v${BACKUP_VERSION}:${id}:${stack}`;

/** A backup id: sortable by time, unique enough (`20261207T215316Z-3fa9c1`). */
export function backupId(nowMs: number, random: string): string {
  return `${new Date(nowMs)
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d+Z$/, "Z")}-${random}`;
}

/** The document text of a backup: sealed with the ring's current key when a ring is given. */
export function sealBackup(content: BackupContent, id: string, ring: KeyRing | undefined): string {
  const packed = gzipSync(Buffer.from(JSON.stringify(content), "utf8")).toString("base64");
  const header = { format: BACKUP_FORMAT, version: BACKUP_VERSION, id, stack: content.stack };
  const doc = ring
    ? {
        ...header,
        takenAt: content.takenAt,
        sealedWith: ring.currentId,
        payload: seal(ring, packed, associatedData(id, content.stack)),
      }
    : {
        ...header,
        takenAt: content.takenAt,
        sealedWith: null,
        sha256: createHash("sha256").update(packed).digest("hex"),
        payload: packed,
      };
  return `${JSON.stringify(doc)}\n`;
}

/** Read only the clear-text header (for listings); throws BackupRefused when the text is not a backup. */
export function backupHeader(text: string, where = "this object"): BackupHeader {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new BackupRefused(`${where} is not an aiorch backup (not JSON); was it truncated or overwritten?`);
  }
  const parsed = headerSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new BackupRefused(
      `${where} is not an aiorch backup of format ${BACKUP_FORMAT} v${BACKUP_VERSION}: ${issue.path.join(".") || "(document)"}: ${issue.message}`,
    );
  }
  const { payload: _payload, ...header } = parsed.data;
  return header;
}

/**
 * Check and open a backup document: the header, the seal or checksum, the content's shape. Throws a
 * BackupRefused naming what is wrong; returns only content that is whole.
 */
export function openBackup(
  text: string,
  ring: KeyRing | undefined,
  where = "this object",
): { header: BackupHeader; content: BackupContent } {
  const header = backupHeader(text, where);
  const { payload } = JSON.parse(text) as { payload: string };
  let packed: string;
  if (header.sealedWith !== null) {
    if (!ring)
      throw new BackupRefused(
        `backup ${header.id} is sealed with key "${header.sealedWith}"; set AIORCH_ENCRYPTION_KEYS to the stack's key ring (one that holds "${header.sealedWith}") to restore it`,
      );
    if (!ring.keys.has(header.sealedWith) || !isSealed(payload))
      throw new BackupRefused(
        `backup ${header.id} is sealed with key "${header.sealedWith}", which the key ring in AIORCH_ENCRYPTION_KEYS does not hold (keys: ${[...ring.keys.keys()].join(", ")}); use the ring of the stack that took it`,
      );
    try {
      packed = open(ring, payload, associatedData(header.id, header.stack));
    } catch {
      throw new BackupRefused(
        `backup ${header.id} does not open with key "${header.sealedWith}": it was corrupted or altered, or the ring's "${header.sealedWith}" is a different key than the one that sealed it`,
      );
    }
  } else {
    if (ring)
      throw new BackupRefused(
        `backup ${header.id} is not sealed, but this stack encrypts (AIORCH_ENCRYPTION_KEYS is set): refusing a backup anyone with bucket access could have written; if you trust it, restore it with AIORCH_ENCRYPTION_KEYS unset`,
      );
    if (createHash("sha256").update(payload).digest("hex") !== header.sha256)
      throw new BackupRefused(
        `backup ${header.id} is corrupted: its payload does not match its SHA-256; restore an older backup (aiorch backup list)`,
      );
    packed = payload;
  }
  let json: unknown;
  try {
    json = JSON.parse(gunzipSync(Buffer.from(packed, "base64")).toString("utf8"));
  } catch {
    throw new BackupRefused(`backup ${header.id}: its payload is not gzipped JSON; the backup is damaged`);
  }
  const parsed = contentSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new BackupRefused(
      `backup ${header.id}: content at ${issue.path.join(".") || "(root)"}: ${issue.message}; the backup is damaged`,
    );
  }
  const content = parsed.data;
  if (content.stack !== header.stack || content.takenAt !== header.takenAt)
    throw new BackupRefused(`backup ${header.id}: its header and content disagree; the backup was altered`);
  for (const record of content.records) {
    const family = familyOf(record.key);
    if (!family?.backedUp)
      throw new BackupRefused(
        `backup ${header.id} holds key "${record.key}", which is not one a backup keeps; refusing to write it`,
      );
  }
  return { header, content };
}
