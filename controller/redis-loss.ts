/**
 * Noticing that Redis lost the stack's state under a running controller, and holding still until it is restored
 * (README "Disaster recovery").
 *
 * Owns: the highest fencing token this process has led with, and since when it holds.
 *
 * Rules (time passed in):
 * - Fencing tokens only grow: every election INCRs the fence (leader.ts), and a restore sets it far above every
 *   token handed out before (core/backup-redis.ts). A leadership whose token is lower than one this process led
 *   with before means the fence key is gone: Redis was flushed or came back without its data.
 * - Then the registry is empty and says nothing about what runs. Acting on it would start a second worker for
 *   demand a running one serves, and the reconciler would terminate running instances as orphans. So the
 *   controller holds: it keeps its leadership and does nothing else — no provisioning, no reconcile, no booking.
 * - The hold ends when a restore lands (a token above the highest one it led with: the restored registry is the
 *   truth again, and what ran meanwhile is booked from where the backup's ledger stopped), or after `holdMs`
 *   (no backup to restore, or the operator chose to start afresh): the controller then goes on as one starting
 *   on an empty Redis would, and its reconciler terminates the instances nothing knows any more.
 * - Only a process that led before can notice, and only when its token was above 1 (a controller elected once
 *   gets 1 again after a flush). `MarkedLossHold` covers the rest: any controller holds while a gateway has
 *   marked the stack's state lost (core/stack-epoch.ts).
 */

import type { Redis } from "ioredis";
import type { RedisKeys } from "../core/redis-keys";
import { clearStateLost, markStateLost, parseStateLost } from "../core/stack-epoch";
import type { ControllerJournal } from "./journal";

/** How long a controller holds after Redis lost its state, waiting for a restore. */
export const REDIS_LOSS_HOLD_MS = 15 * 60_000;

export type RedisLossEvent = "lost" | "restored" | "released";

/** The journal line for each event. */
export const REDIS_LOSS_MESSAGES: Readonly<Record<RedisLossEvent, string>> = {
  lost: `Redis lost the stack's state (the fencing token went back): holding — no new workers, no reconcile, no booking — until a restore (aiorch restore) or for ${REDIS_LOSS_HOLD_MS / 60_000} minutes`,
  restored: "Redis was restored: going on from the restored registry",
  released: `no restore within ${REDIS_LOSS_HOLD_MS / 60_000} minutes of losing Redis' state: going on from an empty registry (unknown instances are terminated as orphans)`,
};

export class RedisLossGuard {
  private highest = 0;
  private heldSinceMs: number | undefined;

  constructor(private readonly holdMs = REDIS_LOSS_HOLD_MS) {}

  /** Whether the controller is holding now. */
  get holding(): boolean {
    return this.heldSinceMs !== undefined;
  }

  /**
   * Look at this tick's fencing token (0: not the leader) and say whether to hold, and what changed if anything.
   */
  observe(fence: number, nowMs: number): { hold: boolean; event?: RedisLossEvent } {
    if (fence <= 0) return { hold: this.holding };
    if (this.heldSinceMs === undefined) {
      if (fence < this.highest) {
        this.heldSinceMs = nowMs;
        return { hold: true, event: "lost" };
      }
      this.highest = fence;
      return { hold: false };
    }
    if (fence > this.highest) {
      this.heldSinceMs = undefined;
      this.highest = fence;
      return { hold: false, event: "restored" };
    }
    if (nowMs - this.heldSinceMs >= this.holdMs) {
      this.heldSinceMs = undefined;
      this.highest = fence;
      return { hold: false, event: "released" };
    }
    return { hold: true };
  }
}

