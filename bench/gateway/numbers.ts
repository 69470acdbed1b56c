/** The benchmark's arithmetic on its samples, and how a number is printed in its lines and tables. */
import { nearestRank } from "../../devkit/stats";

/** A monotonic clock in nanoseconds (CLOCK_MONOTONIC: one clock for every process on the machine). */
export const nowNs = (): bigint => process.hrtime.bigint();
export const round = (n: number, digits: number): number => Math.round(n * 10 ** digits) / 10 ** digits;

export function median(values: number[]): number {
  return nearestRank(Float64Array.from(values).sort(), 50);
}

/** Milliseconds with three decimals. */
export const f3 = (n: number) => n.toFixed(3);
/** A difference with its sign, three decimals: "+0.123" or "-0.123". */
export const signedMs = (ms: number) => (ms >= 0 ? `+${f3(ms)}` : f3(ms));
