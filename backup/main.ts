/**
 * Backup process entry: the stack's backup CronJob runs `node backup.js --config /etc/aiorch/runtime.json` once
 * per schedule; it takes one backup (core/backup-take.ts) and exits 0 when it is stored, 1 when not (the Job
 * fails, Kubernetes retries it, and the backup-age alert comes if no retry succeeds). Locally: `aiorch backup now`.
 *
 * Redis from REDIS_URL (REDIS_PASSWORD, REDIS_TLS_*), object storage credentials from AWS_ACCESS_KEY_ID /
 * AWS_SECRET_ACCESS_KEY, the key ring from AIORCH_ENCRYPTION_KEYS (required when security.encryptQueued is on).
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { BackupStorage } from "../core/backup-storage";
import { describeTaken, type TakenBackup, takeBackup } from "../core/backup-take";
import {
  parseRuntimeConfig,
  type RuntimeConfig,
  redisClientOptions,
  redisConnectionFromEnv,
} from "../core/config/runtime";
import { parseKeyRing } from "../core/envelope";

/** One backup of the stack in `config`; throws naming what is missing or what failed (never a secret). */
export async function runBackupJob(config: RuntimeConfig, env: NodeJS.ProcessEnv): Promise<TakenBackup> {
  const settings = config.backup;
  if (!settings) throw new Error(`the runtime config of stack ${config.stack} has no backup target`);
  const ring = parseKeyRing(env.AIORCH_ENCRYPTION_KEYS);
  if (config.security.encryptQueued && !ring)
    throw new Error(
      "security.encryptQueued is on but AIORCH_ENCRYPTION_KEYS is not set: refusing to write Redis in clear to object storage",
    );
  const connection = redisConnectionFromEnv(env, (path) => readFileSync(path, "utf8"));
  const storage = new BackupStorage(settings, env);
  const redis = new Redis(connection.url, {
    ...redisClientOptions(connection),
    maxRetriesPerRequest: 3,
    lazyConnect: true,
    connectTimeout: 10_000,
  });
  redis.on("error", () => undefined); // connect() and each command report their own failure
  try {
    await redis.connect();
    return await takeBackup({
      redis,
      storage,
      stack: config.stack,
      keyPrefix: config.redis.keyPrefix,
      retentionDays: settings.retentionDays,
      ring,
    });
  } finally {
    redis.disconnect();
    storage.close();
  }
}

if (require.main === module) {
  const { values } = parseArgs({ options: { config: { type: "string" } } });
  const configPath = values.config ?? process.env.AIORCH_CONFIG ?? "/etc/aiorch/runtime.json";
  const config = parseRuntimeConfig(JSON.parse(readFileSync(configPath, "utf8")));
  runBackupJob(config, process.env).then(
    (taken) => {
      process.stdout.write(`${taken.url}\n`);
      process.stderr.write(`backup: ${describeTaken(config.stack, taken, config.backup!.retentionDays)}\n`);
    },
    (error: Error) => {
      process.stderr.write(`backup: FAILED for stack ${config.stack}: ${error.message}\n`);
      process.exitCode = 1;
    },
  );
}
