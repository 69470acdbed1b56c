/**
 * The usage patterns platform teams plan with, and the simplest honest forecast: the GPU price of the active
 * hours alone. The simulator adds what this leaves out (cold starts, keep-alive, waiting).
 */
import { type GpuId, HOURS_PER_MONTH, type ProviderId } from "./catalog";
import type { RuntimeConfig } from "./config";

export const USAGE_PATTERNS = [
  { id: "always-on", label: "24/7", activeHoursPerMonth: HOURS_PER_MONTH },
  { id: "business-hours", label: "8 h/day", activeHoursPerMonth: 240 },
  { id: "on-demand", label: "2 h/day", activeHoursPerMonth: 60 },
  { id: "burst", label: "20 h/month", activeHoursPerMonth: 20 },
] as const;
export type UsagePatternId = (typeof USAGE_PATTERNS)[number]["id"];

export interface ActiveHoursRow {
  readonly model: string;
  readonly provider: ProviderId;
  readonly gpu: GpuId;
  readonly usdPerHour: number;
  /** Monthly USD of the active hours of each pattern, one worker, rounded to cents. */
  readonly monthlyUsd: Readonly<Record<UsagePatternId, number>>;
}

const cents = (usd: number) => Math.round(usd * 100) / 100;

/**
 * For each model and each of its providers, the cheapest priced GPU and what its active hours cost.
 * Provider × GPU pairs without a known price are listed in `unpriced` instead of guessed.
 */
export function activeHoursForecast(runtime: RuntimeConfig): { rows: ActiveHoursRow[]; unpriced: string[] } {
  const rows: ActiveHoursRow[] = [];
  const unpriced: string[] = [];
  for (const model of runtime.models) {
    for (const provider of model.providers) {
      if (provider === "local") continue; // the team's own hardware has no per-hour price
      const candidates = runtime.prices.filter((p) => p.provider === provider && model.gpu.includes(p.gpu));
      const cheapest = candidates.sort((a, b) => a.usdPerHour - b.usdPerHour)[0];
      if (!cheapest) {
        unpriced.push(`${model.name} on ${provider} (${model.gpu.join(", ")})`);
        continue;
      }
      const perHour = cheapest.usdPerHour * model.gpuCount;
      rows.push({
        model: model.name,
        provider,
        gpu: cheapest.gpu,
        usdPerHour: perHour,
        monthlyUsd: Object.fromEntries(
          USAGE_PATTERNS.map((p) => [p.id, cents(perHour * p.activeHoursPerMonth)]),
        ) as Record<UsagePatternId, number>,
      });
    }
  }
  return { rows, unpriced };
}
