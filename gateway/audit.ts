/**
 * The audit log: one JSON line per request, written through a bounded queue. When the sink is slow the queue
 * drops lines and counts them rather than growing (a failing log sink must never grow the gateway's memory).
 */
import type { AuditEntry } from "../core/request-audit";

/** The second of the last timestamp and its ISO prefix (`2026-11-27T15:04:05.`): one date format per second. */
let isoSecond = { second: Number.NaN, prefix: "" };

/** `new Date(ms).toISOString()`, formatting the date only when the second changes (the audit line's `ts`). */
export function isoTimestamp(ms: number): string {
  const second = Math.floor(ms / 1000);
  if (second !== isoSecond.second) {
    isoSecond = { second, prefix: new Date(second * 1000).toISOString().slice(0, 20) };
  }
  const millis = Math.floor(ms) - second * 1000;
  return `${isoSecond.prefix}${millis < 10 ? "00" : millis < 100 ? "0" : ""}${millis}Z`;
}

/** The fields of an audit line no worker served (a refusal, a job's submission): no backend, tokens or cost. */
export const NOT_SERVED = {
  backend: null,
  provider: null,
  stream: false,
  promptTokens: 0,
  completionTokens: 0,
  costUsd: 0,
  ttftMs: null,
  queueMs: 0,
} as const satisfies Partial<AuditEntry>;

/** Strings that are their own JSON (no quote, backslash or control character to escape): ids, names, codes. */
const PLAIN = /^[\w .:@/+-]*$/;
const str = (s: string): string => (PLAIN.test(s) ? `"${s}"` : JSON.stringify(s));
const strOrNull = (s: string | null): string => (s === null ? "null" : str(s));
const num = (n: number): string => (Number.isFinite(n) ? `${n}` : "null");
const numOrNull = (n: number | null): string => (n === null ? "null" : num(n));

/**
 * An entry as one JSON line, the same text `JSON.stringify` prints for it (fields in the interface's order,
 * undefined ones left out), written out field by field: the generic serializer walks the object's shape and
 * costs a few microseconds per line, this a fraction of one.
 */
export function auditLine(e: AuditEntry): string {
  return `{"ts":${str(e.ts)},"requestId":${str(e.requestId)}${
    e.clientRequestId === undefined ? "" : `,"clientRequestId":${str(e.clientRequestId)}`
  },"keyId":${strOrNull(e.keyId)},"model":${str(e.model)}${
    e.variant === undefined ? "" : `,"variant":${str(e.variant)}`
  },"endpoint":${str(e.endpoint)},"backend":${strOrNull(e.backend)},"provider":${strOrNull(e.provider)},"status":${num(
    e.status,
  )},"stream":${e.stream},"promptTokens":${num(e.promptTokens)},"completionTokens":${num(
    e.completionTokens,
  )},"costUsd":${num(e.costUsd)},"latencyMs":${num(e.latencyMs)},"ttftMs":${numOrNull(e.ttftMs)},"queueMs":${num(
    e.queueMs,
  )},"error":${strOrNull(e.error)}${e.traceId === undefined ? "" : `,"traceId":${str(e.traceId)}`}${
    e.jobId === undefined ? "" : `,"jobId":${str(e.jobId)}`
  }${e.images === undefined ? "" : `,"images":${num(e.images)}`}${promptField(e.prompt)}}\n`;
}

function promptField(prompt: unknown): string {
  const json = prompt === undefined ? undefined : (JSON.stringify(prompt) as string | undefined);
  return json === undefined ? "" : `,"prompt":${json}`;
}

/** Where lines go; `write` returns false when the sink wants the writer to wait (stream backpressure). */
export interface AuditSink {
  write(line: string): boolean;
  once(event: "drain", listener: () => void): unknown;
}

/** A batching log writes at least this often… */
const BATCH_MS = 10;
/** …and at once when this many lines are waiting. */
const BATCH_LINES = 256;

export class AuditLog {
  private queue: string[] = [];
  private waiting = false;
  private scheduled = false;
  dropped = 0;

  constructor(
    private readonly sink: AuditSink,
    private readonly options: {
      capacity?: number;
      onDrop?: () => void;
      /**
       * Write lines together, in one `write` per `BATCH_MS` (or per `BATCH_LINES`): stdout is a synchronous write
       * per call, one system call per request otherwise. A sink then gets several whole lines per write.
       * @default false
       */
      batch?: boolean;
      /** Also hands every recorded entry here (the recent-requests stream), before it is queued. */
      onRecord?: (entry: AuditEntry) => void;
    } = {},
  ) {}

  get pending(): number {
    return this.queue.length;
  }

  record(entry: AuditEntry): void {
    if (this.queue.length >= (this.options.capacity ?? 10_000)) {
      this.dropped += 1;
      this.options.onDrop?.();
      return;
    }
    this.queue.push(auditLine(entry));
    this.options.onRecord?.(entry);
    if (this.waiting) return;
    if (!this.options.batch || this.queue.length >= BATCH_LINES) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      setTimeout(() => {
        this.scheduled = false;
        if (!this.waiting) this.flush();
      }, BATCH_MS).unref();
    }
  }

  /** Write what is queued now (a closing gateway), as far as the sink takes it. */
  flush(): void {
    while (this.queue.length > 0) {
      let line: string;
      if (this.options.batch) {
        line = this.queue.join("");
        this.queue = [];
      } else line = this.queue.shift()!;
      if (!this.sink.write(line)) {
        this.waiting = true;
        this.sink.once("drain", () => {
          this.waiting = false;
          this.flush();
        });
        return;
      }
    }
  }
}