/** The journal line for each event of a loss another process marked (core/stack-epoch.ts). */
export const MARKED_LOSS_MESSAGES: Readonly<Record<RedisLossEvent, string>> = {
  lost: `Redis lost the stack's state (it is marked lost: the stack epoch is gone): holding — no new workers, no reconcile, no booking — until a restore (aiorch restore) or ${REDIS_LOSS_HOLD_MS / 60_000} minutes after the loss`,
  restored: REDIS_LOSS_MESSAGES.restored,
  released: `no restore within ${REDIS_LOSS_HOLD_MS / 60_000} minutes of losing Redis' state: clearing the mark and going on from an empty registry (unknown instances are booked and terminated)`,
};

/**
 * The same hold for a loss this process did not see itself: a controller elected only once (fence 1 before and
 * after a flush, so its token did not go back), or one started during the outage, holds while the stack's state
 * is marked lost (`stack:lost`, written by a gateway that found the stack epoch gone). Time passed in.
 * - Marked and younger than `holdMs`: hold ("lost" the first time).
 * - Marked for `holdMs` or longer: "released" — the caller clears the mark (core/stack-epoch.ts `clearStateLost`).
 * - The mark gone while holding: "restored" (a restore removes it).
 */
export class MarkedLossHold {
  private holding = false;

  constructor(private readonly holdMs = REDIS_LOSS_HOLD_MS) {}

  observe(markedSinceMs: number | undefined, nowMs: number): { hold: boolean; event?: RedisLossEvent } {
    if (markedSinceMs === undefined) {
      if (!this.holding) return { hold: false };
      this.holding = false;
      return { hold: false, event: "restored" };
    }
    if (nowMs - markedSinceMs >= this.holdMs) {
      this.holding = false;
      return { hold: false, event: "released" };
    }
    if (this.holding) return { hold: true };
    this.holding = true;
    return { hold: true, event: "lost" };
  }
}

export interface StateLossWatchDeps {
  readonly redis: Redis;
  readonly keys: Pick<RedisKeys, "stateLost" | "stackEpoch">;
  readonly journal: Pick<ControllerJournal, "log">;
  readonly now: () => number;
}

/**
 * Both holds for the controller's tick: a loss this process saw (its fencing token went back, `RedisLossGuard`)
 * and one another process marked (`MarkedLossHold`). It journals each event and tells gateways
 * (core/stack-epoch.ts): a loss it saw marks the stack's state lost, so gateways answer 503 "restore pending";
 * letting go without a restore clears the mark and starts a new epoch. A failed write is retried by the gateways'
 * own witness (a gateway that read the epoch before marks it too).
 */
export class StateLossWatch {
  private readonly seen = new RedisLossGuard();
  private readonly marked = new MarkedLossHold();

  constructor(private readonly deps: StateLossWatchDeps) {}

  /** Whether this tick holds still (leader's `fence` now; 0 when not the leader). */
  async holds(fence: number, nowMs: number): Promise<boolean> {
    const loss = this.seen.observe(fence, nowMs);
    if (loss.event) {
      this.deps.journal.log(`controller: ${REDIS_LOSS_MESSAGES[loss.event]}`);
      await this.mark(loss.event);
    }
    if (loss.hold) return true;
    // a loss a gateway marked (this controller's own token may not have gone back: elected once, or started since)
    const marked = this.marked.observe(
      parseStateLost(await this.deps.redis.get(this.deps.keys.stateLost))?.sinceMs,
      nowMs,
    );
    if (marked.event) {
      this.deps.journal.log(`controller: ${MARKED_LOSS_MESSAGES[marked.event]}`);
      if (marked.event === "released") await this.mark("released");
    }
    return marked.hold;
  }

  private async mark(event: RedisLossEvent): Promise<void> {
    const { redis, keys } = this.deps;
    try {
      if (event === "lost")
        await markStateLost(redis, keys, { epoch: "", sinceMs: this.deps.now(), by: "controller" });
      else if (event === "released") await clearStateLost(redis, keys);
      else await redis.del(keys.stateLost);
    } catch (error) {
      this.deps.journal.log(
        `controller: could not mark the stack's state (${event}): ${(error as Error).message}`,
      );
    }
  }
}
