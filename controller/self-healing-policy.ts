/**
 * Self-healing decisions: which of the anomalies core/anomalies.ts detects the controller acts on by itself, within
 * the stack's guard rails (`selfHealing` in the stack config), and why it leaves the others to a human or an
 * assistant.
 *
 * Pure: no I/O, no clock (time is an input). Rules, in order, per anomaly:
 * - only two kinds are acted on: `slow-boot` (replace the worker: drain it, the scaling policy starts another when
 *   one is still needed) and `provider-erroring` (fail over: no new creates at that provider for FAIL_OVER_HOLD_MS
 *   for every model that has another provider to go to). Spend rate and 5xx spikes are surfaced only — cutting
 *   spend or serving is a human's call;
 * - nothing is done while self-healing is off, or while the kind's own switch is off;
 * - never while a budget blocks: a replacement could not start, and a fail-over would only move a blocked model;
 * - a worker still `requested` (its create under way) is not replaced; a provider already held back is not
 *   failed over again, and a model without another provider is not failed over at all;
 * - at most `maxActionsPerHour` actions in any rolling hour, stack-wide, counting those already taken; the rest
 *   are held back with the cap as their reason. Replacements are decided before fail-overs, anomalies in the
 *   order given.
 */
import type { Anomaly } from "../core/anomalies";
import type { SelfHealingConfig } from "../core/config/schema";

/** A provider failed over is held back from new creates for this long, then tried again. */
export const FAIL_OVER_HOLD_MS = 15 * 60_000;
const HOUR_MS = 3_600_000;
/** States in which a worker can be drained (lifecycle.drainAsked): the create answered, the worker exists. */
const REPLACEABLE = ["provisioning", "booting"];

export interface HealingWorker {
  readonly id: string;
  readonly model: string;
  readonly provider: string;
  readonly state: string;
}

export interface SelfHealingInput {
  readonly nowMs: number;
  /** The stack's guard rails; undefined when the stack config has none (off). */
  readonly config: SelfHealingConfig | undefined;
  readonly anomalies: readonly Anomaly[];
  readonly workers: readonly HealingWorker[];
  /** Serving unit → the providers it may start workers at (configured, with an adapter), in order. */
  readonly providersOf: Readonly<Record<string, readonly string[]>>;
  /** Serving unit → why its budget blocks new workers (absent when it does not). */
  readonly budgetBlocks: Readonly<Record<string, string>>;
  /** `unit|provider` pairs held back by an earlier fail-over and still in force. */
  readonly heldBack: ReadonlySet<string>;
  /** When the self-healing actions of the last hour (or more) were taken. */
  readonly actionsAtMs: readonly number[];
}

export type HealingAction =
  | {
      readonly kind: "replace-worker";
      readonly workerId: string;
      readonly model: string;
      readonly reason: string;
    }
  | {
      readonly kind: "fail-over";
      readonly provider: string;
      /** The units that move to their other providers. */
      readonly models: readonly string[];
      readonly holdMs: number;
      readonly reason: string;
    };

export interface NotActed {
  readonly anomaly: Anomaly;
  readonly why: string;
}

export interface SelfHealingDecision {
  readonly actions: HealingAction[];
  readonly notActed: NotActed[];
}

export function decideSelfHealing(input: SelfHealingInput): SelfHealingDecision {
  const { config, nowMs } = input;
  const actions: HealingAction[] = [];
  const notActed: NotActed[] = [];
  if (!config?.enabled)
    return {
      actions,
      notActed: input.anomalies.map((anomaly) => ({
        anomaly,
        why: "self-healing is off in the stack config (selfHealing.enabled)",
      })),
    };
  let budgetLeft =
    config.maxActionsPerHour - input.actionsAtMs.filter((t) => t > nowMs - HOUR_MS && t <= nowMs).length;
  const capped = (anomaly: Anomaly) =>
    notActed.push({
      anomaly,
      why: `the guard rail of ${config.maxActionsPerHour} self-healing action(s) per hour is used up (selfHealing.maxActionsPerHour)`,
    });

  const slowBoots = input.anomalies.filter((a) => a.kind === "slow-boot");
  const erroring = input.anomalies.filter((a) => a.kind === "provider-erroring");
  for (const anomaly of input.anomalies)
    if (anomaly.kind !== "slow-boot" && anomaly.kind !== "provider-erroring")
      notActed.push({ anomaly, why: "surfaced only: the controller does not act on this kind by itself" });

  for (const anomaly of slowBoots) {
    const worker = input.workers.find((w) => w.id === anomaly.subject);
    if (!config.replaceSlowWorkers) {
      notActed.push({ anomaly, why: "replacing slow workers is off (selfHealing.replaceSlowWorkers)" });
      continue;
    }
    if (!worker || !REPLACEABLE.includes(worker.state)) {
      notActed.push({
        anomaly,
        why: worker
          ? `the worker is ${worker.state}: only a created worker (provisioning, booting) is replaced`
          : "the worker is gone",
      });
      continue;
    }
    const blocked = input.budgetBlocks[worker.model];
    if (blocked) {
      notActed.push({ anomaly, why: `a budget blocks new workers for ${worker.model}: ${blocked}` });
      continue;
    }
    if (budgetLeft <= 0) {
      capped(anomaly);
      continue;
    }
    budgetLeft -= 1;
    actions.push({
      kind: "replace-worker",
      workerId: worker.id,
      model: worker.model,
      reason: `self-healing: ${anomaly.detail}; drained so that a replacement can start`,
    });
  }

  for (const anomaly of erroring) {
    const provider = anomaly.subject;
    if (!config.failOverOnProviderErrors) {
      notActed.push({
        anomaly,
        why: "failing over on provider errors is off (selfHealing.failOverOnProviderErrors)",
      });
      continue;
    }
    const users = Object.entries(input.providersOf).filter(([, providers]) => providers.includes(provider));
    const canMove = users.filter(([, providers]) => providers.some((p) => p !== provider));
    const movable = canMove.filter(([unit]) => !input.heldBack.has(`${unit}|${provider}`));
    const models = movable.filter(([unit]) => !input.budgetBlocks[unit]).map(([unit]) => unit);
    if (models.length === 0) {
      notActed.push({
        anomaly,
        why:
          users.length === 0
            ? `no model of this stack starts workers at ${provider}`
            : canMove.length === 0
              ? `no model using ${provider} has another provider to fail over to`
              : movable.length === 0
                ? `already failed over: no new workers go to ${provider} until the hold ends`
                : `a budget blocks new workers for every model that could move off ${provider}`,
      });
      continue;
    }
    if (budgetLeft <= 0) {
      capped(anomaly);
      continue;
    }
    budgetLeft -= 1;
    actions.push({
      kind: "fail-over",
      provider,
      models,
      holdMs: FAIL_OVER_HOLD_MS,
      reason: `self-healing: ${provider} ${anomaly.detail}; no new workers there for ${FAIL_OVER_HOLD_MS / 60_000} minutes for ${models.join(", ")}, which start at their other providers`,
    });
  }
  return { actions, notActed };
}
