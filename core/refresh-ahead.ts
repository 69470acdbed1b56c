/**
 * Refresh-ahead for the reads cached on a request path (the gateway's routes, budget blocks and key spend; key
 * records wherever keys are verified). An entry past half its lifetime is still served, and one background read
 * renews it; a request waits on Redis only when its entry is missing or expired, that is when nothing asked for it
 * for half a lifetime or more. How stale an answer may be is unchanged: never older than the lifetime.
 */
export class RefreshAhead<K> {
  private readonly pending = new Set<K>();

  /** Whether an entry read `ageMs` ago should be renewed in the background. */
  static due(ageMs: number, lifetimeMs: number): boolean {
    return ageMs >= lifetimeMs / 2;
  }

  /**
   * Whether an entry of `key` read `ageMs` ago may still be served (it is younger than its lifetime); past half of
   * it, `read` renews the entry in the background as well. `read` is a reader the cache made once, not a closure per
   * call: this runs on every request.
   */
  serve(key: K, ageMs: number, lifetimeMs: number, read: (key: K) => Promise<unknown>): boolean {
    if (ageMs >= lifetimeMs) return false;
    if (RefreshAhead.due(ageMs, lifetimeMs)) this.renew(key, read);
    return true;
  }

  /**
   * Run `read` for `key` unless one is already under way. A failed read is dropped: the entry expires, and the
   * request that then finds it missing reads it itself and gets the error.
   */
  renew(key: K, read: (key: K) => Promise<unknown>): void {
    if (this.pending.has(key)) return;
    this.pending.add(key);
    read(key)
      .catch(() => undefined)
      .finally(() => this.pending.delete(key));
  }
}
