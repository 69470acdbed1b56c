/** `aiorch keys create|list|revoke`: API keys in the stack's Redis. The raw key is printed once, at creation. */
import { parseArgs } from "node:util";
import { ApiKeyStore } from "../core/api-keys";
import { AuditTrail } from "../core/audit-trail";
import { isKeyScope, KEY_SCOPES, type KeyScope } from "../core/protocol";
import { redisKeys } from "../core/redis-keys";
import { renderTable } from "../core/table";
import { UsageError } from "./plan/run";
import { runtimeConfigFrom } from "./runtime-source";
import { connectStackRedis } from "./stack-redis";

export interface Io {
  out(text: string): void;
  err(text: string): void;
}

function parseExpiry(text: string, now: number): number {
  const ms = /^\d{4}-\d{2}-\d{2}$/.test(text) ? Date.parse(`${text}T00:00:00Z`) : Date.parse(text);
  if (Number.isNaN(ms)) throw new UsageError(`--expires "${text}" is not a date; write e.g. 2027-01-31`);
  if (ms <= now) throw new UsageError(`--expires "${text}" is in the past`);
  return ms;
}

/** `24h`, `30m`, `7d`, `90s` → ms. */
export function parseDuration(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(s|m|h|d)$/.exec(text.trim());
  if (!match) throw new UsageError(`--grace "${text}" is not a duration; write e.g. 24h, 30m or 7d`);
  const unit = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] as "s" | "m" | "h" | "d"];
  return Number(match[1]) * unit;
}

/** `--scope`: what the key may do; absent, the OpenAI API only. */
function scopeArg(text: string | undefined): KeyScope {
  if (text === undefined) return "inference";
  if (!isKeyScope(text))
    throw new UsageError(
      `--scope "${text}" is not a scope; use ${KEY_SCOPES.join(", ")} (inference: the OpenAI API; read: read-only MCP tools; admin: MCP tools that act too)`,
    );
  return text;
}

function positive(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${flag} must be a positive number; got "${text}"`);
  return n;
}

export async function runKeys(
  argv: readonly string[],
  io: Io,
  dir: string,
  env = process.env,
): Promise<number> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parseArgs({
    args: [...rest],
    options: {
      stack: { type: "string" },
      config: { type: "string" },
      name: { type: "string" },
      models: { type: "string" },
      rpm: { type: "string" },
      tpm: { type: "string" },
      "monthly-budget": { type: "string" },
      expires: { type: "string" },
      grace: { type: "string" },
      actor: { type: "string" },
      reason: { type: "string" },
      json: { type: "boolean" },
      scope: { type: "string" },
    },
    allowPositionals: true,
    strict: true,
  });
  if (sub !== "create" && sub !== "list" && sub !== "revoke" && sub !== "rotate") {
    throw new UsageError(`keys needs a subcommand: create, list, rotate or revoke; got "${sub ?? ""}"`);
  }
  const actor = values.actor ?? env.AIORCH_ACTOR ?? env.USER ?? "cli";
  const config = runtimeConfigFrom({ stack: values.stack, config: values.config, dir });
  const redis = await connectStackRedis(env);
  try {
    const keys = redisKeys(config.redis.keyPrefix);
    const store = new ApiKeyStore(redis, keys);
    const audit = new AuditTrail(redis, keys);
    if (sub === "create") {
      if (!values.name) throw new UsageError("keys create needs --name");
      const known = new Set(config.models.map((m) => m.name));
      const models = values.models
        ? values.models
            .split(",")
            .map((m) => m.trim())
            .filter(Boolean)
        : [];
      const unknown = models.filter((m) => !known.has(m));
      if (unknown.length > 0)
        throw new UsageError(
          `--models: unknown model(s) ${unknown.join(", ")}; known: ${[...known].join(", ")}`,
        );
      const scope = scopeArg(values.scope);
      const now = Date.now();
      const { key, record } = await store.create({
        scope,
        name: values.name,
        models,
        rpm: positive("--rpm", values.rpm),
        tpm: positive("--tpm", values.tpm),
        monthlyBudgetUsd: positive("--monthly-budget", values["monthly-budget"]),
        expiresAtMs: values.expires ? parseExpiry(values.expires, now) : undefined,
        nowMs: now,
      });
      await audit.append({
        actor,
        action: "key.created",
        target: record.id,
        reason: values.reason ?? `created "${record.name}"`,
      });
      if (values.json)
        io.out(
          `${JSON.stringify({ key, id: record.id, name: record.name, prefix: record.prefix, scope: record.scope })}\n`,
        );
      else {
        io.out(`${key}\n`);
        io.err(
          `created ${record.id} "${record.name}" (scope ${record.scope}) — the key above is shown only now; store it safely\n`,
        );
      }
      return 0;
    }
    if (sub === "list") {
      const records = await store.list();
      if (values.json) {
        io.out(
          `${JSON.stringify(
            records.map(({ hash: _hash, ...visible }) => visible),
            null,
            2,
          )}\n`,
        );
        return 0;
      }
      const rows = records.map((r) => [
        r.id,
        r.name,
        `${r.prefix}…`,
        r.scope,
        r.models.length > 0 ? r.models.join(",") : "(all)",
        r.rpm ?? config.gateway.limits.rpm,
        r.tpm ?? config.gateway.limits.tpm,
        r.monthlyBudgetUsd === undefined ? "-" : `$${r.monthlyBudgetUsd}`,
        r.expiresAtMs === undefined ? "-" : new Date(r.expiresAtMs).toISOString().slice(0, 10),
        r.revoked
          ? "revoked"
          : r.expiresAtMs !== undefined && r.expiresAtMs <= Date.now()
            ? "expired"
            : "active",
      ]);
      io.out(
        `${renderTable(["id", "name", "prefix", "scope", "models", "rpm", "tpm", "budget", "expires", "status"], rows)}\n`,
      );
      return 0;
    }
    const id = positionals[0];
    if (!id) throw new UsageError(`keys ${sub} needs the key id (see keys list)`);
    if (sub === "rotate") {
      const graceMs = parseDuration(values.grace ?? "24h");
      const rotated = await store.rotate(id, graceMs);
      if (!rotated) throw new UsageError(`no active key with id ${id}`);
      await audit.append({
        actor,
        action: "key.rotated",
        target: id,
        reason:
          values.reason ??
          `replaced by ${rotated.record.id}; old key works until ${new Date(rotated.oldExpiresAtMs).toISOString()}`,
      });
      if (values.json)
        io.out(
          `${JSON.stringify({ key: rotated.key, id: rotated.record.id, oldId: id, oldExpiresAt: new Date(rotated.oldExpiresAtMs).toISOString() })}\n`,
        );
      else {
        io.out(`${rotated.key}\n`);
        io.err(
          `rotated ${id} → ${rotated.record.id}; the key above is shown only now; ${id} works until ${new Date(rotated.oldExpiresAtMs).toISOString()}\n`,
        );
      }
      return 0;
    }
    if (!(await store.revoke(id))) throw new UsageError(`no key with id ${id}`);
    await audit.append({ actor, action: "key.revoked", target: id, reason: values.reason ?? "revoked" });
    io.err(`revoked ${id}; gateways stop accepting it within seconds\n`);
    return 0;
  } finally {
    redis.disconnect();
  }
}
