/**
 * API keys: created with ≥128 bits of randomness and shown once; only their SHA-256 is stored. Lookups go through
 * a short in-process cache so authentication is not a Redis round trip per request; a revocation is published so
 * every gateway drops the key at once (the cache TTL bounds it anyway). Shared: the gateway and the MCP server verify
 * keys, the CLI and MCP acting tools create, rotate and revoke them.
 */
import { hash, randomBytes, timingSafeEqual } from "node:crypto";
import type { Redis } from "ioredis";
import { type ApiKeyRecord, isKeyScope, type KeyScope } from "./protocol";
import type { RedisKeys } from "./redis-keys";
import { RefreshAhead } from "./refresh-ahead";
import { newStackEpoch } from "./stack-epoch";

const KEY_PREFIX = "sk-aiorch-";
const PREFIX_SHOWN = KEY_PREFIX.length + 6;

export const hashApiKey = (raw: string): string => hash("sha256", raw, "hex"); // one-shot: no Hash object per request

export interface CreateKeyOptions {
  readonly name: string;
  readonly models?: readonly string[];
  readonly rpm?: number;
  readonly tpm?: number;
  readonly monthlyBudgetUsd?: number;
  readonly expiresAtMs?: number;
  readonly nowMs?: number;
  /** @default "inference" */
  readonly scope?: KeyScope;
}

function encode(record: ApiKeyRecord): Record<string, string> {
  return {
    id: record.id,
    name: record.name,
    prefix: record.prefix,
    hash: record.hash,
    models: JSON.stringify(record.models),
    rpm: record.rpm === undefined ? "" : String(record.rpm),
    tpm: record.tpm === undefined ? "" : String(record.tpm),
    monthlyBudgetUsd: record.monthlyBudgetUsd === undefined ? "" : String(record.monthlyBudgetUsd),
    expiresAtMs: record.expiresAtMs === undefined ? "" : String(record.expiresAtMs),
    revoked: record.revoked ? "1" : "0",
    createdAtMs: String(record.createdAtMs),
    scope: record.scope,
  };
}

const optionalNumber = (v: string | undefined): number | undefined => (v ? Number(v) : undefined);

function decode(fields: Record<string, string>): ApiKeyRecord | undefined {
  if (!fields.id || !fields.hash) return undefined;
  let models: string[] = [];
  try {
    const parsed: unknown = JSON.parse(fields.models ?? "[]");
    if (Array.isArray(parsed)) models = parsed.filter((m): m is string => typeof m === "string");
  } catch {
    models = [];
  }
  return {
    id: fields.id,
    name: fields.name ?? "",
    prefix: fields.prefix ?? "",
    hash: fields.hash,
    models,
    rpm: optionalNumber(fields.rpm),
    tpm: optionalNumber(fields.tpm),
    monthlyBudgetUsd: optionalNumber(fields.monthlyBudgetUsd),
    expiresAtMs: optionalNumber(fields.expiresAtMs),
    revoked: fields.revoked === "1",
    createdAtMs: Number(fields.createdAtMs ?? 0),
    // keys created before scopes existed have no field: they were OpenAI API keys
    scope: fields.scope && isKeyScope(fields.scope) ? fields.scope : "inference",
  };
}

