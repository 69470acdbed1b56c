/**
 * Self-healing: each tick, the anomalies the controller can see in its own records (core/anomalies.ts: workers
 * slow to boot, providers erroring) are decided on by the pure policy (self-healing-policy.ts) within the stack's
 * guard rails, and the actions carried out — a slow worker drained (the scaling policy starts its replacement), an
 * erroring provider held back from new creates for the models that can go elsewhere.
 *
 * Owns: the anomalies already told as not acted on (told once per subject and reason, not every tick).
 * Rules: every action is one entry in the decision list (`explain_scaling`), one audit-trail entry naming the
 * controller, and one entry in the actions list the hourly guard rail counts (written before acting, so a crash
 * never lets an action go uncounted); when that list cannot be read nothing is done (the guard rail cannot be
 * checked). Off (the default) costs nothing: no read at all. A fail-over's hold lives in the leader's provisioner:
 * a new leader starts without it, and may fail over again only within the same guard rail (the count is in Redis).
 */
import type { Redis } from "ioredis";
import { detectAnomalies } from "../core/anomalies";
import { type ConfigurableProviderId, PROVIDERS } from "../core/catalog";
import type { RuntimeConfig } from "../core/config/runtime";
import type { RedisKeys } from "../core/redis-keys";
import type { ControllerJournal } from "./journal";
import type { WorkerLifecycle } from "./lifecycle";
import type { Provisioner } from "./provisioner";
import type { WorkerRecord } from "./registry";
import { decideSelfHealing, type HealingAction } from "./self-healing-policy";

/** How many actions the list keeps (the guard rail needs the last hour's; the cap is at most 60). */
const ACTIONS_KEPT = 100;

export interface SelfHealingDeps {
  /** Serving units (servingUnits of the config). */
  readonly config: RuntimeConfig;
  readonly redis: Redis;
  readonly keys: RedisKeys;
  readonly journal: Pick<ControllerJournal, "log" | "note" | "audit">;
  readonly now: () => number;
  readonly adapters: Partial<Record<ConfigurableProviderId, unknown>>;
  readonly lifecycle: Pick<WorkerLifecycle, "drainAsked">;
  readonly provisioner: Pick<Provisioner, "failOver" | "isFailedOver">;
  /** Why a unit's budget blocks new workers, or undefined. */
  readonly blockOf: (unit: string) => string | undefined;
  /** Who the audit trail and the decision list name. */
  readonly actor: string;
}

export class SelfHealing {
  /** `subject|why` of the anomalies already told as not acted on. */
  private told = new Set<string>();

  constructor(private readonly deps: SelfHealingDeps) {}

