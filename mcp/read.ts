/**
 * What the read-only MCP tools answer, read from the stack's Redis: the same records `aiorch status`, `audit`
 * and the controller write (the status report is core/stack-status.ts, shared with the CLI). Every answer is
 * built field by field from those records, so a secret kept beside them (a worker's engine token, an API key's
 * hash, a prompt) never reaches a tool's output.
 */
import type { Redis } from "ioredis";
import { detectAnomalies } from "../core/anomalies";
import { AuditTrail } from "../core/audit-trail";
import { PROVIDERS } from "../core/catalog";
import type { RuntimeConfig } from "../core/config";
import { fromMicroUsd, inflightCountOfMember, ledgerMonth } from "../core/protocol";
import { findRecentRequest, RECENT_REQUEST_LINE_FIELD, recentRequestField } from "../core/recent-requests";
import type { RedisKeys } from "../core/redis-keys";
import { readRunTimeControls } from "../core/run-time-controls";
import type { UsagePatternId } from "../core/usage-patterns";
import { unitName } from "../core/variants";
import { forecastForStack } from "../sim/forecast";

export interface Decision {
  readonly at: string;
  readonly model: string;
  readonly action: string;
  readonly workers?: number;
  readonly worker?: string;
  readonly reason: string;
}

interface RawDecision {
  atMs: number;
  model: string;
  action: string;
  workers?: number;
  worker?: string;
  reason: string;
}

async function rawDecisions(redis: Redis, keys: RedisKeys): Promise<RawDecision[]> {
  const out: RawDecision[] = [];
  for (const line of await redis.lrange(keys.scaleDecisions, 0, -1)) {
    try {
      const d = JSON.parse(line) as RawDecision;
      if (typeof d.atMs === "number" && typeof d.model === "string") out.push(d);
    } catch {
      // a malformed entry is skipped
    }
  }
  return out;
}

const decisionOf = (d: RawDecision): Decision => ({
  at: new Date(d.atMs).toISOString(),
  model: d.model,
  action: d.action,
  ...(d.workers !== undefined ? { workers: d.workers } : {}),
  ...(d.worker !== undefined ? { worker: d.worker } : {}),
  reason: d.reason,
});

/** Serving units of a model (`m`, or `m@a`, `m@b` in a rollout); a unit's own name is accepted too. */
function unitsOf(config: RuntimeConfig, model: string): string[] | undefined {
  const found = config.models.find((m) => m.name === model);
  if (found) return found.variants ? found.variants.map((v) => unitName(found.name, v.name)) : [found.name];
  for (const m of config.models)
    for (const v of m.variants ?? []) if (unitName(m.name, v.name) === model) return [model];
  return undefined;
}

export class UnknownModel extends Error {
  constructor(config: RuntimeConfig, model: string) {
    super(`unknown model "${model}"; this stack's models: ${config.models.map((m) => m.name).join(", ")}`);
  }
}

/** A model's last scale decisions (newest first) with the run-time controls in force on it. */
export async function explainScaling(
  redis: Redis,
  keys: RedisKeys,
  config: RuntimeConfig,
  model: string,
  limit: number,
) {
  const units = unitsOf(config, model);
  if (!units) throw new UnknownModel(config, model);
  const configured =
    config.models.find((m) => m.name === model) ??
    config.models.find((m) => units[0]!.startsWith(`${m.name}@`))!;
  const controls = await readRunTimeControls(redis, keys);
  const decisions = (await rawDecisions(redis, keys))
    .filter((d) => units.includes(d.model))
    .slice(0, limit)
    .map(decisionOf);
  return {
    model,
    config: {
      minWorkers: configured.minWorkers,
      maxWorkers: configured.maxWorkers,
      targetConcurrency: configured.targetConcurrency,
      idleTimeoutSeconds: configured.idleTimeoutSeconds === "auto" ? null : configured.idleTimeoutSeconds,
      providers: [...configured.providers],
    },
    runTimeBounds: units.flatMap((u) => {
      const b = controls.bounds[u];
      return b ? [{ unit: u, minWorkers: b.minWorkers, maxWorkers: b.maxWorkers }] : [];
    }),
    paused: controls.paused[configured.name]?.reason ?? null,
    decisions,
  };
}

