/**
 * Refresh-ahead for the reads the gateway caches on its request path (routes, budget blocks, key records, key
 * spend). An entry past half its lifetime is still served, and one background read renews it; a request waits on
 * Redis only when its entry is missing or expired, that is when nothing asked for it for half a lifetime or more.
 * How stale an answer may be is unchanged: never older than the lifetime.
 */
export class RefreshAhead<K> {
  private readonly pending = new Set<K>();

  /** Whether an entry read `ageMs` ago should be renewed in the background. */
  static due(ageMs: number, lifetimeMs: number): boolean {
    return ageMs >= lifetimeMs / 2;
  }

  /**
   * Run `read` for `key` unless one is already under way. A failed read is dropped: the entry expires, and the
   * request that then finds it missing reads it itself and gets the error.
   */
  renew(key: K, read: () => Promise<unknown>): void {
    if (this.pending.has(key)) return;
    this.pending.add(key);
    read()
      .catch(() => undefined)
      .finally(() => this.pending.delete(key));
  }
}
