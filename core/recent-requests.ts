/**
 * The recent requests' stream (`RedisKeys.recentRequests`): a capped Redis stream of audit lines, written by the
 * gateway (gateway/recent-requests.ts) and read back by id (MCP `request_story`) or by time (MCP anomalies).
 * Each entry carries the request's id and its audit line, under the field names below.
 */
import type { Redis } from "ioredis";
import type { RedisKeys } from "./redis-keys";
import type { AuditEntry } from "./request-audit";

/** The stream entry's field holding the request's id (`req_…`), to find a line without parsing it. */
export const RECENT_REQUEST_ID_FIELD = "rid";
/** The stream entry's field holding the audit line (JSON, never a prompt). */
export const RECENT_REQUEST_LINE_FIELD = "line";

/** The value of `field` in a stream entry's flat `[field, value, …]` list; undefined when absent. */
export function recentRequestField(flat: readonly string[], field: string): string | undefined {
  return flat[flat.indexOf(field) + 1];
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
      const rid = recentRequestField(flat, RECENT_REQUEST_ID_FIELD);
      if (rid !== requestId) continue;
      const line = recentRequestField(flat, RECENT_REQUEST_LINE_FIELD);
      return line === undefined ? undefined : (JSON.parse(line) as AuditEntry);
    }
    end = rows[rows.length - 1]![0];
  }
  return undefined;
}
