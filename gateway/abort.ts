/**
 * A request's abort signal without an AbortController or an EventEmitter: an AbortSignal is an EventTarget
 * (creating one and adding and removing its listeners costs a few microseconds per request) and an EventEmitter
 * still builds its listener table per instance; this is a flag and a short list. It has the
 * `addEventListener`/`removeEventListener` pair undici and code written for an AbortSignal use.
 */
export class AbortFlag {
  aborted = false;
  private listeners: (() => void)[] | undefined;

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    const listeners = this.listeners;
    this.listeners = undefined; // it aborts once: every listener is a once-listener
    if (listeners) for (const listener of listeners) listener();
  }

  /** Listens once, as every abort listener does; a listener added after the abort is not called. */
  addEventListener(_type: "abort", listener: () => void, _options?: { once?: boolean }): void {
    if (this.aborted) return;
    if (this.listeners) this.listeners.push(listener);
    else this.listeners = [listener];
  }

  removeEventListener(_type: "abort", listener: () => void): void {
    const index = this.listeners?.indexOf(listener) ?? -1;
    if (index >= 0) this.listeners!.splice(index, 1);
  }

  /** Listeners waiting for the abort (tests and diagnostics). */
  listenerCount(): number {
    return this.listeners?.length ?? 0;
  }
}

/** What waits and upstream calls accept: an AbortSignal or an AbortFlag. */
export type AbortLike = AbortSignal | AbortFlag;