const WORKER_FIELDS = [
  "id",
  "model",
  "provider",
  "state",
  "providerId",
  "gpu",
  "usdPerHour",
  "createdAtMs",
  "readyAtMs",
  "stateChangedAtMs",
  "lastActiveAtMs",
  "detail",
] as const;

/** A worker's record, only the fields that are not secret (never its engine token or certificate). */
async function workerRecord(redis: Redis, keys: RedisKeys, id: string) {
  const values = await redis.hmget(keys.worker(id), ...WORKER_FIELDS);
  const f = Object.fromEntries(WORKER_FIELDS.map((k, i) => [k, values[i] ?? undefined])) as Record<
    (typeof WORKER_FIELDS)[number],
    string | undefined
  >;
  if (!f.id) return undefined;
  const num = (v: string | undefined) => (v === undefined || v === "" ? null : Number(v));
  return {
    id: f.id,
    model: f.model ?? "",
    provider: f.provider ?? "",
    state: f.state ?? "",
    gpu: f.gpu ?? null,
    usdPerHour: num(f.usdPerHour) ?? 0,
    createdAtMs: num(f.createdAtMs),
    readyAtMs: num(f.readyAtMs),
    stateChangedAtMs: num(f.stateChangedAtMs),
    lastActiveAtMs: num(f.lastActiveAtMs),
    detail: f.detail ?? null,
  };
}

/** How long before a request a decision may have been taken for it and still explain its wait. */
const STORY_LOOKBACK_MS = 60_000;

/**
 * A request's story by its id: its audit line (status, waited how long, which worker and provider), whether it
 * waited for a cold start (the worker that served it became ready while it waited), and the controller's
 * decisions about its model around that time (why a worker was started, which offer was chosen and skipped).
 */
export async function requestStory(redis: Redis, keys: RedisKeys, requestId: string) {
  const line = await findRecentRequest(redis, keys, requestId);
  if (!line) return { requestId, found: false as const };
  const startMs = Date.parse(line.ts);
  const endWaitMs = startMs + line.queueMs;
  const worker = line.backend ? await workerRecord(redis, keys, line.backend) : undefined;
  const coldStart =
    worker?.readyAtMs != null &&
    line.queueMs > 0 &&
    worker.readyAtMs >= startMs &&
    worker.readyAtMs <= endWaitMs + 1_000;
  const unit = line.variant ? unitName(line.model, line.variant) : line.model;
  const decisions = (await rawDecisions(redis, keys))
    .filter(
      (d) =>
        d.model === unit &&
        ((d.atMs >= startMs - STORY_LOOKBACK_MS && d.atMs <= endWaitMs + 1_000) ||
          (worker !== undefined && d.worker === worker.id)),
    )
    .map(decisionOf);
  const provision = decisions.find((d) => d.action === "provision");
  const offer = decisions.find((d) => d.action === "offer" && d.worker === worker?.id);
  const bootSeconds =
    worker?.readyAtMs != null && worker.createdAtMs != null
      ? (worker.readyAtMs - worker.createdAtMs) / 1000
      : null;
  const waited = `${(line.queueMs / 1000).toFixed(1)} s`;
  const summary =
    line.queueMs <= 0
      ? `served at once (no wait) by ${line.backend ?? "no worker"}${line.provider ? ` on ${line.provider}` : ""}; status ${line.status}`
      : coldStart
        ? `waited ${waited} for a cold start: worker ${worker!.id} on ${worker!.provider} booted in ${bootSeconds?.toFixed(1) ?? "?"} s` +
          `${provision ? `; the controller decided: ${provision.reason}` : ""}${offer ? `; offer: ${offer.reason}` : ""}`
        : `waited ${waited} for a free worker (no cold start); served by ${line.backend ?? "no worker"}; status ${line.status}${line.error ? ` (${line.error})` : ""}`;
  return {
    requestId,
    found: true as const,
    summary,
    request: {
      at: line.ts,
      model: line.model,
      variant: line.variant ?? null,
      endpoint: line.endpoint,
      keyId: line.keyId,
      status: line.status,
      error: line.error,
      waitedMs: line.queueMs,
      latencyMs: line.latencyMs,
      ttftMs: line.ttftMs,
      worker: line.backend,
      provider: line.provider,
      costUsd: line.costUsd,
    },
    coldStart,
    bootSeconds,
    worker: worker ?? null,
    decisions,
  };
}

