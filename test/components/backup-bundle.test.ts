/**
 * The backup CronJob's program as the cluster runs it: the bundle, small enough for a ConfigMap, unpacked with
 * the init container's command and run on plain Node with nothing but the bundle, against real Redis and an
 * S3-compatible server: exit 0 and the object stored, or exit 1 and no success recorded.
 */
import { execFile, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bundleProcess, CONFIGMAP_LIMIT_BYTES, unpackCommand } from "../../components/runtime-bundle";
import { openBackup } from "../../core/backup";
import { BackupStorage } from "../../core/backup-storage";
import { newKeyRingEntry, parseKeyRing } from "../../core/envelope";
import { redisKeys } from "../../core/redis-keys";
import { type FakeS3, S3RVER_CREDENTIALS, startFakeS3 } from "../fakes/s3-server";
import { REDIS_URL, testRuntimeConfig } from "../gateway/harness";

const dir = mkdtempSync(join(tmpdir(), "aiorch-backup-bundle-"));
const prefix = `bb${randomBytes(4).toString("hex")}:`;
const keys = redisKeys(prefix);
const redis = new Redis(REDIS_URL);
const ring = newKeyRingEntry("k1");
let s3: FakeS3;
let file: string;
let configFile: string;

beforeAll(async () => {
  s3 = await startFakeS3();
  const bundle = bundleProcess("backup");
  writeFileSync(join(dir, bundle.fileName), bundle.compressed);
  const [, flag, script] = unpackCommand(bundle) as [string, string, string];
  const local = script.replaceAll("/opt/aiorch/bundle", dir).replaceAll("/opt/aiorch/app", dir);
  const unpacked = spawnSync(process.execPath, [flag, local], { encoding: "utf8" });
  expect(unpacked.status, unpacked.stderr).toBe(0);
  file = join(dir, "backup.js");
  configFile = join(dir, "runtime.json");
  writeFileSync(
    configFile,
    JSON.stringify(
      testRuntimeConfig("http://127.0.0.1:9", prefix, {
        security: "{ encryptQueued: true }",
        backup: `{ endpoint: "${s3.endpoint}", bucket: ${s3.bucket}, prefix: "job/" }`,
      }),
    ),
  );
  await redis.hset(keys.apiKeyIds, "key_1", "ab".repeat(32));
}, 60_000);
afterAll(async () => {
  await s3?.close();
  rmSync(dir, { recursive: true, force: true });
  const found = await redis.keys(`${prefix}*`);
  if (found.length > 0) await redis.del(...found);
  redis.disconnect();
});

/** Run the unpacked bundle in its own folder with only the environment its CronJob gives it. */
function runJob(env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [file, "--config", configFile],
      { cwd: dir, env: { PATH: process.env.PATH ?? "", NODE_PATH: "", REDIS_URL, ...env }, timeout: 60_000 },
      (error, stdout, stderr) =>
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe("the backup bundle", () => {
  it("fits a ConfigMap", () => {
    expect(bundleProcess("backup").compressed.length).toBeLessThan(CONFIGMAP_LIMIT_BYTES * 0.75);
  });

  it("stores a sealed backup, prints its address and records the success", async () => {
    const result = await runJob({ ...S3RVER_CREDENTIALS, AIORCH_ENCRYPTION_KEYS: ring });
    expect(result.code, result.stderr).toBe(0);
    const url = result.stdout.trim();
    expect(url).toMatch(new RegExp(`^s3://${s3.bucket}/job/test/\\S+\\.json$`));
    expect(result.stderr).toMatch(/^backup: backed up 1 keys of stack test \(sealed with key "k1"/m);
    expect(await redis.hget(keys.lastBackup, "url")).toBe(url);
    const storage = new BackupStorage(
      { endpoint: s3.endpoint, bucket: s3.bucket, prefix: "job/" },
      S3RVER_CREDENTIALS,
    );
    try {
      const { content } = openBackup(await storage.get(url), parseKeyRing(ring));
      expect(content.records).toEqual([{ key: "apikeys", type: "hash", value: { key_1: "ab".repeat(32) } }]);
    } finally {
      storage.close();
    }
  });

  it("exits 1 when the backup cannot be written or would be in clear, leaving the success marker alone", async () => {
    const before = await redis.hgetall(keys.lastBackup);
    const refused = await runJob({
      AWS_ACCESS_KEY_ID: "nobody",
      AWS_SECRET_ACCESS_KEY: "x",
      AIORCH_ENCRYPTION_KEYS: ring,
    });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(
      /^backup: FAILED for stack test: cannot write s3:\/\/.*InvalidAccessKeyId/m,
    );
    const clear = await runJob({ ...S3RVER_CREDENTIALS });
    expect(clear.code).toBe(1);
    expect(clear.stderr).toMatch(/AIORCH_ENCRYPTION_KEYS is not set: refusing to write Redis in clear/);
    expect(await redis.hgetall(keys.lastBackup)).toEqual(before);
  });
});