  /** Decide on the anomalies of this tick's workers and act within the guard rails. */
  async heal(workers: readonly WorkerRecord[]): Promise<HealingAction[]> {
    const { config, redis, keys, journal } = this.deps;
    if (!config.selfHealing?.enabled) return [];
    const now = this.deps.now();
    let recent: string[];
    let errorLines: string[];
    try {
      [recent, errorLines] = await Promise.all([
        redis.lrange(keys.selfHealingActions, 0, ACTIONS_KEPT - 1),
        redis.lrange(keys.providerErrors, 0, -1),
      ]);
    } catch (error) {
      journal.log(
        `controller: self-healing skipped, its records cannot be read: ${(error as Error).message}`,
      );
      return [];
    }
    const actionsAtMs = recent.flatMap((line) => {
      const atMs = parseJson<{ atMs?: unknown }>(line)?.atMs;
      return typeof atMs === "number" ? [atMs] : [];
    });
    const providerErrors = errorLines.flatMap((line) => {
      const e = parseJson<{ atMs?: unknown; provider?: unknown; kind?: unknown }>(line);
      return e && typeof e.atMs === "number" && typeof e.provider === "string" && typeof e.kind === "string"
        ? [{ atMs: e.atMs, provider: e.provider, kind: e.kind }]
        : [];
    });
    // only the kinds the controller may act on are detected here (no spend or requests: the MCP tool and the
    // Prometheus alerts surface those)
    const anomalies = detectAnomalies({
      nowMs: now,
      workers: workers.map((w) => ({
        id: w.id,
        model: w.model,
        provider: w.provider,
        state: w.state,
        createdAtMs: w.createdAtMs,
        readyAtMs: w.readyAtMs ?? null,
      })),
      catalogBootSeconds: (provider) =>
        (PROVIDERS as Record<string, { coldStart: { p50Seconds: number } } | undefined>)[provider]?.coldStart
          .p50Seconds,
      providerErrors,
      spend: { todayUsd: 0, monthBeforeTodayUsd: 0 },
      requests: [],
    });
    const providersOf: Record<string, string[]> = {};
    const budgetBlocks: Record<string, string> = {};
    const heldBack = new Set<string>();
    for (const unit of config.models) {
      providersOf[unit.name] = unit.providers.filter((p) => this.deps.adapters[p] !== undefined);
      const blocked = this.deps.blockOf(unit.name);
      if (blocked) budgetBlocks[unit.name] = blocked;
      for (const p of unit.providers)
        if (this.deps.provisioner.isFailedOver(unit.name, p)) heldBack.add(`${unit.name}|${p}`);
    }
    const decision = decideSelfHealing({
      nowMs: now,
      config: config.selfHealing,
      anomalies,
      workers,
      providersOf,
      budgetBlocks,
      heldBack,
      actionsAtMs,
    });

    const stillTold = new Set<string>();
    for (const { anomaly, why } of decision.notActed) {
      const key = `${anomaly.subject}|${why}`;
      stillTold.add(key);
      if (this.told.has(key)) continue;
      journal.log(`controller: self-healing leaves ${anomaly.kind} of ${anomaly.subject} alone: ${why}`);
      const units =
        anomaly.kind === "slow-boot"
          ? workers.filter((w) => w.id === anomaly.subject).map((w) => w.model)
          : Object.keys(providersOf).filter((u) => providersOf[u]!.includes(anomaly.subject));
      for (const model of units)
        await journal.note({
          model,
          action: "self-heal-held",
          ...(anomaly.kind === "slow-boot" ? { worker: anomaly.subject } : {}),
          reason: `${anomaly.kind} of ${anomaly.subject} not acted on: ${why} (${anomaly.detail})`,
        });
    }
    this.told = stillTold;

    for (const action of decision.actions) {
      const subject = action.kind === "replace-worker" ? action.workerId : action.provider;
      // counted before acting: a crash between the two can only under-act, never exceed the guard rail
      await redis
        .multi()
        .lpush(
          keys.selfHealingActions,
          JSON.stringify({ atMs: now, kind: action.kind, subject, reason: action.reason }),
        )
        .ltrim(keys.selfHealingActions, 0, ACTIONS_KEPT - 1)
        .exec();
      if (action.kind === "replace-worker") {
        journal.log(`controller: ${action.model}: ${action.reason}`);
        // the drain writes the decision entry ("drain", asked by the controller) and stops routing to it
        await this.deps.lifecycle.drainAsked(workers, {
          [action.workerId]: { actor: this.deps.actor, reason: action.reason },
        });
        journal.audit("worker.replaced", action.workerId, `${action.model}: ${action.reason}`);
      } else {
        journal.log(`controller: ${action.reason}`);
        for (const unit of action.models) {
          this.deps.provisioner.failOver(
            unit,
            action.provider as ConfigurableProviderId,
            now + action.holdMs,
            action.reason,
          );
          await journal.note({ model: unit, action: "self-heal", reason: action.reason });
        }
        journal.audit("provider.failed-over", action.provider, action.reason);
      }
    }
    return decision.actions;
  }
}

function parseJson<T>(line: string): Partial<T> | undefined {
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === "object" && value !== null ? (value as Partial<T>) : undefined;
  } catch {
    return undefined;
  }
}
