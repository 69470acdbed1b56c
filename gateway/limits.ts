/**
 * Per-key limits as atomic token buckets in Redis (one Lua script per admission, Redis' own clock, so limits
 * hold across gateway replicas). Requests per minute and tokens per minute are checked together: a request is
 * admitted only if both buckets have room, and then both are charged. Tokens are reserved at admission
 * (max_tokens + a prompt estimate) and settled to the real usage when the answer is complete.
 */
import type { Redis } from "ioredis";
import type { RedisKeys } from "../core/redis-keys";

// KEYS: rpm bucket, tpm bucket. ARGV: rpm capacity, tpm capacity, token cost.
// Buckets refill continuously: capacity per 60 s. Returns allowed, rpm left, tpm left, retry-after ms.
const ADMIT = `
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local function level(key, capacity)
  local b = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(b[1])
  local ts = tonumber(b[2])
  if tokens == nil or ts == nil then return capacity end
  local refilled = tokens + (now - ts) * capacity / 60000
  if refilled > capacity then refilled = capacity end
  return refilled
end
local rpm_cap = tonumber(ARGV[1])
local tpm_cap = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local r = level(KEYS[1], rpm_cap)
local t = level(KEYS[2], tpm_cap)
local allowed = 1
local wait = 0
if r < 1 then
  allowed = 0
  wait = math.max(wait, math.ceil((1 - r) * 60000 / rpm_cap))
end
-- A request larger than the whole bucket is admitted against a full bucket and drives it negative,
-- so it pays back before the next one instead of being refused forever.
local need = math.min(cost, tpm_cap)
if t < need then
  allowed = 0
  wait = math.max(wait, math.ceil((need - t) * 60000 / tpm_cap))
end
if allowed == 1 then
  r = r - 1
  t = t - cost
end
redis.call('HSET', KEYS[1], 'tokens', r, 'ts', now)
redis.call('HSET', KEYS[2], 'tokens', t, 'ts', now)
redis.call('PEXPIRE', KEYS[1], 120000)
redis.call('PEXPIRE', KEYS[2], 120000)
return {allowed, math.floor(r), math.floor(t), wait}
`;

// KEYS: tpm bucket. ARGV: tpm capacity, delta (reserved − used; positive gives tokens back).
const SETTLE = `
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local cap = tonumber(ARGV[1])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1]) or cap
local ts = tonumber(b[2]) or now
tokens = tokens + (now - ts) * cap / 60000 + tonumber(ARGV[2])
if tokens > cap then tokens = cap end
if tokens < -cap then tokens = -cap end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
redis.call('PEXPIRE', KEYS[1], 120000)
return math.floor(tokens)
`;

export interface Admission {
  readonly allowed: boolean;
  readonly rpmLimit: number;
  readonly rpmRemaining: number;
  readonly tpmLimit: number;
  readonly tpmRemaining: number;
  /** How long until the request would fit, ms (0 when allowed). */
  readonly retryAfterMs: number;
}

type LimitRedis = Redis & {
  aiorchAdmit(
    rpmKey: string,
    tpmKey: string,
    rpm: number,
    tpm: number,
    cost: number,
  ): Promise<[number, number, number, number]>;
  aiorchSettle(tpmKey: string, tpm: number, delta: number): Promise<number>;
};

export class RateLimiter {
  private readonly redis: LimitRedis;

  constructor(
    redis: Redis,
    private readonly keys: RedisKeys,
  ) {
    this.redis = redis as LimitRedis;
    if (typeof this.redis.aiorchAdmit !== "function") {
      redis.defineCommand("aiorchAdmit", { numberOfKeys: 2, lua: ADMIT });
      redis.defineCommand("aiorchSettle", { numberOfKeys: 1, lua: SETTLE });
    }
  }

  async admit(keyId: string, limits: { rpm: number; tpm: number }, tokenCost: number): Promise<Admission> {
    const [allowed, rpmRemaining, tpmRemaining, wait] = await this.redis.aiorchAdmit(
      this.keys.rateBucket(keyId, "rpm"),
      this.keys.rateBucket(keyId, "tpm"),
      limits.rpm,
      limits.tpm,
      Math.max(0, Math.ceil(tokenCost)),
    );
    return {
      allowed: allowed === 1,
      rpmLimit: limits.rpm,
      rpmRemaining: Math.max(0, rpmRemaining),
      tpmLimit: limits.tpm,
      tpmRemaining: Math.max(0, tpmRemaining),
      retryAfterMs: wait,
    };
  }

  /** Give back what was reserved but not used (or charge the overrun). */
  async settle(keyId: string, tpm: number, reserved: number, used: number): Promise<void> {
    if (reserved === used) return;
    await this.redis.aiorchSettle(this.keys.rateBucket(keyId, "tpm"), tpm, reserved - used);
  }
}

/** `x-ratelimit-*` headers in OpenAI's format (reset as a duration such as `1s` or `6m0s`). */
export function rateLimitHeaders(a: Admission): Record<string, string> {
  const duration = (ms: number) => {
    const s = Math.ceil(ms / 1000);
    return s >= 60 ? `${Math.floor(s / 60)}m${s % 60}s` : `${s}s`;
  };
  return {
    "x-ratelimit-limit-requests": String(a.rpmLimit),
    "x-ratelimit-remaining-requests": String(a.rpmRemaining),
    "x-ratelimit-reset-requests": duration(((a.rpmLimit - a.rpmRemaining) * 60_000) / a.rpmLimit),
    "x-ratelimit-limit-tokens": String(a.tpmLimit),
    "x-ratelimit-remaining-tokens": String(a.tpmRemaining),
    "x-ratelimit-reset-tokens": duration(((a.tpmLimit - a.tpmRemaining) * 60_000) / a.tpmLimit),
  };
}

/** A rough prompt size: about four characters a token, which is what English text averages. */
export function estimatePromptTokens(body: Record<string, unknown>): number {
  let chars = 0;
  const add = (v: unknown): void => {
    if (typeof v === "string") chars += v.length;
    else if (Array.isArray(v)) for (const item of v) add(item);
    else if (v !== null && typeof v === "object") {
      const o = v as Record<string, unknown>;
      add(o.content);
      add(o.text);
    }
  };
  add(body.messages);
  add(body.prompt);
  add(body.input);
  return Math.ceil(chars / 4) + 8;
}
