/**
 * A serving unit's demand as Redis holds it: requests waiting for a worker (async jobs included) and the
 * requests in flight on each worker.
 *
 * Rules: reads only, apart from pruning what expired — a crashed gateway's waiters and leases fall out by
 * their deadline, so they never hold a worker up. Time is passed in.
 */
import type { Redis } from "ioredis";
import { inflightCountOfMember, workerOfInflightMember } from "../core/protocol";
import type { RedisKeys } from "../core/redis-keys";

export interface UnitDemand {
  /** Requests waiting for a worker, queued async jobs included. */
  readonly waiting: number;
  /** Requests in flight, by worker id. */
  readonly inflight: Map<string, number>;
}

export async function readDemand(
  redis: Redis,
  keys: Pick<RedisKeys, "waiting" | "inflight" | "jobs">,
  unit: string,
  nowMs: number,
): Promise<UnitDemand> {
  const waitingKey = keys.waiting(unit);
  const inflightKey = keys.inflight(unit);
  const [, waiting, jobs, , leases] = (await redis
    .multi()
    .zremrangebyscore(waitingKey, "-inf", nowMs) // a crashed gateway's waiters fall out by their deadline
    .zcard(waitingKey)
    .xlen(keys.jobs(unit))
    .zremrangebyscore(inflightKey, "-inf", nowMs)
    .zrange(inflightKey, 0, -1)
    .exec()) as [unknown, [null, number], [null, number], unknown, [null, string[]]];
  const inflight = new Map<string, number>();
  for (const member of leases[1]) {
    // one member per gateway replica and worker, carrying that replica's count (or a legacy per-request lease)
    const worker = workerOfInflightMember(member);
    inflight.set(worker, (inflight.get(worker) ?? 0) + inflightCountOfMember(member));
  }
  return { waiting: waiting[1] + jobs[1], inflight };
}
