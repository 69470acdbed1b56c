/**
 * The status of a stack read from its Redis: workers by model, provider and state, queue depth and in flight per
 * model, spend against the budgets this month, budget blocks, the controller leader and its last scale decisions.
 * Read-only. `aiorch status` renders it; the MCP `status` tool returns it as structured output.
 */
import type { Redis } from "ioredis";
import type { RuntimeConfig } from "./config";
import { fromMicroUsd, inflightCountOfMember, ledgerMonth } from "./protocol";
import { type RedisKeys, redisKeys, WORKER_STATES } from "./redis-keys";
import { readRunTimeControls } from "./run-time-controls";

/** Decisions shown by default: each worker started writes two (`provision`, then `offer` naming the offer). */
export const DEFAULT_DECISIONS = 20;

export interface StatusWorker {
  readonly id: string;
  readonly model: string;
  readonly provider: string;
  readonly state: string;
  readonly providerId: string | null;
  readonly usdPerHour: number;
  readonly ageSeconds: number;
  /** Seconds in the current state. */
  readonly stateSeconds: number;
  readonly detail: string | null;
}

export interface StatusReport {
  readonly stack: string;
  readonly at: string;
  /** Holder of the controller's leader lock; null when no controller leads (none running, or all crashed). */
  readonly leader: string | null;
  readonly workers: StatusWorker[];
  /** Live workers counted by model, provider and state. */
  readonly workersByState: {
    model: string;
    provider: string;
    state: string;
    workers: number;
    usdPerHour: number;
  }[];
  readonly queue: { model: string; waiting: number; jobs: number; inFlight: number; routes: number }[];
  readonly spend: {
    readonly month: string;
    readonly totalUsd: number;
    readonly budgetUsd: number | null;
    readonly percent: number | null;
    readonly byModel: { model: string; usd: number; budgetUsd: number | null; requests: number }[];
  };
  /** Budget blocks the controller set: `*` (stack) or a model → why. */
  readonly budgetBlocks: Record<string, string>;
  /** Run-time controls in force (MCP acting tools): worker bounds per unit, paused models, lowered budgets. */
  readonly controls: {
    readonly bounds: Record<string, { minWorkers: number; maxWorkers: number }>;
    readonly paused: Record<string, string>;
    readonly budgets: Record<string, number>;
  };
  /** Newest first. */
  readonly decisions: {
    at: string;
    model: string;
    action: string;
    workers?: number;
    worker?: string;
    reason: string;
  }[];
}

const round = (n: number, digits = 4) => Math.round(n * 10 ** digits) / 10 ** digits;

