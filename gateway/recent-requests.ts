/**
 * The recent requests' audit lines, kept in a capped Redis stream (`RedisKeys.recentRequests`) so a request's
 * story can be told by id after the fact (MCP `request_story`) without a log store. Lines are batched off the
 * request's path (one pipeline per flush) and never carry a prompt, whatever `gateway.auditPrompts` says.
 * Best effort: a failed flush drops its lines (stdout keeps the full log); the buffer has a hard cap.
 */
import type { Redis } from "ioredis";
import type { RedisKeys } from "../core/redis-keys";
import { type AuditEntry, auditLine } from "./audit";

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
        "rid",
        entry.requestId,
        "line",
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

/** The audit line of one request by its id (`req_…`) among the recent ones, newest first; undefined when gone. */
export async function findRecentRequest(
  redis: Redis,
  keys: RedisKeys,
  requestId: string,
): Promise<AuditEntry | undefined> {
  let end = "+";
  for (let page = 0; page < 50; page++) {
    const rows = (await redis.xrevrange(keys.recentRequests, end, "-", "COUNT", 500)) as [string, string[]][];
    const fresh = page === 0 ? rows : rows.slice(1);
    if (fresh.length === 0) return undefined;
    for (const [, flat] of fresh) {
      const rid = flat[flat.indexOf("rid") + 1];
      if (rid !== requestId) continue;
      const line = flat[flat.indexOf("line") + 1];
      return line === undefined ? undefined : (JSON.parse(line) as AuditEntry);
    }
    end = rows[rows.length - 1]![0];
  }
  return undefined;
}
