/**
 * The administrative audit trail: an append-only Redis stream, separate from the request log, where every entry
 * carries the SHA-256 of the one before it. Editing or deleting an entry in the middle breaks the chain at that
 * point, and `aiorch audit verify` says where. (Whoever can rewrite the whole stream can also rewrite the chain:
 * keep the head hash that verify prints somewhere else to anchor it.)
 */
import { createHash } from "node:crypto";
import type { Redis } from "ioredis";
import type { RedisKeys } from "./redis-keys";

export type AuditAction =
  | "key.created"
  | "key.rotated"
  | "key.revoked"
  | "weights.changed"
  | "budget.changed"
  | "provider.refused"
  /** Run-time controls (MCP acting tools, core/run-time-controls.ts). */
  | "workers.bounds"
  | "worker.drain"
  | "model.paused"
  | "model.unpaused"
  /** Self-healing by the controller within the stack's guard rails (controller/self-healing.ts). */
  | "worker.replaced"
  | "provider.failed-over"
  /** Redis was restored from a backup: entries between the backup and this one are not in the trail. */
  | "backup.restored";

export interface AuditRecord {
  readonly ts: string;
  /** Who: a person (`alice`), or a process (`controller:abc123`). */
  readonly actor: string;
  readonly action: AuditAction;
  /** What it acted on: a key id, a model, a provider. Never a secret. */
  readonly target: string;
  readonly reason: string;
}

export interface AuditEntry extends AuditRecord {
  readonly id: string;
  /** Hash of the previous entry ("" for the first). */
  readonly prev: string;
  readonly hash: string;
}

/** The hash of an entry: its fields in a fixed order, chained to the previous hash. */
export function entryHash(prev: string, r: AuditRecord): string {
  return createHash("sha256")
    .update(JSON.stringify([prev, r.ts, r.actor, r.action, r.target, r.reason]))
    .digest("hex");
}

const fieldsOf = (flat: string[]): Record<string, string> => {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i]!] = flat[i + 1]!;
  return out;
};

export class AuditTrail {
  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    private readonly now: () => number = Date.now,
  ) {}

  /** Append an entry; concurrent writers are serialised with WATCH so the chain never forks. */
  async append(record: Omit<AuditRecord, "ts">): Promise<AuditEntry> {
    const key = this.keys.auditStream;
    const full: AuditRecord = { ...record, ts: new Date(this.now()).toISOString() };
    // A dedicated connection: WATCH state belongs to a connection, and the caller's may be pipelining.
    const conn = this.redis.duplicate();
    try {
      for (let attempt = 0; attempt < 20; attempt++) {
        await conn.watch(key);
        const last = (await conn.xrevrange(key, "+", "-", "COUNT", 1)) as [string, string[]][];
        const prev = last[0] ? (fieldsOf(last[0][1]).hash ?? "") : "";
        const hash = entryHash(prev, full);
        const result = await conn
          .multi()
          .xadd(
            key,
            "*",
            "ts",
            full.ts,
            "actor",
            full.actor,
            "action",
            full.action,
            "target",
            full.target,
            "reason",
            full.reason,
            "prev",
            prev,
            "hash",
            hash,
          )
          .exec();
        if (result) return { ...full, id: String(result[0]![1]), prev, hash };
      }
      throw new Error("the audit trail is too busy to append to; try again");
    } finally {
      conn.disconnect();
    }
  }

  async list(count = 1000): Promise<AuditEntry[]> {
    const rows = (await this.redis.xrange(this.keys.auditStream, "-", "+", "COUNT", count)) as [
      string,
      string[],
    ][];
    return rows.map(([id, flat]) => {
      const f = fieldsOf(flat);
      return {
        id,
        ts: f.ts ?? "",
        actor: f.actor ?? "",
        action: (f.action ?? "") as AuditAction,
        target: f.target ?? "",
        reason: f.reason ?? "",
        prev: f.prev ?? "",
        hash: f.hash ?? "",
      };
    });
  }

  /** Walk the whole chain; the first entry whose hash or link does not hold is reported. */
  async verify(): Promise<{
    ok: boolean;
    entries: number;
    head: string;
    broken?: { id: string; why: string };
  }> {
    let prev = "";
    let entries = 0;
    let cursor = "-";
    for (;;) {
      const rows = (await this.redis.xrange(this.keys.auditStream, cursor, "+", "COUNT", 500)) as [
        string,
        string[],
      ][];
      const page = cursor === "-" ? rows : rows.slice(1); // an exclusive start without relying on "(" syntax
      if (page.length === 0) break;
      for (const [id, flat] of page) {
        const f = fieldsOf(flat);
        if ((f.prev ?? "") !== prev)
          return {
            ok: false,
            entries,
            head: prev,
            broken: {
              id,
              why: "its link to the previous entry does not match (an entry was removed or reordered)",
            },
          };
        const record: AuditRecord = {
          ts: f.ts ?? "",
          actor: f.actor ?? "",
          action: (f.action ?? "") as AuditAction,
          target: f.target ?? "",
          reason: f.reason ?? "",
        };
        if (entryHash(prev, record) !== f.hash)
          return {
            ok: false,
            entries,
            head: prev,
            broken: { id, why: "its content does not match its hash (it was edited)" },
          };
        prev = f.hash;
        entries += 1;
        cursor = id;
      }
    }
    return { ok: true, entries, head: prev };
  }
}