/** Read the status of a stack from its Redis. */
export async function readStatus(
  redis: Redis,
  config: RuntimeConfig,
  options: { decisions?: number; now?: number } = {},
): Promise<StatusReport> {
  const now = options.now ?? Date.now();
  const keys: RedisKeys = redisKeys(config.redis.keyPrefix);
  const ids = await redis.smembers(keys.liveWorkers);
  const pipeline = redis.pipeline();
  for (const id of ids) pipeline.hgetall(keys.worker(id));
  const hashes = ids.length > 0 ? ((await pipeline.exec()) ?? []) : [];
  const workers: StatusWorker[] = [];
  for (const [, value] of hashes) {
    const h = value as Record<string, string>;
    if (!h.id || !h.model || !h.state) continue;
    workers.push({
      id: h.id,
      model: h.model,
      provider: h.provider ?? "?",
      state: h.state,
      providerId: h.providerId ?? null,
      usdPerHour: Number(h.usdPerHour ?? 0),
      ageSeconds: Math.max(0, Math.round((now - Number(h.createdAtMs ?? now)) / 1000)),
      stateSeconds: Math.max(0, Math.round((now - Number(h.stateChangedAtMs ?? now)) / 1000)),
      detail: h.detail ?? null,
    });
  }
  const stateOrder = (s: string) => {
    const i = (WORKER_STATES as readonly string[]).indexOf(s);
    return i === -1 ? WORKER_STATES.length : i;
  };
  workers.sort(
    (a, b) =>
      a.model.localeCompare(b.model) ||
      a.provider.localeCompare(b.provider) ||
      stateOrder(a.state) - stateOrder(b.state) ||
      a.id.localeCompare(b.id),
  );
  const groups = new Map<string, StatusReport["workersByState"][number]>();
  for (const w of workers) {
    const key = `${w.model}|${w.provider}|${w.state}`;
    const g = groups.get(key) ?? {
      model: w.model,
      provider: w.provider,
      state: w.state,
      workers: 0,
      usdPerHour: 0,
    };
    g.workers += 1;
    g.usdPerHour = round(g.usdPerHour + w.usdPerHour);
    groups.set(key, g);
  }

  const q = redis.pipeline();
  for (const model of config.models) {
    q.zcount(keys.waiting(model.name), now, "+inf");
    q.xlen(keys.jobs(model.name));
    q.zrangebyscore(keys.inflight(model.name), now, "+inf"); // members carry counts: summed below
    q.hlen(keys.routes(model.name));
  }
  const counts = ((await q.exec()) ?? []).map(([error, v]) =>
    error
      ? 0
      : Array.isArray(v)
        ? v.reduce((n: number, m: string) => n + inflightCountOfMember(m), 0)
        : Number(v),
  );
  const queue = config.models.map((m, i) => ({
    model: m.name,
    waiting: counts[i * 4] ?? 0,
    jobs: counts[i * 4 + 1] ?? 0,
    inFlight: counts[i * 4 + 2] ?? 0,
    routes: counts[i * 4 + 3] ?? 0,
  }));

  const month = ledgerMonth(now);
  const [spendFields, blocks, leader, rawDecisions, controls] = await Promise.all([
    redis.hgetall(keys.spendMonth(month)),
    redis.hgetall(keys.budgetBlocked),
    redis.get(keys.leaderLock),
    redis.lrange(keys.scaleDecisions, 0, Math.max(0, (options.decisions ?? DEFAULT_DECISIONS) - 1)),
    readRunTimeControls(redis, keys),
  ]);
  const totalUsd = fromMicroUsd(Number(spendFields.total ?? 0));
  const budgetUsd = config.budget?.monthlyUsd ?? null;
  const decisions: StatusReport["decisions"] = [];
  for (const raw of rawDecisions) {
    try {
      const d = JSON.parse(raw) as {
        atMs: number;
        model: string;
        action: string;
        workers?: number;
        worker?: string;
        reason: string;
      };
      decisions.push({
        at: new Date(d.atMs).toISOString(),
        model: d.model,
        action: d.action,
        ...(d.workers !== undefined ? { workers: d.workers } : {}),
        ...(d.worker !== undefined ? { worker: d.worker } : {}),
        reason: d.reason,
      });
    } catch {
      // a malformed entry is skipped; status never fails on what it only reports
    }
  }
  return {
    stack: config.stack,
    at: new Date(now).toISOString(),
    leader,
    workers,
    workersByState: [...groups.values()],
    queue,
    spend: {
      month,
      totalUsd: round(totalUsd, 6),
      budgetUsd,
      percent: budgetUsd ? round((100 * totalUsd) / budgetUsd, 2) : null,
      byModel: config.models.map((m) => ({
        model: m.name,
        usd: round(fromMicroUsd(Number(spendFields[`model:${m.name}`] ?? 0)), 6),
        budgetUsd: m.monthlyBudgetUsd ?? null,
        requests: Number(spendFields[`requests:model:${m.name}`] ?? 0),
      })),
    },
    budgetBlocks: blocks,
    controls: {
      bounds: { ...controls.bounds },
      paused: Object.fromEntries(
        Object.entries(controls.paused).map(([m, n]) => [m, `${n.reason} (by ${n.actor})`]),
      ),
      budgets: Object.fromEntries(
        Object.entries(controls.budgets)
          .filter(([, b]) => b.month === month)
          .map(([scope, b]) => [scope, b.usd]),
      ),
    },
    decisions,
  };
}
