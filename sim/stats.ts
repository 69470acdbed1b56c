/**
 * Streaming statistics in constant memory: a fixed-bucket log histogram for quantiles (wait p50/p95/p99)
 * plus exact count, sum, min and max. Nothing per request is kept, so a month of millions of requests
 * costs the same memory as an hour.
 */

/** Values below this (seconds) count as zero: "served at once". */
const ZERO = 1e-3;
/** Upper end of the bucketed range (seconds); larger values land in the last bucket. */
const TOP = 1e6;
/** Relative bucket width: quantiles are exact to within ±0.5 %. */
const GROWTH = 1.01;
const LOG_GROWTH = Math.log(GROWTH);
const BUCKETS = Math.ceil(Math.log(TOP / ZERO) / LOG_GROWTH) + 2;

export class Histogram {
  private readonly counts = new Float64Array(BUCKETS);
  count = 0;
  sum = 0;
  min = Number.POSITIVE_INFINITY;
  max = 0;

  add(value: number): void {
    const v = Math.max(0, value) || 0;
    this.count++;
    this.sum += v;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
    if (v < ZERO) {
      this.counts[0]!++;
      return;
    }
    const i = Math.min(BUCKETS - 1, 1 + Math.floor(Math.log(v / ZERO) / LOG_GROWTH));
    this.counts[i]!++;
  }

  /** Add `n` copies of `value` (e.g. n requests served without waiting). */
  addMany(value: number, n: number): void {
    if (n <= 0) return;
    const v = Math.max(0, value) || 0;
    this.count += n;
    this.sum += v * n;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
    const i = v < ZERO ? 0 : Math.min(BUCKETS - 1, 1 + Math.floor(Math.log(v / ZERO) / LOG_GROWTH));
    this.counts[i]! += n;
  }

  get mean(): number {
    return this.count > 0 ? this.sum / this.count : 0;
  }

  /** The q-quantile (nearest rank), 0 for an empty histogram. */
  quantile(q: number): number {
    if (this.count === 0) return 0;
    const rank = Math.max(1, Math.ceil(Math.min(1, Math.max(0, q)) * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) {
        if (i === 0) return 0;
        // Geometric middle of the bucket, clamped to what was actually seen.
        const lower = ZERO * GROWTH ** (i - 1);
        const mid = lower * Math.sqrt(GROWTH);
        return Math.min(this.max, Math.max(this.min, mid));
      }
    }
    return this.max;
  }
}
