/**
 * Per-key limits as atomic token buckets in Redis (Lua scripts on Redis' own clock, so limits hold across gateway
 * replicas). Requests per minute and tokens per minute are checked together: a request is admitted only if both
 * buckets have room, and then both are charged. Tokens are reserved at admission (max_tokens + a prompt estimate)
 * and settled to the real usage when the answer is complete.
 *
 * A key that is quiet on a replica (fewer than `HOT_RATE` admissions a second; once hot, fewer than half that)
 * costs one script call per admission and one per settlement, and its limits are exact. A busy ("hot") key takes a
 * slice of its buckets with the admission that finds the local slice empty: requests and tokens for about
 * `SLICE_TARGET_MS` of its current traffic, never more than `MAX_SLICE_SHARE` of a bucket. The replica admits from the slice without Redis and
 * settles into it; what is left is given back with the next take, or after `sliceMs` (1 s) at the latest.
 *
 * Error bound: slices are taken out of the shared buckets, so replicas together never admit more than the buckets
 * hold. The other way round, a request may be refused while up to `MAX_SLICE_SHARE` (5 %) of the key's requests
 * and tokens per minute sit unused in each other replica's slice, for at most `sliceMs`; tokens given back by
 * settlement on a hot key return to the shared bucket within `sliceMs` too. `x-ratelimit-remaining-*` on a
 * request admitted from a slice is the bucket level at the slice's take plus what is left of the slice.
 */
import type { Redis } from "ioredis";
import type { RedisKeys } from "../core/redis-keys";

/** A key with at least this many admissions a second on this replica is admitted from slices. */
const HOT_RATE = 20;
/** A slice holds about this long of the key's traffic… */
const SLICE_TARGET_MS = 250;
/** …but never more than this share of a bucket's capacity. */
const MAX_SLICE_SHARE = 0.05;

// Buckets refill continuously: capacity per 60 s. `level` is a bucket's content now.
const LEVEL = `
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
local function clamp(v, capacity, floor)
  if v > capacity then return capacity end
  if v < floor then return floor end
  return v
end
`;

// KEYS: rpm bucket, tpm bucket. ARGV: rpm capacity, tpm capacity, token cost, rpm slice wanted, tpm slice wanted,
// rpm given back, tpm given back (a replica's unused slice and settlements, applied first).
// Returns allowed, rpm left, tpm left, retry-after ms, rpm slice taken, tpm slice taken (slices only when allowed).
const ADMIT = `${LEVEL}
local rpm_cap = tonumber(ARGV[1])
local tpm_cap = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local r = clamp(level(KEYS[1], rpm_cap) + tonumber(ARGV[6]), rpm_cap, -rpm_cap)
local t = clamp(level(KEYS[2], tpm_cap) + tonumber(ARGV[7]), tpm_cap, -tpm_cap)
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
local slice_r = 0
local slice_t = 0
if allowed == 1 then
  r = r - 1
  t = t - cost
  slice_r = math.max(0, math.min(tonumber(ARGV[4]), math.floor(r)))
  slice_t = math.max(0, math.min(tonumber(ARGV[5]), math.floor(t)))
  r = r - slice_r
  t = t - slice_t
end
redis.call('HSET', KEYS[1], 'tokens', r, 'ts', now)
redis.call('HSET', KEYS[2], 'tokens', t, 'ts', now)
redis.call('PEXPIRE', KEYS[1], 120000)
redis.call('PEXPIRE', KEYS[2], 120000)
return {allowed, math.floor(r), math.floor(t), wait, slice_r, slice_t}
`;

