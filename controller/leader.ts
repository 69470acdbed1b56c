/**
 * Leader election through a Redis lock with a fencing token. One controller acts; a second replica stands by
 * and takes over when the lock lapses. Every registry write is fenced: a leader that paused past its lease and
 * lost the lock cannot write over the new leader's decisions.
 */
import type { Redis } from "ioredis";
import type { RedisKeys } from "../core/redis-keys";

// KEYS: lock, fence. ARGV: holder, ttl ms. Returns the new fence when acquired, 0 otherwise.
const ACQUIRE = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return tonumber(redis.call('GET', KEYS[2]) or '0')
end
return 0
`;

// KEYS: lock. ARGV: holder, ttl ms. Returns 1 while we still hold it.
const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`;

// KEYS: lock. ARGV: holder.
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

type LeaderRedis = Redis & {
  aiorchAcquire(lock: string, fence: string, holder: string, ttl: number): Promise<number>;
  aiorchRenew(lock: string, holder: string, ttl: number): Promise<number>;
  aiorchRelease(lock: string, holder: string): Promise<number>;
};

export class LeaderElection {
  private readonly redis: LeaderRedis;
  private fenceToken = 0;

  constructor(
    redis: Redis,
    private readonly keys: RedisKeys,
    readonly holder: string,
    private readonly ttlMs = 10_000,
  ) {
    this.redis = redis as LeaderRedis;
    if (typeof this.redis.aiorchAcquire !== "function") {
      redis.defineCommand("aiorchAcquire", { numberOfKeys: 2, lua: ACQUIRE });
      redis.defineCommand("aiorchRenew", { numberOfKeys: 1, lua: RENEW });
      redis.defineCommand("aiorchRelease", { numberOfKeys: 1, lua: RELEASE });
    }
  }

  /** The fencing token of our leadership (0 while we are not the leader). */
  get fence(): number {
    return this.fenceToken;
  }

  get isLeader(): boolean {
    return this.fenceToken > 0;
  }

  /** Try to become (or stay) leader; returns whether we are. Call every ttl/3. */
  async tick(): Promise<boolean> {
    if (this.fenceToken > 0) {
      const held = await this.redis.aiorchRenew(this.keys.leaderLock, this.holder, this.ttlMs);
      if (held === 1) return true;
      this.fenceToken = 0; // lost it (paused too long); someone else may lead now
    }
    this.fenceToken = await this.redis.aiorchAcquire(
      this.keys.leaderLock,
      this.keys.leaderFence,
      this.holder,
      this.ttlMs,
    );
    return this.fenceToken > 0;
  }

  async release(): Promise<void> {
    if (this.fenceToken > 0) await this.redis.aiorchRelease(this.keys.leaderLock, this.holder);
    this.fenceToken = 0;
  }
}

export class FencedOut extends Error {
  constructor() {
    super("another controller became leader; this one stops writing");
    this.name = "FencedOut";
  }
}
