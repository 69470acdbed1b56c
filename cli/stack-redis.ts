/** The stack's Redis for CLI commands: from REDIS_URL (and the TLS settings next to it), failing with a clear message. */
import { readFileSync } from "node:fs";
import { Redis } from "ioredis";
import { redisClientOptions, redisConnectionFromEnv } from "../core/config";
import { UsageError } from "./plan/run";

/** Connect, or throw a UsageError naming the URL and the fix; the caller disconnects. */
export async function connectStackRedis(env: NodeJS.ProcessEnv): Promise<Redis> {
  const connection = redisConnectionFromEnv(env, (path) => readFileSync(path, "utf8"));
  const redis = new Redis(connection.url, {
    ...redisClientOptions(connection),
    maxRetriesPerRequest: 1,
    lazyConnect: true,
    connectTimeout: 5_000,
  });
  redis.on("error", () => undefined); // connect() reports the failure below
  await redis.connect().catch((error: Error) => {
    redis.disconnect();
    throw new UsageError(`cannot reach Redis at ${connection.url}: ${error.message} (set REDIS_URL)`);
  });
  return redis;
}