export class ApiKeyStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
  ) {}

  /** Create a key; the returned `key` is the only time the raw key exists outside the client. */
  async create(options: CreateKeyOptions): Promise<{ key: string; record: ApiKeyRecord }> {
    if (!options.name.trim()) throw new Error("a key needs a --name");
    const raw = `${KEY_PREFIX}${randomBytes(24).toString("base64url")}`; // 192 bits
    const record: ApiKeyRecord = {
      id: `key_${randomBytes(6).toString("hex")}`,
      name: options.name.trim(),
      prefix: raw.slice(0, PREFIX_SHOWN),
      hash: hashApiKey(raw),
      models: [...(options.models ?? [])],
      rpm: options.rpm,
      tpm: options.tpm,
      monthlyBudgetUsd: options.monthlyBudgetUsd,
      expiresAtMs: options.expiresAtMs,
      revoked: false,
      createdAtMs: options.nowMs ?? Date.now(),
      scope: options.scope ?? "inference",
    };
    await this.redis
      .multi()
      .hset(this.keys.apiKey(record.hash), encode(record))
      .hset(this.keys.apiKeyIds, record.id, record.hash)
      // the stack's first key starts its epoch (core/stack-epoch.ts: how a lost Redis is told from a new stack)
      .set(this.keys.stackEpoch, newStackEpoch(), "NX")
      .exec();
    return { key: raw, record };
  }

  async list(): Promise<ApiKeyRecord[]> {
    const ids = await this.redis.hgetall(this.keys.apiKeyIds);
    const pipeline = this.redis.pipeline();
    for (const hash of Object.values(ids)) pipeline.hgetall(this.keys.apiKey(hash));
    const results = (await pipeline.exec()) ?? [];
    return results
      .map(([, fields]) => decode(fields as Record<string, string>))
      .filter((r): r is ApiKeyRecord => r !== undefined)
      .sort((a, b) => a.createdAtMs - b.createdAtMs);
  }

  /**
   * Rotate a key: a new key with the same name, scope, limits and budget is created (returned once), and the old
   * one keeps working until `graceMs` from now, so clients can switch without an outage.
   */
  async rotate(
    id: string,
    graceMs: number,
    nowMs = Date.now(),
  ): Promise<{ key: string; record: ApiKeyRecord; oldExpiresAtMs: number } | undefined> {
    const hash = await this.redis.hget(this.keys.apiKeyIds, id);
    const old = hash ? await this.byHash(hash) : undefined;
    if (!old || old.revoked) return undefined;
    const created = await this.create({
      name: old.name,
      models: old.models,
      rpm: old.rpm,
      tpm: old.tpm,
      monthlyBudgetUsd: old.monthlyBudgetUsd,
      expiresAtMs: old.expiresAtMs,
      nowMs,
      scope: old.scope,
    });
    const oldExpiresAtMs = Math.min(old.expiresAtMs ?? Number.POSITIVE_INFINITY, nowMs + graceMs);
    await this.redis.hset(
      this.keys.apiKey(old.hash),
      "expiresAtMs",
      String(oldExpiresAtMs),
      "rotatedTo",
      created.record.id,
    );
    await this.redis.publish(this.keys.apiKeysChannel, old.hash);
    return { ...created, oldExpiresAtMs };
  }

  /** Revoke by id; returns false when there is no such key. */
  async revoke(id: string): Promise<boolean> {
    const hash = await this.redis.hget(this.keys.apiKeyIds, id);
    if (!hash) return false;
    await this.redis.hset(this.keys.apiKey(hash), "revoked", "1");
    await this.redis.publish(this.keys.apiKeysChannel, hash);
    return true;
  }

  async byHash(hash: string): Promise<ApiKeyRecord | undefined> {
    return decode(await this.redis.hgetall(this.keys.apiKey(hash)));
  }
}

/** Why a key was refused, as a bounded label (the auth-failure metric's `reason`). */
export type AuthFailure = "missing" | "invalid" | "revoked" | "expired";

export type AuthResult =
  | { ok: true; key: ApiKeyRecord }
  | { ok: false; reason: string; failure: AuthFailure };

/**
 * Verifies bearer keys against the store with a bounded TTL cache (negative answers cached briefly too, so a
 * flood of bad keys does not become a flood of Redis reads).
 */
export class ApiKeyVerifier {
  /**
   * Judged answers by key hash. The stored hash is compared in constant time once, when an entry is filled; a hit
   * then only checks the key's expiry, and hands out the same answer object (nothing allocated per request).
   */
  private readonly cache = new Map<string, CachedAuth>();
  /** Revocations seen: a read that started before the latest one is not cached. */
  private invalidations = 0;
  private readonly refreshAhead = new RefreshAhead<string>();
  private readonly reread = (hash: string) => this.read(hash, (this.options.now ?? Date.now)());

