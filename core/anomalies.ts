/**
 * Anomalies in what the controller and gateway already record, for a human or an assistant to decide on (the MCP
 * `anomalies` tool). Detection only: nothing here acts.
 *
 * Pure: no I/O, no clock (time is an input). Rules:
 * - slow boot: a worker still loading (requested, provisioning, booting) longer than max(180 s, 3 × the reference
 *   boot of its provider), the reference being the median boot of that provider's workers seen ready (at least 3),
 *   else the catalog's p50 cold start;
 * - provider erroring: 3 or more errors of one provider in the last 10 minutes;
 * - spend rate: today's USD per hour so far above 3 × the month's average hourly rate before today, once today's
 *   spend is at least $1 and the month has a day behind it;
 * - error spike: in the last 5 minutes, at least 10 requests, 20 % or more of them 5xx, and at least 3 × the share
 *   of the hour before (or any 5xx share ≥ 20 % when that hour had none).
 */

export interface AnomalyWorker {
  readonly id: string;
  readonly model: string;
  readonly provider: string;
  readonly state: string;
  readonly createdAtMs: number | null;
  readonly readyAtMs: number | null;
}

export interface AnomalyInput {
  readonly nowMs: number;
  readonly workers: readonly AnomalyWorker[];
  /** Catalog p50 cold start by provider, seconds (the reference before any boot is seen). */
  readonly catalogBootSeconds: (provider: string) => number | undefined;
  readonly providerErrors: readonly { atMs: number; provider: string; kind: string }[];
  /** Spend of today and of this month before today, USD. */
  readonly spend: { readonly todayUsd: number; readonly monthBeforeTodayUsd: number };
  /** Recent requests: when and with what status. */
  readonly requests: readonly { atMs: number; status: number }[];
}

export interface Anomaly {
  readonly kind: "slow-boot" | "provider-erroring" | "spend-rate" | "error-spike";
  /** The worker, provider, stack or model it is about. */
  readonly subject: string;
  /** What was measured against what. */
  readonly detail: string;
  /** What an operator (or an admin assistant) may do, naming the tool. */
  readonly suggestion: string;
}

const LOADING = ["requested", "provisioning", "booting"];
const MINUTE = 60_000;
const HOUR = 3_600_000;

function median(values: number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function detectAnomalies(input: AnomalyInput): Anomaly[] {
  const { nowMs } = input;
  const out: Anomaly[] = [];

  const boots = new Map<string, number[]>();
  for (const w of input.workers)
    if (w.readyAtMs !== null && w.createdAtMs !== null && w.readyAtMs >= w.createdAtMs)
      boots.set(w.provider, [...(boots.get(w.provider) ?? []), (w.readyAtMs - w.createdAtMs) / 1000]);
  for (const w of input.workers) {
    if (!LOADING.includes(w.state) || w.createdAtMs === null) continue;
    const seen = boots.get(w.provider) ?? [];
    const reference = seen.length >= 3 ? median(seen) : input.catalogBootSeconds(w.provider);
    const limit = Math.max(180, 3 * (reference ?? 60));
    const age = (nowMs - w.createdAtMs) / 1000;
    if (age > limit)
      out.push({
        kind: "slow-boot",
        subject: w.id,
        detail: `${w.model} on ${w.provider} still ${w.state} after ${Math.round(age)} s; ${seen.length >= 3 ? `its provider's workers booted in a median ${Math.round(reference!)} s` : `the catalog's p50 cold start there is ${reference ?? "unknown"} s`}`,
        suggestion: `drain_worker ${w.id} (the controller starts a replacement if one is still needed)`,
      });
  }

  const errors = new Map<string, { count: number; kinds: Set<string> }>();
  for (const e of input.providerErrors) {
    if (nowMs - e.atMs > 10 * MINUTE || e.atMs > nowMs) continue;
    const c = errors.get(e.provider) ?? { count: 0, kinds: new Set<string>() };
    c.count += 1;
    c.kinds.add(e.kind);
    errors.set(e.provider, c);
  }
  for (const [provider, c] of errors)
    if (c.count >= 3)
      out.push({
        kind: "provider-erroring",
        subject: provider,
        detail: `${c.count} errors in the last 10 minutes (${[...c.kinds].sort().join(", ")})`,
        suggestion: `provider_errors for the messages; the controller fails over to the next offer by itself, set_worker_bounds or the stack config can keep models off ${provider}`,
      });

  const dayStart = Math.floor(nowMs / (24 * HOUR)) * 24 * HOUR;
  const monthStart = Date.UTC(new Date(nowMs).getUTCFullYear(), new Date(nowMs).getUTCMonth(), 1);
  const hoursToday = Math.max((nowMs - dayStart) / HOUR, 1 / 60);
  const hoursBefore = (dayStart - monthStart) / HOUR;
  if (hoursBefore >= 24 && input.spend.todayUsd >= 1 && input.spend.monthBeforeTodayUsd > 0) {
    const today = input.spend.todayUsd / hoursToday;
    const average = input.spend.monthBeforeTodayUsd / hoursBefore;
    if (today > 3 * average)
      out.push({
        kind: "spend-rate",
        subject: "stack",
        detail: `spending $${today.toFixed(2)}/h today against a month average of $${average.toFixed(2)}/h`,
        suggestion: "spend and worker_health to see where; lower_budget or set_worker_bounds to cap it",
      });
  }

  const recent = input.requests.filter((r) => r.atMs > nowMs - 5 * MINUTE && r.atMs <= nowMs);
  const before = input.requests.filter((r) => r.atMs > nowMs - 65 * MINUTE && r.atMs <= nowMs - 5 * MINUTE);
  const share = (list: typeof recent) =>
    list.length === 0 ? 0 : list.filter((r) => r.status >= 500).length / list.length;
  if (recent.length >= 10 && share(recent) >= 0.2) {
    const baseline = share(before);
    if (baseline === 0 || share(recent) >= 3 * baseline)
      out.push({
        kind: "error-spike",
        subject: "gateway",
        detail: `${Math.round(100 * share(recent))} % of the last 5 minutes' ${recent.length} requests failed with 5xx (the hour before: ${Math.round(100 * baseline)} %)`,
        suggestion:
          "provider_errors and worker_health for the cause; pause_model if one model fails throughout",
      });
  }
  return out;
}
