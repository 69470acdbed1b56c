/**
 * Per-key limits as atomic token buckets in Redis (Lua scripts on Redis' own clock, so limits hold across gateway
 * replicas). Requests per minute and tokens per minute are checked together: a request is admitted only if both
 * buckets have room, and then both are charged. Tokens are reserved at admission (max_tokens + a prompt estimate)
 * and settled to the real usage when the answer is complete.
 *
 * A key that is quiet on a replica (fewer than `HOT_RATE` admissions a second; once hot, fewer than half that), or
 * whose limits are too small to slice, costs one script call per admission and one per settlement, and its limits
 * are exact. A busy ("hot") key holds a slice of its buckets: requests and tokens for about `SLICE_TARGET_MS` of its
 * current traffic (at least `MIN_SLICE_REQUESTS` requests), never more than `MAX_SLICE_SHARE` of a bucket. The
 * replica admits from the slice without Redis and settles into it. When an admission leaves half the slice or less,
 * the next slice is taken in the background (a refill), so a busy key's requests do not wait on Redis at
 * all, however slow it is: at a few requests a second, one Redis round trip per request is a large share of the
 * time to first token. A refill also gives back settlement credit beyond `MAX_SLICE_SHARE`; what is left is given
 * back with the next take, or `sliceMs` (1 s) after the last take or refill at the latest.
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
const HOT_RATE = 3;
/** A slice holds about this long of the key's traffic… */
const SLICE_TARGET_MS = 250;
/** …and at least this many requests (one to admit while the refill started at half of it is on its way)… */
const MIN_SLICE_REQUESTS = 2;
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
// rpm given back, tpm given back (a replica's unused slice and settlements, applied first), requests to admit
// (1, or 0 for a refill that only takes a slice).
// Returns allowed, rpm left, tpm left, retry-after ms, rpm slice taken, tpm slice taken (slices only when allowed).
const ADMIT = `${LEVEL}
local rpm_cap = tonumber(ARGV[1])
local tpm_cap = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local r = clamp(level(KEYS[1], rpm_cap) + tonumber(ARGV[6]), rpm_cap, -rpm_cap)
local t = clamp(level(KEYS[2], tpm_cap) + tonumber(ARGV[7]), tpm_cap, -tpm_cap)
local allowed = 1
local wait = 0
local admit = tonumber(ARGV[8])
if admit == 1 and r < 1 then
  allowed = 0
  wait = math.max(wait, math.ceil((1 - r) * 60000 / rpm_cap))
end
-- A request larger than the whole bucket is admitted against a full bucket and drives it negative,
-- so it pays back before the next one instead of being refused forever.
local need = math.min(cost, tpm_cap)
if admit == 1 and t < need then
  allowed = 0
  wait = math.max(wait, math.ceil((need - t) * 60000 / tpm_cap))
end
local slice_r = 0
local slice_t = 0
if allowed == 1 then
  r = r - admit
  t = t - cost
  slice_r = math.max(0, math.min(tonumber(ARGV[4]), math.floor(r)))
  slice_t = math.max(0, math.min(tonumber(ARGV[5]), math.floor(t)))
  -- tokens without a request to spend them on would only be held back from the other replicas
  if slice_r == 0 then slice_t = 0 end
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

/** The ADMIT script's answer: allowed, rpm left, tpm left, retry-after ms, rpm slice taken, tpm slice taken. */
type AdmitReply = [number, number, number, number, number, number];

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
    requests: 0 | 1,
  ): Promise<AdmitReply>;
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
  /** A refill under way (the slice stays usable meanwhile). */
  refilling: Promise<unknown> | undefined;
  /** The slice sizes the last take asked for; a slice under half of them is refilled. */
  wantRpm: number;
  wantTpm: number;
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
    const admission = this.fromSlice(s, Math.max(0, Math.ceil(tokenCost)));
    if (admission) this.refillIfLow(keyId, s);
    return admission;
  }

  async admit(keyId: string, limits: { rpm: number; tpm: number }, tokenCost: number): Promise<Admission> {
    const cost = Math.max(0, Math.ceil(tokenCost));
    let s = this.state.get(keyId);
    if (s && (s.rpmLimit !== limits.rpm || s.tpmLimit !== limits.tpm)) {
      // the key's limits changed: what it holds (once a take or refill under way has landed) goes back
      const old = s;
      (async () => {
        await old.taking?.catch(() => undefined);
        await old.refilling;
        await this.giveBack(keyId, old);
      })().catch(() => undefined);
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
        refilling: undefined,
        wantRpm: 0,
        wantTpm: 0,
        hot: false,
      };
      this.state.set(keyId, s);
    }
    const local = this.fromSlice(s, cost);
    if (local) {
      this.refillIfLow(keyId, s);
      return local;
    }
    // wait while a take or refill is under way (another may start as one lands): one replica's takes never overlap
    for (let pending = s.taking ?? s.refilling; pending; pending = s.taking ?? s.refilling) {
      await pending.catch(() => undefined);
      const after = this.fromSlice(s, cost);
      if (after) {
        this.refillIfLow(keyId, s);
        return after;
      }
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
    const [rpmSlice, tpmSlice] = s.hot ? this.sliceWanted(s, cost) : [0, 0];
    s.wantRpm = rpmSlice;
    s.wantTpm = tpmSlice;
    const rpmBack = s.rpm;
    const tpmBack = s.tpm;
    s.rpm -= rpmBack;
    s.tpm -= tpmBack;
    let result: AdmitReply;
    try {
      result = await this.admitSlice(keyId, s, 1, cost, rpmSlice, tpmSlice, rpmBack, tpmBack);
    } catch (error) {
      s.rpm += rpmBack;
      s.tpm += tpmBack;
      throw error;
    }
    const [allowed, rpmLeft, tpmLeft, wait] = result;
    // nothing owed: settlements go straight to Redis
    if (!this.landSlice(s, result) && s.rpm === 0 && s.tpm === 0) s.sliced = false;
    if (allowed === 1) this.count(s, this.now(), 1, cost);
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
   * The ADMIT script for a key (its state's limits are the ones asked for): give back `rpmBack`/`tpmBack`, admit
   * `requests` (1, or 0 for a refill) costing `cost` tokens, and take slices of up to `rpmSlice`/`tpmSlice`.
   */
  private admitSlice(
    keyId: string,
    s: KeyState,
    requests: 0 | 1,
    cost: number,
    rpmSlice: number,
    tpmSlice: number,
    rpmBack: number,
    tpmBack: number,
  ): Promise<AdmitReply> {
    return this.redis.aiorchAdmitSlice(
      this.keys.rateBucket(keyId, "rpm"),
      this.keys.rateBucket(keyId, "tpm"),
      s.rpmLimit,
      s.tpmLimit,
      cost,
      rpmSlice,
      tpmSlice,
      rpmBack,
      tpmBack,
      requests,
    );
  }

  /** Keep what a take or refill brought: the bucket levels (for the headers) and the slice; whether it took one. */
  private landSlice(s: KeyState, [, rpmLeft, tpmLeft, , rpmTaken, tpmTaken]: AdmitReply): boolean {
    s.bucketRpm = rpmLeft;
    s.bucketTpm = tpmLeft;
    if (rpmTaken <= 0 && tpmTaken <= 0) return false;
    s.rpm += rpmTaken;
    s.tpm += tpmTaken;
    s.sliced = true;
    s.until = this.now() + this.sliceMs;
    return true;
  }

  /**
   * Requests and tokens a slice should hold: `SLICE_TARGET_MS` of the key's traffic, at least `MIN_SLICE_REQUESTS`
   * requests (and their tokens at the average cost), at most `MAX_SLICE_SHARE` of each bucket. None at all when
   * the request bucket cannot spare one: a slice of tokens alone would admit nothing.
   */
  private sliceWanted(s: KeyState, cost: number): [number, number] {
    const rate = Math.max(s.lastCount, s.count);
    const tokenRate = Math.max(s.lastTokens, s.tokens);
    const requests = Math.max(MIN_SLICE_REQUESTS, Math.ceil((rate * SLICE_TARGET_MS) / 1_000));
    const averageCost = rate > 0 ? tokenRate / rate : cost;
    const rpmSlice = Math.min(Math.floor(s.rpmLimit * MAX_SLICE_SHARE), requests);
    if (rpmSlice < 1) return [0, 0];
    const tpmSlice = Math.min(
      Math.floor(s.tpmLimit * MAX_SLICE_SHARE),
      Math.ceil(Math.max((tokenRate * SLICE_TARGET_MS) / 1_000, averageCost * rpmSlice)),
    );
    return [rpmSlice, tpmSlice];
  }

  /**
   * After an admission from the slice: when what is left is half of the slice's size or less, take the next one in
   * the background so the key's next requests find it here. What a replica holds stays within `MAX_SLICE_SHARE`.
   */
  private refillIfLow(keyId: string, s: KeyState): void {
    if (!s.hot || s.taking || s.refilling) return;
    if (s.rpm > s.wantRpm / 2 && s.tpm > s.wantTpm / 2) return;
    // the rate before the admission just counted, as `take` sees it
    if (Math.max(s.lastCount, s.count - 1) < HOT_RATE / 2) {
      s.hot = false; // cooled down: the slice runs out or expires, and admissions are exact again
      return;
    }
    const [rpmWanted, tpmWanted] = this.sliceWanted(s, 0);
    const rpmShare = Math.floor(s.rpmLimit * MAX_SLICE_SHARE);
    const tpmShare = Math.floor(s.tpmLimit * MAX_SLICE_SHARE);
    const rpmSlice = Math.max(0, Math.min(rpmWanted, rpmShare - s.rpm));
    const tpmSlice = Math.max(0, Math.min(tpmWanted, tpmShare - s.tpm));
    if (rpmSlice < 1) return;
    // settlement credit beyond the share goes back with the refill rather than wait for the next take
    const tpmBack = Math.max(0, Math.floor(s.tpm - tpmShare));
    s.tpm -= tpmBack;
    s.wantRpm = rpmWanted;
    s.wantTpm = tpmWanted;
    const refilling = this.admitSlice(keyId, s, 0, 0, rpmSlice, tpmSlice, 0, tpmBack)
      .then((result) => {
        this.landSlice(s, result);
      })
      .catch(() => {
        s.tpm += tpmBack; // Redis away: still owed; the next admission that finds the slice empty gets the error
      })
      .finally(() => {
        if (s.refilling === refilling) s.refilling = undefined;
      });
    s.refilling = refilling;
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
      if (s.taking || s.refilling) continue;
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
        await s.refilling;
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
  // `instructions`: the Responses API's system prompt; query/documents (rerank) and text_1/text_2 (score)
  const chars =
    textLength(body.messages) +
    textLength(body.prompt) +
    textLength(body.input) +
    textLength(body.instructions) +
    textLength(body.query) +
    textLength(body.documents) +
    textLength(body.text_1) +
    textLength(body.text_2);
  return Math.ceil(chars / 4) + 8;
}

/**
 * How deep the estimate looks into a prompt value. A parsed body is at most 64 levels deep (validate.ts's
 * MAX_JSON_DEPTH, checked before parsing); this bound keeps a value built in code from overflowing the stack.
 */
const MAX_TEXT_DEPTH = 64;

/** Characters of text in a prompt value: strings, arrays of them, and `content`/`text` of message parts. */
function textLength(v: unknown, depth = 0): number {
  if (typeof v === "string") return v.length;
  if (depth === MAX_TEXT_DEPTH) return 0;
  let chars = 0;
  if (Array.isArray(v)) for (const item of v) chars += textLength(item, depth + 1);
  else if (v !== null && typeof v === "object") {
    const o = v as Record<string, unknown>;
    chars += textLength(o.content, depth + 1) + textLength(o.text, depth + 1);
  }
  return chars;
}
