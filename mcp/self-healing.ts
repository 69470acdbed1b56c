/**
 * What the controller's self-healing does and may still do (controller/self-healing.ts), for the MCP `anomalies`
 * tool: the stack's guard rails, the actions of the last day, and how many the hourly guard rail still allows — so
 * an assistant knows which anomalies the controller handles and which are left to it and a human.
 */
import type { Redis } from "ioredis";
import type { RuntimeConfig } from "../core/config";
import type { RedisKeys } from "../core/redis-keys";

const HOUR_MS = 3_600_000;

export async function selfHealingStatus(redis: Redis, keys: RedisKeys, config: RuntimeConfig, nowMs: number) {
  const rails = config.selfHealing;
  const actions: { at: string; atMs: number; kind: string; subject: string; reason: string }[] = [];
  for (const line of await redis.lrange(keys.selfHealingActions, 0, -1)) {
    try {
      const a = JSON.parse(line) as { atMs: number; kind: string; subject: string; reason: string };
      if (typeof a.atMs === "number" && a.atMs > nowMs - 24 * HOUR_MS)
        actions.push({ at: new Date(a.atMs).toISOString(), ...a });
    } catch {
      // a malformed entry is skipped
    }
  }
  const lastHour = actions.filter((a) => a.atMs > nowMs - HOUR_MS && a.atMs <= nowMs).length;
  return {
    enabled: rails?.enabled ?? false,
    replaceSlowWorkers: rails?.enabled === true && rails.replaceSlowWorkers,
    failOverOnProviderErrors: rails?.enabled === true && rails.failOverOnProviderErrors,
    maxActionsPerHour: rails?.maxActionsPerHour ?? 0,
    actionsLeftThisHour: rails?.enabled ? Math.max(0, rails.maxActionsPerHour - lastHour) : 0,
    recentActions: actions.map(({ atMs: _atMs, ...rest }) => rest),
  };
}