  constructor(
    private readonly store: ApiKeyStore,
    private readonly options: {
      ttlMs?: number;
      negativeTtlMs?: number;
      maxEntries?: number;
      now?: () => number;
    } = {},
  ) {}

  /** Drop a key from the cache (a revocation published by another process). */
  invalidate(hash: string): void {
    this.cache.delete(hash);
    this.invalidations += 1;
  }

  /** The answer without a promise when no Redis read is needed (the key is cached, or malformed); else undefined. */
  verifyCached(raw: string | undefined): AuthResult | undefined {
    const now = (this.options.now ?? Date.now)();
    const found = this.lookup(raw, now);
    return typeof found === "string" ? undefined : found;
  }

  async verify(raw: string | undefined): Promise<AuthResult> {
    const now = (this.options.now ?? Date.now)();
    const hash = this.lookup(raw, now);
    if (typeof hash !== "string") return hash;
    const result = await this.read(hash, now);
    return expired(result, now) ?? result;
  }

  /** Read and judge a key's record, and cache the answer (unless a revocation arrived meanwhile). */
  private async read(hash: string, now: number): Promise<AuthResult> {
    const invalidations = this.invalidations;
    const record = await this.store.byHash(hash);
    const result = this.judge(record, hash);
    if (invalidations !== this.invalidations) return result; // may predate the revocation: use once, keep not
    if (!this.cache.has(hash) && this.cache.size >= (this.options.maxEntries ?? 10_000)) {
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
    this.cache.set(hash, { result, at: now });
    return result;
  }

  /** The answer from what is known without Redis, or the key's hash when its record must be read. */
  private lookup(raw: string | undefined, now: number): AuthResult | string {
    if (!raw)
      return {
        ok: false,
        reason: "Missing API key: send it as 'Authorization: Bearer sk-…'",
        failure: "missing",
      };
    if (!raw.startsWith(KEY_PREFIX) || raw.length > 200)
      return { ok: false, reason: "Incorrect API key provided", failure: "invalid" };
    const hash = hashApiKey(raw);
    const cached = this.cache.get(hash);
    if (!cached) return hash;
    const age = now - cached.at;
    if (!cached.result.ok) return age >= (this.options.negativeTtlMs ?? 1_000) ? hash : cached.result;
    // a key in use is read again in the background before its entry expires (refusals just expire)
    if (!this.refreshAhead.serve(hash, age, this.options.ttlMs ?? 5_000, this.reread)) return hash;
    return expired(cached.result, now) ?? cached.result;
  }

  /** The answer for a record, apart from its expiry (which depends on the time of each request). */
  private judge(record: ApiKeyRecord | undefined, hash: string): AuthResult {
    // The lookup is by hash; comparing the stored hash in constant time keeps a corrupted entry from matching.
    if (
      !record ||
      record.hash.length !== hash.length ||
      !timingSafeEqual(Buffer.from(record.hash, "hex"), Buffer.from(hash, "hex"))
    ) {
      return { ok: false, reason: "Incorrect API key provided", failure: "invalid" };
    }
    if (record.revoked) return { ok: false, reason: "This API key has been revoked", failure: "revoked" };
    return { ok: true, key: record };
  }
}

interface CachedAuth {
  readonly result: AuthResult;
  /** When it was read from Redis; a refusal is kept for a shorter time than a valid key. */
  readonly at: number;
}

/** The refusal for a valid key past its expiry date at `now`, or undefined. */
function expired(result: AuthResult, now: number): AuthResult | undefined {
  if (!result.ok) return undefined;
  const until = result.key.expiresAtMs;
  return until !== undefined && now >= until
    ? { ok: false, reason: "This API key has expired", failure: "expired" }
    : undefined;
}
