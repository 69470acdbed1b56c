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
 * - Only a process that led before can notice; a controller started after the loss has nothing to compare with.
 */

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
