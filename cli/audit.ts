/** `aiorch audit list|verify`: the administrative audit trail of a stack. */
import { parseArgs } from "node:util";
import { AuditTrail } from "../core/audit-trail";
import { redisKeys } from "../core/redis-keys";
import { renderTable } from "../core/table";
import type { Io } from "./keys";
import { UsageError } from "./plan/run";
import { runtimeConfigFrom } from "./runtime-source";
import { connectStackRedis } from "./stack-redis";

export async function runAudit(
  argv: readonly string[],
  io: Io,
  dir: string,
  env = process.env,
): Promise<number> {
  const [sub, ...rest] = argv;
  const { values } = parseArgs({
    args: [...rest],
    options: { stack: { type: "string" }, config: { type: "string" }, json: { type: "boolean" } },
    strict: true,
  });
  if (sub !== "list" && sub !== "verify")
    throw new UsageError(`audit needs a subcommand: list or verify; got "${sub ?? ""}"`);
  const config = runtimeConfigFrom({ stack: values.stack, config: values.config, dir });
  const redis = await connectStackRedis(env);
  try {
    const trail = new AuditTrail(redis, redisKeys(config.redis.keyPrefix));
    if (sub === "list") {
      const entries = await trail.list();
      if (values.json) io.out(`${JSON.stringify(entries, null, 2)}\n`);
      else
        io.out(
          `${renderTable(
            ["time", "actor", "action", "target", "reason"],
            entries.map((e) => [e.ts, e.actor, e.action, e.target, e.reason]),
          )}\n`,
        );
      return 0;
    }
    const result = await trail.verify();
    if (values.json) io.out(`${JSON.stringify(result)}\n`);
    else if (result.ok) {
      io.out(`audit trail intact: ${result.entries} entries, head ${result.head || "(empty)"}\n`);
      // a restore is a gap in the trail: what happened between the backup and the restore is not in it
      for (const restore of (await trail.list(1_000_000)).filter((e) => e.action === "backup.restored"))
        io.out(`  restored at ${restore.ts} by ${restore.actor}: ${restore.reason}\n`);
    } else
      io.out(
        `audit trail BROKEN at entry ${result.broken!.id}: ${result.broken!.why} (${result.entries} entries verified before it)\n`,
      );
    return result.ok ? 0 : 1;
  } finally {
    redis.disconnect();
  }
}