// KEYS: rpm bucket, tpm bucket. ARGV: rpm capacity, tpm capacity, requests back, tokens back (positive gives back,
// negative charges: a settled overrun). Returns the tpm level.
const GIVE_BACK = `${LEVEL}
local rpm_cap = tonumber(ARGV[1])
local tpm_cap = tonumber(ARGV[2])
local back = {tonumber(ARGV[3]), tonumber(ARGV[4])}
local caps = {rpm_cap, tpm_cap}
local t = 0
for i = 1, 2 do
  if back[i] ~= 0 then
    local v = clamp(level(KEYS[i], caps[i]) + back[i], caps[i], -caps[i])
    redis.call('HSET', KEYS[i], 'tokens', v, 'ts', now)
    redis.call('PEXPIRE', KEYS[i], 120000)
    if i == 2 then t = v end
  end
end
return math.floor(t)
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
  aiorchAdmitSlice(
    rpmKey: string,
    tpmKey: string,
    rpm: number,
    tpm: number,
    cost: number,
    rpmSlice: number,
    tpmSlice: number,
    rpmBack: number,
    tpmBack: number,
  ): Promise<[number, number, number, number, number, number]>;
  aiorchGiveBack(
    rpmKey: string,
    tpmKey: string,
    rpm: number,
    tpm: number,
    rpmBack: number,
    tpmBack: number,
  ): Promise<number>;
};

/** One key's state on this replica: its slice, if it holds one, and its recent traffic. */
interface KeyState {
  rpmLimit: number;
  tpmLimit: number;
  /** Requests and tokens of the slice not used yet (tokens go negative when a settlement overran). */
  rpm: number;
  tpm: number;
  /** The replica holds a slice (or settlement credit) that it owes the buckets. */
  sliced: boolean;
  /** Until when the slice may be used; it is given back after. */
  until: number;
  /** Bucket levels after the last take, for the headers. */
  bucketRpm: number;
  bucketTpm: number;
  /** Admissions and reserved tokens in the current one-second window, and in the one before. */
  windowStart: number;
  count: number;
  tokens: number;
  lastCount: number;
  lastTokens: number;
  /** A take under way: other admissions wait for it rather than call Redis too. */
  taking: Promise<unknown> | undefined;
  /** The last take found the key hot (it then stays hot down to half of `HOT_RATE`). */
  hot: boolean;
}

export class RateLimiter {
  private readonly redis: LimitRedis;
  private readonly state = new Map<string, KeyState>();
  private readonly timer: NodeJS.Timeout;
  private readonly sliceMs: number;

  constructor(
    redis: Redis,
    private readonly keys: RedisKeys,
    private readonly options: { now?: () => number; sliceMs?: number } = {},
  ) {
    this.redis = redis as LimitRedis;
    if (typeof this.redis.aiorchAdmitSlice !== "function") {
      redis.defineCommand("aiorchAdmitSlice", { numberOfKeys: 2, lua: ADMIT });
      redis.defineCommand("aiorchGiveBack", { numberOfKeys: 2, lua: GIVE_BACK });
    }
    this.sliceMs = options.sliceMs ?? 1_000;
    this.timer = setInterval(() => this.sweep(), Math.max(50, this.sliceMs / 4));
    this.timer.unref();
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  /** Admit from the key's slice without a promise (the hot path), or undefined: then call `admit`. */
  admitLocal(keyId: string, limits: { rpm: number; tpm: number }, tokenCost: number): Admission | undefined {
    const s = this.state.get(keyId);
    if (!s || s.taking || s.rpmLimit !== limits.rpm || s.tpmLimit !== limits.tpm) return undefined;
    return this.fromSlice(s, Math.max(0, Math.ceil(tokenCost)));
  }

  async admit(keyId: string, limits: { rpm: number; tpm: number }, tokenCost: number): Promise<Admission> {
    const cost = Math.max(0, Math.ceil(tokenCost));
    let s = this.state.get(keyId);
    if (s && (s.rpmLimit !== limits.rpm || s.tpmLimit !== limits.tpm)) {
      // the key's limits changed: what it holds belongs to buckets of another size
      this.giveBack(keyId, s).catch(() => undefined);
      s = undefined;
    }
    if (!s) {
      s = {
        rpmLimit: limits.rpm,
        tpmLimit: limits.tpm,
        rpm: 0,
        tpm: 0,
        sliced: false,
        until: 0,
        bucketRpm: 0,
        bucketTpm: 0,
        windowStart: this.now(),
        count: 0,
        tokens: 0,
        lastCount: 0,
        lastTokens: 0,
        taking: undefined,
        hot: false,
      };
      this.state.set(keyId, s);
    }
    const local = this.fromSlice(s, cost);
    if (local) return local;
    if (s.taking) {
      await s.taking.catch(() => undefined);
      const after = this.fromSlice(s, cost);
      if (after) return after;
    }
    const taking = this.take(keyId, s, limits, cost);
    s.taking = taking;
    try {
      return await taking;
    } finally {
      if (s.taking === taking) s.taking = undefined;
    }
  }

  /** Admit from the key's slice, if it holds enough. */
  private fromSlice(s: KeyState, cost: number): Admission | undefined {
    const now = this.now();
    this.count(s, now, 0, 0);
    if (!s.sliced || now >= s.until || s.rpm < 1 || s.tpm < cost) return undefined;
    s.rpm -= 1;
    s.tpm -= cost;
    this.count(s, now, 1, cost);
    return {
      allowed: true,
      rpmLimit: s.rpmLimit,
      rpmRemaining: Math.max(0, Math.floor(s.bucketRpm + s.rpm)),
      tpmLimit: s.tpmLimit,
      tpmRemaining: Math.max(0, Math.floor(s.bucketTpm + s.tpm)),
      retryAfterMs: 0,
    };
  }

  /** Count admissions in one-second windows (the rate that decides whether a key is hot). */
  private count(s: KeyState, now: number, requests: number, tokens: number): void {
    const elapsed = now - s.windowStart;
    if (elapsed >= 1_000) {
      s.lastCount = elapsed < 2_000 ? s.count : 0;
      s.lastTokens = elapsed < 2_000 ? s.tokens : 0;
      s.count = 0;
      s.tokens = 0;
      s.windowStart = now;
    }
    s.count += requests;
    s.tokens += tokens;
  }

  /** One script call: give back the old slice, admit this request exactly, and take a new slice if the key is hot. */
  private async take(
    keyId: string,
    s: KeyState,
    limits: { rpm: number; tpm: number },
    cost: number,
  ): Promise<Admission> {
    const rate = Math.max(s.lastCount, s.count);
    // hysteresis: a key around the threshold would otherwise flip between slices and a call per request
    s.hot = rate >= (s.hot ? HOT_RATE / 2 : HOT_RATE);
    let rpmSlice = 0;
    let tpmSlice = 0;
    if (s.hot) {
      const tokenRate = Math.max(s.lastTokens, s.tokens);
      rpmSlice = Math.min(
        Math.floor(limits.rpm * MAX_SLICE_SHARE),
        Math.ceil((rate * SLICE_TARGET_MS) / 1_000),
      );
      tpmSlice = Math.min(
        Math.floor(limits.tpm * MAX_SLICE_SHARE),
        Math.ceil((tokenRate * SLICE_TARGET_MS) / 1_000),
      );
    }
    const rpmBack = s.rpm;
    const tpmBack = s.tpm;
    s.rpm -= rpmBack;
    s.tpm -= tpmBack;
    let result: [number, number, number, number, number, number];
    try {
      result = await this.redis.aiorchAdmitSlice(
        this.keys.rateBucket(keyId, "rpm"),
        this.keys.rateBucket(keyId, "tpm"),
        limits.rpm,
        limits.tpm,
        cost,
        rpmSlice,
        tpmSlice,
        rpmBack,
        tpmBack,
      );
    } catch (error) {
      s.rpm += rpmBack;
      s.tpm += tpmBack;
      throw error;
    }
    const [allowed, rpmLeft, tpmLeft, wait, rpmTaken, tpmTaken] = result;
    const now = this.now();
    s.bucketRpm = rpmLeft;
    s.bucketTpm = tpmLeft;
    if (rpmTaken > 0 || tpmTaken > 0) {
      s.rpm += rpmTaken;
      s.tpm += tpmTaken;
      s.sliced = true;
      s.until = now + this.sliceMs;
    } else if (s.rpm === 0 && s.tpm === 0) s.sliced = false; // nothing owed: settlements go straight to Redis
    if (allowed === 1) this.count(s, now, 1, cost);
    return {
      allowed: allowed === 1,
      rpmLimit: limits.rpm,
      rpmRemaining: Math.max(0, Math.floor(rpmLeft + s.rpm)),
      tpmLimit: limits.tpm,
      tpmRemaining: Math.max(0, Math.floor(tpmLeft + s.tpm)),
      retryAfterMs: wait,
    };
  }

  /**
   * Settle without a promise when that needs no Redis call (nothing to settle, or the key holds a slice: the
   * difference goes into it); false when `settle` must be called.
   */
  settleLocal(keyId: string, tpm: number, reserved: number, used: number): boolean {
    if (reserved === used) return true;
    const s = this.state.get(keyId);
    if (!s?.sliced || s.tpmLimit !== tpm) return false;
    s.tpm += reserved - used;
    return true;
  }

  /** Give back what was reserved but not used (or charge the overrun): into the key's slice when it holds one. */
  async settle(keyId: string, tpm: number, reserved: number, used: number): Promise<void> {
    if (this.settleLocal(keyId, tpm, reserved, used)) return;
    const s = this.state.get(keyId);
    await this.redis.aiorchGiveBack(
      this.keys.rateBucket(keyId, "rpm"),
      this.keys.rateBucket(keyId, "tpm"),
      s?.rpmLimit ?? 1,
      tpm,
      0,
      reserved - used,
    );
  }

  /** Return a key's slice (and settlement credit) to its buckets. */
  private async giveBack(keyId: string, s: KeyState): Promise<void> {
    const rpm = s.rpm;
    const tpm = s.tpm;
    s.rpm -= rpm;
    s.tpm -= tpm;
    s.sliced = false;
    if (rpm === 0 && tpm === 0) return;
    try {
      await this.redis.aiorchGiveBack(
        this.keys.rateBucket(keyId, "rpm"),
        this.keys.rateBucket(keyId, "tpm"),
        s.rpmLimit,
        s.tpmLimit,
        rpm,
        tpm,
      );
    } catch {
      // Redis away: keep owing it, the next sweep or take tries again
      s.rpm += rpm;
      s.tpm += tpm;
      s.sliced = true;
    }
  }

  /** Give back slices past their time; forget keys idle for two seconds. */
  private sweep(): void {
    const now = this.now();
    for (const [keyId, s] of this.state) {
      if (s.taking) continue;
      if (s.sliced && now >= s.until) this.giveBack(keyId, s).catch(() => undefined);
      else if (!s.sliced && now - s.windowStart >= 2_000) this.state.delete(keyId);
    }
  }

  /** Give every slice back (a closing replica leaves the buckets as if it had never taken them). */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await Promise.all(
      [...this.state].map(async ([keyId, s]) => {
        await s.taking?.catch(() => undefined);
        await this.giveBack(keyId, s);
      }),
    );
    this.state.clear();
  }
}

/** `x-ratelimit-*` headers in OpenAI's format (reset as a duration such as `1s` or `6m0s`). */
export function rateLimitHeaders(a: Admission): Record<string, string> {
  return {
    "x-ratelimit-limit-requests": String(a.rpmLimit),
    "x-ratelimit-remaining-requests": String(a.rpmRemaining),
    "x-ratelimit-reset-requests": duration(((a.rpmLimit - a.rpmRemaining) * 60_000) / a.rpmLimit),
    "x-ratelimit-limit-tokens": String(a.tpmLimit),
    "x-ratelimit-remaining-tokens": String(a.tpmRemaining),
    "x-ratelimit-reset-tokens": duration(((a.tpmLimit - a.tpmRemaining) * 60_000) / a.tpmLimit),
  };
}

/** A duration as OpenAI writes it: `1s`, `6m0s`. */
function duration(ms: number): string {
  const s = Math.ceil(ms / 1000);
  return s >= 60 ? `${Math.floor(s / 60)}m${s % 60}s` : `${s}s`;
}

/** A rough prompt size: about four characters a token, which is what English text averages. */
export function estimatePromptTokens(body: Record<string, unknown>): number {
  const chars = textLength(body.messages) + textLength(body.prompt) + textLength(body.input);
  return Math.ceil(chars / 4) + 8;
}

/** Characters of text in a prompt value: strings, arrays of them, and `content`/`text` of message parts. */
function textLength(v: unknown): number {
  if (typeof v === "string") return v.length;
  let chars = 0;
  if (Array.isArray(v)) for (const item of v) chars += textLength(item);
  else if (v !== null && typeof v === "object") {
    const o = v as Record<string, unknown>;
    chars += textLength(o.content) + textLength(o.text);
  }
  return chars;
}
