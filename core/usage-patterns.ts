/** The usage patterns platform teams plan with; the simulator turns each into active periods with arrivals. */
import { HOURS_PER_MONTH } from "./catalog";

export const USAGE_PATTERNS = [
  { id: "always-on", label: "24/7", activeHoursPerMonth: HOURS_PER_MONTH },
  { id: "business-hours", label: "8 h/day", activeHoursPerMonth: 240 },
  { id: "on-demand", label: "2 h/day", activeHoursPerMonth: 60 },
  { id: "burst", label: "20 h/month", activeHoursPerMonth: 20 },
] as const;
export type UsagePatternId = (typeof USAGE_PATTERNS)[number]["id"];
