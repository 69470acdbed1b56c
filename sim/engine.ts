/**
 * The event engine of the simulator: a priority queue of timed events and a virtual clock.
 *
 * Events are ordered by time; events at the same time come out in the order they were scheduled (a
 * sequence number breaks ties), so a run is deterministic for a seed. The queue is a binary heap over
 * parallel arrays (time, sequence, kind, reference): scheduling allocates nothing per event, which keeps a
 * month of a busy model (millions of events) fast and its memory proportional to the events pending, not
 * to the events processed.
 */

export class EventQueue<R> {
  private times: number[] = [];
  private seqs: number[] = [];
  private kinds: number[] = [];
  private refs: (R | undefined)[] = [];
  private length = 0;
  private seq = 0;

  /** Time of the event `pop` returned last. */
  time = 0;
  /** Kind of the event `pop` returned last. */
  kind = 0;
  /** Reference carried by the event `pop` returned last. */
  ref: R | undefined = undefined;

  get size(): number {
    return this.length;
  }

  /** Time of the earliest pending event, Infinity when none. */
  peekTime(): number {
    return this.length > 0 ? this.times[0]! : Number.POSITIVE_INFINITY;
  }

  /** Schedule an event of `kind` at `time` carrying `ref`. */
  push(time: number, kind: number, ref?: R): void {
    if (Number.isNaN(time)) throw new RangeError("event time is NaN");
    let i = this.length++;
    const seq = this.seq++;
    // Sift up: move parents down until the slot for the new event is found.
    while (i > 0) {
      const p = (i - 1) >> 1;
      const pt = this.times[p]!;
      if (pt < time || (pt === time && this.seqs[p]! < seq)) break;
      this.times[i] = pt;
      this.seqs[i] = this.seqs[p]!;
      this.kinds[i] = this.kinds[p]!;
      this.refs[i] = this.refs[p];
      i = p;
    }
    this.times[i] = time;
    this.seqs[i] = seq;
    this.kinds[i] = kind;
    this.refs[i] = ref;
  }

  /** Remove the earliest event into `time`, `kind`, `ref`; false when the queue is empty. */
  pop(): boolean {
    if (this.length === 0) return false;
    this.time = this.times[0]!;
    this.kind = this.kinds[0]!;
    this.ref = this.refs[0];
    const n = --this.length;
    if (n === 0) {
      this.refs[0] = undefined;
      return true;
    }
    const t = this.times[n]!;
    const s = this.seqs[n]!;
    const k = this.kinds[n]!;
    const r = this.refs[n];
    this.refs[n] = undefined;
    // Sift down the last event from the root.
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const rc = l + 1;
      let c = l;
      if (rc < n) {
        const lt = this.times[l]!;
        const rt = this.times[rc]!;
        if (rt < lt || (rt === lt && this.seqs[rc]! < this.seqs[l]!)) c = rc;
      }
      const ct = this.times[c]!;
      if (t < ct || (t === ct && s < this.seqs[c]!)) break;
      this.times[i] = ct;
      this.seqs[i] = this.seqs[c]!;
      this.kinds[i] = this.kinds[c]!;
      this.refs[i] = this.refs[c];
      i = c;
    }
    this.times[i] = t;
    this.seqs[i] = s;
    this.kinds[i] = k;
    this.refs[i] = r;
    return true;
  }
}

/** A handler for the events of one kind: gets the time and the event's reference. */
export type EventHandler<R> = (time: number, ref: R | undefined) => void;

/**
 * A virtual clock over an event queue. `run` pops events in order, advances `now` and dispatches each to
 * the handler registered for its kind, until the queue is empty or the next event lies past `until`.
 */
export class Simulation<R> {
  readonly queue = new EventQueue<R>();
  now = 0;
  processed = 0;
  private handlers: EventHandler<R>[] = [];

  on(kind: number, handler: EventHandler<R>): this {
    this.handlers[kind] = handler;
    return this;
  }

  /** Schedule at an absolute time; an event in the past is an error (the clock never runs backwards). */
  at(time: number, kind: number, ref?: R): void {
    if (time < this.now) throw new RangeError(`event at ${time} is before now (${this.now})`);
    this.queue.push(time, kind, ref);
  }

  /** Schedule `delay` seconds from now. */
  after(delay: number, kind: number, ref?: R): void {
    this.at(this.now + Math.max(0, delay), kind, ref);
  }

  /** Process events up to and including `until`; returns the number processed in this call. */
  run(until = Number.POSITIVE_INFINITY, onBatch?: (now: number) => void, batch = 65_536): number {
    const q = this.queue;
    let n = 0;
    while (q.size > 0 && q.peekTime() <= until) {
      q.pop();
      this.now = q.time;
      const handler = this.handlers[q.kind];
      if (!handler) throw new Error(`no handler for event kind ${q.kind}`);
      handler(q.time, q.ref);
      n++;
      if (onBatch && n % batch === 0) onBatch(this.now);
    }
    this.processed += n;
    return n;
  }
}
