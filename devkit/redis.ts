/** Redis chores of the benchmarks: each run works under a throw-away key prefix and removes it afterwards. */
import type { Redis } from "ioredis";

/** Delete every key under `prefix` (SCAN in batches of `batch`, so a large run does not block Redis). */
export async function deleteKeysByPrefix(redis: Redis, prefix: string, batch = 500): Promise<void> {
  let cursor = "0";
  do {
    const [next, found] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", batch);
    cursor = next;
    if (found.length > 0) await redis.del(...found);
  } while (cursor !== "0");
}
