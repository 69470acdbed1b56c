/**
 * The stack epoch: how a process tells "this Redis lost the stack's state" from "this is a new stack"
 * (README "Disaster recovery").
 *
 * Owns: nothing in memory; the two keys `stack:epoch` and `stack:lost` (core/redis-keys.ts).
 *
 * Rules:
 * - The epoch is a random id written once, with SET NX, by the stack's first API key (`ApiKeyStore.create`) — a
 *   stack without keys serves nobody, so until then every unknown key is rightly a 401. A stack from before
 *   epochs gets one from its first gateway that sees API keys in Redis. It never changes afterwards, it is backed
 *   up, and a restore puts the backup's back (or a fresh one when the backup has none).
 * - An empty Redis with no epoch is a new stack unless a witness says otherwise: a gateway that read an epoch
 *   before and finds none, or a controller whose fencing token went back (controller/redis-loss.ts). The witness
 *   writes the lost marker, so every gateway — one started during the outage included — answers 503
 *   `store_unavailable` (restore pending) instead of 401 for keys, 404 for jobs and $0 budgets.
 * - The marker is written only while the epoch is absent (one Lua script): a witness that looked just before a
 *   restore landed cannot mark a restored Redis as lost.
 * - A restore removes the marker (in its transaction). So does the controller when it lets go of its hold
 *   without a restore (`REDIS_LOSS_HOLD_MS`): it then writes a fresh epoch, and gateways take that one up.
 */
import { randomBytes } from "node:crypto";
import type { Redis } from "ioredis";
import type { RedisKeys } from "./redis-keys";

/** What the lost marker says: which epoch went missing, since when, and who noticed. */
export interface StateLostMarker {
  readonly epoch: string;
  readonly sinceMs: number;
  readonly by: "gateway" | "controller";
}

export const newStackEpoch = (): string => `epoch_${randomBytes(8).toString("hex")}`;

export function parseStateLost(value: string | null): StateLostMarker | undefined {
  if (value === null) return undefined;
  try {
    const parsed = JSON.parse(value) as Partial<StateLostMarker>;
    return {
      epoch: typeof parsed.epoch === "string" ? parsed.epoch : "",
      sinceMs: typeof parsed.sinceMs === "number" ? parsed.sinceMs : 0,
      by: parsed.by === "controller" ? "controller" : "gateway",
    };
  } catch {
    // a marker someone wrote by hand still means "lost": its presence is what counts
    return { epoch: "", sinceMs: 0, by: "gateway" };
  }
}

/** SET the marker (NX) only while the epoch key is absent. KEYS: epoch, marker; ARGV: marker JSON. */
const MARK_LOST = `if redis.call('EXISTS', KEYS[1]) == 0 then return redis.call('SET', KEYS[2], ARGV[1], 'NX') end return false`;

/** Write the lost marker unless the epoch is back (a restore landed); true when Redis holds a marker now. */
export async function markStateLost(
  redis: Redis,
  keys: Pick<RedisKeys, "stackEpoch" | "stateLost">,
  marker: StateLostMarker,
): Promise<boolean> {
  await redis.eval(MARK_LOST, 2, keys.stackEpoch, keys.stateLost, JSON.stringify(marker));
  return (await redis.exists(keys.stateLost)) === 1;
}

/** Give up on a restore: drop the marker and start a new epoch (kept if one was written meanwhile). */
export async function clearStateLost(
  redis: Redis,
  keys: Pick<RedisKeys, "stackEpoch" | "stateLost">,
): Promise<void> {
  await redis.multi().del(keys.stateLost).set(keys.stackEpoch, newStackEpoch(), "NX").exec();
}
