/**
 * The audit log: one JSON line per request, written through a bounded queue. When the sink is slow the queue
 * drops lines and counts them rather than growing (a failing log sink must never grow the gateway's memory).
 */

export interface AuditEntry {
  readonly ts: string;
  readonly requestId: string;
  readonly keyId: string | null;
  readonly model: string;
  readonly endpoint: string;
  readonly backend: string | null;
  readonly provider: string | null;
  readonly status: number;
  readonly stream: boolean;
  readonly promptTokens: number;
  readonly completionTokens: number;
  readonly costUsd: number;
  readonly latencyMs: number;
  readonly ttftMs: number | null;
  readonly queueMs: number;
  readonly error: string | null;
  /** Prompt and completion text, only when the stack turns `gateway.auditPrompts` on. */
  readonly prompt?: unknown;
}

/** Where lines go; `write` returns false when the sink wants the writer to wait (stream backpressure). */
export interface AuditSink {
  write(line: string): boolean;
  once(event: "drain", listener: () => void): unknown;
}

export class AuditLog {
  private readonly queue: string[] = [];
  private waiting = false;
  dropped = 0;

  constructor(
    private readonly sink: AuditSink,
    private readonly options: { capacity?: number; onDrop?: () => void } = {},
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
    this.queue.push(`${JSON.stringify(entry)}\n`);
    if (!this.waiting) this.flush();
  }

  private flush(): void {
    while (this.queue.length > 0) {
      const line = this.queue.shift()!;
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
