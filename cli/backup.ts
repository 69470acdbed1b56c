/**
 * `aiorch backup now|list` and `aiorch restore`: the stack's Redis to and from object storage (formats:
 * core/backup.ts; Redis: core/backup-redis.ts; storage: core/backup-storage.ts).
 *
 * Where backups go is the stack's `ai-orchestrator:backup`; object storage credentials come from
 * AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, the key ring from AIORCH_ENCRYPTION_KEYS, Redis from REDIS_URL.
 * `backup now` prints the object's s3:// address on stdout and nothing else, so scripts can keep it.
 */
import { parseArgs } from "node:util";
import { BackupRefused, openBackup } from "../core/backup";
import { restoreBackup } from "../core/backup-redis";
import { BackupStorage, BackupStorageError, parseS3Url, type StoredBackup } from "../core/backup-storage";
import { describeTaken, takeBackup } from "../core/backup-take";
import type { RuntimeConfig } from "../core/config";
import { type KeyRing, parseKeyRing } from "../core/envelope";
import { renderTable } from "../core/table";
import type { Io } from "./keys";
import { UsageError } from "./plan/run";
import { runtimeConfigFrom } from "./runtime-source";
import { connectStackRedis } from "./stack-redis";

type BackupSettings = NonNullable<RuntimeConfig["backup"]>;

function backupSettings(config: RuntimeConfig): BackupSettings {
  if (!config.backup)
    throw new UsageError(
      `stack ${config.stack} has no backup target: set ai-orchestrator:backup { bucket, endpoint, … } in Pulumi.${config.stack}.yaml (README "Disaster recovery")`,
    );
  return config.backup;
}

