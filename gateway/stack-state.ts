/**
 * Whether Redis still holds the stack's state, as this gateway sees it (rules: core/stack-epoch.ts).
 *
 * Owns: the epoch this gateway last read, whether Redis is marked lost, and when it last looked.
 *
 * Rules:
 * - Looks at start, every `intervalMs`, when the Redis connection comes back, and before a key is refused as
 *   unknown (concurrent ones share a look): a Redis that came back empty is seen before a client is told its key
 *   is wrong.
 * - While lost, every API request answers 503 `store_unavailable` saying a restore is pending: keys, budgets,
 *   routes and jobs cannot be judged from an empty Redis, and a clear 503 is what a client retries.
 * - A Redis that cannot be read leaves the verdict as it was (requests then fail on Redis itself, also a 503).
 */
import type { Redis } from "ioredis";
import type { RedisKeys } from "../core/redis-keys";
import { markStateLost, newStackEpoch, parseStateLost, type StateLostMarker } from "../core/stack-epoch";
import { GatewayError } from "./errors";

/** Seconds a client is told to wait: a restore takes seconds to minutes (README "Disaster recovery"). */
export const RESTORE_PENDING_RETRY_AFTER_SECONDS = 30;

/** The answer to every API request while Redis has lost the stack's state. */
export function restorePending(): GatewayError {
  return new GatewayError(
    503,
    "server_error",
    "The gateway's store lost its state and a restore from backup is pending; your API key and requests are not affected — retry shortly",
    "store_unavailable",
    null,
    { "retry-after": String(RESTORE_PENDING_RETRY_AFTER_SECONDS) },
  );
}

export class StackStateWatch {
  private epoch: string | undefined;
  private marker: StateLostMarker | undefined;
  private running: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly onReady = () => void this.check().catch(() => undefined);

  constructor(
    private readonly redis: Redis,
    private readonly keys: Pick<RedisKeys, "stackEpoch" | "stateLost" | "apiKeyIds">,
    private readonly options: { now?: () => number; intervalMs?: number } = {},
  ) {}

  /** Whether Redis is known to have lost the stack's state (answer 503 "restore pending"). */
  get lost(): boolean {
    return this.marker !== undefined;
  }

  /** Look now and then every `intervalMs`, and whenever the connection comes back. */
  async start(): Promise<void> {
    await this.check().catch(() => undefined);
    this.timer = setInterval(this.onReady, this.options.intervalMs ?? 1_000);
    this.timer.unref();
    this.redis.on("ready", this.onReady);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.redis.off("ready", this.onReady);
  }

  /**
   * Look again before a key is refused as unknown. Concurrent refusals share one look, so a flood of bad keys
   * costs one read more per look, not per key (their own record read is cached as a refusal anyway).
   */
  async recheck(): Promise<void> {
    await this.check().catch(() => undefined);
  }

  /** Read the epoch and the marker and judge; one look at a time. */
  check(): Promise<void> {
    this.running ??= this.look().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async look(): Promise<void> {
    const nowMs = (this.options.now ?? Date.now)();
    const [[, epoch], [, marker], [, keyCount]] = (await this.redis
      .multi()
      .get(this.keys.stackEpoch)
      .get(this.keys.stateLost)
      .hlen(this.keys.apiKeyIds)
      .exec()) as [[null, string | null], [null, string | null], [null, number]];
    const lost = parseStateLost(marker);
    if (lost) {
      this.marker = lost;
      return;
    }
    if (epoch !== null) {
      this.epoch = epoch;
      this.marker = undefined;
      return;
    }
    if (this.epoch !== undefined) {
      // Redis held an epoch and holds none now: it lost the stack's state
      const witnessed: StateLostMarker = { epoch: this.epoch, sinceMs: nowMs, by: "gateway" };
      if (await markStateLost(this.redis, this.keys, witnessed)) this.marker = witnessed;
      return;
    }
    this.marker = undefined;
    // a stack from before epochs (keys, no epoch): give it one
    if (keyCount > 0) {
      await this.redis.set(this.keys.stackEpoch, newStackEpoch(), "NX");
      this.epoch = (await this.redis.get(this.keys.stackEpoch)) ?? undefined;
    }
  }
}
