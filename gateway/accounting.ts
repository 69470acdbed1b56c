/**
 * What a gateway replica writes to Redis about the requests it serves, batched so that serving a request is not a
 * Redis round trip:
 *
 * - `CounterBatch`: spend and request counters (`HINCRBY` of the month's spend hash) add up in memory and go out
 *   in one `MULTI` every `flushMs` and on close — totals are the exact sums of the per-request values, only later.
 * - `InflightBoard`: requests in flight per backend worker, as one member per replica and worker in the model's
 *   `inflight` sorted set (`<workerId>|<replicaId>|<count>`, scored by expiry, see `core/redis-keys.ts`). A worker
 *   that becomes busy on this replica is published at once, so the controller never drains a worker it cannot see
 *   working; counts are refreshed every `refreshMs`, and a worker stays published as busy (count ≥ 1) until a whole
 *   refresh period passed without a request on it. The expiry score (`ttlMs` ahead) is renewed on every refresh, so
 *   the members of a replica that dies fall out by score; a replica that closes removes its own.
 */
import type { Redis } from "ioredis";
import { inflightMember } from "../core/protocol";
import type { RedisKeys } from "../core/redis-keys";

export class CounterBatch {
  /** Redis hash → field → increment not yet written. */
  private pending = new Map<string, Map<string, number>>();
  private readonly timer: NodeJS.Timeout;
  private flushing: Promise<void> | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly options: { flushMs?: number; onError?: (error: Error) => void } = {},
  ) {
    this.timer = setInterval(() => void this.flush(), options.flushMs ?? 500);
    this.timer.unref();
  }

  /** Add `by` to `field` of the hash `key` (written with the next flush). */
  incr(key: string, field: string, by: number): void {
    let fields = this.pending.get(key);
    if (!fields) {
      fields = new Map();
      this.pending.set(key, fields);
    }
    fields.set(field, (fields.get(field) ?? 0) + by);
  }

  /**
   * Write everything pending in one MULTI. A failed write (Redis away) keeps the increments for the next flush,
   * so nothing is lost while Redis restarts.
   */
  flush(): Promise<void> {
    // one write at a time: increments made meanwhile wait for the next
    this.flushing ??= this.write().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  private async write(): Promise<void> {
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    const multi = this.redis.multi();
    for (const [key, fields] of batch) for (const [field, by] of fields) multi.hincrby(key, field, by);
    try {
      const results = await multi.exec();
      if (!results) throw new Error("the spend counters' transaction was discarded");
    } catch (error) {
      for (const [key, fields] of batch) for (const [field, by] of fields) this.incr(key, field, by);
      this.options.onError?.(error as Error);
    }
  }

  /** Stop the timer and write what is pending (a closing replica loses nothing). */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flushing;
    await this.flush();
  }
}

interface Busy {
  readonly model: string;
  readonly workerId: string;
  /** Requests in flight now. */
  current: number;
  /** A request ran at some point since the last refresh. */
  active: boolean;
  /** The member this replica last wrote for the worker, if any. */
  published: string | undefined;
}

export class InflightBoard {
  private readonly busy = new Map<string, Busy>();
  private readonly timer: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    /** Identifies this replica in the members it writes. */
    private readonly replicaId: string,
    private readonly options: { refreshMs?: number; ttlMs?: number; now?: () => number } = {},
  ) {
    this.timer = setInterval(() => void this.refresh(), options.refreshMs ?? 1_000);
    this.timer.unref();
  }

  private get ttlMs(): number {
    return this.options.ttlMs ?? 15_000;
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  /** A request of `model` started on `workerId`. */
  acquire(model: string, workerId: string): void {
    const id = `${model}\n${workerId}`;
    let entry = this.busy.get(id);
    if (!entry) {
      entry = { model, workerId, current: 0, active: false, published: undefined };
      this.busy.set(id, entry);
    }
    entry.current += 1;
    entry.active = true;
    if (entry.published === undefined && !this.closed) {
      // the worker was idle as far as the controller knows: say it is busy now, not at the next refresh
      const member = inflightMember(workerId, this.replicaId, entry.current);
      entry.published = member;
      this.redis
        .zadd(this.keys.inflight(model), this.now() + this.ttlMs, member)
        .catch(() => (entry.published = undefined));
    }
  }

  /** A request of `model` on `workerId` ended. */
  release(model: string, workerId: string): void {
    const entry = this.busy.get(`${model}\n${workerId}`);
    if (entry && entry.current > 0) entry.current -= 1;
  }

  /** In flight on this replica now, for a worker (tests, diagnostics). */
  inflight(model: string, workerId: string): number {
    return this.busy.get(`${model}\n${workerId}`)?.current ?? 0;
  }

  /** Write every worker's count with a fresh expiry; drop workers idle for a whole period. */
  async refresh(): Promise<void> {
    if (this.busy.size === 0 || this.closed) return;
    const expiry = this.now() + this.ttlMs;
    const multi = this.redis.multi();
    let writes = 0;
    for (const [id, entry] of this.busy) {
      const count = Math.max(entry.current, entry.active ? 1 : 0);
      entry.active = entry.current > 0;
      const key = this.keys.inflight(entry.model);
      if (count === 0) {
        if (entry.published !== undefined) multi.zrem(key, entry.published);
        this.busy.delete(id);
        writes += 1;
        continue;
      }
      const member = inflightMember(entry.workerId, this.replicaId, count);
      // one transaction: the controller never sees the old and the new count together, nor neither
      if (entry.published !== undefined && entry.published !== member) multi.zrem(key, entry.published);
      multi.zadd(key, expiry, member);
      entry.published = member;
      writes += 1;
    }
    if (writes > 0) await multi.exec().catch(() => undefined); // the next refresh writes the same state again
  }

  /** Remove this replica's members (its in-flight requests are over when the server has closed). */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    const published = [...this.busy.values()].filter((e) => e.published !== undefined);
    this.busy.clear();
    if (published.length === 0) return;
    const multi = this.redis.multi();
    for (const entry of published) multi.zrem(this.keys.inflight(entry.model), entry.published!);
    await multi.exec().catch(() => undefined);
  }
}