/** The stack's key ring; refuses to go on in clear when the stack encrypts and no ring is given. */
function keyRing(config: RuntimeConfig, env: NodeJS.ProcessEnv, what: string): KeyRing | undefined {
  let ring: KeyRing | undefined;
  try {
    ring = parseKeyRing(env.AIORCH_ENCRYPTION_KEYS);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (config.security.encryptQueued && !ring)
    throw new UsageError(
      `security.encryptQueued is on but AIORCH_ENCRYPTION_KEYS is not set: ${what} needs the stack's key ring (kubectl get secret of the stack's queue encryption, or the ring you keep offline)`,
    );
  return ring;
}

/** Storage and Redis problems are the user's to fix (credentials, bucket, a non-empty Redis): exit 2, named. */
function asUsage(error: unknown): never {
  if (error instanceof BackupRefused || error instanceof BackupStorageError)
    throw new UsageError((error as Error).message);
  throw error;
}

const storageFor = (settings: BackupSettings, env: NodeJS.ProcessEnv): BackupStorage => {
  try {
    return new BackupStorage(settings, env);
  } catch (error) {
    asUsage(error);
  }
};

export async function runBackup(
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
  if (sub !== "now" && sub !== "list")
    throw new UsageError(`backup needs a subcommand: now or list; got "${sub ?? ""}"`);
  const config = runtimeConfigFrom({ stack: values.stack, config: values.config, dir });
  const settings = backupSettings(config);
  if (sub === "list") {
    const storage = storageFor(settings, env);
    try {
      const stored = await storage.list(config.stack).catch(asUsage);
      if (values.json)
        io.out(
          `${JSON.stringify(
            stored.map((b) => ({ ...b, lastModified: b.lastModified.toISOString() })),
            null,
            2,
          )}\n`,
        );
      else
        io.out(
          `${renderTable(
            ["taken", "size", "url"],
            stored.map((b) => [b.lastModified.toISOString(), `${Math.ceil(b.bytes / 1024)} KiB`, b.url]),
          )}\n`,
        );
      return 0;
    } finally {
      storage.close();
    }
  }

  const ring = keyRing(config, env, "a backup (it holds worker tokens and job data)");
  const storage = storageFor(settings, env);
  const redis = await connectStackRedis(env);
  try {
    const taken = await takeBackup({
      redis,
      storage,
      stack: config.stack,
      keyPrefix: config.redis.keyPrefix,
      retentionDays: settings.retentionDays,
      ring,
    }).catch(asUsage);
    if (values.json) io.out(`${JSON.stringify(taken)}\n`);
    else io.out(`${taken.url}\n`);
    io.err(`${describeTaken(config.stack, taken, settings.retentionDays)}\n`);
    return 0;
  } finally {
    redis.disconnect();
    storage.close();
  }
}

export async function runRestore(
  argv: readonly string[],
  io: Io,
  dir: string,
  env = process.env,
): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      stack: { type: "string" },
      config: { type: "string" },
      from: { type: "string" },
      at: { type: "string" },
      force: { type: "boolean" },
      actor: { type: "string" },
      json: { type: "boolean" },
    },
    strict: true,
  });
  if ((values.from === undefined) === (values.at === undefined))
    throw new UsageError(
      "restore needs --from s3://BUCKET/KEY (see aiorch backup list) or --at TIME (the newest backup taken at or before it), not both",
    );
  const atMs = values.at === undefined ? undefined : parseTime(values.at);
  if (values.from !== undefined)
    try {
      parseS3Url(values.from);
    } catch (error) {
      asUsage(error);
    }
  const config = runtimeConfigFrom({ stack: values.stack, config: values.config, dir });
  const settings = backupSettings(config);
  const ring = keyRing(config, env, "restoring a backup");
  const storage = storageFor(settings, env);
  let text: string;
  let from: string;
  try {
    from =
      values.from ?? newestAtOrBefore(await storage.list(config.stack).catch(asUsage), atMs!, values.at!);
    text = await storage.get(from).catch(asUsage);
  } finally {
    storage.close();
  }
  // everything is checked before Redis is touched
  const { header, content } = (() => {
    try {
      return openBackup(text, ring, from);
    } catch (error) {
      asUsage(error);
    }
  })();
  if (header.stack !== config.stack)
    throw new UsageError(
      `${from} is a backup of stack ${header.stack}, not ${config.stack}: restoring it would mix two stacks' keys, ledgers and audit trails`,
    );
  const started = Date.now();
  const redis = await connectStackRedis(env);
  try {
    const result = await restoreBackup(redis, header, content, {
      prefix: config.redis.keyPrefix,
      force: values.force === true,
      actor: values.actor ?? env.AIORCH_ACTOR ?? env.USER ?? "cli",
      nowMs: started,
    }).catch(asUsage);
    const summary = { backup: header.id, takenAt: header.takenAt, ...result, ms: Date.now() - started };
    if (values.json) io.out(`${JSON.stringify(summary)}\n`);
    else
      io.out(
        `restored backup ${header.id} (taken ${header.takenAt}) into stack ${config.stack}: ${result.restored} keys` +
          (result.expired > 0 ? `, ${result.expired} expired since and left out` : "") +
          (result.replaced > 0 ? `, ${result.replaced} existing keys replaced` : "") +
          (result.merged > 0 ? `, added to ${result.merged} ledger hash(es) booked since the loss` : "") +
          `, in ${summary.ms} ms; audit trail continues at ${result.auditHead.slice(0, 12)}… (aiorch audit verify)\n`,
      );
    return 0;
  } finally {
    redis.disconnect();
  }
}

/** `--at`: an ISO time (`2026-12-07T21:00Z`) or a date (`2026-12-07`, its end in UTC). */
function parseTime(text: string): number {
  const ms = /^\d{4}-\d{2}-\d{2}$/.test(text) ? Date.parse(`${text}T23:59:59.999Z`) : Date.parse(text);
  if (Number.isNaN(ms)) throw new UsageError(`--at "${text}" is not a time; write e.g. 2026-12-07T21:00Z`);
  return ms;
}

/** The newest backup taken at or before `atMs`, by the time in its id (`20261207T215316Z-…`). */
function newestAtOrBefore(stored: readonly StoredBackup[], atMs: number, at: string): string {
  const taken = (b: StoredBackup) => {
    const m = /(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z-[0-9a-f]+\.json$/.exec(b.key);
    return m ? Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!) : Number.NaN;
  };
  const candidates = stored.filter((b) => taken(b) <= atMs).sort((a, b) => taken(a) - taken(b));
  const chosen = candidates.at(-1);
  if (!chosen)
    throw new UsageError(
      `no backup of this stack was taken at or before ${at} (${stored.length} backup(s) in all; aiorch backup list)`,
    );
  return chosen.url;
}
