/**
 * A request's abort signal without an AbortController: creating one and adding and removing its listeners costs a
 * few microseconds per request (AbortSignal is an EventTarget), an EventEmitter a tenth of one. undici accepts an
 * EventEmitter that emits "abort" as `signal`; `addEventListener`/`removeEventListener` let code written for an
 * AbortSignal take this one too.
 */
import { EventEmitter } from "node:events";

export class AbortFlag extends EventEmitter {
  aborted = false;

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.emit("abort");
    this.removeAllListeners("abort"); // it aborts once: every listener was a once-listener
  }

  /** Listens once, as every abort listener does (`on` here: `once` would allocate a wrapper per listener). */
  addEventListener(_type: "abort", listener: () => void, _options?: { once?: boolean }): void {
    this.on("abort", listener);
  }

  removeEventListener(_type: "abort", listener: () => void): void {
    this.removeListener("abort", listener);
  }
}

/** What waits and upstream calls accept: an AbortSignal or an AbortFlag. */
export type AbortLike = AbortSignal | AbortFlag;