/** Spend this month by model and by API key id, and the last `days` days by model. */
export async function spendReport(
  redis: Redis,
  keys: RedisKeys,
  config: RuntimeConfig,
  days: number,
  nowMs: number,
) {
  const month = ledgerMonth(nowMs);
  const usdOf = (fields: Record<string, string>, prefix: string) =>
    Object.entries(fields)
      .filter(([k]) => k.startsWith(prefix))
      .map(([k, v]) => ({ name: k.slice(prefix.length), usd: round(fromMicroUsd(Number(v))) }))
      .sort((a, b) => b.usd - a.usd);
  const monthFields = await redis.hgetall(keys.spendMonth(month));
  const dayList: { day: string; totalUsd: number; byModel: { name: string; usd: number }[] }[] = [];
  for (let i = 0; i < days; i++) {
    const day = new Date(nowMs - i * 86_400_000).toISOString().slice(0, 10);
    const fields = await redis.hgetall(keys.spendDay(day));
    dayList.push({
      day,
      totalUsd: round(fromMicroUsd(Number(fields.total ?? 0))),
      byModel: usdOf(fields, "model:"),
    });
  }
  return {
    month,
    totalUsd: round(fromMicroUsd(Number(monthFields.total ?? 0))),
    budgetUsd: config.budget?.monthlyUsd ?? null,
    byModel: usdOf(monthFields, "model:"),
    byKey: usdOf(monthFields, "key:").map((k) => ({ keyId: k.name, usd: k.usd })),
    days: dayList,
  };
}

const round = (n: number) => Math.round(n * 1e6) / 1e6;

/** The simulator's monthly cost forecast of one model under one usage pattern (sim/forecast.ts). */
export function costForecast(
  config: RuntimeConfig,
  options: { model: string; pattern: UsagePatternId; ratePerSecond: number; days: number; seed: number },
) {
  if (!config.models.some((m) => m.name === options.model)) throw new UnknownModel(config, options.model);
  const forecast = forecastForStack(config, {
    models: [options.model],
    patterns: [options.pattern],
    policies: ["auto"],
    ratePerSecond: options.ratePerSecond,
    horizonSeconds: options.days * 86_400,
    seed: options.seed,
  });
  return {
    model: options.model,
    pattern: options.pattern,
    days: options.days,
    results: forecast.results.map((r) => ({
      provider: r.provider,
      gpu: r.gpu,
      policy: r.policy,
      costUsd: round(r.costUsd),
      billedHours: round(r.billedHours),
      coldStarts: r.coldStarts,
      waitP95Seconds: r.waitP95Seconds,
      requests: r.requests,
    })),
    unpriced: forecast.unpriced,
    assumptions: forecast.assumptions,
  };
}

export async function auditVerify(redis: Redis, keys: RedisKeys, last: number) {
  const trail = new AuditTrail(redis, keys);
  const result = await trail.verify();
  const entries = await trail.list(10_000);
  return {
    ok: result.ok,
    entries: result.entries,
    head: result.head,
    broken: result.broken ?? null,
    recent: entries
      .slice(-last)
      .reverse()
      .map((e) => ({ at: e.ts, actor: e.actor, action: e.action, target: e.target, reason: e.reason })),
  };
}

/** The controller's recent provider errors (newest first), counted per provider and kind. */
export async function providerErrors(redis: Redis, keys: RedisKeys, limit: number) {
  const errors: { at: string; provider: string; kind: string; what: string; message: string }[] = [];
  for (const line of await redis.lrange(keys.providerErrors, 0, limit - 1)) {
    try {
      const e = JSON.parse(line) as {
        atMs: number;
        provider: string;
        kind: string;
        what: string;
        message: string;
      };
      errors.push({
        at: new Date(e.atMs).toISOString(),
        provider: e.provider,
        kind: e.kind,
        what: e.what,
        message: e.message,
      });
    } catch {
      // skipped
    }
  }
  const counts = new Map<string, { provider: string; kind: string; count: number }>();
  for (const e of errors) {
    const c = counts.get(`${e.provider}|${e.kind}`) ?? { provider: e.provider, kind: e.kind, count: 0 };
    c.count += 1;
    counts.set(`${e.provider}|${e.kind}`, c);
  }
  return { byProvider: [...counts.values()], errors };
}

