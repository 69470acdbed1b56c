/**
 * The recent requests' audit lines, kept in a capped Redis stream (`RedisKeys.recentRequests`) so a request's
 * story can be told by id after the fact (MCP `request_story`, read by core/recent-requests.ts) without a log
 * store. Lines are batched off the request's path (one pipeline per flush) and never carry a prompt, whatever
 * `gateway.auditPrompts` says.
 * Best effort: a failed flush drops its lines (stdout keeps the full log); the buffer has a hard cap.
 */
import type { Redis } from "ioredis";
import { RECENT_REQUEST_ID_FIELD, RECENT_REQUEST_LINE_FIELD } from "../core/recent-requests";
import type { RedisKeys } from "../core/redis-keys";
import type { AuditEntry } from "../core/request-audit";
import { auditLine } from "./audit";

const FLUSH_MS = 200;
/** Lines waiting for a flush at most; past it, new ones are dropped (Redis is not keeping up). */
const BUFFER_CAP = 5_000;

export class RecentRequests {
  private buffer: AuditEntry[] = [];
  private timer?: NodeJS.Timeout;

  /** @param keep about how many lines the stream keeps (MAXLEN ~) */
  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    private readonly keep: number,
  ) {}

  push(entry: AuditEntry): void {
    if (this.buffer.length >= BUFFER_CAP) return;
    this.buffer.push(entry);
    if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.flush();
      }, FLUSH_MS);
      this.timer.unref();
    }
  }

  async flush(): Promise<void> {
    if (this.buffer.length === 0) return;
    const lines = this.buffer;
    this.buffer = [];
    const pipeline = this.redis.pipeline();
    for (const entry of lines) {
      const { prompt: _prompt, ...kept } = entry;
      pipeline.xadd(
        this.keys.recentRequests,
        "MAXLEN",
        "~",
        this.keep,
        "*",
        RECENT_REQUEST_ID_FIELD,
        entry.requestId,
        RECENT_REQUEST_LINE_FIELD,
        auditLine(kept).trimEnd(),
      );
    }
    await pipeline.exec().catch(() => undefined);
  }

  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.flush();
  }
}
