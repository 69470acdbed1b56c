/**
 * Why a worker runs on the offer it runs on: one line for `aiorch status --decisions`.
 *
 * Rules: pure; names at most SKIPPED_NAMED skipped offers and counts the rest, so a provider listing hundreds of
 * offers does not flood the decision list.
 */
import type { Offer, SkippedOffer } from "./providers/types";

/** How many skipped offers a decision entry names (the rest are counted). */
const SKIPPED_NAMED = 6;

/**
 * The offer a worker was created on, and what else was on the table: how many cheaper offers failed before it, and the
 * offers the adapters left out, with why (no direct ports, too little GPU memory, no stock) — one line for
 * `aiorch status --decisions`.
 */
export function explainOfferChoice(
  chosen: Offer,
  failedFirst: number,
  skipped: readonly SkippedOffer[],
): string {
  const describe = (o: {
    provider: string;
    offerId?: string;
    gpuName?: string;
    gpuMemoryGb?: number;
    usdPerHour?: number;
  }) =>
    [
      `${o.provider}${o.offerId ? ` ${o.offerId}` : ""}`,
      o.gpuName,
      o.gpuMemoryGb !== undefined ? `${o.gpuMemoryGb} GB/GPU` : undefined,
      o.usdPerHour !== undefined ? `$${o.usdPerHour}/h` : undefined,
    ]
      .filter((part) => part !== undefined)
      .join(", ");
  const parts = [`chose ${describe({ ...chosen, gpuName: chosen.gpu })} (cheapest that could be created)`];
  if (failedFirst > 0) parts.push(`${failedFirst} cheaper offer(s) failed first`);
  if (skipped.length > 0) {
    const named = skipped.slice(0, SKIPPED_NAMED).map((s) => `${describe(s)}: ${s.reason}`);
    const more = skipped.length > SKIPPED_NAMED ? `; and ${skipped.length - SKIPPED_NAMED} more` : "";
    parts.push(`skipped ${named.join("; ")}${more}`);
  }
  return parts.join("; ");
}