/**
 * Health of each live worker: state and for how long, requests in flight, idle for how long, how long it took to
 * boot, and a verdict (`serving`, `idle`, `loading`, `draining`, `failed`, or `slow to boot` when loading longer
 * than `slowBootSeconds`).
 */
export async function workerHealth(
  redis: Redis,
  keys: RedisKeys,
  config: RuntimeConfig,
  nowMs: number,
  slowBootSeconds = 600,
) {
  const ids = await redis.smembers(keys.liveWorkers);
  const inflight = new Map<string, number>();
  for (const model of config.models.flatMap((m) => unitsOf(config, m.name) ?? [])) {
    for (const member of await redis.zrangebyscore(keys.inflight(model), nowMs, "+inf")) {
      const workerId = member.split("|")[0]!;
      inflight.set(workerId, (inflight.get(workerId) ?? 0) + inflightCountOfMember(member));
    }
  }
  const workers = [];
  for (const id of ids.sort()) {
    const w = await workerRecord(redis, keys, id);
    if (!w) continue;
    const since = (ms: number | null) => (ms === null ? null : Math.max(0, Math.round((nowMs - ms) / 1000)));
    const busy = inflight.get(id) ?? 0;
    const loading = ["requested", "provisioning", "booting"].includes(w.state);
    const ageSeconds = since(w.createdAtMs) ?? 0;
    const verdict =
      w.state === "failed"
        ? "failed"
        : w.state === "draining"
          ? "draining"
          : loading
            ? ageSeconds > slowBootSeconds
              ? "slow to boot"
              : "loading"
            : busy > 0
              ? "serving"
              : "idle";
    workers.push({
      id: w.id,
      model: w.model,
      provider: w.provider,
      gpu: w.gpu,
      state: w.state,
      verdict,
      stateSeconds: since(w.stateChangedAtMs),
      ageSeconds,
      bootSeconds:
        w.readyAtMs !== null && w.createdAtMs !== null
          ? Math.round((w.readyAtMs - w.createdAtMs) / 1000)
          : null,
      inFlight: busy,
      idleSeconds: busy > 0 || w.state !== "ready" ? 0 : since(w.lastActiveAtMs),
      usdPerHour: w.usdPerHour,
      detail: w.detail,
    });
  }
  return { workers };
}

/** Anomalies in the records (core/anomalies.ts): slow boots, providers erroring, spend rate, 5xx spikes. */
export async function anomalies(redis: Redis, keys: RedisKeys, nowMs: number) {
  const workers = [];
  for (const id of await redis.smembers(keys.liveWorkers)) {
    const w = await workerRecord(redis, keys, id);
    if (w) workers.push(w);
  }
  const errors = [];
  for (const line of await redis.lrange(keys.providerErrors, 0, -1)) {
    try {
      const e = JSON.parse(line) as { atMs: number; provider: string; kind: string };
      errors.push({ atMs: e.atMs, provider: e.provider, kind: e.kind });
    } catch {
      // skipped
    }
  }
  const day = new Date(nowMs).toISOString().slice(0, 10);
  const [today, month] = await Promise.all([
    redis.hget(keys.spendDay(day), "total"),
    redis.hget(keys.spendMonth(ledgerMonth(nowMs)), "total"),
  ]);
  const todayUsd = fromMicroUsd(Number(today ?? 0));
  const requests: { atMs: number; status: number }[] = [];
  const rows = (await redis.xrevrange(
    keys.recentRequests,
    "+",
    `${nowMs - 65 * 60_000}-0`,
    "COUNT",
    20_000,
  )) as [string, string[]][];
  for (const [, flat] of rows) {
    try {
      const line = JSON.parse(recentRequestField(flat, RECENT_REQUEST_LINE_FIELD) ?? "") as {
        ts: string;
        status: number;
      };
      requests.push({ atMs: Date.parse(line.ts), status: line.status });
    } catch {
      // skipped
    }
  }
  const found = detectAnomalies({
    nowMs,
    workers,
    catalogBootSeconds: (provider) =>
      (PROVIDERS as Record<string, { coldStart: { p50Seconds: number } } | undefined>)[provider]?.coldStart
        .p50Seconds,
    providerErrors: errors,
    spend: { todayUsd, monthBeforeTodayUsd: Math.max(0, fromMicroUsd(Number(month ?? 0)) - todayUsd) },
    requests,
  });
  return { at: new Date(nowMs).toISOString(), anomalies: found };
}
